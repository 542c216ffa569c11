"""Measure issue 3's search targets on this machine, with the pipeline's own study code.

    .venv/bin/python benchmarks/tuning.py [--arch lstm] [--trials 16]

1. Pruning: the same study (same seed, sampler, trials) with the median pruner, with Hyperband,
   and without pruning. Target, for the pruner params.yaml chooses: it trains at most half the
   epochs of the unpruned study and reaches an equal or better best validation loss (the other
   pruner's figures are shown beside it).
2. Workers: one study run by one worker, then a fresh one by two worker processes, unpruned and
   with a search space in which every trial has the same size and length (only lr varies), so
   every trial costs the same. Target: two workers complete >= 1.7x the trials per minute of one.
   Trials per minute are counted from the first trial's start to the last trial's end (the steady
   state); the wall time including the workers' start-up (importing torch) is shown beside it.

Studies go to a temporary SQLite file; nothing is logged to MLflow. Prints what it measured and
exits 1 if a target is missed. The default tuned `dvc repro` is timed by benchmarks/pipeline.py.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sinernn.core import data  # noqa: E402
from sinernn.core.config import parse_params  # noqa: E402
from sinernn.tune.storage import open_storage, quiet_optuna  # noqa: E402
from sinernn.tune.study import FINISHED, make_study  # noqa: E402
from sinernn.tune.workers import run_study  # noqa: E402


def run(params, dataset: str, arch, npz: Path, storage: str, name: str, workers: int) -> dict:
    optuna = quiet_optuna()
    opened = open_storage(storage, params.tune.heartbeat_interval, params.tune.max_retry,
                                 params.tune.sqlite_lock_wait)
    make_study(opened, name, params, dataset, params.seed)
    started = time.perf_counter()
    run_study(params, dataset, arch, npz, storage, name, parent_run_id=None, workers=workers)
    wall = time.perf_counter() - started
    trials = [t for t in optuna.load_study(study_name=name, storage=opened).trials if t.state.name in FINISHED]
    span = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
    complete = [t.value for t in trials if t.state.name == "COMPLETE"]
    return {
        "trials": len(trials), "pruned": sum(t.state.name == "PRUNED" for t in trials),
        "epochs": sum(t.user_attrs.get("epochs", 0) for t in trials), "best": min(complete),
        "wall": wall, "per_minute": 60 * len(trials) / span, "per_minute_wall": 60 * len(trials) / wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="clean")
    parser.add_argument("--arch", default="lstm")
    parser.add_argument("--trials", type=int, default=16)
    args = parser.parse_args()

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["tune"]["n_trials"] = args.trials
    with tempfile.TemporaryDirectory(prefix="sinernn-tune-bench-") as scratch:
        scratch = Path(scratch)
        base = parse_params(raw)
        npz = scratch / f"{args.dataset}.npz"
        dataset = data.generate(args.dataset, base.datasets[args.dataset], base.seed, base.train.window, ROOT)
        data.save(dataset, base.datasets[args.dataset], base.seed, npz, npz.with_suffix(".json"))
        storage = f"sqlite:///{scratch / 'studies.db'}"

        def variant(pruner: str, equal_cost: bool = False) -> object:
            tune = {**raw["tune"], "pruner": pruner}
            train = raw["train"]
            if equal_cost:
                # Every trial the same size and length (only lr varies), so that trials per minute
                # measure the workers and not which model sizes the sampler happened to draw.
                size = raw["architectures"][args.arch].get("hidden_size", 32)
                tune["space"] = {**tune["space"], "hidden_size": {"low": size, "high": size},
                                 "num_layers": {"low": 1, "high": 1}, "grad_clip": [1.0]}
                tune["arch_space"] = {}
                train = {**train, "patience": tune["max_epochs"] or train["max_epochs"]}
            return parse_params({**raw, "tune": tune, "train": train})

        results = {}
        for label, params, workers in [
            ("no pruning", variant("none"), 1), ("median pruner", variant("median"), 1),
            ("hyperband pruner", variant("hyperband"), 1),
            ("equal trials, 1 worker", variant("none", equal_cost=True), 1),
            ("equal trials, 2 workers", variant("none", equal_cost=True), 2),
        ]:
            print(f"running: {label} ...", flush=True)
            results[label] = run(params, args.dataset, args.arch, npz, storage, label.replace(" ", "-").replace(",", ""), workers)

    print(f"\n{args.arch} on {args.dataset}, {args.trials} trials of up to "
          f"{base.tune.max_epochs or base.train.max_epochs} epochs:")
    print(f"{'study':<24} {'pruned':>6} {'epochs':>7} {'best value':>10} {'wall s':>7} {'trials/min':>11} {'(with start-up)':>16}")
    for label, r in results.items():
        print(f"{label:<24} {r['pruned']:>6} {r['epochs']:>7} {r['best']:>10.3g} {r['wall']:>7.1f} "
              f"{r['per_minute']:>11.1f} {r['per_minute_wall']:>16.1f}")

    unpruned = results["no pruning"]
    checks = []
    for label in ("median pruner", "hyperband pruner"):
        r = results[label]
        default = label.startswith(base.tune.pruner)  # the target is for the pipeline's pruner
        saved_ok, best_ok = r["epochs"] <= 0.5 * unpruned["epochs"], r["best"] <= unpruned["best"]
        checks.append((f"{label}: epochs saved", 1 - r["epochs"] / unpruned["epochs"],
                       ">= 0.5" if default else "(shown)", saved_ok or not default))
        checks.append((f"{label}: best / unpruned best", r["best"] / unpruned["best"],
                       "<= 1" if default else "(shown)", best_ok or not default))
    one, two = results["equal trials, 1 worker"], results["equal trials, 2 workers"]
    speedup = two["per_minute"] / one["per_minute"]
    speedup_wall = two["per_minute_wall"] / one["per_minute_wall"]
    checks.append(("2 workers / 1 worker, trials per minute", speedup, ">= 1.7", speedup >= 1.7))
    checks.append(("... including worker start-up", speedup_wall, "(shown)", True))
    print()
    for name, value, target, met in checks:
        print(f"{name:<44} {value:>8.3f} {target:>8}  {'yes' if met else 'NO'}")
    return 0 if all(met for *_, met in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
