"""The values a search found, applied over params.yaml's (the `tune` stage writes them, `train` reads them).

Here and not in sinernn/tune: training needs no Optuna, so the train stage does not depend on the
search's code (dvc.yaml), only on the file of values it left (tuned/<dataset>/<arch>.json).
"""

from __future__ import annotations

import json
from pathlib import Path

from sinernn.core.config_data import ArchConfig
from sinernn.core.config_stages import TrainConfig
from sinernn.core.errors import TuneError


def apply_tuned(arch: ArchConfig, train: TrainConfig, tuned: dict) -> tuple[ArchConfig, TrainConfig]:
    """params.yaml's values with the tuned ones on top, validated again (a searched dropout
    arrives in tuned["arch"] like hidden_size)."""
    arch = type(arch).model_validate({**arch.model_dump(), **tuned.get("arch", {})})
    train = TrainConfig.model_validate({**train.model_dump(), **tuned.get("train", {})})
    return arch, train


def read_tuned(path: Path) -> dict:
    """The tune stage's JSON. Only "arch", "train" and "dataset" change a training; the rest (best
    value, importances, ...) describes the search and is left alone."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise TuneError(f"{path} not found: run `dvc repro` (stage tune) first") from None
    except json.JSONDecodeError as exc:
        raise TuneError(f"{path} is corrupt ({exc}): re-run the tune stage") from None
