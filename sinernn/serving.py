"""The deployable forecaster: what the registry holds and what `mlflow models serve` runs.

A trained model works in scaled units on (B, W, 1) windows. The exported program wraps it, so
whoever calls it never sees the scaling:

    last W values (original units)  (N, W)
        -> (x - scale_mean) / scale_std -> model -> * scale_std + scale_mean
    next value (original units)     (N, 1)

It is exported with torch.export (a graph and tensors: no pickled code) and logged as an MLflow
pyfunc model whose loader is this module. `predict(windows, params={"horizon": H})` feeds each
forecast back as the newest input H times and returns (N, H) in original units; the default
horizon is 1, the next value. `sinernn predict`, the registry's champion gate and the served model
all run `forecast` below over the same program.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from sinernn.core.errors import DataError, SinernnError

# Every registered version names this module as its loader, and MLflow imports it by that name when it
# serves one: it keeps its place at the top of the package (in the track layer by what it imports),
# or every model registered before a move could no longer be served or scored.
LOADER_MODULE = "sinernn.serving"  # the MLmodel's python_function loader_module
EXPORT_FILE = "forecaster.pt2"  # the MLmodel's python_function data
EXPORT_FORMAT = "sinernn-forecaster-pt2-v1"  # a version tag and MLmodel metadata: what load() accepts
MAX_HORIZON = 10_000  # one request must not hold a server worker for ever


class UnsafeModel(SinernnError):
    """A registry entry that is not this project's pt2 export; it is never loaded."""


class Forecaster(nn.Module):
    """A trained model plus its scaling: windows in original units in, next values out."""

    def __init__(self, model: nn.Module, scale_mean: float, scale_std: float):
        super().__init__()
        self.model = model
        self.register_buffer("scale_mean", torch.tensor(scale_mean, dtype=torch.float32))
        self.register_buffer("scale_std", torch.tensor(scale_std, dtype=torch.float32))

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        scaled = (windows - self.scale_mean) / self.scale_std  # (N, W)
        return self.model(scaled[:, :, None]) * self.scale_std + self.scale_mean  # (N, 1)


@torch.no_grad()
def forecast(step, windows: np.ndarray, horizon: int) -> np.ndarray:
    """Free-running forecast in original units: (N, W) last values -> (N, horizon).

    step: a Forecaster or its exported program, (N, W) -> (N, 1). Each prediction becomes the
    newest input of the next step.
    """
    if not 1 <= horizon <= MAX_HORIZON:
        raise SinernnError(f"horizon must be between 1 and {MAX_HORIZON} (got {horizon})")
    window = torch.as_tensor(np.asarray(windows, dtype=np.float32))
    if window.dim() != 2:
        raise DataError(f"expected windows of shape (N, W), got {tuple(window.shape)}")
    outputs = torch.empty(window.shape[0], horizon)
    for k in range(horizon):
        next_value = step(window)  # (N, 1)
        outputs[:, k] = next_value[:, 0]
        window = torch.cat([window[:, 1:], next_value], dim=1)
    return outputs.numpy().astype(np.float64)


def example_windows(dataset, window: int) -> np.ndarray:
    """(4, W) windows in original units, the newest of train + validation: the export's example
    (torch.export needs a batch of at least 2) and the logged input example."""
    observed = np.concatenate([dataset.splits["train"].observed[:1], dataset.splits["val"].observed[:1]], axis=1)
    return np.lib.stride_tricks.sliding_window_view(observed[0, -(window + 3) :], window)  # (4, W)


def export(forecaster: Forecaster, example_windows: np.ndarray, path: Path) -> Path:
    """torch.export the forecaster with a free batch size; the window length is fixed."""
    import warnings

    example = torch.as_tensor(np.asarray(example_windows, dtype=np.float32))
    if example.shape[0] < 2:
        raise ValueError("the example needs at least 2 windows: torch.export fixes a batch dimension of 1")
    with warnings.catch_warnings():
        # torch.export notes that nn.RNN re-assigns its flat weight list while tracing; the
        # exported program is still exact (tests compare it with the module).
        warnings.filterwarnings("ignore", message="The tensor attributes .*_flat_weights")
        program = torch.export.export(forecaster.eval(), (example,), dynamic_shapes=({0: torch.export.Dim.AUTO},))
    torch.export.save(program, path)
    return path


def load_program(path: str | Path):
    """The exported program from a .pt2 file, refused unless it is free of pickled objects.

    torch.export.load unpickles some records of an archive; MLflow's validator checks that every
    record is plain metadata or a tensor readable with weights_only=True before anything loads.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.pytorch import _validate_pt2_archive_is_pickle_free

    path = str(path)
    try:
        _validate_pt2_archive_is_pickle_free(path)
    except MlflowException as exc:
        raise UnsafeModel(f"{path}: refused: {exc.message[:300]}") from None
    return torch.export.load(path).module()


class ForecasterPyfunc:
    """What `mlflow.pyfunc.load_model` and `mlflow models serve` call."""

    def __init__(self, program):
        self.program = program

    def predict(self, data, params: dict | None = None) -> np.ndarray:
        from mlflow.exceptions import INVALID_PARAMETER_VALUE, MlflowException

        values = data.to_numpy() if hasattr(data, "to_numpy") else np.asarray(data)
        try:
            return forecast(self.program, values, int((params or {}).get("horizon", 1)))
        except SinernnError as exc:  # the server answers 400, not 500
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None


def _load_pyfunc(data_path: str) -> ForecasterPyfunc:
    """MLflow's loader_module entry point (data_path is the model's forecaster.pt2)."""
    return ForecasterPyfunc(load_program(data_path))
