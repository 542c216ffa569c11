"""DVC stages `diagnose_<measurement>` and `claims_<measurement>`. dvc.yaml runs, for example:

    python stages/measure.py delay --item gru --data-dir data/processed --tuned-dir tuned --out reports/measurements/diagnose/delay-gru.json

Wiring only: the `sinernn measure` command validates params.yaml and calls sinernn.jobs.
"""

import sys

from sinernn.cli import main

if __name__ == "__main__":
    sys.exit(main(["measure", *sys.argv[1:]]))
