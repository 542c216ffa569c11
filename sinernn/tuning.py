"""Optuna searches: one study per architecture, each trial trained by the one training loop.

    tune_architecture(...)      the coordinator: open the study, run N workers, record the result
      run_worker(...)           one process: optimize() until the study holds n_trials
        Objective(trial)        suggest -> fit_architecture -> report val loss each epoch -> prune

Storage: an Optuna RDBStorage, because heartbeats (a killed worker's trial is failed and retried
instead of staying RUNNING forever) exist only there. Locally that is SQLite in WAL mode under
optuna/ at the project root, which several local processes can share; PostgreSQL for several
machines. The study name holds a hash of everything a trial's outcome depends on, so re-running
an interrupted stage resumes its study, and a changed search space starts a new one.

Exactly n_trials: every worker stops once the study's finished + running + waiting trials reach
n_trials, and a trial that finds n_trials trials before it (two workers asked at the same moment)
ends at once as FAIL with user attr `fail_reason` = "surplus", having trained nothing. Trials that
diverge (NaN/inf) end FAIL with their reason and do not count: the study goes on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from sinernn.config import BASELINE_KINDS, ArchConfig, Params, SearchSpace, TrainConfig
from sinernn.errors import SinernnError, TrainingDiverged

FINISHED = ("COMPLETE", "PRUNED")  # trial states that use up the budget for good
IN_FLIGHT = ("RUNNING", "WAITING")  # ...and those that may still do so
STORAGE_ENV = "SINERNN_OPTUNA_STORAGE"


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
    """--storage, then $SINERNN_OPTUNA_STORAGE, then tune.storage, then SQLite under the project."""
    url = cli_storage or os.environ.get(STORAGE_ENV) or params.tune.storage
    return url or f"sqlite:///{root / 'optuna' / 'studies.db'}"


def _quiet_optuna():
    """Import optuna without its notices: heartbeats are 'experimental' since v2.8 and we rely on
    them knowingly; per-trial INFO lines would drown the progress output."""
    import warnings

    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def open_storage(url: str, heartbeat_interval: int, max_retry: int):
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
        with sqlite3.connect(path) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
        engine_kwargs = {"connect_args": {"timeout": 60}}  # wait for a lock instead of failing
    else:
        engine_kwargs = {"pool_pre_ping": True}
    try:
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_interval,
            grace_period=2 * heartbeat_interval,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry),
        )
    except Exception as exc:
        raise TuneError(f"cannot open the Optuna storage {_redact(url)} ({type(exc).__name__}: {str(exc)[:200]})") from None


def serve_proxy(url: str, host: str, port: int, heartbeat_interval: int, max_retry: int) -> None:
    """Run Optuna's gRPC storage proxy in front of `url` until interrupted."""
    optuna = _quiet_optuna()
    storage = open_storage(url, heartbeat_interval, max_retry)
    print(f"Optuna storage proxy for {_redact(url)} on grpc://{host}:{port} (Ctrl-C stops it)", flush=True)
    optuna.storages.run_grpc_proxy_server(storage, host=host, port=port)


