"""The one save/load pair for models: a state dict plus the plain config that rebuilds the model.

No pickled classes: `torch.load(..., weights_only=True)` reads only tensors and plain containers,
so loading a checkpoint cannot run code from the file.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from sinernn.core.errors import DataError
from sinernn.core.files import atomic_path
from sinernn.core.models import build_model


def save_checkpoint(path: str | Path, model: nn.Module, config: dict) -> None:
    # Into an open file: a failed write (a full disk) then keeps its OSError in the RuntimeError
    # torch raises, so it is reported as what it is.
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        torch.save({"config": config, "state_dict": model.state_dict()}, handle)


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"model file {path} not found: run `dvc repro` (stage train) first")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        model = build_model(payload["config"])
        model.load_state_dict(payload["state_dict"])
    except Exception as exc:  # any unpickling/shape/key problem means the file is unusable
        raise DataError(f"model file {path} is corrupt or incompatible ({exc})") from None
    model.eval()
    return model, payload["config"]
