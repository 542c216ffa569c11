"""DVC stage `diagnose`. dvc.yaml runs:

    python stages/diagnose.py --all --data-dir data/processed --out reports/diagnosis --figures reports/figures

Wiring only: the `sinernn diagnose` command validates params.yaml and calls sinernn.jobs.
"""

import sys

from sinernn.cli import main

if __name__ == "__main__":
    sys.exit(main(["diagnose", *sys.argv[1:]]))
