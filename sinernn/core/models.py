"""Every architecture behind one registry: `build_model(config)` with config["kind"] naming it.

All models map an input sequence (B, L, 1) to the next value (B, 1), so training, evaluation and
rollout treat them alike. The recurrent models and the transformer also accept one unbatched
sequence (L, 1) -> (1,), which the `naive` framing needs. The scikit-learn baselines are fitted
outside torch (see `training.fit_baseline`) and stored in torch modules, so they share the
checkpoint format and the evaluation code with the neural models.

Scaling (`train.scaling`) is part of the model, so that training, tuning, evaluation, rollouts,
`sinernn predict` and the exported forecaster all apply it the same way. The data arrive scaled
once with the train split's mean and deviation ("global"); `Normalised` then re-expresses each
input window before the network sees it and maps the prediction back:

    window: (x - mean(x)) / std(x) per window, out * std + mean      (reversible instance norm)
    diff:   first differences / their train deviation, out * dev + last value

so a series that drifts above every training value still reaches the network in the range it
was trained on. The naive baselines (persistence, seasonal naive) are never wrapped: they are
exact on any scale.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sinernn.core.config_data import BASELINE_KINDS


class RecurrentRegressor(nn.Module):
    """Elman RNN (tanh), GRU or LSTM; stacked when num_layers > 1; a linear head on the last step.

    dropout acts in two places: between stacked layers (torch's own, on every step), and on the
    last step's hidden output before the head. torch's dropout alone does nothing for one layer
    (it warns and ignores it), so a searched dropout would have been a dimension without effect
    for rnn, gru and lstm; the head's dropout gives it one. model.eval() turns both off.
    """

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
        # Identity at 0: no parameters either way (old checkpoints load), and no RNG draw, so a
        # model without dropout trains bit for bit as before.
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)  # (B, L, H), or (L, H) unbatched
        return self.head(self.drop(out[..., -1, :]))  # (B, 1), or (1,)


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


class Normalised(nn.Module):
    """An inner model that sees each window re-expressed (see the module docstring)."""

    EPS = 1e-5  # added to the window variance: a flat window becomes zeros, not NaN

    def __init__(self, inner: nn.Module, scaling: str, diff_scale: float = 1.0):
        super().__init__()
        self.inner, self.scaling = inner, scaling
        self.register_buffer("diff_scale", torch.tensor(float(diff_scale)))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, L, 1) windows -> what the inner model sees, and the (B, 1) shift and scale that
        map its output back: prediction = inner output * scale + shift."""
        if self.scaling == "window":
            mean = x.mean(dim=-2)
            std = torch.sqrt(x.var(dim=-2, correction=0) + self.EPS)
            return (x - mean[..., None, :]) / std[..., None, :], mean, std
        if self.scaling == "diff":
            steps = (x[..., 1:, :] - x[..., :-1, :]) / self.diff_scale
            return steps, x[..., -1, :], self.diff_scale.expand_as(x[..., -1, :])
        raise ValueError(f"unknown scaling {self.scaling!r}; choose one of {SCALINGS}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inputs, shift, scale = self.encode(x)
        return self.inner(inputs) * scale + shift


class Persistence(nn.Module):
    """Baseline: the next value equals the last one. Nothing to fit."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, -1, :]  # (B, 1)


class SeasonalNaive(nn.Module):
    """Baseline: the next value equals the one a season ago (season 1 is persistence)."""

    def __init__(self, season: int):
        super().__init__()
        self.season = season

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, -self.season, :]  # (B, 1)


KINDS = (*RecurrentRegressor.CELLS, "transformer", *BASELINE_KINDS)
SCALINGS = ("global", "window", "diff")
UNSCALED_KINDS = ("persistence", "seasonal_naive")  # exact on any scale: never wrapped


def build_model(config: dict, seed: int = 0) -> nn.Module:
    """config: an architecture's params plus "input_length" (the framed sequence length), and
    optionally "scaling" (global when absent), "diff_scale" and, for seasonal naive, "season".

    The initial weights depend on `seed` alone; the global torch RNG is left as it was.
    """
    scaling = config.get("scaling", "global")
    wrapped = scaling != "global" and config.get("kind") not in UNSCALED_KINDS
    if wrapped and config["input_length"] < 2:  # one value has no deviation and no difference
        raise ValueError(f"scaling {scaling} needs input windows of at least 2 values (got {config['input_length']})")
    if wrapped and scaling == "diff":  # the inner model reads W-1 differences
        config = {**config, "input_length": config["input_length"] - 1}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _construct(config)
    return Normalised(model, scaling, config.get("diff_scale", 1.0)) if wrapped else model


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
    if kind == "seasonal_naive":
        return SeasonalNaive(config["season"])
    raise ValueError(f"unknown architecture kind {kind!r}; valid kinds: {', '.join(KINDS)}")
