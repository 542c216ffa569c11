"""Gradient versus lag: the direct measurement of vanishing gradients.

For windows x (B, W, 1) and the one-step loss L, the gradient with respect to the input k steps
back is dL/dx[:, W-k]; its norm over the batch, for k = 1..W, says how much the value k steps in
the past can still move the prediction (and hence how much it can be learned from):

    window   x[W-1]  x[W-2] ...  x[0]
    lag k      1       2    ...   W        g(k) = || dL/dx[:, W-k] ||  (over the batch)
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def gradient_by_lag(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> list[float]:
    """[g(1), ..., g(W)] for windows inputs (B, W, 1) and targets (B, 1)."""
    # In float64, on a copy: over hundreds of steps the gradient falls below float32's smallest
    # number (1e-45) and would read as exactly 0; float64 resolves it down to 1e-308.
    model = copy.deepcopy(model).double().eval()  # eval: no dropout mask in the measurement
    probe = inputs.detach().double().clone().requires_grad_(True)
    loss = nn.functional.mse_loss(model(probe), targets.double())
    (gradient,) = torch.autograd.grad(loss, probe)  # (B, W, 1)
    by_position = gradient.pow(2).sum(dim=(0, 2)).sqrt()  # (W,), position 0 is the oldest value
    return by_position.flip(0).tolist()  # lag 1 (the newest value) first


def decay_summary(gradients: list[float]) -> dict:
    """How fast the gradient falls with the lag: ratios to the lag-1 gradient."""
    first = gradients[0] if gradients and gradients[0] > 0 else float("nan")
    summary = {"lag1": gradients[0], "lagW": gradients[-1], "ratio_W_to_1": gradients[-1] / first}
    for lag in (8, 32, 128, 512):
        if lag <= len(gradients):
            summary[f"ratio_{lag}_to_1"] = gradients[lag - 1] / first
    return summary
