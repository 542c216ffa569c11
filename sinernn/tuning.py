"""Optuna searches: one study per architecture, each trial trained by the one training loop.

    tune_architecture(...)      the coordinator: open the study, run N workers, record the result
      run_worker(...)           one process: optimize() until the study holds n_trials
        Objective(trial)        suggest -> fit_architecture -> report val loss each epoch -> prune

Storage: an Optuna RDBStorage, because heartbeats (a killed worker's trial is failed and retried
instead of staying RUNNING forever) exist only there. Locally that is SQLite in WAL mode under
optuna/ at the project root, which several local processes can share; PostgreSQL for several
machines. The study name holds a hash of everything a trial's outcome depends on, so re-running
an interrupted stage resumes its study, and a changed search space starts a new one.

Exactly n_trials: a worker starts a trial while the study holds a WAITING one (a dead worker's
trial, re-queued) or fewer than n_trials finished + running + waiting ones; a trial that finds
n_trials trials before it (two workers asked at the same moment) ends at once as FAIL with user
attr `fail_reason` = "surplus", having trained nothing. Trials that diverge (NaN/inf) end FAIL with
their reason and do not count: the study goes on.

Never stalls: a dead worker's trial is failed once its heartbeat is older than the grace period
(2 x heartbeat_interval, plus tune.sqlite_lock_wait on SQLite: a live writer blocked on the lock
must not look dead) and re-queued; a RUNNING trial with no heartbeat at all (killed before its first
one, or run through the gRPC proxy, which sends none) is failed and re-queued once the waiting
coordinator has seen it report no epoch for tune.stall_timeout seconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from sinernn.config import (
    BASELINE_KINDS, ArchConfig, Params, SearchSpace, TrainConfig, check_storage_url, redact_in, redact_url,
)
from sinernn.errors import SinernnError, TrainingDiverged

FINISHED = ("COMPLETE", "PRUNED")  # trial states that use up the budget for good
IN_FLIGHT = ("RUNNING", "WAITING")  # ...and those that may still do so
STORAGE_ENV = "SINERNN_OPTUNA_STORAGE"
STALLED = "stalled"  # fail_reason of a trial the coordinator failed for silence (StallWatch)


class TuneError(SinernnError):
    """A search cannot run or produced nothing usable."""


# ---- tuned values: what a trial may change, and applying the best ones ------------------------


def suggest(trial, space: SearchSpace, arch: ArchConfig, train: TrainConfig) -> dict:
    """Draw one point of the search space: {"arch": {...}, "train": {...}} overrides."""
    arch_values: dict[str, Any] = {}
    train_values: dict[str, Any] = {}
    if space.lr:
        train_values["lr"] = trial.suggest_float("lr", space.lr.low, space.lr.high, log=space.lr.log)
    if space.grad_clip:
        train_values["grad_clip"] = trial.suggest_categorical("grad_clip", list(space.grad_clip))
    if space.window:
        train_values["window"] = trial.suggest_int("window", space.window.low, space.window.high, log=space.window.log)
    if space.batch_size:
        train_values["batch_size"] = trial.suggest_categorical("batch_size", list(space.batch_size))
    if space.num_layers:
        arch_values["num_layers"] = trial.suggest_int("num_layers", space.num_layers.low, space.num_layers.high)
    if space.hidden_size:
        size = trial.suggest_int("hidden_size", space.hidden_size.low, space.hidden_size.high, log=space.hidden_size.log)
        if arch.kind == "transformer":  # d_model must be a multiple of nhead
            d_model = math.ceil(size / arch.nhead) * arch.nhead
            arch_values.update(d_model=d_model, dim_feedforward=2 * d_model)
        else:
            arch_values["hidden_size"] = size
    return {"arch": arch_values, "train": train_values}


def apply_tuned(arch: ArchConfig, train: TrainConfig, tuned: dict) -> tuple[ArchConfig, TrainConfig]:
    """params.yaml's values with the tuned ones on top, validated again."""
    arch = type(arch).model_validate({**arch.model_dump(), **tuned.get("arch", {})})
    train = TrainConfig.model_validate({**train.model_dump(), **tuned.get("train", {})})
    return arch, train


