"""The coordinator of one architecture's search: open (or resume, or join) its study, run the
workers until it holds n_trials trials, record the study in MLflow, return the best values.

    search(params, dataset, arch, data_path, storage, workers, out_path)
      open_study(...)             the study named by what its trials depend on (study.py)
      stage_run(...)              one MLflow run per study, its trials nested under it
      run_study(...)              worker processes until the budget is used (workers.py)
      -> {"arch": {...}, "train": {...}, "best_value", "best_trial", "study"}
"""

from __future__ import annotations

from pathlib import Path

from sinernn.core import data
from sinernn.core.config import Params
from sinernn.core.errors import TuneError
from sinernn.core.files import csv_text, write_json
from sinernn.core.secrets import redact_url
from sinernn.track.datasets import mlflow_dataset
from sinernn.track.tracking import flat_params, project_root, stage_run
from sinernn.tune.space import start_point
from sinernn.tune.storage import open_storage, storage_url
from sinernn.tune.study import (
    best_overrides, count_states, open_study, sampler_seed, study_name, study_plots, study_summary, trial_rows,
    wait_for_user_attr,
)
from sinernn.tune.workers import run_study


def search(params: Params, dataset_name: str, arch_name: str, data_path: Path, storage: str | None, workers: int,
           out_path: Path) -> dict:
    """Run one architecture's study on dataset `dataset_name` (its file: `data_path`) with `workers`
    local processes; write the best
    trial's values, {"arch": ..., "train": ...} plus its value and number and the study's
    parameter importances (study_summary), to out_path (JSON, still inside the study's MLflow run,
    so a failed write fails the run) and return them.

    storage: --storage, or None for $SINERNN_OPTUNA_STORAGE, tune.storage, optuna/studies.db.
    """
    import optuna

    tune = params.tune
    _, manifest = data.load(data_path)  # a missing or corrupt file stops here, before any trial
    url = storage_url(params, storage, project_root())
    name = study_name(params, dataset_name, arch_name, manifest["sha256"])
    opened = open_storage(url, tune.heartbeat_interval, tune.max_retry, tune.sqlite_lock_wait)
    study, created = open_study(opened, name, params, dataset_name, arch_name)
    # Trial 0: params.yaml's values, so the best found is no worse than them. On every open, not
    # only at creation: a coordinator killed between the two would leave a study without it.
    # (Optuna skips it where a trial with these values already exists, waiting, running or done.)
    study.enqueue_trial(start_point(tune.space_for(arch_name), params.architectures[arch_name],
                                    params.train_for(dataset_name)), skip_if_exists=True)
    # A resumed study, or one another machine created: log under its existing MLflow run.
    # (A study none of whose trials has started, its enqueued trial 0 at most, was created by
    # another coordinator an instant ago: give it time to record its run, or each machine would
    # open its own.)
    fresh = all(trial.state.name == "WAITING" for trial in study.trials)
    parent_id = None if created else wait_for_user_attr(study, "mlflow_parent_run_id", 30 if fresh else 0)
    tags = {"stage": "tune", "dataset": dataset_name, "architecture": arch_name,
            "kind": params.architectures[arch_name].kind, "dataset_hash": manifest["sha256"], "optuna_study": name}
    with stage_run(params.mlflow.experiment, f"tune-{dataset_name}-{arch_name}", tags,
                   resume_run_id=parent_id) as run:
        if parent_id is None:
            study.set_user_attr("mlflow_parent_run_id", run.run_id)
            run.log_input(mlflow_dataset(dataset_name, data_path, manifest), "validation")
            run.log_params({"storage": redact_url(url), **flat_params("tune", tune.model_dump(exclude={"space", "storage"})),
                            **flat_params("space", tune.space_for(arch_name).model_dump())})
        run_study(params, dataset_name, arch_name, data_path, url, name, run.run_id, workers)
        study = optuna.load_study(study_name=name, storage=opened)
        payload = _record(run, study, params, dataset_name, arch_name)
        write_json(out_path, payload)  # the stage's output last: a failure above leaves the old one
    return payload


def _record(run, study, params: Params, dataset_name: str, arch_name: str) -> dict:
    """The finished study in its MLflow run (best values as tags, counts, importances, trials.csv,
    plots), and the payload of the stage's JSON."""
    counts = count_states(study)
    if counts["COMPLETE"] == 0:
        raise TuneError(f"study {study.study_name}: no trial completed ({counts}); see the trials' fail_reason")
    best = study.best_trial
    rows = trial_rows(study)
    seed = sampler_seed(params, dataset_name, arch_name)  # the study's own seed seeds its fANOVA too
    summary = study_summary(study, seed)
    # Tags, not params: a resumed study may find a better trial, and MLflow params are immutable.
    tag_run(run, {**{f"best.{key}": value for key, value in best.params.items()}, "best_trial": best.number})
    run.log_metrics({"best_value": best.value, "n_complete": counts["COMPLETE"], "n_pruned": counts["PRUNED"],
                     "n_failed": counts["FAIL"], "epochs_trained": sum(row["epochs"] or 0 for row in rows),
                     **{f"importance.{name}": value for name, value in (summary["importances"] or {}).items()}},
                    step=len(rows))
    run.log_text(csv_text(rows), "trials.csv")
    for filename, figure in study_plots(study, seed).items():
        run.log_figure(figure, f"plots/{filename}", dpi=100)  # 8 x 5 inches: 800 x 500 pixels
    return {**best_overrides(study, params, dataset_name, arch_name), "best_value": best.value,
            "best_trial": best.number, "study": study.study_name, "dataset": dataset_name, **summary}


def tag_run(run, tags: dict[str, object]) -> None:
    """Tags on the study's run in one batch. Unlike MlflowClient.set_tag, MLflow's batch retries a
    unique-key conflict: two machines that finish one study both tag its shared run at once."""
    from mlflow.entities import RunTag

    run.client.log_batch(run.run_id, tags=[RunTag(key, str(value)) for key, value in tags.items()])
