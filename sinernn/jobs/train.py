"""Job of the `train` stage: one architecture trained on one dataset, its model and curves saved and logged."""

from __future__ import annotations

from pathlib import Path

from sinernn.core import data
from sinernn.core.config import Params
from sinernn.core.files import write_csv, write_json
from sinernn.core.scores import with_log10
from sinernn.track.datasets import mlflow_dataset
from sinernn.track.tracking import flat_params, stage_run


def train_job(
    params: Params, dataset_name: str, arch_name: str, data_path: Path, model_dir: Path, history_path: Path,
    tuned_path: Path | None = None,
) -> dict:
    """Train one architecture on one dataset; writes model.pt and train.json to model_dir.

    tuned_path: the `tune` stage's best values for this architecture, applied over params.yaml.
    """
    import torch

    from sinernn.core.checkpoint import save_checkpoint
    from sinernn.core.training import fit_architecture
    from sinernn.core.tuned import read_tuned

    dataset, manifest = data.load(data_path)
    tuned = read_tuned(tuned_path) if tuned_path else {}
    arch, cfg, own = settings(params, dataset_name, arch_name, tuned)
    torch.set_num_threads(cfg.threads)

    tags = {
        "stage": "train", "dataset": dataset_name, "architecture": arch_name, "kind": arch.kind,
        "framing": cfg.framing, "dataset_hash": manifest["sha256"],
    }
    run_name = f"train-{dataset_name}-{arch_name}"
    with stage_run(params.mlflow.experiment, run_name, tags) as run:
        run_params = {"seed": params.seed, **flat_params("arch", arch.model_dump()), **flat_params("train", cfg.model_dump())}
        run.log_params(run_params)
        # (the test split's scores come from the evaluate stage, into this run and its model)
        tracked_data = mlflow_dataset(dataset_name, data_path, manifest)
        run.log_input(tracked_data, "training")
        run.client.set_tag(run.run_id, "tuned", "yes" if tuned.get("best_value") is not None else "no")
        fitted = fit_architecture(arch, cfg, dataset, params.seed, [run.log_epoch], run_name,
                                  season=params.datasets[dataset_name].season)
        model, result = fitted.model, fitted.result
        # What a forecast needs besides the weights: how the inputs were framed and scaled.
        model_config = {**fitted.model_config, "framing": cfg.framing, "window": cfg.window,
                        "scale_mean": dataset.scale_mean, "scale_std": dataset.scale_std}
        summary = _summary(result, cfg, manifest, run.run_id, tuned, own)
        # (no loss-curve PNG: the UI charts the per-epoch metrics, and a figure costs this process a
        # matplotlib import, benchmarks/overhead.py)
        run.log_metrics({"train_seconds": result.seconds})
        if params.mlflow.log_models and cfg.framing == "window":  # only a window model forecasts a series
            from sinernn.serving import Forecaster, example_windows
            from sinernn.track.logged_model import log_forecaster

            summary["mlflow_model_id"] = log_forecaster(
                run.run_id, Forecaster(model, dataset.scale_mean, dataset.scale_std), example_windows(dataset, cfg.window),
                {"window": cfg.window, "dataset": dataset_name, "architecture": arch_name}, run_params)
        run.log_metrics(with_log10({"best_val_loss": result.best_val_loss}), model_id=summary.get("mlflow_model_id"),
                        dataset=tracked_data)
        # DVC outputs last: a failure above leaves the previous ones as they were.
        save_checkpoint(model_dir / "model.pt", model, model_config)
        write_json(model_dir / "train.json", summary)
        write_csv(history_path, result.history_rows())
    return summary


def _summary(result, cfg, manifest: dict, run_id: str, tuned: dict, own: dict) -> dict:
    """train.json: what evaluate, register and the report read of a trained model."""
    return {
        "train_seconds": result.seconds,
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "framing": cfg.framing,
        "window": cfg.window,
        "scaling": cfg.scaling,
        "dataset_hash": manifest["sha256"],
        "mlflow_run_id": run_id,
        "tuned": {"arch": tuned.get("arch", {}),  # the tuned values used (not those the dataset's own replaced)
                  "train": {k: v for k, v in tuned.get("train", {}).items() if k not in own}},
    }


def settings(params: Params, dataset_name: str, arch_name: str, tuned: dict):
    """The architecture and training settings a model is trained with, and the dataset's own ones.

    params.yaml's train, then the dataset's own settings, then the tuned values. The pipeline tunes
    every train dataset itself; a file of values searched on another dataset (`--tuned` by hand)
    does not override this dataset's own settings (a window tuned on another series is not its).
    """
    from sinernn.core.tuned import apply_tuned

    arch, cfg = apply_tuned(params.architectures[arch_name], params.train_for(dataset_name), tuned)
    searched_here = tuned.get("dataset") == dataset_name  # (a file that does not say: not here)
    own = {} if searched_here else params.datasets[dataset_name].train.model_dump(exclude_none=True)
    return arch, cfg.model_copy(update=own), own
