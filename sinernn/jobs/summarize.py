"""Job of the `summarize` stage: the per-dataset metrics gathered, and laid out for DVC's views.

reports/metrics.json      {dataset: {arch: every metric}}: what the report and the docs' tables read
reports/scores/D/A.json   a few figures per model, errors as log10: `dvc metrics show` gives one row
                          per dataset x architecture that fits a screen
reports/comparison/D.csv  one row per architecture, for the `dvc plots` bar chart of error by model
"""

from __future__ import annotations

from pathlib import Path

from sinernn.core.config import Params
from sinernn.core.files import read_output, replace_dir, staged_dir, write_json
from sinernn.core.scores import headline


def summarize_job(params: Params, eval_dir: Path, metrics_path: Path, scores_dir: Path | None = None,
                  comparison_dir: Path | None = None) -> dict:
    """Merge the per-dataset evaluation files into {dataset: {arch: {metric: value}}}."""
    merged = {}
    for name in params.run.train_datasets:
        merged[name] = read_output(eval_dir / f"{name}.json")
    horizons = params.evaluate.horizons
    if scores_dir is not None:
        with staged_dir(scores_dir) as staging:
            for name, models in merged.items():
                for arch, metrics in models.items():
                    write_json(staging / name / f"{arch}.json", headline(metrics, horizons))
    if comparison_dir is not None:
        replace_dir(comparison_dir, {f"{name}.csv": comparison_rows(models, horizons) for name, models in merged.items()})
    write_json(metrics_path, merged)
    return merged


def comparison_rows(models: dict[str, dict], horizons: list[int]) -> list[dict]:
    """One row per architecture: its log10 one-step and longest free-running errors."""
    return [{"architecture": arch, **{key: value for key, value in headline(metrics, horizons).items()
                                      if key.startswith("log10_")}}
            for arch, metrics in models.items()]