def read_tuned(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise TuneError(f"{path} not found: run `dvc repro` (stage tune) first") from None
    except json.JSONDecodeError as exc:
        raise TuneError(f"{path} is corrupt ({exc}): re-run the tune stage") from None


def tunable(arch: ArchConfig) -> bool:
    return arch.kind not in BASELINE_KINDS


# ---- storage and study -----------------------------------------------------------------------


def storage_url(params: Params, cli_storage: str | None, root: Path) -> str:
    """--storage, then $SINERNN_OPTUNA_STORAGE, then tune.storage, then SQLite under the project.

    A relative SQLite path is taken from the project root (DVC_ROOT), not the working folder:
    `dvc exp run --temp` runs stages in a copy that is deleted afterwards, study included."""
    url = cli_storage or os.environ.get(STORAGE_ENV) or params.tune.storage
    if not url:
        return f"sqlite:///{root / 'optuna' / 'studies.db'}"
    where = "--storage" if cli_storage else f"${STORAGE_ENV}" if os.environ.get(STORAGE_ENV) else "tune.storage"
    try:
        check_storage_url(url)
    except ValueError as exc:
        raise TuneError(f"{where}: {exc}") from None
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_absolute():
        url = f"sqlite:///{root / url.removeprefix('sqlite:///')}"
    return url


def _quiet_optuna():
    """Import optuna without its notices: heartbeats are 'experimental' since v2.8 and we rely on
    them knowingly; per-trial INFO lines would drown the progress output."""
    import warnings

    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def open_storage(url: str, heartbeat_interval: int, max_retry: int, lock_wait: int = 60):
    """The study storage behind `url`. lock_wait: seconds a SQLite writer waits for the lock."""
    optuna = _quiet_optuna()
    if url.startswith("grpc://"):
        # Optuna's gRPC proxy (`sinernn storage-proxy`): many workers, few database connections.
        host, _, port = url.removeprefix("grpc://").partition(":")
        try:
            return optuna.storages.GrpcStorageProxy(host=host, port=int(port or 13000))
        except Exception as exc:
            raise TuneError(f"cannot reach the Optuna storage proxy {url} ({type(exc).__name__}: {str(exc)[:200]})") from None

    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        # WAL lets readers and one writer work at once; it is a property of the file, set once.
        try:
            with sqlite3.connect(path, timeout=lock_wait) as connection:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA schema_version").fetchone()  # reads the header: corrupt?
        except sqlite3.DatabaseError as exc:
            if getattr(exc, "sqlite_errorname", "") in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
                files = f"{path} {path}-wal {path}-shm"  # the journal belongs to the database
                raise TuneError(f"{path} is corrupt ({exc}): restore it from a backup, or move it aside "
                                f"(mkdir -p {path}.corrupt && mv {files} {path}.corrupt/) and re-run to start "
                                "the studies afresh") from None
            raise TuneError(f"cannot open the Optuna storage {path} ({exc})") from None
        engine_kwargs = {"connect_args": {"timeout": lock_wait}}  # wait for a lock instead of failing
    else:
        engine_kwargs = {"pool_pre_ping": True}
    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period(url, heartbeat_interval, lock_wait),
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry),
            )
        except Exception as exc:
            # Two processes opening an empty database at the same instant both create Optuna's
            # tables; the loser's INSERT of the schema version fails. The tables exist by then.
            if _lost_schema_race(exc) and attempt + 1 < SCHEMA_ATTEMPTS:
                time.sleep(0.5 * (attempt + 1))
                continue
            reason = redact_in(f"{type(exc).__name__}: {exc}", url)[:200]
            raise TuneError(f"cannot open the Optuna storage {_redact(url)} ({reason})") from None


SCHEMA_ATTEMPTS = 5


def _lost_schema_race(exc: Exception) -> bool:
    text = str(exc)
    return any(sign in text for sign in ("UNIQUE constraint failed", "duplicate key value", "already exists"))


def grace_period(url: str, heartbeat_interval: int, lock_wait: int) -> int:
    """How old a heartbeat may get before its trial counts as dead. A live worker's heartbeat
    write can wait `lock_wait` seconds for the SQLite lock, so on SQLite the grace covers that."""
    return 2 * heartbeat_interval + (lock_wait if url.startswith("sqlite:") else 0)


