"""How far the committed JSON outputs moved from an earlier commit: every number compared.

    .venv/bin/python benchmarks/outputs_diff.py --before b3a4037 [--json FILE]

For each output below it reads the file at --before (`git show`) and in the working tree, walks
both to their leaves, and counts the leaves that differ, timings (keys with "seconds") aside, and
under which top-level key they sit. Nothing here is asserted by a test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# each output, and how deep its grouping key is: a summary's measurement; the metrics' dataset/arch
OUTPUTS = {"reports/diagnosis/summary.json": 1, "reports/claims/summary.json": 1, "reports/metrics.json": 2}


def leaves(value, path: tuple = ()):
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from leaves(inner, (*path, str(key)))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from leaves(inner, (*path, str(index)))
    else:
        yield path, value


def compare(before: dict, after: dict, depth: int) -> dict:
    old, new = dict(leaves(before)), dict(leaves(after))
    keys = [key for key in old.keys() | new.keys() if not any("seconds" in part for part in key)]
    moved = [key for key in keys if old.get(key, "missing") != new.get(key, "missing")]
    return {"numbers": len(keys), "differ": len(moved), "differ_under": dict(Counter("/".join(key[:depth]) for key in moved))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="the commit to compare with")
    parser.add_argument("--json", type=Path, help="also write the comparison to this JSON file")
    args = parser.parse_args()
    results = {"before": args.before, "outputs": {}}
    for output, depth in OUTPUTS.items():
        shown = subprocess.run(["git", "show", f"{args.before}:{output}"], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout
        results["outputs"][output] = compare(json.loads(shown), json.loads((ROOT / output).read_text()), depth)
        print(output, results["outputs"][output])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
