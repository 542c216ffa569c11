"""Worker processes on one study, and the loop that runs them until the budget is used.

    search(...)                 the coordinator (search.py): open the study, log it, call run_study
      run_study(...)            N workers, again while trials are left to run
        run_worker(...)         one process: optimize() until the study holds n_trials
          Objective(trial)      suggest -> fit_architecture -> report val loss each epoch -> prune

Exactly n_trials: a worker runs trials while the study holds a WAITING one (a dead worker's trial,
re-queued, which `ask` hands out first) or fewer than n_trials finished + running + waiting ones;
after each trial Optuna's MaxTrialsCallback stops optimize() once those reach n_trials, and the
worker calls it again for a trial still waiting. A trial that finds n_trials trials before it
ends as a surplus (objective.py).

Never stalls: a dead worker's trial is failed once its heartbeat is older than the grace period
(2 x heartbeat_interval, plus tune.sqlite_lock_wait on SQLite: a live writer blocked on the lock
must not look dead) and re-queued; a RUNNING trial with no heartbeat at all (killed before its first
one, or run through the gRPC proxy, which sends none) is failed and re-queued once the waiting
coordinator has seen it report no epoch for tune.stall_timeout seconds (StallWatch).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from sinernn.core import data
from sinernn.core.config import Params
from sinernn.core.errors import TrainingDiverged, TuneError
from sinernn.track.datasets import mlflow_dataset
from sinernn.tune.objective import STALLED, Objective, SurplusTrial, TrialTakenOver
from sinernn.tune.storage import open_storage, quiet_optuna
from sinernn.tune.study import FINISHED, IN_FLIGHT, count_states, make_study, sampler_seed, work_left


@dataclasses.dataclass(frozen=True)
class WorkerSpec:
    params: Params
    dataset_name: str
    arch_name: str
    data_path: str
    storage: str
    study: str
    parent_run_id: str | None
    index: int  # worker number: offsets the sampler seed so workers do not draw the same points
    threads: int
    deadline: float | None  # time.time() after which no new trial starts


def stop_when_full(n_trials: int):
    """Optuna's own budget callback: stop once the study holds n_trials trials that used, or may
    still use, the budget (finished, running, or re-queued and WAITING). It counts a WAITING trial
    as taken, so run_worker goes on calling optimize() while `work_left` says a trial is waiting."""
    import optuna

    states = tuple(getattr(optuna.trial.TrialState, name) for name in FINISHED + IN_FLIGHT)
    return optuna.study.MaxTrialsCallback(n_trials, states=states)


def run_worker(spec: WorkerSpec) -> None:
    """One worker: optimize until the study holds n_trials trials or the deadline passes.

    Each optimize() runs at least one trial before its callback can stop it, so the loop ends.
    """
    import torch

    optuna = quiet_optuna()
    torch.set_num_threads(spec.threads)
    tune = spec.params.tune
    storage = open_storage(spec.storage, tune.heartbeat_interval, tune.max_retry, tune.sqlite_lock_wait)
    dataset, manifest = data.load(Path(spec.data_path))
    probe = optuna.load_study(study_name=spec.study, storage=storage)
    optuna.storages.fail_stale_trials(probe)  # a killed worker's trials: failed and re-queued
    # (the seed differs per study, per worker and per resume: sampler_seed)
    seed = sampler_seed(spec.params, spec.dataset_name, spec.arch_name, spec.index, len(probe.trials))
    study = make_study(storage, spec.study, spec.params, spec.dataset_name, seed)
    tracked = mlflow_dataset(spec.dataset_name, Path(spec.data_path), manifest) if spec.parent_run_id else None
    objective = Objective(spec.params, spec.dataset_name, spec.arch_name, dataset, spec.parent_run_id, tracked)
    while work_left(study, tune.n_trials):
        timeout = None if spec.deadline is None else max(0.0, spec.deadline - time.time())
        if timeout == 0.0:
            return
        try:
            study.optimize(objective, timeout=timeout, catch=(TrainingDiverged, SurplusTrial, TrialTakenOver),
                           callbacks=[stop_when_full(tune.n_trials)])
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
    params: Params, dataset_name: str, arch_name: str, data_path: Path, storage: str, study: str,
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
    with progress_bar(opened, study, tune.n_trials, enabled=sys.stderr.isatty()):
        while True:
            specs = [WorkerSpec(params, dataset_name, arch_name, str(data_path), storage, study, parent_run_id,
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


@contextmanager
def progress_bar(storage, study: str, n_trials: int, enabled: bool, every: float = 1.0, file=None):
    """Optuna's kind of progress bar (tqdm) while a study runs: its finished trials out of n_trials
    and the best value so far. Read from the storage every `every` seconds, so it counts every
    worker's trials, in this process, in the others and on other machines. Off when stderr is
    not a terminal (a log file would fill with bars)."""
    if not enabled:
        yield
        return
    from tqdm import tqdm

    import optuna

    bar = tqdm(total=n_trials, desc=study, unit="trial", file=file or sys.stderr, dynamic_ncols=True)
    stop = threading.Event()

    def refresh() -> None:
        trials = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
        complete = [trial for trial in trials if trial.state.name == "COMPLETE"]
        bar.n = min(len(complete) + sum(trial.state.name == "PRUNED" for trial in trials), n_trials)
        if complete:
            best = min(complete, key=lambda trial: trial.value)
            bar.set_postfix_str(f"best trial {best.number}: {best.value:.3g}", refresh=False)
        bar.refresh()

    def poll() -> None:
        while not stop.wait(every):
            try:
                refresh()
            except Exception:  # a busy or briefly unreachable storage: the next poll tries again
                pass

    poller = threading.Thread(target=poll, name="progress", daemon=True)
    poller.start()
    try:
        yield
        with contextlib.suppress(Exception):  # the study's own outcome decides the stage's
            refresh()
    finally:
        stop.set()
        poller.join(timeout=10)  # a poll stuck on an unreachable database must not hold up the end
        bar.close()


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
        import sqlalchemy

        import optuna

        if not isinstance(self.storage, optuna.storages.RDBStorage):
            return set()  # through the gRPC proxy no trial has one
        with self.storage.engine.connect() as connection:
            rows = connection.execute(sqlalchemy.text(
                "SELECT h.trial_id FROM trial_heartbeats h JOIN trials t ON t.trial_id = h.trial_id "
                "WHERE t.study_id = :study"), {"study": study._study_id})
            return {row[0] for row in rows}
