"""The measurements behind the published answer's other claims, part one (gathered by stage
`claims`; part two, on memory, is claims_memory.py; the verdicts are claims_verdicts.py). Each
function returns plain numbers (JSON-ready), and runs as a stage of its own through its `..._part`
function (measurements.py):

    linear_memory     the best linear predictor from the last k values: does a sine need a long past?
    derivatives       gradient norms while training on A sin(2 pi t / P), inputs scaled and raw
    window_ratio      one-step and rollout error against window / period, per cell
    overfitting       train, validation and test error against hidden size, on a noisy series
    tuning_part       each Optuna study's parameter importances, as the tune stage wrote them
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from sinernn.answer.measurements import Inputs
from sinernn.core.config import Params
from sinernn.core.config_data import BASELINE_KINDS, PersistenceArch, RecurrentArch
from sinernn.core.data import Dataset, generate
from sinernn.core.errors import DataError, TrainingDiverged
from sinernn.core.evaluation import evaluate
from sinernn.core.files import read_output
from sinernn.core.framing import sliding_windows
from sinernn.core.training import fit_architecture

def _lagged(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the last k values (oldest first) and the value after each, in float64."""
    inputs, targets = sliding_windows(values, k, 1)
    return inputs.reshape(len(inputs), k), targets.reshape(-1)


def linear_memory(dataset: Dataset, lags: list[int], pure_sine: bool) -> list[dict]:
    """Least squares on the train split (with an intercept), scored one step ahead on the test split.
    pure_sine: the series is a sine and nothing else (no noise, trend or drift), as params.yaml says.

    On a pure sine x(t) = 2 cos(w) x(t-1) - x(t-2) exactly, so two values already give float64
    round-off; on a noisy sine more values average the noise, and the error falls towards sigma^2."""
    train = dataset.splits["train"].observed.astype(np.float64)
    variance = float(np.var(dataset.splits["test"].observed))
    results = []
    for k in sorted(lags):
        joined, _ = dataset.with_history("test", k)
        x_train, y_train = _lagged(train, k)
        x_test, y_test = _lagged(joined.observed.astype(np.float64), k)
        design = np.hstack([x_train, np.ones((len(x_train), 1))])
        coef, *_ = np.linalg.lstsq(design, y_train, rcond=None)
        error = np.hstack([x_test, np.ones((len(x_test), 1))]) @ coef - y_test
        mse = float(np.mean(error**2))
        results.append({"dataset": dataset.name, "pure_sine": pure_sine, "k": k, "test_mse": mse, "relative_mse": mse / variance,
                        "noise_variance": (dataset.noise_std or 0.0) ** 2, "test_variance": variance})
    return results


def _sine(params: Params, name: str, **update) -> Dataset:
    """claims.sine_dataset generated again with other settings (noise and trend removed)."""
    source = params.datasets[params.claims.sine_dataset]
    cfg = source.model_copy(update={"noise_std": 0.0, "trend": 0.0, **update})
    return generate(name, cfg, params.seed, params.train.window)


def derivatives(params: Params) -> list[dict]:
    """Gradient norms in training on A sin(2 pi t / P): the sine's k-th derivative is bounded by
    A w^k, w = 2 pi / P. Scaled: the train split standardised (global scaling), as the pipeline does;
    raw: the values as they are. A plain rnn, clipping off, so that the norms are the ones seen.
    `model_bound` is the first derivative's bound in the units the network reads: A w for raw
    inputs, A w / (the train split's deviation, A / sqrt 2) = sqrt(2) w for scaled ones, where the
    amplitude drops out and only the frequency is left."""
    c, d = params.claims, params.diagnose
    arch = RecurrentArch(kind="rnn", hidden_size=d.cell_hidden, num_layers=1)
    config = params.train_for(c.sine_dataset).model_copy(update={"framing": "window", "scaling": "global", "grad_clip": 0.0,
                                             "max_epochs": c.derivative_epochs, "rollout_steps": 1})
    results = []
    for amplitude in c.derivative_amplitudes:
        for period in c.derivative_periods:
            scaled = _sine(params, f"sine A={amplitude:g} P={period:g}", amplitude=amplitude, period=period)
            raw = dataclasses.replace(scaled, scale_mean=0.0, scale_std=1.0)
            for inputs, dataset in (("scaled", scaled), ("raw", raw)):
                norms: list[float] = []
                bound = amplitude * 2 * math.pi / period
                row = {"amplitude": amplitude, "period": period, "inputs": inputs, "derivative_bound": bound,
                       "model_bound": bound / dataset.scale_std}
                try:
                    fitted = fit_architecture(arch, config, dataset, params.seed, [lambda s: norms.append(s.grad_norm)],
                                              f"derivatives A={amplitude:g} P={period:g} {inputs}")
                    test_mse = evaluate(fitted.model, dataset, "window", config.window).metrics["test_mse"]
                    row.update(diverged=False, relative_test_mse=test_mse / (amplitude**2 / 2))
                except TrainingDiverged:
                    row.update(diverged=True, relative_test_mse=None)
                finite = [n for n in norms if math.isfinite(n)]  # the epoch that diverged has none
                row.update(median_grad_norm=float(np.median(finite)) if finite else None,
                           max_grad_norm=max(finite, default=None))
                results.append(row)
    return results


