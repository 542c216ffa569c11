"""Error metrics on a scale a chart can read, and the few figures per model a table shows.

The errors of this project span fifteen decades (ridge's one-step error on the clean sine is
about 1e-15, a drifting rollout's above 1): on a linear axis every model but the worst sits at 0. Their base-10 logarithms separate 1e-7 from
1e-5, in MLflow's parallel-coordinates and scatter charts and in `dvc metrics show`, which rounds
to 5 decimals.
"""

from __future__ import annotations

import math

# A metric is an error when one of the words of its name is one of these (test_mse,
# backtest_mase_10, best_val_loss, noise_floor_ratio); train_seconds and epochs are not.
ERROR_WORDS = ("mse", "mae", "mase", "loss", "ratio")


def is_error(key: str) -> bool:
    return any(word in ERROR_WORDS for word in key.split("_"))


def log10_companions(metrics: dict[str, object]) -> dict[str, float]:
    """{"log10_<key>": log10(value)} for every error metric with a positive, finite value (an
    error of exactly 0 has no logarithm: its companion is left out, the metric itself is not)."""
    return {f"log10_{key}": math.log10(value) for key, value in metrics.items()
            if is_error(key) and isinstance(value, (int, float)) and math.isfinite(value) and value > 0}


def with_log10(metrics: dict[str, object]) -> dict[str, object]:
    return {**metrics, **log10_companions(metrics)}


def headline(metrics: dict[str, object], horizons: list[int]) -> dict[str, float | None]:
    """One model's row of `dvc metrics show`: the one-step and longest free-running errors as
    log10, the longest backtest's MASE (below 1: better than seasonal naive), the noise-floor
    ratio (1: as good as the noise allows) and the training time."""
    longest = max(horizons, default=None)
    keys = ["test_mse"] + ([f"rollout_mse_{longest}"] if longest else [])
    row = {f"log10_{key}": log10_companions({key: metrics.get(key)}).get(f"log10_{key}") for key in keys}
    if longest:
        row[f"backtest_mase_{longest}"] = metrics.get(f"backtest_mase_{longest}")
    row["noise_floor_ratio"] = metrics.get("noise_floor_ratio")
    row["train_seconds"] = metrics.get("train_seconds")
    return row
