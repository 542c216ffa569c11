"""Measure the pipeline's targets on this machine: run it from scratch in a copy of the project.

    make bench                    (or: .venv/bin/python benchmarks/pipeline.py [--keep])
    .venv/bin/python benchmarks/pipeline.py --set tune.enabled=false     (the untuned pipeline)

Copies what a fresh clone holds (the files git tracks, plus the DVC-pulled sample CSV) to a
temporary folder, so your own mlflow.db, cache and outputs are not touched, then times
  1. `dvc repro --force` on the default params.yaml (every stage runs: data, searches, training),
  2. a second `dvc repro` with nothing changed (DVC's no-op check),
and reports the clean-dataset figures of the recurrent architectures against the targets:
one-step test MSE <= 1e-5 and 1000-step rollout MSE <= 1e-3. The cold repro must take under
15 minutes with tuning (the default) and under 5 without. Nothing here is asserted by a test: it
prints what it measured and exits 1 if a target is missed.
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

import yaml

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"test_mse": 1e-5, "rollout_mse_1000": 1e-3}
RECURRENT = ("rnn", "gru", "lstm")
MAX_REPRO_SECONDS = {True: 900.0, False: 300.0}  # with / without the Optuna searches
MAX_NOOP_SECONDS = 3.0


def apply_overrides(params_path: Path, overrides: list[str]) -> dict:
    """`key.sub=value` settings (YAML values) applied to the copy's params.yaml."""
    raw = yaml.safe_load(params_path.read_text())
    for override in overrides:
        key, _, value = override.partition("=")
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            node = node[part]
        node[leaf] = yaml.safe_load(value)
    params_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return raw


def copy_fresh_clone(target: Path, root: Path = ROOT) -> None:
    """The files git tracks in `root` (this checkout by default), committed in a new repository."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, text=True, check=True)
    for name in [*tracked.stdout.split("\0"), "data/external/sample.csv"]:
        source = root / name
        if name and source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "benchmark copy"]):
        subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", *args],
                       cwd=target, check=True)


def timed_repro(cwd: Path, *options: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    # The copy's own code: the venv's editable install would otherwise import this checkout's
    # sinernn/ (whatever it holds now) into the copy's stages.
    env["PYTHONPATH"] = os.pathsep.join([str(cwd), *filter(None, [env.get("PYTHONPATH")])])
    start = time.perf_counter()
    result = subprocess.run(["dvc", "repro", *options], cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"dvc repro failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="keep the temporary project and print its path")
    parser.add_argument("--json", type=Path, help="also write the measurements to this JSON file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change a param in the copy, e.g. --set tune.enabled=false (repeatable)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="sinernn-bench-"))
    try:
        copy_fresh_clone(workdir)
        raw = apply_overrides(workdir / "params.yaml", args.set)
        if args.set:
            for args_git in (["add", "-A"], ["commit", "-qm", "benchmark overrides"]):
                subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", *args_git],
                               cwd=workdir, check=True)
        # --force: every stage runs, even those whose committed outputs match dvc.lock (a clone
        # holds the small uncached outputs, e.g. tuned/*.json, which would let DVC skip a search).
        cold = timed_repro(workdir, "--force")
        noop = timed_repro(workdir)
        metrics = json.loads((workdir / "reports/metrics.json").read_text())
    finally:
        if args.keep:
            print(f"project kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    tuned = raw.get("tune", {}).get("enabled", True)
    label = "cold dvc repro, tuned (s)" if tuned else "cold dvc repro, untuned (s)"
    checks = [(label, cold, MAX_REPRO_SECONDS[tuned]), ("no-op dvc repro (s)", noop, MAX_NOOP_SECONDS)]
    for arch in RECURRENT:
        for metric, limit in TARGETS.items():
            checks.append((f"clean {arch} {metric}", metrics["clean"][arch][metric], limit))

    print(f"{'measurement':<34} {'value':>12} {'target':>10}  met")
    for name, value, limit in checks:
        print(f"{name:<34} {value:>12.4g} {'<= ' + format(limit, 'g'):>10}  {'yes' if value <= limit else 'NO'}")
    print("\nall architectures, one-step test MSE / 1000-step rollout MSE / train seconds:")
    for dataset, by_arch in metrics.items():
        for arch, values in by_arch.items():
            print(f"  {dataset:<12} {arch:<12} {values['test_mse']:>10.3g} {values['rollout_mse_1000']:>10.3g} "
                  f"{values['train_seconds']:>8.1f}")
    if args.json:
        args.json.write_text(json.dumps({"cold_repro_seconds": cold, "noop_repro_seconds": noop,
                                         "metrics": metrics}, indent=2) + "\n")
    return 0 if all(value <= limit for _, value, limit in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
