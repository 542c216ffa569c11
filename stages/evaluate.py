"""DVC stage `evaluate`. dvc.yaml runs:

    python stages/evaluate.py --dataset DATASET --data data/processed/DATASET.npz --models-dir models/DATASET --metrics reports/eval/DATASET.json --predictions reports/predictions/DATASET --rollouts reports/rollouts/DATASET --backtests reports/backtests/DATASET.csv

Wiring only: the `sinernn evaluate` command validates params.yaml and calls sinernn.jobs.
"""

import sys

from sinernn.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
