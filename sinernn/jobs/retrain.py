"""Scheduled retraining: new data, the whole pipeline, and a champion that moves only if beaten.

    sinernn retrain [--snapshot N] [--margin M]

1. Take the retrain lock (a second retrain exits at once with code 75). Every `dvc` child
   inherits the locked descriptor, so the dvc of a killed retrain holds the lock until it ends
   (its stages do not inherit it, DVC closes descriptors, but dvc waits for them).
2. Finish an interrupted retrain first (the journal .sinernn-retrain.json says where it stopped):
   one killed after its new state reached the workspace is completed, and that is this run's
   outcome; one killed earlier is recorded as interrupted, and this run starts anew.
3. Refresh the data: every synthetic dataset of run.train_datasets moves to its next snapshot
   (or --snapshot N); CSV datasets pick up their updated file (`dvc add` it first).
4. `dvc exp run --temp` every stage but `register` with those params, in a temporary copy of the
   project. A failure here (bad new data, a diverging run, an unreachable tracking server)
   leaves the workspace and the registry as they were.
5. `dvc exp apply` it to the workspace, then `dvc repro` the `register` stages there: only now,
   with the new params, dvc.lock and outputs in place, are the candidates registered and
   @champion moved (one alias call per dataset) if a challenger wins.
6. `dvc push` when a DVC remote is configured; append the outcome to reports/retrain.json and
   exit: 0 a champion changed, 1 every champion was kept, 75 locked, or the failure's code
   (2 bad input, 3 diverged, 4 tracking store, 70 anything else), which is recorded too.

A kill at any point leaves one champion per dataset: before step 5 the workspace is untouched
(but for params.yaml, which step 2 puts back); from step 5 on, the journal makes the next retrain
finish the apply and the registration (both idempotent), also after a failure there, and gives up
(`abandoned`) after three failures.

(Over 300 lines on purpose: one procedure, its journal and its history, read top to bottom; its
steps and their kill points are tested together in tests/test_retrain.py and the fault suite.)
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import re
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from sinernn.core import paths
from sinernn.core.config import Params, load_params
from sinernn.core.config_data import CsvSource
from sinernn.core.errors import EXIT_NO_SPACE, EXIT_UNEXPECTED, SinernnError, TrackingError
from sinernn.core.faults import failpoint
from sinernn.core.files import write_json, write_text

LOCK_FILE = ".sinernn-retrain.lock"
MEANINGFUL_CODES = {2, 3, 4, EXIT_NO_SPACE, EXIT_UNEXPECTED}  # a failing stage's codes that pass through as they are
FINAL_OUTCOMES = {"promoted", "kept", "interrupted", "abandoned"}  # a history entry that closes a journal
MAX_FAILURES = 3  # of an interrupted retrain's completion, before it is abandoned
JOURNAL = ".sinernn-retrain.json"  # phase of the retrain in progress; gone when it has finished
HISTORY = Path(paths.RETRAIN_HISTORY)
EXIT_PROMOTED, EXIT_KEPT = 0, 1


class RetrainLocked(SinernnError):
    exit_code = 75  # EX_TEMPFAIL: try again later


class RetrainFailed(SinernnError):
    """The pipeline failed; exit_code is the failing stage's."""


@contextmanager
def exclusive(root: Path) -> Iterator[IO]:
    """Hold the retrain lock; yields the locked file, whose descriptor children inherit (an flock
    lives as long as any process holds the descriptor). The kernel releases it when all have died."""
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
        yield handle
    finally:
        # Close, never LOCK_UN: unlocking would release the lock for the children that share
        # this descriptor too, and one may still be running.
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


class Dvc:
    """dvc commands run as children that hold the retrain lock and know the retrain's pid.

    Their output goes to unnamed temporary files, not pipes: a child orphaned by a killed
    retrain keeps writing (to a pipe nobody reads it would die of a broken pipe) and finishes."""

    def __init__(self, root: Path, lock: IO):
        self.root, self.lock = root, lock
        self.env = {**os.environ, "SINERNN_RETRAIN_PID": str(os.getpid())}

    def __call__(self, *args: str, failpoint_name: str | None = None) -> subprocess.CompletedProcess:
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            child = subprocess.Popen(["dvc", *args], cwd=self.root, env=self.env, stdout=out, stderr=err,
                                     pass_fds=(self.lock.fileno(),))
            if failpoint_name:
                failpoint(failpoint_name)
            child.wait()
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(child.args, child.returncode, out.read(), err.read())