def window_ratio(params: Params) -> list[dict]:
    """Each cell, and persistence, on sines of every period in claims.ratio_periods, all read
    through windows of the sine dataset's window: one step ahead, and over one period of free
    steps (a fixed number of steps would cover six periods of one sine and a third of another).
    Errors are relative to the variance, the same for every period."""
    c, d = params.claims, params.diagnose
    config = params.train_for(c.sine_dataset).model_copy(update={"framing": "window", "max_epochs": c.ratio_epochs,
                                                                 "rollout_steps": 1})
    results = []
    for period in sorted(c.ratio_periods):
        dataset = _sine(params, f"sine P={period:g}", period=period)
        variance, horizon = float(np.var(dataset.splits["test"].observed)), math.ceil(period)
        for kind in [*c.ratio_architectures, "persistence"]:
            arch = (PersistenceArch(kind="persistence") if kind == "persistence"
                    else RecurrentArch(kind=kind, hidden_size=d.cell_hidden, num_layers=1))
            row = {"period": period, "ratio": config.window / period, "architecture": kind, "horizon": horizon}
            try:
                fitted = fit_architecture(arch, config, dataset, params.seed, description=f"window/period {kind} P={period:g}")
            except TrainingDiverged:
                results.append({**row, "diverged": True, "test_mse": None, "rollout_mse": None})
                continue
            metrics = evaluate(fitted.model, dataset, "window", config.window, [horizon]).metrics
            results.append({**row, "diverged": False, "test_mse": metrics["test_mse"],
                            "rollout_mse": metrics[f"rollout_mse_{horizon}"]})
    persistence = {r["period"]: r["test_mse"] for r in results if r["architecture"] == "persistence"}
    for row in results:  # relative to the variance; and below 1 against persistence: better than repeating the last value
        row["relative_test_mse"] = _ratio(row["test_mse"], variance)
        row["relative_rollout_mse"] = _ratio(row["rollout_mse"], variance)
        row["vs_persistence"] = _ratio(row["test_mse"], persistence[row["period"]])
    return results


def _ratio(value: float | None, by: float | None) -> float | None:
    return None if value is None or not by else value / by


def overfitting(params: Params, dataset: Dataset) -> list[dict]:
    """One cell at every hidden size of claims.overfit_hidden, with the pipeline's loop (which keeps
    the best validation epoch): train, validation and test MSE in the data's units."""
    c = params.claims
    config = params.train_for(c.overfit_dataset).model_copy(update={"framing": "window", "max_epochs": c.overfit_epochs,
                                                                    "rollout_steps": 1})
    results = []
    for hidden in sorted(c.overfit_hidden):
        arch = RecurrentArch(kind=c.overfit_arch, hidden_size=hidden, num_layers=1)
        row = {"dataset": dataset.name, "architecture": c.overfit_arch, "hidden_size": hidden,
               "noise_variance": (dataset.noise_std or 0.0) ** 2}
        try:
            fitted = fit_architecture(arch, config, dataset, params.seed, description=f"overfit {c.overfit_arch} h={hidden}")
        except TrainingDiverged:
            results.append({**row, "diverged": True, "epochs": None, "best_epoch": None, "train_mse": None,
                            "val_mse": None, "test_mse": None})
            continue
        metrics = evaluate(fitted.model, dataset, "window", config.window).metrics
        results.append({**row, "diverged": False, "epochs": len(fitted.result.history), "best_epoch": fitted.result.best_epoch,
                        "train_mse": metrics["train_mse"], "val_mse": metrics["val_mse"], "test_mse": metrics["test_mse"]})
    return results


# ---- the parts of the claims stage, one DVC stage each (sinernn/answer/measurements.py) --------


def linear_memory_part(params: Params, inputs: Inputs, item: None) -> list[dict]:
    return [row for name in params.claims.linear_datasets
            for row in linear_memory(inputs.dataset(name), params.claims.linear_lags, pure_sine(params, name))]


def pure_sine(params: Params, name: str) -> bool:
    """A sine and nothing else: the series whose next value two past values fix exactly."""
    ds = params.datasets[name]
    return ds.source == "sine" and not (ds.noise_std or ds.trend or ds.period_drift or ds.noise_drift)


def tuning_part(params: Params, inputs: Inputs, item: None) -> list[dict]:
    """Each tuned study's parameter importances, as the tune stage wrote them beside its best values."""
    studies = []
    for dataset in params.run.train_datasets:
        for arch in params.run.architectures:
            if params.architectures[arch].kind in BASELINE_KINDS or not params.tune.enabled:
                continue
            path = inputs.tuned_dir / dataset / f"{arch}.json"
            if not path.exists():
                raise DataError(f"{path} is missing: run the tune stage first (dvc repro tune)")
            tuned = read_output(path)
            studies.append({"dataset": dataset, "architecture": arch, "importances": tuned.get("importances"),
                            "best_trial": tuned.get("best_trial"),  # 0: params.yaml's own values won
                            "n_complete": tuned.get("n_complete"), "objective_spread": tuned.get("objective_spread")})
    return studies


def derivatives_part(params: Params, inputs: Inputs, item: None) -> list[dict]:
    return derivatives(params)


def window_ratio_part(params: Params, inputs: Inputs, item: None) -> list[dict]:
    return window_ratio(params)


def overfitting_part(params: Params, inputs: Inputs, item: None) -> list[dict]:
    return overfitting(params, inputs.dataset(params.claims.overfit_dataset))
