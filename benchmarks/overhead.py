"""What a train stage costs beyond its training loop: a bare PyTorch loop beside the pipeline's stage.

    make bench-overhead        (or: .venv/bin/python benchmarks/overhead.py [--archs rnn gru lstm] [--json FILE])

Same data and settings for both: a sine of period 64 with 2,867 training values, window 32,
hidden size 32, one layer, batch 64, 60 epochs (no early stop), Adam 3e-3 with a cosine schedule,
gradient clipping at 1.0, 2 threads, no tuning. For each architecture it measures

  bare loop    the training loop of a plain script written below (`bare_loop`), no logging;
  bare script  that script's wall clock, `import torch` and data loading included;
  stage loop   the pipeline's own loop (`train_seconds` in train.json);
  stage cmd    `python stages/train.py ...` alone: imports, MLflow run, model export, outputs;
  stage        `dvc repro --single-item train@bench-ARCH`: what a user waits for;
  runner stage the same stage under `sinernn repro` (code that has it): its `dvc repro
               --single-item` as the runner timed it, the command handed to the resident worker,
               which imported torch and MLflow once for the whole run,

in a copy of the project (the files git tracks), so your mlflow.db and outputs are untouched.
Target: stage <= 1.3 x bare loop + 1.5 s, judged on the runner stage where the code has the runner
(that is how `make run` runs a stage). With --epochs 2 the runner stage minus the bare script is a
stage's fixed cost: at most 4 s. It prints the table and exits 1 if a target is missed; nothing
here is asserted by a test.

    --repeat N    measure each architecture N times, interleaved, and keep each column's median
                  (a single run on this machine moves with the load on its two cores)
    --epochs E    train E epochs instead of 60: with 2, the table is the fixed cost of a stage
    --code DIR    measure the code of another checkout, e.g. `git worktree add /tmp/before COMMIT`;
                  a checkout from before the searches per dataset (one `tune@ARCH` stage, a
                  `tune.dataset` param) is handled too
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from pipeline import apply_overrides, copy_fresh_clone  # noqa: E402  (a sibling script)

SETTINGS = {"window": 32, "hidden_size": 32, "batch_size": 64, "epochs": 60, "lr": 3e-3, "grad_clip": 1.0, "threads": 2}
BENCH_DATASET = {"source": "sine", "period": 64.0, "train": {"scaling": "global"},
                 "n_train": 2867, "n_val": 300, "n_test": 1100}
RATIO, ALLOWANCE = 1.3, 1.5  # the target: stage <= RATIO * bare loop + ALLOWANCE seconds
COLUMNS = ("bare_loop", "bare_script", "stage_loop", "stage_cmd", "stage", "runner_stage")
PROJECT: Path | None = None  # the copy being measured


def project_overrides(archs: list[str], one_study_per_arch: bool) -> list[str]:
    """The copy's params.yaml: one dataset, the three cells at the settings above, no tuning."""
    s = SETTINGS
    sets = {
        "datasets": {"bench": BENCH_DATASET},
        "run.datasets": ["bench"], "run.train_datasets": ["bench"], "run.architectures": archs,
        "train.window": s["window"], "train.batch_size": s["batch_size"], "train.max_epochs": s["epochs"],
        "train.patience": s["epochs"], "train.lr": s["lr"], "train.lr_schedule": "cosine",
        "train.grad_clip": s["grad_clip"], "train.threads": s["threads"], "train.scaling": "global",
        "tune.enabled": False,
    }
    # every dataset the research stages read must be generated: the copy's own `*_dataset(s)` keys
    # of diagnose and claims (older checkouts, measured with --code, have fewer of them)
    raw = yaml.safe_load((PROJECT / "params.yaml").read_text())
    for section in ("diagnose", "claims"):
        for key in raw.get(section) or {}:
            if key.endswith(("_dataset", "_datasets")):
                sets[f"{section}.{key}"] = ["bench"] if key.endswith("s") else "bench"
    if one_study_per_arch:  # code from before the searches per dataset: its study reads tune.dataset
        sets["tune.dataset"] = "bench"
    for arch in archs:
        sets[f"architectures.{arch}"] = {"kind": arch, "hidden_size": s["hidden_size"], "num_layers": 1}
    return [f"{key}={json.dumps(value)}" for key, value in sets.items()]


def bare_loop(arch: str, data_path: str) -> dict:
    """The loop a reader would write: global standardisation, windows, Adam, cosine, clipping."""
    import numpy as np
    import torch
    from torch import nn

    s = SETTINGS
    torch.manual_seed(0)
    torch.set_num_threads(s["threads"])
    with np.load(data_path) as stored:
        train, val = stored["train_observed"][0], stored["val_observed"][0]
    mean, std = train.mean(), train.std()
    series = (np.concatenate([train, val]) - mean) / std

    def windows(values: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        view = np.lib.stride_tricks.sliding_window_view(values, s["window"] + 1)
        return (torch.tensor(view[:, :-1, None], dtype=torch.float32),
                torch.tensor(view[:, -1:], dtype=torch.float32))

    x_train, y_train = windows(series[: len(train)])
    x_val, y_val = windows(series[len(train) - s["window"]:])
    cell = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[arch](1, s["hidden_size"], batch_first=True)
    head = nn.Linear(s["hidden_size"], 1)
    parameters = [*cell.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=s["lr"])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, s["epochs"], eta_min=s["lr"] * 0.01)

    def predict(inputs: torch.Tensor) -> torch.Tensor:
        return head(cell(inputs)[0][:, -1])

    started = time.perf_counter()
    for _ in range(s["epochs"]):
        for index in torch.randperm(len(x_train)).split(s["batch_size"]):
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(predict(x_train[index]), y_train[index])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, s["grad_clip"])
            optimizer.step()
        schedule.step()
        with torch.no_grad():
            val_loss = float(nn.functional.mse_loss(predict(x_val), y_val))
    return {"loop_seconds": time.perf_counter() - started, "val_loss": val_loss}


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "PYTHONPATH"))}
    if PROJECT:  # the copy's own sinernn, not the one this venv installed in editable mode
        env["PYTHONPATH"] = str(PROJECT)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