def _failure(result: subprocess.CompletedProcess, what: str) -> RetrainFailed:
    """The pipeline's own one-line error and exit code out of DVC's output. Only the codes that
    mean something pass through (2 bad input, 3 diverged, 4 tracking, 74 disk full, 70): a stage that crashed
    before it could speak (exit 1: an import error), was killed by a signal (-9), or a DVC error
    without a stage code, is 70, never 1 ("kept")."""
    output = result.stdout + result.stderr
    messages = re.findall(r"sinernn: (?:unexpected )?error: (.+)", output) or re.findall(r"ERROR: (.+)", output)
    codes = re.findall(r"exited with (-?\d+)", output)
    message = messages[-1] if "sinernn: " in output and messages else f"dvc {what}: {(messages or ['failed'])[0]}"
    if "RWLock-file" in message:  # DVC names the file but not the way out
        message += "; if no dvc process is running, remove .dvc/tmp/rwlock (rm .dvc/tmp/rwlock) and run it again"
    failure = RetrainFailed(message)
    code = int(codes[-1]) if codes else EXIT_UNEXPECTED
    failure.exit_code = code if code in MEANINGFUL_CODES else EXIT_UNEXPECTED
    return failure


def _register_stages(params: Params) -> list[str]:
    return [f"register@{dataset}" for dataset in params.run.train_datasets]


def _champions(params: Params) -> dict[str, int | None]:
    """Each trained dataset's champion version now (None: none yet)."""
    from mlflow.exceptions import MlflowException

    from sinernn.track import registry  # here: a retrain refused by the lock (75) never loads torch

    try:
        mlflow_client = registry.client()
        versions = {dataset: registry.current_champion(mlflow_client, dataset) for dataset in params.run.train_datasets}
    except MlflowException as exc:
        raise TrackingError(f"cannot read the champions from the MLflow registry ({exc.message[:200]}); "
                            "check MLFLOW_TRACKING_URI or that the server is running") from None
    return {dataset: int(v.version) if v else None for dataset, v in versions.items()}


def _apply_and_register(dvc: Dvc, root: Path, params: Params, journal: dict) -> dict:
    """Steps 5 and later: idempotent, so an interrupted retrain re-runs them as they are."""
    if journal["phase"] == "applying":
        applied = dvc("exp", "apply", journal["experiment"], failpoint_name="apply")
        if applied.returncode != 0:
            raise _failure(applied, "exp apply")  # no stage code: 70
        journal = {**journal, "phase": "registering"}
        write_json(root / JOURNAL, journal)
    registered = dvc("repro", *_register_stages(params))
    if registered.returncode != 0:
        raise _failure(registered, "repro register")
    decisions = {dataset: json.loads((root / paths.default(paths.REGISTRY, dataset=dataset)).read_text())
                 for dataset in params.run.train_datasets}
    # The outcome is what happened to the champions, not what the records say: a register stage
    # killed after moving the alias re-runs and finds "the challenger is the champion already".
    after = _champions(params)
    before = journal["champions"]
    champions = {dataset: {"before": before.get(dataset), "after": after[dataset]} for dataset in after}
    promoted = any(c["before"] != c["after"] for c in champions.values())
    entry = {**journal["entry"], "outcome": "promoted" if promoted else "kept", "champions": champions,
             "decisions": decisions}
    if _has_remote(dvc):
        entry["pushed"] = dvc("push").returncode == 0
    failpoint("recorded")
    _append(root, entry)
    (root / JOURNAL).unlink()
    return entry


def _finish_interrupted(dvc: Dvc, root: Path, params: Params) -> dict | None:
    """Complete (or close) a retrain that was killed or failed after its apply; returns its
    history entry, or None when there was nothing to finish."""
    path = root / JOURNAL
    if not path.is_file():
        return None
    journal = json.loads(path.read_text())
    own = [e.get("outcome") for e in _history(root) if e.get("experiment") == journal["experiment"]]
    if FINAL_OUTCOMES & set(own):
        path.unlink()  # it finished; only the journal's removal was lost
        return None
    if journal["phase"] == "pipeline":  # killed before the experiment was applied
        return _close(root, journal, "interrupted", f"killed while the pipeline ran; {_put_params_back(root, journal)}")
    # Failures count (each is in the history), kills do not: a kill says nothing about the retrain.
    if own.count("failed") >= MAX_FAILURES:
        return _close(root, journal, "abandoned", f"failed {MAX_FAILURES} times; its params may be applied: "
                      "`dvc status` shows what is stale, `dvc repro` finishes it")
    journal = {**journal, "entry": {**journal["entry"], "recovered": True}}
    with _recorded(root, journal["entry"]):
        return _apply_and_register(dvc, root, params, journal)


@contextmanager
def _recorded(root: Path, entry: dict) -> Iterator[None]:
    """Any failure inside is appended to the history under the retrain's entry, an unexpected
    one as 70, and raised as a SinernnError."""
    try:
        yield
    except SinernnError as exc:
        _append_failure(root, entry, exc)
        raise
    except Exception as exc:
        failure = _unexpected(exc)
        _append_failure(root, entry, failure)
        raise failure from exc


