"""The one evaluation: one-step error, free-running rollouts, a rolling-origin backtest, and the
noise floor.

All figures are in the data's original units (predictions are unscaled before scoring), so a
one-step MSE can be set against the noise variance sigma^2 of the dataset. On one long series the
test split is preceded by the values observed before it (`Dataset.with_history`), so the first
test value is already a target and a forecast can start from it:

    history + test   h(-W) ... h(-1) | x0 x1 x2 ... x(T-1)
    one step         [---- W ----]  ->  x0, then every next window -> x1 ...
    rollout          [---- W ----]  ->  p1 p2 ... pH       fed back, scored against the clean c0 ... c(H-1)
    backtest         from every origin o = 0, s, 2s, ... of the test split (s: evaluate.backtest_stride):
                     [-- W --] before o -> p1 ... pH, scored against the observed x(o) ... x(o+H-1)

Separate series (random_freq) have no history: their first W test values only seed.

The backtest reports MSE and MAE per horizon h, and MASE: the MAE divided by the in-sample MAE of
the one-step seasonal-naive forecast on the train split, mean |x(t) - x(t-m)| (m: the dataset's
`season`; 1 is persistence). Beside it, the seasonal-naive forecast's own MAE from the same
origins, the forecast every model should beat. A horizon the test split cannot hold is skipped,
and a figure that is not finite (a forecast that diverged) left out: both are named in `skipped`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from sinernn.core.data import Dataset
from sinernn.core.framing import frame, scaled_time

PLOT_POINTS = 300  # one-step predictions kept for the predictions plot


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float | None]  # None where a figure does not apply (e.g. no noise)
    predictions: list[dict]  # step, truth, prediction: the first test points, one-step
    rollout: list[dict]  # step, truth, prediction: the first test series, free-running
    backtest: list[dict] = field(default_factory=list)  # horizon, mse, mae, mase, seasonal_naive_mae
    skipped: list[str] = field(default_factory=list)  # metrics left out (a too-short split, a diverged forecast), and why


@torch.no_grad()
def predict(model: nn.Module, inputs: torch.Tensor, batch_size: int = 4096) -> np.ndarray:
    """Scaled one-step predictions, flattened to (N,). A naive (T, 1) input yields one value."""
    model.eval()
    if inputs.dim() == 2:
        return model(inputs).reshape(-1).numpy()
    parts = [model(inputs[i : i + batch_size]).reshape(-1) for i in range(0, len(inputs), batch_size)]
    return torch.cat(parts).numpy()


@torch.no_grad()
def rollout(model: nn.Module, seed_windows: np.ndarray, steps: int) -> np.ndarray:
    """Free-running forecast: (S, W) scaled seed windows -> (S, steps) scaled predictions."""
    model.eval()
    window = torch.as_tensor(seed_windows, dtype=torch.float32)[:, :, None]  # (S, W, 1)
    outputs = torch.empty(len(seed_windows), steps)
    for step in range(steps):
        next_value = model(window)  # (S, 1)
        outputs[:, step] = next_value[:, 0]
        window = torch.cat([window[:, 1:], next_value[:, :, None]], dim=1)
    return outputs.numpy()


def seeded_test(dataset: Dataset, window: int, season: int = 1):
    """The test split behind its history, and the index of the first value a forecast may target
    (after a full window, and a season, of values)."""
    joined, _ = dataset.with_history("test", max(window, season))
    start = joined.observed.shape[1] - dataset.splits["test"].observed.shape[1]
    return joined, max(start, window, season)


def _free_running(model: nn.Module, dataset: Dataset, framing: str, window: int, steps: int):
    """(S, steps) unscaled forecasts from the first target of the test split on, the clean truth
    beside them, or (None, None) where not defined."""
    joined, start = seeded_test(dataset, window)
    steps = min(steps, joined.observed.shape[1] - start)  # what the test split holds
    if steps < 1 or framing == "naive":
        return None, None
    truth = joined.clean[:, start : start + steps]
    if framing == "window":
        seed = dataset.scale(joined.observed[:, start - window : start])
        return dataset.unscale(rollout(model, seed, steps)), truth
    if framing == "time_to_value":  # "rollout" = predicting y(t) at future times: extrapolation
        times = scaled_time(dataset, joined.time[:, start : start + steps])
        inputs = torch.as_tensor(times.reshape(-1, 1, 1), dtype=torch.float32)
        return dataset.unscale(predict(model, inputs)).reshape(times.shape), truth
    return None, None  # naive: one number per sequence, nothing to roll forward


def backtest(model: nn.Module, dataset: Dataset, window: int, horizons: list[int], season: int,
             stride: int) -> tuple[list[dict], list[int]]:
    """Rolling-origin forecasts over the test split: one row per step ahead 1..H (H: the longest
    horizon the split holds) with MSE, MAE, MASE and the seasonal-naive MAE from the same origins;
    and the horizons the split cannot hold."""
    joined, start = seeded_test(dataset, window, season)
    observed = joined.observed
    length = observed.shape[1]
    longest = min(max(horizons), length - start)
    if longest < 1:
        return [], list(horizons)
    origins = np.arange(start, length, stride)
    seeds = np.stack([observed[:, o - window : o] for o in origins], axis=1).reshape(-1, window)  # (S*O, W)
    forecast = dataset.unscale(rollout(model, dataset.scale(seeds), longest)).reshape(len(observed), len(origins), longest)
    train = dataset.splits["train"].observed
    # (a season as long as the train split leaves no in-sample naive error to scale by: no MASE)
    scale = float(np.mean(np.abs(train[:, season:] - train[:, :-season]))) if train.shape[1] > season else 0.0
    rows = []
    for h in range(1, longest + 1):
        usable = origins + h <= length  # origins with a truth h steps ahead
        targets = np.stack([observed[:, o + h - 1] for o in origins[usable]], axis=1)
        # seasonal naive: the last value of the same phase observed before the origin
        lag = season * -(-h // season)
        naive = np.stack([observed[:, o + h - 1 - lag] for o in origins[usable]], axis=1)
        error = forecast[:, usable, h - 1] - targets
        mae = float(np.mean(np.abs(error)))
        rows.append({"horizon": h, "mse": float(np.mean(error**2)), "mae": mae,
                     "mase": mae / scale if scale > 0 else None,
                     "seasonal_naive_mae": float(np.mean(np.abs(naive - targets)))})
    return rows, [h for h in horizons if h > longest]


def _table(truth: np.ndarray, prediction: np.ndarray) -> list[dict]:
    return [
        {"step": step, "truth": float(t), "prediction": float(p)}
        for step, (t, p) in enumerate(zip(truth, prediction))
    ]


def _one_step_mse(model: nn.Module, dataset: Dataset, split: str, framing: str, window: int) -> float | None:
    """None when the split (with the history before it) holds no window and its target."""
    if framing == "window" and dataset.with_history(split, window)[0].observed.shape[1] <= window:
        return None
    framed = frame(dataset, split, framing, window)
    truth = dataset.unscale(framed.targets.numpy().reshape(-1))
    prediction = np.broadcast_to(dataset.unscale(predict(model, framed.inputs)), truth.shape)
    return float(np.mean((prediction - truth) ** 2))


def evaluate(model: nn.Module, dataset: Dataset, framing: str, window: int, horizons: list[int] = (),
             season: int = 1, stride: int = 1) -> Evaluation:
    """Every figure of one model on the test split; with no horizons, the one-step ones only."""
    test = frame(dataset, "test", framing, window)
    truth = dataset.unscale(test.targets.numpy().reshape(-1))
    prediction = dataset.unscale(predict(model, test.inputs))
    prediction = np.broadcast_to(prediction, truth.shape)  # naive: one value against every target
    error = prediction - truth
    metrics: dict[str, float | None] = {
        "test_mse": float(np.mean(error**2)),
        "test_mae": float(np.mean(np.abs(error))),
        # the same one-step error on the splits it was fitted and early-stopped on: the overfitting gap
        "train_mse": _one_step_mse(model, dataset, "train", framing, window),
        "val_mse": _one_step_mse(model, dataset, "val", framing, window),
    }
    noise_var = (dataset.noise_std or 0.0) ** 2
    metrics["noise_floor_ratio"] = metrics["test_mse"] / noise_var if noise_var > 0 else None

    forecast, clean = _free_running(model, dataset, framing, window, max(horizons, default=0))
    held = 0 if forecast is None else forecast.shape[1]  # steps the test split holds after the seed
    skipped = []
    for horizon in horizons:
        usable = forecast is not None and horizon <= held
        metrics[f"rollout_mse_{horizon}"] = (
            float(np.mean((forecast[:, :horizon] - clean[:, :horizon]) ** 2)) if usable else None
        )
        if framing != "naive" and not usable:
            skipped.append(f"rollout_mse_{horizon}")
    rows = []
    if framing == "window" and horizons:
        rows, too_long = backtest(model, dataset, window, horizons, season, stride)
        by_horizon = {row["horizon"]: row for row in rows}
        for horizon in horizons:
            row = by_horizon.get(horizon, {})
            for key in ("mse", "mae", "mase"):
                metrics[f"backtest_{key}_{horizon}"] = row.get(key)
        skipped += [f"backtest_*_{h}" for h in too_long]
    rollout_table = _table(clean[0], forecast[0]) if forecast is not None else []
    notes = []
    if skipped:
        length = dataset.splits["test"].observed.shape[1]
        held = min(held, max((row["horizon"] for row in rows), default=held)) if rows else held
        notes.append(f"{', '.join(skipped)}: the test split ({length} values) holds forecasts of at most {held} steps")
    if rows and rows[0]["mase"] is None:
        notes.append(f"backtest_mase_*: the train split holds no two values {season} steps apart (the season) "
                     f"to scale the errors by")
    diverged = [key for key, value in metrics.items() if value is not None and not np.isfinite(value)]
    if diverged:  # JSON has no inf or NaN: a forecast that blew up is named, its figures left out
        metrics.update(dict.fromkeys(diverged))
        notes.append(f"{', '.join(diverged)}: not finite (the forecast diverged)")
    return Evaluation(metrics, _table(truth[:PLOT_POINTS], prediction[:PLOT_POINTS]), rollout_table, rows, notes)
