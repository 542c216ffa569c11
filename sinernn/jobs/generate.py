"""Job of the `generate` stage: one dataset generated (or read from its CSV), split, scaled and saved."""

from __future__ import annotations

from pathlib import Path

from sinernn.core import data
from sinernn.core.config import Params
from sinernn.track.tracking import flat_params, project_root, stage_run


def generate_job(params: Params, name: str, npz_path: Path) -> dict:
    """Build dataset `name` and write it as .npz plus its .json manifest beside it."""
    cfg = params.datasets[name]
    tags = {"stage": "generate", "dataset": name, "source": cfg.source}
    with stage_run(params.mlflow.experiment, f"generate-{name}", tags) as run:
        dataset = data.generate(name, cfg, params.seed, params.train_for(name).window, project_root())
        manifest = data.save(dataset, cfg, params.seed, npz_path, npz_path.with_suffix(".json"))
        run.client.set_tag(run.run_id, "dataset_hash", manifest["sha256"])
        run.log_params({"seed": params.seed, **flat_params("data", cfg.model_dump())})
        filled = {"n_filled": dataset.source_info["n_filled"]} if "n_filled" in dataset.source_info else {}
        run.log_metrics({**{f"n_{split}": part.observed.size for split, part in dataset.splits.items()}, **filled})
        run.log_artifact(npz_path.with_suffix(".json"))
    return manifest