def _unexpected(exc: Exception) -> RetrainFailed:
    failure = RetrainFailed(f"unexpected error: {type(exc).__name__}: {exc}")
    failure.exit_code = EXIT_UNEXPECTED
    return failure


def _put_params_back(root: Path, journal: dict) -> str:
    """`dvc exp run -S` writes the new params into params.yaml (and the git index) while it sets
    the experiment up: put back what was there, unless params.yaml holds anything but those
    overrides (someone edited it since), which is left alone."""
    import yaml

    path = root / "params.yaml"
    current = path.read_text()
    if current == journal["params_yaml"]:
        return "params.yaml was as before"
    with_overrides = yaml.safe_load(journal["params_yaml"])
    for key, value in journal["entry"]["overrides"].items():
        *parents, leaf = key.split(".")
        node = with_overrides
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    if yaml.safe_load(current) != with_overrides:
        return "params.yaml has changed since, beyond the retrain's overrides: left as it is"
    write_text(path, journal["params_yaml"])
    subprocess.run(["git", "reset", "-q", "--", "params.yaml"], cwd=root, capture_output=True)
    return "params.yaml put back"


def _close(root: Path, journal: dict, outcome: str, why: str) -> dict:
    entry = {**journal["entry"], "outcome": outcome, "error": why}
    _append(root, entry)
    (root / JOURNAL).unlink()
    return entry


def retrain(params_path: Path, root: Path, snapshot: int | None = None, margin: float | None = None) -> tuple[int, dict]:
    """Run one retrain; returns (exit code, the history entry). Raises RetrainLocked or RetrainFailed."""
    with exclusive(root) as lock:
        dvc = Dvc(root, lock)
        try:
            recovered = _finish_interrupted(dvc, root, load_params(params_path))
            # A retrain finished here (it had applied its experiment) is this run's outcome: the
            # next one draws new data. One closed as interrupted or abandoned is not; params are
            # read again after it, since closing it may have put params.yaml back.
            if recovered and recovered["outcome"] in ("promoted", "kept"):
                entry = recovered
            else:
                entry = _run(dvc, root, load_params(params_path), snapshot, margin)
        except SinernnError:
            raise  # recorded where it happened
        except Exception as exc:  # a bug or the machine before a retrain began: recorded, never "kept"
            failure = _unexpected(exc)
            _append_failure(root, {"time": _now()}, failure)
            raise failure from exc
    return (EXIT_PROMOTED if entry["outcome"] == "promoted" else EXIT_KEPT), entry


def _run(dvc: Dvc, root: Path, params: Params, snapshot: int | None, margin: float | None) -> dict:
    overrides = data_overrides(params, snapshot)
    if margin is not None:
        overrides["registry.margin"] = margin
    name = "retrain-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    entry = {"time": _now(), "experiment": name, "overrides": overrides}
    with _recorded(root, entry):
        journal = {"experiment": name, "phase": "pipeline", "entry": entry, "champions": _champions(params),
                   "params_yaml": (root / "params.yaml").read_text()}
    write_json(root / JOURNAL, journal)
    try:
        with _recorded(root, entry):
            stages = dvc("stage", "list", "--name-only")
            if stages.returncode != 0:
                raise _failure(stages, "stage list")
            targets = [stage for stage in stages.stdout.split() if not stage.startswith("register")]
            # ++: set the key whether or not params.yaml spells it out yet (Hydra's override syntax).
            sets = [arg for key, value in overrides.items() for arg in ("-S", f"++{key}={json.dumps(value)}")]
            result = dvc("exp", "run", "--temp", "--name", name, *sets, *targets, failpoint_name="pipeline")
            if result.returncode != 0:
                raise _failure(result, "exp run")
    except SinernnError:
        # Nothing reached the workspace but, maybe, the overrides dvc wrote into params.yaml.
        _put_params_back(root, journal)
        (root / JOURNAL).unlink(missing_ok=True)
        raise
    # (An interrupt, Ctrl-C, leaves the journal: the next retrain closes it and puts params back.)
    journal = {**journal, "phase": "applying"}
    write_json(root / JOURNAL, journal)
    # A failure from here on keeps the journal: the next retrain finishes the apply and the
    # registration first.
    with _recorded(root, entry):
        return _apply_and_register(dvc, root, params, journal)


def _now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


def _has_remote(dvc: Dvc) -> bool:
    return bool(dvc("config", "core.remote").stdout.strip())


def _history(root: Path) -> list:
    path = root / HISTORY
    return json.loads(path.read_text()) if path.is_file() else []


def _append(root: Path, entry: dict) -> None:
    write_json(root / HISTORY, [*_history(root), entry])


def _append_failure(root: Path, entry: dict, failure: SinernnError) -> None:
    _append(root, {**entry, "outcome": "failed", "exit_code": failure.exit_code, "error": str(failure)})
