"""The pipeline cold on one core and on every core: `sinernn repro --force -j N` in fresh copies.

    make bench-parallel         (or: .venv/bin/python benchmarks/parallel.py [--jobs 1 2] [--dvc] [--json FILE])

Each run happens in its own copy of what a fresh clone holds (benchmarks/pipeline.py), so nothing is
restored from a cache and your mlflow.db, studies and outputs are untouched; `--force` runs every
stage, the searches included (the "cold graph"). For each -j it records the wall clock, the stages
that ran, and how busy the cores were; from the -j 1 run (stage times without a second stage beside
them) it takes `sinernn plan`: the critical path, the total work and the simulated wall clock on 1,
2, 4, 8 and 16 cores. `--dvc` also times plain `dvc repro --force` (one stage at a time, each
importing torch and MLflow itself): the pipeline as it ran before `sinernn repro`. In the first
copy it then times the no-op: `dvc repro` and `sinernn repro` with nothing changed, three each.

Targets (docs/performance.md): -j 2 at least 1.8x faster than -j 1; the simulated 16-core wall
clock at most 1/6 of the 1-core one; a no-op `dvc repro` within 2 s. It prints what it measured
and exits 1 when a target is missed; nothing here is asserted by a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from overhead import clean_env  # noqa: E402  (sibling scripts)
from pipeline import apply_overrides, copy_fresh_clone  # noqa: E402

import overhead  # noqa: E402

TARGET_SPEEDUP_2, TARGET_SIMULATED_16, TARGET_NOOP_SECONDS = 1.8, 1 / 6, 2.0


def prepared_copy(folder: Path, overrides: list[str]) -> None:
    copy_fresh_clone(folder)
    overhead.PROJECT = folder  # clean_env: the copy's own sinernn on PYTHONPATH
    run(["dvc", "pull", "--quiet", "--remote", "seed", "data/external/sample.csv.dvc"], folder)
    if overrides:
        apply_overrides(folder / "params.yaml", overrides)


def run(command: list[str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=clean_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return seconds, done.stdout


def cold(folder: Path, jobs: int) -> dict:
    seconds, out = run([sys.executable, "-m", "sinernn.cli", "repro", "--force", "-j", str(jobs)], folder)
    record = json.loads((folder / ".dvc/tmp/sinernn/runs.json").read_text())["runs"][-1]
    print(f"sinernn repro --force -j {jobs}: {seconds:.0f} s ({record['stages']}, busy {record['busy_seconds']:.0f} s)",
          flush=True)
    return {"jobs": jobs, "seconds": seconds, "stages": record["stages"], "busy_seconds": record["busy_seconds"],
            "summary": out.strip().splitlines()[-1]}


def noop(folder: Path, repeats: int = 3) -> dict:
    dvc = [run(["dvc", "repro"], folder)[0] for _ in range(repeats)]
    sinernn = [run([sys.executable, "-m", "sinernn.cli", "repro"], folder)[0] for _ in range(repeats)]
    return {"dvc_repro": dvc, "sinernn_repro": sinernn}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="the -j values to time (default: 1 2)")
    parser.add_argument("--dvc", action="store_true", help="also time plain `dvc repro --force` (serial, no worker)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change a param in the copies (YAML values), e.g. --set tune.n_trials=2")
    parser.add_argument("--json", type=Path, help="also write the measurements to this JSON file")
    args = parser.parse_args()

    code = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    results: dict = {"code": code, "settings": args.set, "runs": []}
    for jobs in args.jobs:
        with tempfile.TemporaryDirectory(prefix="sinernn-parallel-") as folder:
            prepared_copy(Path(folder), args.set)
            results["runs"].append(cold(Path(folder), jobs))
            if jobs == min(args.jobs):  # stage times with nothing beside them, and the no-op
                _, out = run([sys.executable, "-m", "sinernn.cli", "plan", "--json", str(Path(folder) / "plan.json")],
                             Path(folder))
                print(out, flush=True)
                results["plan"] = json.loads((Path(folder) / "plan.json").read_text())
                results["noop"] = noop(Path(folder))
    if args.dvc:
        with tempfile.TemporaryDirectory(prefix="sinernn-parallel-") as folder:
            prepared_copy(Path(folder), args.set)
            seconds, out = run(["dvc", "repro", "--force"], Path(folder))
            results["dvc_repro_seconds"] = seconds
            print(f"dvc repro --force: {seconds:.0f} s ({out.count('Running stage')} stages)", flush=True)

    walls = {r["jobs"]: r["seconds"] for r in results["runs"]}
    simulated = results["plan"]["simulated_wall_seconds"]
    checks = []
    if 1 in walls and 2 in walls:
        checks.append(("-j 1 / -j 2, measured", walls[1] / walls[2], TARGET_SPEEDUP_2, ">="))
    checks.append(("simulated 16 cores / 1 core", simulated["16"] / simulated["1"], TARGET_SIMULATED_16, "<="))
    checks.append(("no-op dvc repro, median (s)", statistics.median(results["noop"]["dvc_repro"]), TARGET_NOOP_SECONDS, "<="))
    checks.append(("no-op sinernn repro, median (s)", statistics.median(results["noop"]["sinernn_repro"]),
                   TARGET_NOOP_SECONDS, "<="))
    met = [value >= limit if way == ">=" else value <= limit for _, value, limit, way in checks]
    for (name, value, limit, way), ok in zip(checks, met):
        print(f"{name:<34} {value:8.3g}  target {way} {limit:.3g}: {'met' if ok else 'MISSED'}")
    results["checks"] = [{"name": n, "value": v, "target": f"{w} {t:.3g}", "met": ok} for (n, v, t, w), ok in zip(checks, met)]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(met) else 1


if __name__ == "__main__":
    sys.exit(main())