def serve_proxy(url: str, host: str, port: int, heartbeat_interval: int, max_retry: int, lock_wait: int) -> None:
    """Run Optuna's gRPC storage proxy in front of `url` until interrupted."""
    optuna = _quiet_optuna()
    storage = open_storage(url, heartbeat_interval, max_retry, lock_wait)
    print(f"Optuna storage proxy for {_redact(url)} on grpc://{host}:{port} (Ctrl-C stops it)", flush=True)
    optuna.storages.run_grpc_proxy_server(storage, host=host, port=port)


def _redact(url: str) -> str:
    """A storage URL without its password, for messages and logged params."""
    return redact_url(url)


def study_name(params: Params, arch_name: str, dataset_hash: str) -> str:
    """<experiment>-<arch>-<hash>: the hash covers everything a trial's result depends on."""
    # Not in the hash: how the search is run (workers, storage, ...), and n_trials, so raising it
    # continues the same study.
    tune = params.tune.model_dump(exclude={
        "enabled", "workers", "storage", "timeout", "heartbeat_interval", "max_retry", "stall_timeout",
        "sqlite_lock_wait", "n_trials",
        "space", "arch_space",
    })
    tune["space"] = params.tune.space_for(arch_name).model_dump()  # this architecture's space only
    key = {
        "seed": params.seed, "arch": params.architectures[arch_name].model_dump(),
        "train": params.train_for(params.tune.dataset).model_dump(exclude={"threads"}), "tune": tune,
        "data": dataset_hash,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    return f"{params.mlflow.experiment}-{arch_name}-{digest}"


def make_study(storage, name: str, params: Params, sampler_seed: int, load_if_exists: bool = True):
    import optuna

    tune = params.tune
    epochs = tune.max_epochs or params.train_for(tune.dataset).max_epochs
    if tune.pruner == "median":
        # warm-up: the first epochs of every trial look alike; judging them prunes at random
        pruner = optuna.pruners.MedianPruner(n_startup_trials=tune.startup_trials, n_warmup_steps=max(1, epochs // 6))
    elif tune.pruner == "hyperband":
        pruner = optuna.pruners.HyperbandPruner(min_resource=max(1, epochs // 10), max_resource=epochs, reduction_factor=3)
    else:
        pruner = optuna.pruners.NopPruner()
    sampler = optuna.samplers.TPESampler(seed=sampler_seed, n_startup_trials=tune.startup_trials)
    return optuna.create_study(
        storage=storage, study_name=name, direction="minimize", sampler=sampler, pruner=pruner,
        load_if_exists=load_if_exists,
    )


def open_study(storage, name: str, params: Params) -> tuple[Any, bool]:
    """(study, created): creating is atomic in the storage, so among coordinators started at once
    on many machines exactly one is the creator (and opens the study's MLflow run)."""
    optuna = _quiet_optuna()
    try:
        return make_study(storage, name, params, params.seed, load_if_exists=False), True
    except optuna.exceptions.DuplicatedStudyError:
        return make_study(storage, name, params, params.seed), False


def wait_for_user_attr(study, key: str, seconds: float) -> str | None:
    """The creator sets the study's MLflow run id right after creating it; give it a moment."""
    deadline = time.time() + seconds
    while True:
        value = study.user_attrs.get(key)
        if value is not None or time.time() >= deadline:
            return value
        time.sleep(0.5)


def count_states(study) -> dict[str, int]:
    counts = {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0, "RUNNING": 0, "WAITING": 0}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def budget_used(study) -> int:
    counts = count_states(study)
    return sum(counts[state] for state in FINISHED + IN_FLIGHT)


def work_left(study, n_trials: int) -> bool:
    """Whether a worker has a trial to run: a re-queued (WAITING) one, which `ask` hands out
    first, or a free place in the budget."""
    counts = count_states(study)
    return counts["WAITING"] > 0 or budget_used(study) < n_trials


# ---- the objective ---------------------------------------------------------------------------


@dataclasses.dataclass
class Objective:
    """One trial: suggest, train with the pipeline's own loop, report every epoch, maybe prune."""

    params: Params
    arch_name: str
    dataset: Any  # sinernn.data.Dataset
    parent_run_id: str | None  # the study's MLflow run; None: do not log to MLflow
    current: Any = None  # the trial being run, to tell whether a coordinator took it over

    def __call__(self, trial) -> float:
        import optuna

        from sinernn.training import fit_architecture

        self.current = trial
        if trial.user_attrs.get("fail_reason", "").startswith(STALLED):
            trial.set_user_attr("fail_reason", "")  # copied from the stalled trial this one retries
        tune = self.params.tune
        earlier = [t for t in trial.study.get_trials(deepcopy=False)
                   if t.number < trial.number and t.state.name in FINISHED + IN_FLIGHT]
        if len(earlier) >= tune.n_trials:
            trial.set_user_attr("fail_reason", "surplus: the study already had n_trials trials")
            raise SurplusTrial(f"trial {trial.number} is beyond n_trials={tune.n_trials}")

        arch = self.params.architectures[self.arch_name]
        base = self.params.train_for(tune.dataset)  # with the tuned dataset's own settings
        overrides = suggest(trial, tune.space_for(self.arch_name), arch, base)
        arch, cfg = apply_tuned(arch, base, overrides)
        if tune.max_epochs:
            cfg = cfg.model_copy(update={"max_epochs": tune.max_epochs})
        epochs = 0

        def report(stats) -> None:
            nonlocal epochs
            epochs = stats.epoch
            try:
                trial.report(stats.val_loss, stats.epoch)
            except optuna.exceptions.UpdateFinishedTrialError:
                # A coordinator judged this trial stalled (tune.stall_timeout) and re-queued it.
                raise TrialTakenOver(f"trial {trial.number} was failed as stalled and re-queued") from None
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {stats.epoch}: val loss {stats.val_loss:.3g}")

        tags = {"stage": "tune", "dataset": tune.dataset, "architecture": self.arch_name,
                "kind": arch.kind, "optuna_study": trial.study.study_name, "optuna_trial": str(trial.number)}
        run_name = f"trial-{self.arch_name}-{trial.number}"
        with self._child_run(run_name, tags) as run:
            if run:
                run.log_params(trial.params)
            state = "failed"
            try:
                on_epoch = [run.log_epoch, report] if run else [report]
                result = fit_architecture(arch, cfg, self.dataset, self.params.seed, on_epoch, run_name).result
                state = "complete"
            except optuna.TrialPruned:
                state = "pruned"
                raise
            except TrainingDiverged as exc:
                trial.set_user_attr("fail_reason", str(exc))
                raise
            finally:
                with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):  # taken over
                    trial.set_user_attr("epochs", epochs)
                if run:
                    run.client.set_tag(run.run_id, "optuna_state", state)
                    run.log_metrics({"epochs": epochs})
            if run:
                run.log_metrics({"value": result.best_val_loss})
        return result.best_val_loss

    def was_taken_over(self) -> bool:
        """Whether the trial last run was failed as stalled by a coordinator meanwhile."""
        if self.current is None:
            return False
        frozen = self.current.study._storage.get_trial(self.current._trial_id)
        return frozen.state.name == "FAIL" and frozen.user_attrs.get("fail_reason", "").startswith(STALLED)

    def _child_run(self, run_name: str, tags: dict):
        """The trial's MLflow run, nested under the study's run by an explicit parent id."""
        import optuna

        from sinernn.tracking import stage_run

        if self.parent_run_id is None:
            return contextlib.nullcontext(None)
        return stage_run(self.params.mlflow.experiment, run_name, tags, parent_run_id=self.parent_run_id,
                         killed_by=(optuna.TrialPruned,))


class SurplusTrial(Exception):
    """Raised by a trial created after the study already held n_trials trials."""


class TrialTakenOver(Exception):
    """Raised by a live trial that a coordinator failed as stalled and re-queued meanwhile."""


def _stop_when_full(n_trials: int):
    def callback(study, trial) -> None:
        if not work_left(study, n_trials):
            study.stop()

    return callback


# ---- workers and the coordinator -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class WorkerSpec:
    params: Params
    arch_name: str
    data_path: str
    storage: str
    study: str
    parent_run_id: str | None
    index: int  # worker number: offsets the sampler seed so workers do not draw the same points
    threads: int
    deadline: float | None  # time.time() after which no new trial starts


def run_worker(spec: WorkerSpec) -> None:
    """One worker: optimize until the study holds n_trials trials or the deadline passes."""
    import torch

    from sinernn import data

    optuna = _quiet_optuna()
    torch.set_num_threads(spec.threads)
    tune = spec.params.tune
    storage = open_storage(spec.storage, tune.heartbeat_interval, tune.max_retry, tune.sqlite_lock_wait)
    dataset, _ = data.load(Path(spec.data_path))
    probe = optuna.load_study(study_name=spec.study, storage=storage)
    optuna.storages.fail_stale_trials(probe)  # a killed worker's trials: failed and re-queued
    # Different seeds per worker and per resume, or a resumed study would redraw its first points.
    study = make_study(storage, spec.study, spec.params, spec.params.seed + 7919 * spec.index + len(probe.trials))
    objective = Objective(spec.params, spec.arch_name, dataset, spec.parent_run_id)
    while work_left(study, tune.n_trials):
        timeout = None if spec.deadline is None else max(0.0, spec.deadline - time.time())
        if timeout == 0.0:
            return
        try:
            study.optimize(objective, timeout=timeout, catch=(TrainingDiverged, SurplusTrial, TrialTakenOver),
                           callbacks=[_stop_when_full(tune.n_trials)])
            return
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
            # Optuna cannot record the end of a trial that was failed under it ("Cannot tell a
            # FAIL trial"): its re-queued copy runs instead, and this worker goes on.
            if not objective.was_taken_over():
                raise


def _spawn_workers(specs: list[WorkerSpec]) -> None:
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # fork after importing torch is not safe
    processes = [context.Process(target=run_worker, args=(spec,), name=f"tune-worker-{spec.index}") for spec in specs]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join()
    except KeyboardInterrupt:
        for process in processes:
            process.terminate()
        raise
    failed = [p.name for p in processes if p.exitcode != 0]
    if failed:
        raise TuneError(f"tune workers {', '.join(failed)} exited with an error (see above)")


def run_study(
    params: Params, arch_name: str, data_path: Path, storage: str, study: str,
    parent_run_id: str | None, workers: int, worker_offset: int = 0,
) -> None:
    """Run workers until the study holds n_trials finished trials (or the timeout passes).

    Loops because trials can leave the budget after the workers stopped: a killed worker's RUNNING
    trial fails once its heartbeat is stale (or, with no heartbeat, once it stalls) and is
    re-queued; a diverged trial frees its slot. Every pass either finishes trials or waits.
    """
    import optuna

    tune = params.tune
    deadline = time.time() + tune.timeout if tune.timeout else None
    threads = max(1, min(params.train.threads, (os.cpu_count() or 1) // workers))
    opened = open_storage(storage, tune.heartbeat_interval, tune.max_retry, tune.sqlite_lock_wait)
    stalls = StallWatch(opened, tune.stall_timeout, tune.max_retry)
    first_pass = True
    while True:
        specs = [WorkerSpec(params, arch_name, str(data_path), storage, study, parent_run_id,
                            worker_offset + i, threads, deadline) for i in range(workers)]
        # (while only waiting for RUNNING trials, no worker is started just to find nothing to do)
        if first_pass or work_left(optuna.load_study(study_name=study, storage=opened), tune.n_trials):
            if workers == 1:
                run_worker(specs[0])  # in this process: deterministic, and errors surface directly
            else:
                _spawn_workers(specs)
        first_pass = False
        loaded = optuna.load_study(study_name=study, storage=opened)
        optuna.storages.fail_stale_trials(loaded)
        stalls.check(loaded)
        counts = count_states(loaded)
        finished = counts["COMPLETE"] + counts["PRUNED"]
        if finished >= tune.n_trials or (deadline and time.time() >= deadline):
            return
        if counts["FAIL"] >= max(tune.n_trials, 3) and counts["COMPLETE"] == 0:
            raise TuneError(f"study {study}: {counts['FAIL']} trials failed and none completed; "
                            "see their fail_reason (e.g. lower tune.space.lr.high)")
        if not work_left(loaded, tune.n_trials):
            # Only RUNNING trials hold the rest of the budget: another machine's, or a dead
            # worker's whose heartbeat is not stale yet or who never sent one.
            time.sleep(min(tune.heartbeat_interval, 5))


class StallWatch:
    """Fails and re-queues RUNNING trials that have no heartbeat and report no epoch for
    `limit` seconds: Optuna's own stale check skips a trial that never sent a heartbeat."""

    def __init__(self, storage, limit: float, max_retry: int):
        self.storage, self.limit, self.max_retry = storage, limit, max_retry
        self.seen: dict[int, tuple[int, float]] = {}  # trial id -> (epochs reported, since when)

    def check(self, study) -> list[int]:
        import optuna

        now = time.monotonic()
        with_heartbeat = self._trials_with_heartbeat(study)
        running = [t for t in study.get_trials(deepcopy=False) if t.state.name == "RUNNING"
                   and t._trial_id not in with_heartbeat]
        failed = []
        for trial in running:
            progress = len(trial.intermediate_values)
            before = self.seen.get(trial._trial_id)
            if before is None or before[0] != progress:
                self.seen[trial._trial_id] = (progress, now)
                continue
            if now - before[1] < self.limit:
                continue
            reason = f"{STALLED}: no heartbeat and no epoch reported for {self.limit:g} s (tune.stall_timeout)"
            try:
                # The reason goes on first (a finished trial takes no attributes); the retry below
                # copies it, and the copy clears it when it starts (Objective).
                self.storage.set_trial_user_attr(trial._trial_id, "fail_reason", reason)
                if not self.storage.set_trial_state_values(trial._trial_id, state=optuna.trial.TrialState.FAIL):
                    continue
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # it finished, or another coordinator failed it, meanwhile
            failed.append(trial.number)
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=self.max_retry)
            retry(study, self.storage.get_trial(trial._trial_id))
        return failed

    def _trials_with_heartbeat(self, study) -> set[int]:
        import optuna
        import sqlalchemy

        if not isinstance(self.storage, optuna.storages.RDBStorage):
            return set()  # through the gRPC proxy no trial has one
        with self.storage.engine.connect() as connection:
            rows = connection.execute(sqlalchemy.text(
                "SELECT h.trial_id FROM trial_heartbeats h JOIN trials t ON t.trial_id = h.trial_id "
                "WHERE t.study_id = :study"), {"study": study._study_id})
            return {row[0] for row in rows}


# ---- what a finished study leaves behind -----------------------------------------------------


def best_overrides(study, params: Params, arch_name: str) -> dict:
    """The best trial's values as {"arch": ..., "train": ...}, derived exactly as a trial did."""
    import optuna

    arch = params.architectures[arch_name]
    return suggest(optuna.trial.FixedTrial(study.best_trial.params), params.tune.space_for(arch_name), arch,
                   params.train_for(params.tune.dataset))


def trial_rows(study) -> list[dict]:
    trials = study.get_trials(deepcopy=False)
    names = sorted({name for trial in trials for name in trial.params})  # a surplus trial has none
    rows = []
    for trial in trials:
        seconds = (trial.datetime_complete - trial.datetime_start).total_seconds() \
            if trial.datetime_complete and trial.datetime_start else None
        rows.append({
            "number": trial.number, "state": trial.state.name.lower(), "value": trial.value,
            "epochs": trial.user_attrs.get("epochs"), "seconds": seconds,
            **{f"param_{name}": trial.params.get(name) for name in names},
            "fail_reason": trial.user_attrs.get("fail_reason", ""),
        })
    return rows


def study_plots(study, folder: Path) -> list[Path]:
    """Optimisation history and parameter importances (when there are enough trials for them)."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as vis

    written = []
    plots = {"optimization_history.png": vis.plot_optimization_history,
             "param_importances.png": vis.plot_param_importances}
    for filename, plot in plots.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "experimental" notices from optuna's matplotlib plots
            try:
                axes = plot(study)
            except (ValueError, RuntimeError, ZeroDivisionError):
                continue  # e.g. importances need two completed trials that differ
        figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        figure.set_size_inches(8, 5)
        figure.tight_layout()
        figure.savefig(folder / filename, dpi=100)
        plt.close(figure)
        written.append(folder / filename)
    return written
