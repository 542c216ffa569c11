"""DVC stage `summarize`. dvc.yaml runs:

    python stages/summarize.py --eval-dir reports/eval --out reports/metrics.json
        --scores reports/scores --comparison reports/comparison

Wiring only: the `sinernn summarize` command validates params.yaml and calls sinernn.jobs.
"""

import sys

from sinernn.cli import main

if __name__ == "__main__":
    sys.exit(main(["summarize", *sys.argv[1:]]))
