"""DVC stage `register`. dvc.yaml runs:

    python stages/register.py --dataset DATASET --data data/processed/DATASET.npz --models-dir models/DATASET --eval reports/eval/DATASET.json --out reports/registry/DATASET.json

Wiring only: the `sinernn register` command validates params.yaml and calls sinernn.jobs.
"""

import sys

from sinernn.cli import main

if __name__ == "__main__":
    sys.exit(main(["register", *sys.argv[1:]]))