def timed(command: list[str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=clean_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def measure(project: Path, arch: str, tune_stage: str) -> dict:
    data = project / "data/processed/bench.npz"
    bare_wall, out = timed([sys.executable, __file__, "--bare", arch, "--data", str(data),
                            "--epochs", str(SETTINGS["epochs"])], project)
    bare = json.loads(out.strip().splitlines()[-1])
    scratch = Path(tempfile.mkdtemp(dir=project))
    stage_cmd = [sys.executable, "stages/train.py", "--dataset", "bench", "--arch", arch, "--data", str(data),
                 "--model-dir", str(scratch / "model"), "--history", str(scratch / "history.csv")]
    cmd_wall, _ = timed(stage_cmd, project)
    timed(["dvc", "repro", "--single-item", tune_stage.format(arch=arch)], project)  # tuning off: an empty tuned file
    # --force: a repeat trains again instead of restoring the outputs from DVC's run cache
    stage_wall, _ = timed(["dvc", "repro", "--force", "--single-item", f"train@bench-{arch}"], project)
    summary = json.loads((project / f"models/bench/{arch}/train.json").read_text())
    row = {"bare_loop": bare["loop_seconds"], "bare_script": bare_wall, "stage_loop": summary["train_seconds"],
           "stage_cmd": cmd_wall, "stage": stage_wall}
    if (project / "sinernn/parallel/runner.py").exists():  # the runner's own start-up (the worker) is not the stage's
        timed([sys.executable, "-m", "sinernn.cli", "repro", "--force", "-j", "1", f"train@bench-{arch}"], project)
        record = json.loads((project / ".dvc/tmp/sinernn/runs.json").read_text())
        row["runner_stage"] = record["stages"][f"train@bench-{arch}"]["seconds"]
    return row


def median_row(arch: str, runs: list[dict]) -> dict:
    """Each column's median over the repeats; the target is judged on the medians."""
    row = {"arch": arch, **{column: statistics.median(run[column] for run in runs) for column in COLUMNS
                            if column in runs[0]}}
    target = RATIO * row["bare_loop"] + ALLOWANCE
    waited = row.get("runner_stage", row["stage"])  # how `make run` runs a stage, where the code has the runner
    return {**row, "ratio": waited / row["bare_loop"], "target": target, "met": waited <= target,
            "repeats": len(runs), "runs": runs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=["rnn", "gru", "lstm"], choices=["rnn", "gru", "lstm"])
    parser.add_argument("--json", type=Path, help="also write the measurements to this JSON file")
    parser.add_argument("--repeat", type=int, default=1, help="runs per architecture; the table shows medians")
    parser.add_argument("--epochs", type=int, default=SETTINGS["epochs"], help="epochs of both loops")
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout to measure (default: this one)")
    parser.add_argument("--bare", choices=["rnn", "gru", "lstm"], help=argparse.SUPPRESS)  # the bare script itself
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    SETTINGS["epochs"] = args.epochs
    if args.bare:
        print(json.dumps(bare_loop(args.bare, args.data)))
        return 0

    global PROJECT
    with tempfile.TemporaryDirectory(prefix="sinernn-overhead-") as folder:
        PROJECT = Path(folder)
        copy_fresh_clone(PROJECT, args.code.resolve())
        one_study_per_arch = "dataset" in (yaml.safe_load((PROJECT / "params.yaml").read_text())["tune"])
        apply_overrides(PROJECT / "params.yaml", project_overrides(args.archs, one_study_per_arch))
        tune_stage = "tune@{arch}" if one_study_per_arch else "tune@bench-{arch}"
        timed(["dvc", "repro", "--single-item", "generate@bench"], PROJECT)
        runs = {arch: [] for arch in args.archs}
        for _ in range(args.repeat):  # interleaved, so that a slow minute does not hit one architecture only
            for arch in args.archs:
                runs[arch].append(measure(PROJECT, arch, tune_stage))
        rows = [median_row(arch, runs[arch]) for arch in args.archs]

    print(f"{'':6} {'bare loop':>10} {'bare script':>12} {'stage loop':>11} {'stage cmd':>10} {'stage':>8} "
          f"{'runner':>8} {'stage/bare':>11} {'target':>8}")
    for r in rows:
        print(f"{r['arch']:6} {r['bare_loop']:9.1f}s {r['bare_script']:11.1f}s {r['stage_loop']:10.1f}s "
              f"{r['stage_cmd']:9.1f}s {r['stage']:7.1f}s {r.get('runner_stage', math.nan):7.1f}s {r['ratio']:10.2f}x "
              f"{r['target']:7.1f}s {'met' if r['met'] else 'MISSED'}")
    if args.json:
        code = subprocess.run(["git", "rev-parse", "HEAD"], cwd=args.code, capture_output=True, text=True).stdout.strip()
        args.json.write_text(json.dumps({"settings": SETTINGS, "dataset": BENCH_DATASET, "code": code,
                                         "repeats": args.repeat, "rows": rows}, indent=2) + "\n")
    return 0 if all(r["met"] and math.isfinite(r["stage"]) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