def _redact(url: str) -> str:
    """A storage URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        return f"{scheme}://{credentials.split(':')[0]}:***@{host}" if ":" in credentials else url
    return url


def study_name(params: Params, arch_name: str, dataset_hash: str) -> str:
    """<experiment>-<arch>-<hash>: the hash covers everything a trial's result depends on."""
    # Not in the hash: how the search is run (workers, storage, ...), and n_trials, so raising it
    # continues the same study.
    tune = params.tune.model_dump(exclude={
        "enabled", "workers", "storage", "timeout", "heartbeat_interval", "max_retry", "n_trials", "space", "arch_space",
    })
    tune["space"] = params.tune.space_for(arch_name).model_dump()  # this architecture's space only
    key = {
        "seed": params.seed, "arch": params.architectures[arch_name].model_dump(),
        "train": params.train.model_dump(exclude={"threads"}), "tune": tune, "data": dataset_hash,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    return f"{params.mlflow.experiment}-{arch_name}-{digest}"


def make_study(storage, name: str, params: Params, sampler_seed: int, load_if_exists: bool = True):
    import optuna

    tune = params.tune
    epochs = tune.max_epochs or params.train.max_epochs
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


# ---- the objective ---------------------------------------------------------------------------


@dataclasses.dataclass
class Objective:
    """One trial: suggest, train with the pipeline's own loop, report every epoch, maybe prune."""

    params: Params
    arch_name: str
    dataset: Any  # sinernn.data.Dataset
    parent_run_id: str | None  # the study's MLflow run; None: do not log to MLflow

    def __call__(self, trial) -> float:
        import optuna

        from sinernn.training import fit_architecture

        tune = self.params.tune
        earlier = [t for t in trial.study.get_trials(deepcopy=False)
                   if t.number < trial.number and t.state.name in FINISHED + IN_FLIGHT]
        if len(earlier) >= tune.n_trials:
            trial.set_user_attr("fail_reason", "surplus: the study already had n_trials trials")
            raise SurplusTrial(f"trial {trial.number} is beyond n_trials={tune.n_trials}")

        arch = self.params.architectures[self.arch_name]
        overrides = suggest(trial, tune.space_for(self.arch_name), arch, self.params.train)
        arch, cfg = apply_tuned(arch, self.params.train, overrides)
        if tune.max_epochs:
            cfg = cfg.model_copy(update={"max_epochs": tune.max_epochs})
        epochs = 0

        def report(stats) -> None:
            nonlocal epochs
            epochs = stats.epoch
            trial.report(stats.val_loss, stats.epoch)
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
                trial.set_user_attr("epochs", epochs)
                if run:
                    run.client.set_tag(run.run_id, "optuna_state", state)
                    run.log_metrics({"epochs": epochs})
            if run:
                run.log_metrics({"value": result.best_val_loss})
        return result.best_val_loss

    def _child_run(self, run_name: str, tags: dict):
        """The trial's MLflow run, nested under the study's run by an explicit parent id."""
        import contextlib

        import optuna

        from sinernn.tracking import stage_run

        if self.parent_run_id is None:
            return contextlib.nullcontext(None)
        return stage_run(self.params.mlflow.experiment, run_name, tags, parent_run_id=self.parent_run_id,
                         killed_by=(optuna.TrialPruned,))


class SurplusTrial(Exception):
    """Raised by a trial created after the study already held n_trials trials."""


def _stop_when_full(n_trials: int):
    def callback(study, trial) -> None:
        if budget_used(study) >= n_trials:
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
    storage = open_storage(spec.storage, tune.heartbeat_interval, tune.max_retry)
    dataset, _ = data.load(Path(spec.data_path))
    probe = optuna.load_study(study_name=spec.study, storage=storage)
    optuna.storages.fail_stale_trials(probe)  # a killed worker's trials: failed and re-queued
    # Different seeds per worker and per resume, or a resumed study would redraw its first points.
    study = make_study(storage, spec.study, spec.params, spec.params.seed + 7919 * spec.index + len(probe.trials))
    if budget_used(study) >= tune.n_trials:
        return
    timeout = None if spec.deadline is None else max(0.0, spec.deadline - time.time())
    if timeout == 0.0:
        return
    study.optimize(
        Objective(spec.params, spec.arch_name, dataset, spec.parent_run_id),
        timeout=timeout,
        catch=(TrainingDiverged, SurplusTrial),
        callbacks=[_stop_when_full(tune.n_trials)],
    )


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
    trial fails once its heartbeat is stale and is re-queued; a diverged trial frees its slot.
    """
    import optuna

    tune = params.tune
    deadline = time.time() + tune.timeout if tune.timeout else None
    threads = max(1, min(params.train.threads, (os.cpu_count() or 1) // workers))
    opened = open_storage(storage, tune.heartbeat_interval, tune.max_retry)
    while True:
        specs = [WorkerSpec(params, arch_name, str(data_path), storage, study, parent_run_id,
                            worker_offset + i, threads, deadline) for i in range(workers)]
        if workers == 1:
            run_worker(specs[0])  # in this process: deterministic, and errors surface directly
        else:
            _spawn_workers(specs)
        loaded = optuna.load_study(study_name=study, storage=opened)
        optuna.storages.fail_stale_trials(loaded)
        counts = count_states(loaded)
        finished = counts["COMPLETE"] + counts["PRUNED"]
        if finished >= tune.n_trials or (deadline and time.time() >= deadline):
            return
        if counts["FAIL"] >= max(tune.n_trials, 3) and counts["COMPLETE"] == 0:
            raise TuneError(f"study {study}: {counts['FAIL']} trials failed and none completed; "
                            "see their fail_reason (e.g. lower tune.space.lr.high)")
        if counts["RUNNING"]:
            if not isinstance(opened, optuna.storages.RDBStorage):
                return  # no heartbeats through the gRPC proxy: a RUNNING trial may be dead forever
            time.sleep(min(tune.heartbeat_interval, 5))  # another machine's, or a dead worker's not yet stale


# ---- what a finished study leaves behind -----------------------------------------------------


def best_overrides(study, params: Params, arch_name: str) -> dict:
    """The best trial's values as {"arch": ..., "train": ...}, derived exactly as a trial did."""
    import optuna

    arch = params.architectures[arch_name]
    return suggest(optuna.trial.FixedTrial(study.best_trial.params), params.tune.space_for(arch_name), arch, params.train)


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
