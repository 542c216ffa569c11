"""The trend case: "it learns a sine; why not my real series?"

The same sine plus a linear trend, so that most test values lie outside the range of the values
seen in training (the share is measured). With global scaling (one mean and deviation, fitted on the train split) the test windows
are inputs the network has never seen, and a tanh or sigmoid cell saturates on them; with window
scaling each window is re-expressed around its own mean and deviation, and the trend disappears
from what the network sees. Each (cell, scaling) pair is trained with the pipeline's loop and
scored one step ahead and over a free-running rollout, beside persistence ("tomorrow = today").
"""

from __future__ import annotations

import numpy as np

from sinernn.answer.measurements import Inputs
from sinernn.core.config import Params
from sinernn.core.config_data import PersistenceArch, RecurrentArch
from sinernn.core.data import Dataset, generate
from sinernn.core.evaluation import evaluate
from sinernn.core.training import fit_architecture


def trend_dataset(params: Params) -> Dataset:
    """`diagnose.trend_dataset` generated again with `diagnose.trend` added per sample."""
    cfg = params.diagnose
    source = params.datasets[cfg.trend_dataset].model_copy(update={"trend": cfg.trend})
    return generate(f"{cfg.trend_dataset}+trend", source, params.seed, params.train.window)


def trend_case(params: Params) -> list[dict]:
    cfg = params.diagnose
    dataset = trend_dataset(params)
    train_values, test_values = dataset.splits["train"].observed, dataset.splits["test"].observed
    outside = (test_values > train_values.max()) | (test_values < train_values.min())
    shared = {"trend": cfg.trend, "train_range": [float(train_values.min()), float(train_values.max())],
              "test_outside_train": float(np.mean(outside)), "test_variance": float(np.var(test_values))}
    horizon = f"rollout_mse_{cfg.trend_horizon}"
    results = []
    runs = [(kind, scaling) for kind in cfg.trend_architectures for scaling in cfg.trend_scalings]
    for kind, scaling in [*runs, ("persistence", "none")]:
        arch = (PersistenceArch(kind="persistence") if kind == "persistence"
                else RecurrentArch(kind=kind, hidden_size=cfg.cell_hidden, num_layers=1))
        config = params.train.model_copy(update={"framing": "window", "max_epochs": cfg.trend_epochs, "rollout_steps": 1,
                                                 "scaling": "global" if scaling == "none" else scaling})
        fitted = fit_architecture(arch, config, dataset, params.seed, description=f"trend {kind} {scaling}")
        metrics = evaluate(fitted.model, dataset, "window", config.window, [cfg.trend_horizon]).metrics
        results.append({**shared, "architecture": kind, "scaling": scaling, "test_mse": metrics["test_mse"],
                        "rollout_mse": metrics[horizon], "horizon": cfg.trend_horizon})
    return results


def trend_part(params: Params, inputs: Inputs, item: None) -> list[dict]:
    return trend_case(params)
