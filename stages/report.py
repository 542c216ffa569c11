"""DVC stage `report`. dvc.yaml runs:

    python stages/report.py --diagnosis reports/diagnosis/summary.json --metrics reports/metrics.json --out reports/REPORT.md

Wiring only: the `sinernn report` command validates params.yaml and calls sinernn.jobs.
"""

import sys

from sinernn.cli import main

if __name__ == "__main__":
    sys.exit(main(["report", *sys.argv[1:]]))
