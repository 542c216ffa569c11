"""The full matrix, every dataset x every architecture, timed cold: once as one `dvc exp run`, once
as one queued experiment per dataset run by `dvc queue start -j 2`, and once by `sinernn repro -j 2`
(every stage whose inputs are ready at once, docs/performance.md).

    make bench-matrix                                (or: .venv/bin/python benchmarks/matrix.py)
    .venv/bin/python benchmarks/matrix.py --set tune.n_trials=2 --set train.max_epochs=3 --json FILE

Each way runs in its own copy of what a fresh clone holds (benchmarks/pipeline.py), so nothing is
cached and your mlflow.db, studies and outputs are untouched. --set changes the copies' params.yaml
(YAML values), e.g. fewer epochs to time the pipeline's own cost rather than training. It prints
the wall clock of each way, the stages run, and the models trained; nothing here is asserted by a
test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from overhead import clean_env  # noqa: E402  (sibling scripts)
from pipeline import apply_overrides, copy_fresh_clone  # noqa: E402

QUEUE_POLL_SECONDS = 5
QUEUE_DEADLINE_SECONDS = 4 * 3600  # a queue whose workers never start must not hang the benchmark


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, env=clean_env(), capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done


def prepared_copy(folder: Path, overrides: list[str]) -> list[str]:
    """A fresh-clone copy whose params train every generated dataset; returns those datasets."""
    copy_fresh_clone(folder)
    # The sample CSV into the copy's DVC cache, as a fresh clone's `make run` does: a queued
    # experiment's workspace is checked out from git and that cache, not from this folder.
    run(["dvc", "pull", "--quiet", "--remote", "seed", "data/external/sample.csv.dvc"], folder)
    raw = apply_overrides(folder / "params.yaml", overrides)
    datasets = raw["run"]["datasets"]
    apply_overrides(folder / "params.yaml", [f"run.train_datasets={json.dumps(datasets)}"])
    run(["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qam", "full matrix"], folder)
    return datasets


def one_experiment(folder: Path) -> dict:
    started = time.perf_counter()
    out = run(["dvc", "exp", "run", "--name", "full-matrix"], folder).stdout
    return {"seconds": time.perf_counter() - started, "stages_run": out.count("Running stage")}


def queued_per_dataset(folder: Path, datasets: list[str], jobs: int) -> dict:
    """One queued experiment per dataset (its trainings, searches and evaluation), `jobs` at once."""
    started = time.perf_counter()
    for name in datasets:
        run(["dvc", "exp", "run", "--queue", "--name", f"matrix-{name}", "-S",
             f"run.train_datasets={json.dumps([name])}"], folder)
    run(["dvc", "queue", "start", "-j", str(jobs)], folder)
    while True:
        status = run(["dvc", "queue", "status"], folder).stdout
        if not any(word in status for word in ("Queued", "Running")):
            break
        if time.perf_counter() - started > QUEUE_DEADLINE_SECONDS:
            run(["dvc", "queue", "kill", *[f"matrix-{name}" for name in datasets]], folder)
            sys.exit(f"the queue did not finish in {QUEUE_DEADLINE_SECONDS} s:\n{status}")
        time.sleep(QUEUE_POLL_SECONDS)
    seconds = time.perf_counter() - started
    failed = [line for line in status.splitlines() if "Failed" in line]
    return {"seconds": seconds, "experiments": len(datasets), "jobs": jobs, "failed": failed}


def parallel_runner(folder: Path, jobs: int) -> dict:
    started = time.perf_counter()
    out = run([sys.executable, "-m", "sinernn.cli", "repro", "-j", str(jobs)], folder).stdout
    return {"seconds": time.perf_counter() - started, "jobs": jobs, "summary": out.strip().splitlines()[-1],
            "stages_run": out.count("] ran ")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change a param in the copies, e.g. --set train.max_epochs=3 (repeatable)")
    parser.add_argument("--jobs", type=int, default=2, help="dvc queue start -j (default: %(default)s)")
    parser.add_argument("--only", choices=["exp", "queue", "runner"], help="time one way only")
    parser.add_argument("--json", type=Path, help="also write the measurements to this JSON file (with --only: "
                        "into it, beside the other way's, when it holds a run with the same --set)")
    args = parser.parse_args()

    results: dict = {"settings": args.set}
    if args.only in (None, "exp"):
        with tempfile.TemporaryDirectory(prefix="sinernn-matrix-") as folder:
            datasets = prepared_copy(Path(folder), args.set)
            architectures = yaml.safe_load((Path(folder) / "params.yaml").read_text())["run"]["architectures"]
            results["models"] = len(datasets) * len(architectures)
            results["exp_run"] = one_experiment(Path(folder))
            print(f"dvc exp run, {len(datasets)} datasets x {len(architectures)} architectures: "
                  f"{results['exp_run']['seconds']:.0f} s ({results['exp_run']['stages_run']} stages)", flush=True)
    if args.only in (None, "runner"):
        with tempfile.TemporaryDirectory(prefix="sinernn-matrix-") as folder:
            datasets = prepared_copy(Path(folder), args.set)
            architectures = yaml.safe_load((Path(folder) / "params.yaml").read_text())["run"]["architectures"]
            results["models"] = len(datasets) * len(architectures)
            results["runner"] = parallel_runner(Path(folder), args.jobs)
            print(f"sinernn repro -j {args.jobs}: {results['runner']['seconds']:.0f} s ({results['runner']['stages_run']} "
                  "stages)", flush=True)
    if args.only in (None, "queue"):
        with tempfile.TemporaryDirectory(prefix="sinernn-matrix-") as folder:
            datasets = prepared_copy(Path(folder), args.set)
            architectures = yaml.safe_load((Path(folder) / "params.yaml").read_text())["run"]["architectures"]
            results["models"] = len(datasets) * len(architectures)
            results["queue"] = queued_per_dataset(Path(folder), datasets, args.jobs)
            print(f"dvc queue start -j {args.jobs}, one experiment per dataset ({len(datasets)}): "
                  f"{results['queue']['seconds']:.0f} s; failed: {results['queue']['failed'] or 'none'}", flush=True)
    if args.json:
        earlier = json.loads(args.json.read_text()) if args.only and args.json.exists() else {}
        if earlier.get("settings") == args.set:
            results = {**earlier, **results}
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 1 if results.get("queue", {}).get("failed") else 0


if __name__ == "__main__":
    sys.exit(main())
