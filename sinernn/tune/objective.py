"""One trial: suggest, train with the pipeline's own loop, report every epoch, maybe prune, and
score the trained model. A window model is scored by its validation rollout: the MSE of a
free-running forecast over the validation split, seeded with the window before it, against the
observed values. That is what its rollouts will do, and the one-step loss does not tell it: on the
clean sine, the rnn whose trial had the best one-step validation loss drifted to a 1000-step
rollout MSE of 0.35. Other framings (which do not roll out) are scored by the best one-step
validation loss. Pruning judges the one-step validation loss of every epoch either way (a rollout
per epoch would cost more than the epoch).

Exactly n_trials: a trial that finds n_trials trials before it (two workers asked at the same
moment) ends at once as FAIL with user attr `fail_reason` = "surplus", having trained nothing.
Trials that diverge (NaN/inf) end FAIL with their reason and do not count: the study goes on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any

from sinernn.core.config import Params
from sinernn.core.errors import TrainingDiverged
from sinernn.core.scores import with_log10
from sinernn.core.tuned import apply_tuned
from sinernn.tune.space import suggest
from sinernn.tune.study import FINISHED, IN_FLIGHT, judged_by

STALLED = "stalled"  # fail_reason of a trial the coordinator failed for silence (StallWatch)


@dataclasses.dataclass
class Objective:
    """One trial: suggest, train with the pipeline's own loop, report every epoch, maybe prune."""

    params: Params
    dataset_name: str
    arch_name: str
    dataset: Any  # sinernn.core.data.Dataset
    parent_run_id: str | None  # the study's MLflow run; None: do not log to MLflow
    tracked_data: Any = None  # the dataset as an MLflow input (sinernn.track.tracking.mlflow_dataset)
    current: Any = None  # the trial being run, to tell whether a coordinator took it over

    def __call__(self, trial) -> float:
        import optuna
        from sinernn.core.training import fit_architecture

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
        base = self.params.train_for(self.dataset_name)  # with the dataset's own settings
        overrides = suggest(trial, tune.space_for(self.arch_name), arch, base)
        arch, cfg = apply_tuned(arch, base, overrides)
        if tune.max_epochs:
            cfg = cfg.model_copy(update={"max_epochs": tune.max_epochs})
        epochs, best = 0, math.inf

        def report(stats) -> None:
            nonlocal epochs, best
            epochs, best = stats.epoch, min(best, stats.val_loss)
            try:
                trial.report(stats.val_loss, stats.epoch)
            except optuna.exceptions.UpdateFinishedTrialError:
                # A coordinator judged this trial stalled (tune.stall_timeout) and re-queued it.
                raise TrialTakenOver(f"trial {trial.number} was failed as stalled and re-queued") from None
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {stats.epoch}: val loss {stats.val_loss:.3g}")

        tags = {"stage": "tune", "dataset": self.dataset_name, "architecture": self.arch_name,
                "kind": arch.kind, "optuna_study": trial.study.study_name, "optuna_trial": str(trial.number)}
        run_name = f"trial-{self.dataset_name}-{self.arch_name}-{trial.number}"
        with self._child_run(run_name, tags) as run:
            if run:
                run.log_params(trial.params)
                run.log_input(self.tracked_data, "validation")  # a trial is judged on the validation split
            state = "failed"
            try:
                on_epoch = [run.log_epoch, report] if run else [report]
                fitted = fit_architecture(arch, cfg, self.dataset, self.params.seed, on_epoch, run_name)
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
                if run:  # best_val_loss so far, a pruned trial's too: a chart of the trials shows them all
                    run.client.set_tag(run.run_id, "optuna_state", state)
                    run.log_metrics({"epochs": epochs, **(with_log10({"best_val_loss": best}) if best < math.inf else {})})
            return self._judge(trial, run, fitted, cfg)

    def _judge(self, trial, run, fitted, cfg) -> float:
        """The trial's value (study.judged_by says which), recorded on the trial and its run."""
        rolled = judged_by(cfg.framing) == "val_rollout_mse"
        value = validation_rollout_mse(fitted.model, self.dataset, cfg.window) if rolled else fitted.result.best_val_loss
        if rolled:
            trial.set_user_attr("val_rollout_mse", value)
        if run:
            run.log_metrics({"value": value, **(with_log10({"val_rollout_mse": value}) if rolled else {})})
        return value

    def was_taken_over(self) -> bool:
        """Whether the trial last run was failed as stalled by a coordinator meanwhile."""
        if self.current is None:
            return False
        frozen = self.current.study._storage.get_trial(self.current._trial_id)
        return frozen.state.name == "FAIL" and frozen.user_attrs.get("fail_reason", "").startswith(STALLED)

    def _child_run(self, run_name: str, tags: dict):
        """The trial's MLflow run, nested under the study's run by an explicit parent id."""
        import optuna
        from sinernn.track.tracking import stage_run

        if self.parent_run_id is None:
            return contextlib.nullcontext(None)
        return stage_run(self.params.mlflow.experiment, run_name, tags, parent_run_id=self.parent_run_id,
                         killed_by=(optuna.TrialPruned,))


ROLLOUT_CAP = 1e6  # a rollout that blew up ranks last instead of failing the trial (NaN is not a value)


def validation_rollout_mse(model, dataset, window: int) -> float:
    """Scaled MSE of a free-running forecast over the validation split against its observed values
    (no clean signal: a real series has none). Seeded with the window before the split, or, for
    separate series, with each series' first window."""
    import numpy as np

    from sinernn.core.evaluation import rollout

    joined, _ = dataset.with_history("val", window)
    values = dataset.scale(joined.observed)
    start = values.shape[1] - dataset.splits["val"].observed.shape[1]
    start = max(start, window)  # separate series: their first window seeds them
    targets = values[:, start:]
    if targets.shape[1] < 1:
        raise ValueError(f"the validation split holds no value after a window of {window}")
    forecast = rollout(model, values[:, start - window : start], targets.shape[1])
    with np.errstate(over="ignore", invalid="ignore"):
        mse = float(np.mean((forecast - targets) ** 2))
    return mse if np.isfinite(mse) and mse < ROLLOUT_CAP else ROLLOUT_CAP


class SurplusTrial(Exception):
    """Raised by a trial created after the study already held n_trials trials."""


class TrialTakenOver(Exception):
    """Raised by a live trial that a coordinator failed as stalled and re-queued meanwhile."""
