"""DVC stage `train`. dvc.yaml runs:

    python stages/train.py --dataset DATASET --arch ARCH --data data/processed/DATASET.npz --model-dir models/DATASET/ARCH --history reports/history/DATASET/ARCH.csv --tuned tuned/DATASET/ARCH.json

Wiring only: the `sinernn train` command validates params.yaml and calls sinernn.jobs.
"""

import sys

from sinernn.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
