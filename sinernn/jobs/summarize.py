"""Job of the `summarize` stage: the per-dataset metrics gathered into reports/metrics.json."""

from __future__ import annotations

from pathlib import Path

from sinernn.core.config import Params
from sinernn.core.files import read_output, write_json


def summarize_job(params: Params, eval_dir: Path, metrics_path: Path) -> dict:
    """Merge the per-dataset evaluation files into {dataset: {arch: {metric: value}}}."""
    merged = {}
    for name in params.run.train_datasets:
        merged[name] = read_output(eval_dir / f"{name}.json")
    write_json(metrics_path, merged)
    return merged
