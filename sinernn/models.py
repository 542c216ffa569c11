"""Every architecture behind one registry: `build_model(config)` with config["kind"] naming it.

All models map an input sequence (B, L, 1) to the next value (B, 1), so training, evaluation and
rollout treat them alike. The recurrent models and the transformer also accept one unbatched
sequence (L, 1) -> (1,), which the `naive` framing needs. The scikit-learn baselines are fitted
outside torch (see `training.fit_baseline`) and stored in torch modules, so they share the
checkpoint format and the evaluation code with the neural models.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sinernn.config import BASELINE_KINDS


class RecurrentRegressor(nn.Module):
    """Elman RNN (tanh), GRU or LSTM; stacked when num_layers > 1; a linear head on the last step."""

    CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}

    def __init__(self, kind: str, hidden_size: int, num_layers: int, dropout: float = 0.0):
        super().__init__()
        self.rnn = self.CELLS[kind](
            input_size=1,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,  # torch warns on dropout with one layer
            batch_first=True,
        )
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)  # (B, L, H), or (L, H) unbatched
        return self.head(out[..., -1, :])  # (B, 1), or (1,)


def sinusoidal_positions(length: int, d_model: int) -> torch.Tensor:
    """(length, d_model) fixed position code, so any sequence length works (no learned table)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(1e4) / d_model))
    code = torch.zeros(length, d_model)
    code[:, 0::2] = torch.sin(position * frequency)
    code[:, 1::2] = torch.cos(position * frequency[: d_model // 2])
    return code


class TransformerRegressor(nn.Module):
    """A small encoder: project each value to d_model, add positions, attend, read the last token."""

    def __init__(self, d_model: int, nhead: int, num_layers: int, dim_feedforward: int, dropout: float):
        super().__init__()
        self.embed = nn.Linear(1, d_model)
        layer = nn.TransformerEncoderLayer(
            d_model, nhead, dim_feedforward, dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) + sinusoidal_positions(x.shape[-2], self.embed.out_features)  # (B, L, D)
        h = self.encoder(h)
        return self.head(h[..., -1, :])  # (B, 1)


class LinearAutoregression(nn.Module):
    """Ridge baseline: next = w . (last L values) + b. Weights come from scikit-learn."""

    def __init__(self, input_length: int):
        super().__init__()
        self.linear = nn.Linear(input_length, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x[..., 0])  # (B, L) -> (B, 1)


class Persistence(nn.Module):
    """Baseline: the next value equals the last one. Nothing to fit."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, -1, :]  # (B, 1)


KINDS = (*RecurrentRegressor.CELLS, "transformer", *BASELINE_KINDS)


def build_model(config: dict, seed: int = 0) -> nn.Module:
    """config: an architecture's params plus "input_length" (the framed sequence length).

    The initial weights depend on `seed` alone; the global torch RNG is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _construct(config)


def _construct(config: dict) -> nn.Module:
    kind = config.get("kind")
    if kind in RecurrentRegressor.CELLS:
        return RecurrentRegressor(kind, config["hidden_size"], config["num_layers"], config["dropout"])
    if kind == "transformer":
        return TransformerRegressor(
            config["d_model"], config["nhead"], config["num_layers"],
            config["dim_feedforward"], config["dropout"],
        )
    if kind == "ridge":
        return LinearAutoregression(config["input_length"])
    if kind == "persistence":
        return Persistence()
    raise ValueError(f"unknown architecture kind {kind!r}; valid kinds: {', '.join(KINDS)}")
