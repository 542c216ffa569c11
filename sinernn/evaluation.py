"""The one evaluation: one-step error, free-running rollouts, and the noise floor.

All figures are in the data's original units (predictions are unscaled before scoring), so a
one-step MSE can be set against the noise variance sigma^2 of the dataset.

Rollout, window framing: seed with the first W observed test values, then feed each prediction
back as the newest input, H times, and score against the clean signal:

    test      x0 ... x(W-1) | c(W) c(W+1) ... c(W+H-1)      (c: clean signal)
    seed      [---- W ----]
    rollout                   p1   p2    ...  pH            p(k) computed from p(1..k-1)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sinernn.config import ROLLOUT_HORIZONS
from sinernn.data import Dataset
from sinernn.framing import frame, scaled_time

PLOT_POINTS = 300  # one-step predictions kept for the predictions plot


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float | None]  # None where a figure does not apply (e.g. no noise)
    predictions: list[dict]  # step, truth, prediction: the first test points, one-step
    rollout: list[dict]  # step, truth, prediction: the first test series, free-running


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


def _free_running(model: nn.Module, dataset: Dataset, framing: str, window: int, steps: int) -> np.ndarray | None:
    """(S, steps) unscaled forecasts of test samples W .. W+steps-1, or None if not defined."""
    test = dataset.splits["test"]
    if framing == "window":
        return dataset.unscale(rollout(model, dataset.scale(test.observed[:, :window]), steps))
    if framing == "time_to_value":  # "rollout" = predicting y(t) at future times: extrapolation
        times = scaled_time(dataset, test.time[:, window : window + steps])
        inputs = torch.as_tensor(times.reshape(-1, 1, 1), dtype=torch.float32)
        return dataset.unscale(predict(model, inputs)).reshape(times.shape)
    return None  # naive: one number per sequence, nothing to roll forward


def _table(truth: np.ndarray, prediction: np.ndarray) -> list[dict]:
    return [
        {"step": step, "truth": float(t), "prediction": float(p)}
        for step, (t, p) in enumerate(zip(truth, prediction))
    ]


def evaluate(model: nn.Module, dataset: Dataset, framing: str, window: int) -> Evaluation:
    test = frame(dataset, "test", framing, window)
    truth = dataset.unscale(test.targets.numpy().reshape(-1))
    prediction = dataset.unscale(predict(model, test.inputs))
    prediction = np.broadcast_to(prediction, truth.shape)  # naive: one value against every target
    error = prediction - truth
    metrics: dict[str, float | None] = {
        "test_mse": float(np.mean(error**2)),
        "test_mae": float(np.mean(np.abs(error))),
    }
    noise_var = (dataset.noise_std or 0.0) ** 2
    metrics["noise_floor_ratio"] = metrics["test_mse"] / noise_var if noise_var > 0 else None

    test_length = dataset.splits["test"].observed.shape[1]
    longest = min(max(ROLLOUT_HORIZONS), test_length - window)
    forecast = _free_running(model, dataset, framing, window, longest)
    clean = dataset.splits["test"].clean[:, window : window + longest]
    rollout_table: list[dict] = []
    for horizon in ROLLOUT_HORIZONS:
        usable = forecast is not None and horizon <= longest
        metrics[f"rollout_mse_{horizon}"] = (
            float(np.mean((forecast[:, :horizon] - clean[:, :horizon]) ** 2)) if usable else None
        )
    if forecast is not None:
        rollout_table = _table(clean[0], forecast[0])
    return Evaluation(metrics, _table(truth[:PLOT_POINTS], prediction[:PLOT_POINTS]), rollout_table)
