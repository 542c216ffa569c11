"""Scheduled retraining: new data, the whole pipeline, and a champion that moves only if beaten.

    sinernn retrain [--snapshot N] [--margin M]

1. Take the retrain lock (a second retrain exits at once with code 75).
2. Refresh the data: every synthetic dataset of run.train_datasets moves to its next snapshot
   (or --snapshot N); CSV datasets pick up their updated file (`dvc add` it first).
3. `dvc exp run --temp` the whole pipeline with those params in a temporary copy of the project.
   Its `register` stages re-score each dataset's champion on the newest test split and move
   @champion only when the challenger is better by registry.margin.
4. On success, `dvc exp apply` the experiment to the workspace and `dvc push` when a DVC remote
   is configured. On failure (bad new data, a diverging run, an unreachable tracking server) the
   workspace is untouched: the run happened in the copy, and `register` is the last step that
   touches the registry.
5. Append the outcome to reports/retrain.json and exit: 0 a champion was promoted, 1 every
   champion was kept, 75 another retrain holds the lock, or the failing stage's code (2 bad
   input, 3 diverged, 4 tracking store).
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import re
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sinernn.config import CsvSource, Params
from sinernn.errors import SinernnError
from sinernn.files import write_json

LOCK_FILE = ".sinernn-retrain.lock"
HISTORY = Path("reports/retrain.json")
EXIT_PROMOTED, EXIT_KEPT = 0, 1


class RetrainLocked(SinernnError):
    exit_code = 75  # EX_TEMPFAIL: try again later


class RetrainFailed(SinernnError):
    """The pipeline failed; exit_code is the failing stage's."""


@contextmanager
def exclusive(root: Path) -> Iterator[None]:
    """Hold the retrain lock; the kernel releases it if this process dies."""
    path = root / LOCK_FILE
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RetrainLocked(f"another retrain is running ({holder}); try again when it has finished") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} since {datetime.datetime.now().isoformat(timespec='seconds')}")
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def data_overrides(params: Params, snapshot: int | None) -> dict[str, object]:
    """`dvc exp run -S` settings that draw new data for every trained synthetic dataset."""
    overrides = {}
    for name in params.run.train_datasets:
        source = params.datasets[name]
        if isinstance(source, CsvSource):
            continue  # its file is the new data
        overrides[f"datasets.{name}.snapshot"] = source.snapshot + 1 if snapshot is None else snapshot
    return overrides


def _dvc(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["dvc", *args], cwd=root, capture_output=True, text=True)


def _failure(result: subprocess.CompletedProcess) -> RetrainFailed:
    """The pipeline's own one-line error (and its exit code) out of DVC's output."""
    output = result.stdout + result.stderr
    messages = re.findall(r"sinernn: error: (.+)", output) or re.findall(r"ERROR: (.+)", output) or ["dvc exp run failed"]
    codes = re.findall(r"exited with (\d+)", output)
    failure = RetrainFailed(messages[-1] if "sinernn: error" in output else f"dvc: {messages[0]}")
    failure.exit_code = int(codes[-1]) if codes else 2
    return failure


def retrain(params: Params, root: Path, snapshot: int | None = None, margin: float | None = None) -> tuple[int, dict]:
    """Run one retrain; returns (exit code, the history entry). Raises RetrainLocked."""
    overrides = data_overrides(params, snapshot)
    if margin is not None:
        overrides["registry.margin"] = margin
    name = "retrain-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    entry = {"time": datetime.datetime.now().isoformat(timespec="seconds"), "experiment": name,
             "overrides": overrides}
    with exclusive(root):
        # ++: set the key whether or not params.yaml spells it out yet (Hydra's override syntax).
        sets = [arg for key, value in overrides.items() for arg in ("-S", f"++{key}={json.dumps(value)}")]
        result = _dvc(root, "exp", "run", "--temp", "--name", name, *sets)
        if result.returncode != 0:
            failure = _failure(result)
            _append(root, {**entry, "outcome": "failed", "error": str(failure)})
            raise failure
        applied = _dvc(root, "exp", "apply", name)
        if applied.returncode != 0:
            failure = RetrainFailed(f"the experiment ran but could not be applied: {applied.stderr.strip()[-500:]}")
            _append(root, {**entry, "outcome": "failed", "error": str(failure)})
            raise failure
        decisions = {dataset: json.loads((root / f"reports/registry/{dataset}.json").read_text())
                     for dataset in params.run.train_datasets}
        promoted = any(record.get("promoted") for record in decisions.values())
        entry.update(outcome="promoted" if promoted else "kept", decisions=decisions)
        if _has_remote(root):
            pushed = _dvc(root, "push")
            entry["pushed"] = pushed.returncode == 0
        _append(root, entry)
    return (EXIT_PROMOTED if promoted else EXIT_KEPT), entry


def _has_remote(root: Path) -> bool:
    return bool(_dvc(root, "config", "core.remote").stdout.strip())


def _append(root: Path, entry: dict) -> None:
    path = root / HISTORY
    history = json.loads(path.read_text()) if path.is_file() else []
    write_json(path, [*history, entry])
