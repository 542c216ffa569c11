"""DVC stage `tune`. dvc.yaml runs:

    python stages/tune.py --dataset DATASET --arch ARCH --data data/processed/DATASET.npz --out tuned/DATASET/ARCH.json

Wiring only: the `sinernn tune` command validates params.yaml and calls sinernn.jobs.
"""

import sys

from sinernn.cli import main

if __name__ == "__main__":
    sys.exit(main(["tune", *sys.argv[1:]]))
