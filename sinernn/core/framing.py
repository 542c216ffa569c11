"""How a series becomes (input, target) tensors. Chosen per run by `train.framing`.

window (default): the last W values predict the next one.

        series   s0 s1 s2 ... s(W-1) | sW
        input    [-------- W --------]
        target                         sW      -> X (N, W, 1), y (N, 1)

time_to_value: the input is the time of a sample and the target its value, y = f(t). This is what
the widely copied "learn sin(x)" example meant to do; it cannot extrapolate beyond the times it saw,
which is why it is kept: to measure that.   -> X (N, 1, 1), y (N, 1)

naive: the exact shapes of that example: the whole split as ONE unbatched sequence of times,
x (T, 1), against every value, y (T, 1). The model reads all T inputs and emits a single number,
which the loss silently broadcasts against all T targets: the model can only learn the mean.
Kept so that the failure can be reproduced and explained.   -> X (T, 1), y (T, 1)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sinernn.core.data import Dataset

FRAMINGS = ("window", "time_to_value", "naive")


@dataclass(frozen=True)
class Framed:
    inputs: torch.Tensor
    targets: torch.Tensor


def sliding_windows(series: np.ndarray, window: int, steps: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(S, T) series -> inputs (S*(T-W-steps+1), W) and the next `steps` values as targets
    ((S*(T-W), ) for one step). Windows never span two series."""
    view = np.lib.stride_tricks.sliding_window_view(series, window + steps, axis=1)  # (S, T-W-steps+1, W+steps)
    view = view.reshape(-1, window + steps)
    return view[:, :window], (view[:, window] if steps == 1 else view[:, window:])


def scaled_time(dataset: Dataset, time: np.ndarray) -> np.ndarray:
    """Time scaled by the train split's time range, so train times lie in [-1, 1]."""
    train_time = dataset.splits["train"].time
    low, high = float(train_time.min()), float(train_time.max())
    return 2 * (time - low) / (high - low) - 1


def frame(dataset: Dataset, split: str, framing: str, window: int, steps: int = 1) -> Framed:
    """A split's inputs and targets. Window framing on one long series: validation and test
    windows take their inputs from the values before the split, so every value of the split is a
    target exactly once (and a target of no other split).

    steps > 1 (window framing, rollout-aware training): targets (N, steps), the next `steps`
    values after each window, all within the split."""
    part = dataset.splits[split]
    values = dataset.scale(part.observed)
    if framing == "window":
        joined, _ = dataset.with_history(split, window)
        inputs, targets = sliding_windows(dataset.scale(joined.observed), window, steps)
        inputs = inputs[:, :, None]  # (N, W, 1)
    elif framing == "time_to_value":
        inputs = scaled_time(dataset, part.time).reshape(-1, 1, 1)  # (N, 1, 1)
        targets = values.reshape(-1)
    elif framing == "naive":
        # One sequence: the first series of the split, unbatched, exactly as in the example.
        inputs = scaled_time(dataset, part.time[0]).reshape(-1, 1)  # (T, 1)
        targets = values[0]
    else:
        raise ValueError(f"unknown framing {framing!r}; choose one of {FRAMINGS}")
    return Framed(
        torch.tensor(np.ascontiguousarray(inputs), dtype=torch.float32),
        torch.tensor(np.ascontiguousarray(targets), dtype=torch.float32).reshape(len(inputs), -1),
    )
