"""DVC stage `generate`. dvc.yaml runs:

    python stages/generate.py --dataset DATASET --out data/processed/DATASET.npz

Wiring only: the `sinernn generate` command validates params.yaml and calls sinernn.jobs.
"""

import sys

from sinernn.cli import main

if __name__ == "__main__":
    sys.exit(main(["generate", *sys.argv[1:]]))
