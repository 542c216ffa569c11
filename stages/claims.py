"""DVC stage `claims`. dvc.yaml runs:

    python stages/claims.py --data-dir data/processed --tuned-dir tuned --out reports/claims --figures reports/claim_figures

Wiring only: the `sinernn claims` command validates params.yaml and calls sinernn.jobs.
"""

import sys

from sinernn.cli import main

if __name__ == "__main__":
    sys.exit(main(["claims", *sys.argv[1:]]))
