"""Job of `sinernn predict`: a forecast from a registered model, a version or a checkpoint."""

from __future__ import annotations

from sinernn.track import registry


def predict_job(model_uri: str, series, horizon: int):
    """The next `horizon` values after `series` (original units), from the model at `model_uri`."""
    model, config = registry.load(model_uri)
    return registry.forecast(model, config, series, horizon)
