"""The three PyTorch examples of the widely read answer, run exactly as published.

They are kept as written (tensor shapes, layers, indexing, optimiser, full-batch epochs) so that
what happens to them is measured rather than assumed:

    x = torch.linspace(0, 10, 1000).reshape(-1, 1)      # (1000, 1): ONE unbatched sequence
    y = torch.sin(x)                                     # (1000, 1)
    1: rnn = nn.RNN(1, 10);  linear = nn.Linear(10, 1);  pred = linear(rnn(x)[0][-1])   # (1,)
       loss = nn.MSELoss()(pred, y); Adam(lr=0.01); 1000 epochs
    2: the same with nn.LSTM(1, hidden)
    3: lstm = nn.LSTM(1, 50, num_layers=3, batch_first=True); pred = linear(out[:, -1, :]);
       Adam(lr=0.001)

Each run returns an `ExampleRun`: the loss curve, the final loss, the warnings PyTorch raised, the
exception if it crashed, and the tensors the diagnosis needs.
"""

from __future__ import annotations

import time
import traceback
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

EXAMPLES = {
    1: "nn.RNN(1, 10) + nn.Linear(10, 1) on out[-1], Adam lr 0.01",
    2: "nn.LSTM(1, hidden) + nn.Linear(hidden, 1) on out[-1], Adam lr 0.01",
    3: "nn.LSTM(1, 50, num_layers=3, batch_first=True) + nn.Linear(50, 1) on out[:, -1, :], Adam lr 0.001",
}


class PublishedModel(nn.Module):
    """A recurrent layer and a linear head, with the example's own way of picking the output."""

    def __init__(self, recurrent: nn.Module, head: nn.Linear, pick: str):
        super().__init__()
        self.recurrent, self.head, self.pick = recurrent, head, pick

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.recurrent(x)
        last = out[-1] if self.pick == "out[-1]" else out[:, -1, :]
        return self.head(last)


@dataclass
class ExampleRun:
    number: int
    description: str
    model: nn.Module
    inputs: torch.Tensor
    targets: torch.Tensor
    losses: list[float] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    exception: BaseException | None = None
    traceback: str = ""
    seconds: float = 0.0

    @property
    def final_loss(self) -> float | None:
        return self.losses[-1] if self.losses else None

    def summary(self) -> dict:
        return {
            "example": self.number, "setup": self.description, "epochs_run": len(self.losses),
            "first_loss": self.losses[0] if self.losses else None, "final_loss": self.final_loss,
            "min_loss": min(self.losses) if self.losses else None,
            "target_variance": float(self.targets.var(unbiased=False)),
            "input_shape": list(self.inputs.shape), "target_shape": list(self.targets.shape),
            "warnings": self.warnings,
            "exception": f"{type(self.exception).__name__}: {self.exception}" if self.exception else None,
            "seconds": self.seconds,
        }


def build_example(number: int, seed: int, hidden: int = 10) -> tuple[nn.Module, float]:
    """The example's model (seeded) and learning rate."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if number == 1:
            return PublishedModel(nn.RNN(1, 10), nn.Linear(10, 1), "out[-1]"), 0.01
        if number == 2:
            return PublishedModel(nn.LSTM(1, hidden), nn.Linear(hidden, 1), "out[-1]"), 0.01
        if number == 3:
            return PublishedModel(nn.LSTM(1, 50, num_layers=3, batch_first=True), nn.Linear(50, 1), "out[:, -1, :]"), 0.001
    raise ValueError(f"unknown example {number}; the published examples are {sorted(EXAMPLES)}")


def published_data() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.linspace(0, 10, 1000).reshape(-1, 1)
    return x, torch.sin(x)


def run_example(number: int, seed: int = 0, epochs: int = 1000, hidden: int = 10) -> ExampleRun:
    """Train the example as published; a crash is recorded, not raised."""
    model, lr = build_example(number, seed, hidden)
    x, y = published_data()
    run = ExampleRun(number, EXAMPLES[number], model, x, y)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.MSELoss()
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            for _ in range(epochs):
                optimizer.zero_grad()
                loss = loss_fn(model(x), y)
                loss.backward()
                optimizer.step()
                run.losses.append(loss.item())
        except Exception as exc:  # the point is to record the crash
            run.exception = exc
            run.traceback = traceback.format_exc(limit=3)
    run.seconds = time.perf_counter() - started
    run.warnings = sorted({str(w.message) for w in caught})
    return run
