"""Job of the measurement stages (diagnose_<part>, claims_<part>): one part of the research answer."""

from __future__ import annotations

import math
from pathlib import Path

from sinernn.answer.measurements import CLAIMS, PARTS, Inputs, measure
from sinernn.core.config import Params
from sinernn.core.errors import SinernnError
from sinernn.core.files import write_json


def measure_job(params: Params, name: str, item: str | None, data_dir: Path, tuned_dir: Path, out: Path) -> None:
    """Run part `name` (for `item`, where the part runs once per item) and write it to `out`."""
    import torch

    part = PARTS[name]
    items = part.items(params) if part.items else None
    if (items is None) != (item is None) or (items is not None and item not in items):
        wanted = f"--item one of {', '.join(items)}" if items else "no --item"
        raise SinernnError(f"measurement {name} takes {wanted} (got {item!r})")
    torch.set_num_threads(params.train.threads)
    value = measure(params, name, item, Inputs(data_dir, tuned_dir))
    # A claims measurement may hold a NaN (a gradient ratio of a dead cell), which JSON cannot: null,
    # as the claims stage did. A diagnose one may not: writing it fails, as it always did.
    write_json(out, {"part": name, "item": item, "value": finite(value) if part.family == CLAIMS else value})


def finite(value):
    """JSON has no NaN: a gradient ratio of a dead cell, say, becomes null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value
