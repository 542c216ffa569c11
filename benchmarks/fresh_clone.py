"""The README's two commands, timed as a new user meets them: a fresh clone, then `make run`.

    .venv/bin/python benchmarks/fresh_clone.py [--commit HEAD] [--test] [--json FILE]

Clones this repository at --commit into a temporary folder (`git clone`, as a user would: no
outputs but the committed ones, no DVC cache, no MLflow store, no Optuna studies) and times, in it,
`make install`, then `make run` (the whole pipeline on the embedded default), then `make run` again
(nothing changed), and with --test `make test`. Nothing here is asserted by a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(command: list[str], cwd: Path) -> tuple[float, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "SINERNN_", "VIRTUAL_ENV"))}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    print(f"{' '.join(command)}: {seconds:.0f} s", flush=True)
    return seconds, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commit", default="HEAD", help="what to clone (default: %(default)s)")
    parser.add_argument("--test", action="store_true", help="also time `make test`")
    parser.add_argument("--json", type=Path, help="also write the measurements to this JSON file")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", args.commit], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    folder = Path(tempfile.mkdtemp(prefix="sinernn-clone-"))
    try:
        subprocess.run(["git", "clone", "-q", str(ROOT), str(folder / "clone")], check=True)
        clone = folder / "clone"
        subprocess.run(["git", "checkout", "-q", commit], cwd=clone, check=True)
        results = {"commit": commit, "cores": len(os.sched_getaffinity(0))}
        results["install_seconds"], _ = timed(["make", "install"], clone)
        results["run_seconds"], out = timed(["make", "run"], clone)
        results["run_summary"] = [line for line in out.splitlines() if line.startswith("sinernn repro:")]
        results["second_run_seconds"], _ = timed(["make", "run"], clone)
        if args.test:
            results["test_seconds"], out = timed(["make", "test"], clone)
            results["test_summary"] = out.strip().splitlines()[-1]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
