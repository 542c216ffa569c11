"""A study's identity, its budget, and what a finished study leaves behind.

The study name holds a hash of everything a trial's outcome depends on, so re-running an
interrupted stage resumes its study, and a changed search space starts a new one.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from sinernn.core.config import Params
from sinernn.tune.space import suggest
from sinernn.tune.storage import quiet_optuna

FINISHED = ("COMPLETE", "PRUNED")  # trial states that use up the budget for good
IN_FLIGHT = ("RUNNING", "WAITING")  # ...and those that may still do so


def judged_by(framing: str) -> str:
    """What a trial's value is (objective.py computes it): a window model's validation rollout,
    another framing's best one-step validation loss. Part of the study's name, so that a study
    judged one way is never resumed by trials judged another."""
    return "val_rollout_mse" if framing == "window" else "best_val_loss"


def study_name(params: Params, dataset_name: str, arch_name: str, dataset_hash: str) -> str:
    """<experiment>-<dataset>-<arch>-<hash>: the hash covers everything a trial's result depends on."""
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
        "train": params.train_for(dataset_name).model_dump(exclude={"threads"}), "tune": tune,
        "data": dataset_hash, "judged_by": judged_by(params.train_for(dataset_name).framing),
        "first_trial": "params.yaml",  # trial 0 is params.yaml's values (search.py): older studies lack it
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    return f"{params.mlflow.experiment}-{dataset_name}-{arch_name}-{digest}"


def sampler_seed(params: Params, dataset_name: str, arch_name: str, worker: int = 0, trials_before: int = 0) -> int:
    """A sampler seed of the study's own, from the project seed and what the study searches: with
    one seed for all, every study drew the same first points, and several architectures ended on
    the very same trial. Offset per worker and per resume, or two workers, or a resumed study,
    would redraw the same points. (Optuna takes seeds below 2**32.)"""
    study = int.from_bytes(hashlib.sha256(f"{params.seed}/{dataset_name}/{arch_name}".encode()).digest()[:4], "big")
    return (study + 7919 * worker + trials_before) % 2**32


def make_study(storage, name: str, params: Params, dataset_name: str, sampler_seed: int, load_if_exists: bool = True):
    import optuna

    tune = params.tune
    epochs = tune.max_epochs or params.train_for(dataset_name).max_epochs
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


def open_study(storage, name: str, params: Params, dataset_name: str, arch_name: str) -> tuple[Any, bool]:
    """(study, created): creating is atomic in the storage, so among coordinators started at once
    on many machines exactly one is the creator (and opens the study's MLflow run)."""
    optuna = quiet_optuna()
    seed = sampler_seed(params, dataset_name, arch_name)
    try:
        return make_study(storage, name, params, dataset_name, seed, load_if_exists=False), True
    except optuna.exceptions.DuplicatedStudyError:
        return make_study(storage, name, params, dataset_name, seed), False


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


def work_left(study, n_trials: int) -> bool:
    """Whether a worker has a trial to run: a re-queued (WAITING) one, which `ask` hands out
    first, or a free place in the budget."""
    counts = count_states(study)
    return counts["WAITING"] > 0 or sum(counts[state] for state in FINISHED + IN_FLIGHT) < n_trials


def best_overrides(study, params: Params, dataset_name: str, arch_name: str) -> dict:
    """The best trial's values as {"arch": ..., "train": ...}, derived exactly as a trial did."""
    import optuna

    arch = params.architectures[arch_name]
    return suggest(optuna.trial.FixedTrial(study.best_trial.params), params.tune.space_for(arch_name), arch,
                   params.train_for(dataset_name))


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


def importance_evaluator(seed: int):
    """fANOVA (a random forest of the objective over the parameters), seeded so that one study
    always gives the same importances. (Optuna 5's default, PED-ANOVA, is lighter and ranks
    otherwise; the JSON, the metrics and the plot all use this one.)"""
    import optuna

    return optuna.importance.FanovaImportanceEvaluator(seed=seed)


def study_summary(study, seed: int) -> dict:
    """How much each searched parameter mattered, over the COMPLETE trials: fANOVA's share of the
    objective's variance per parameter (summing to 1), the number of complete trials, and the best
    and median objective value. importances is null, with importances_note saying why, when
    there is no variance to share out."""
    import statistics

    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    values = [trial.value for trial in complete]
    summary = {"n_complete": len(complete), "importances": None,
               "objective_spread": {"best": min(values), "median": statistics.median(values)} if values else None}
    varied = {name for trial in complete for name, dist in trial.distributions.items() if not dist.single()}
    if len(complete) < 2:
        return {**summary, "importances_note": f"{len(complete)} complete trial(s): importances need at least 2"}
    if not varied:  # fANOVA would share the importance out evenly among constants
        return {**summary, "importances_note": "no searched parameter can take more than one value"}
    try:
        importances = optuna.importance.get_param_importances(study, evaluator=importance_evaluator(seed))
    except RuntimeError as exc:  # "zero total variance": every complete trial scored the same
        return {**summary, "importances_note": f"fANOVA found nothing to share out: {exc}"}
    return {**summary, "importances": {name: float(importances[name]) for name in sorted(importances)}}


def study_plots(study, seed: int) -> dict:
    """Optimisation history and parameter importances as {file name: matplotlib figure} (the
    importances only when there are enough trials for them, by the evaluator of study_summary)."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import optuna.visualization.matplotlib as vis

    figures = {}
    plots = {"optimization_history.png": vis.plot_optimization_history,
             "param_importances.png": lambda study: vis.plot_param_importances(
                 study, evaluator=importance_evaluator(seed))}
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
        figures[filename] = figure
    return figures
