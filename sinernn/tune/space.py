"""The search space: what a trial may change (core/tuned.py applies the values a study found)."""

from __future__ import annotations

import math
from typing import Any

from sinernn.core.config_data import BASELINE_KINDS, ArchConfig
from sinernn.core.config_stages import SearchSpace, TrainConfig


def suggest(trial, space: SearchSpace, arch: ArchConfig, train: TrainConfig) -> dict:
    """Draw one point of the search space: {"arch": {...}, "train": {...}} overrides."""
    arch_values: dict[str, Any] = {}
    train_values: dict[str, Any] = {}
    if space.lr:
        train_values["lr"] = trial.suggest_float("lr", space.lr.low, space.lr.high, log=space.lr.log)
    if space.grad_clip:
        train_values["grad_clip"] = trial.suggest_categorical("grad_clip", list(space.grad_clip))
    if space.window:
        train_values["window"] = trial.suggest_int("window", space.window.low, space.window.high, log=space.window.log)
    if space.batch_size:
        train_values["batch_size"] = trial.suggest_categorical("batch_size", list(space.batch_size))
    if space.num_layers:
        arch_values["num_layers"] = trial.suggest_int("num_layers", space.num_layers.low, space.num_layers.high)
    if space.hidden_size:
        size = trial.suggest_int("hidden_size", space.hidden_size.low, space.hidden_size.high, log=space.hidden_size.log)
        if arch.kind == "transformer":  # d_model must be a multiple of nhead
            d_model = math.ceil(size / arch.nhead) * arch.nhead
            arch_values.update(d_model=d_model, dim_feedforward=2 * d_model)
        else:
            arch_values["hidden_size"] = size
    if space.dropout and "dropout" in type(arch).model_fields:  # drawn last: the other draws stay as they were
        arch_values["dropout"] = trial.suggest_float("dropout", space.dropout.low, space.dropout.high,
                                                     log=space.dropout.log)
    return {"arch": arch_values, "train": train_values}


def start_point(space: SearchSpace, arch: ArchConfig, train: TrainConfig) -> dict:
    """params.yaml's own values of the searched parameters, as a first trial to enqueue: a search
    then never ends worse (on validation) than the configuration it started from, however many
    dimensions it has for its trials. A value outside the space is left out (the sampler draws it)."""
    values = {"lr": train.lr, "grad_clip": train.grad_clip, "window": train.window, "batch_size": train.batch_size,
              "num_layers": getattr(arch, "num_layers", None), "dropout": getattr(arch, "dropout", None),
              "hidden_size": getattr(arch, "hidden_size", None)}
    if arch.kind == "transformer" and arch.dim_feedforward == 2 * arch.d_model:  # what suggest() builds from it
        values["hidden_size"] = arch.d_model
    point = {}
    for name, value in values.items():
        dimension = getattr(space, name)
        if dimension is None or value is None or (name == "dropout" and "dropout" not in type(arch).model_fields):
            continue
        inside = value in dimension if isinstance(dimension, list) else dimension.low <= value <= dimension.high
        if inside:
            point[name] = value
    return point


def tunable(arch: ArchConfig) -> bool:
    return arch.kind not in BASELINE_KINDS
