"""Shapes right, framing wrong: a network maps the time t to sin(t). It fits the training range,
and the times it will forecast (future_inputs) lie beyond it.

    sinernn diagnose --code examples/diagnose/time_input.py
"""

import torch
from torch import nn


def build():
    torch.manual_seed(0)
    time = torch.linspace(0, 10, 1000).reshape(-1, 1)  # (1000, 1): one sample per time step
    train, future = time[:700], time[850:]
    model = nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))
    return {"model": model, "inputs": train, "targets": torch.sin(train), "future_inputs": future,
            "optimizer": torch.optim.Adam(model.parameters(), lr=0.01)}
