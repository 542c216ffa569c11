"""One function per pipeline job: validated params and paths in, outputs and one MLflow run out.

The CLI (`sinernn generate|train|evaluate|summarize`) and the DVC stage scripts both call these,
so a job behaves the same inside and outside DVC. Outputs are written last and atomically: a job
that fails leaves no half-written file and the previous outputs untouched.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from sinernn import data
from sinernn.config import BASELINE_KINDS, Params
from sinernn.errors import DataError
from sinernn.files import replace_dir, write_csv, write_json
from sinernn.tracking import project_root, stage_run


def _flat(prefix: str, values: dict) -> dict:
    return {f"{prefix}.{key}": value for key, value in values.items()}


def generate_job(params: Params, name: str, npz_path: Path) -> dict:
    """Build dataset `name` and write it as .npz plus its .json manifest beside it."""
    cfg = params.datasets[name]
    tags = {"stage": "generate", "dataset": name, "source": cfg.source}
    with stage_run(params.mlflow.experiment, f"generate-{name}", tags) as run:
        dataset = data.generate(name, cfg, params.seed, params.train.window, project_root())
        manifest = data.save(dataset, cfg, params.seed, npz_path, npz_path.with_suffix(".json"))
        run.client.set_tag(run.run_id, "dataset_hash", manifest["sha256"])
        run.log_params({"seed": params.seed, **_flat("data", cfg.model_dump())})
        run.log_metrics({f"n_{split}": part.observed.size for split, part in dataset.splits.items()})
        run.log_artifact(npz_path.with_suffix(".json"))
    return manifest


def train_job(
    params: Params, dataset_name: str, arch_name: str, data_path: Path, model_dir: Path, history_path: Path
) -> dict:
    """Train one architecture on one dataset; writes model.pt and train.json to model_dir."""
    import torch

    from sinernn.checkpoint import save_checkpoint
    from sinernn.framing import frame
    from sinernn.models import build_model
    from sinernn.training import fit_baseline, train_model

    dataset, manifest = data.load(data_path)
    arch, cfg = params.architectures[arch_name], params.train
    torch.set_num_threads(cfg.threads)
    train_set = frame(dataset, "train", cfg.framing, cfg.window)
    val_set = frame(dataset, "val", cfg.framing, cfg.window)
    model_config = {**arch.model_dump(), "input_length": int(train_set.inputs.shape[-2])}
    model = build_model(model_config, seed=params.seed)

    tags = {
        "stage": "train", "dataset": dataset_name, "architecture": arch_name, "kind": arch.kind,
        "framing": cfg.framing, "dataset_hash": manifest["sha256"],
    }
    run_name = f"train-{dataset_name}-{arch_name}"
    with stage_run(params.mlflow.experiment, run_name, tags) as run:
        run.log_params({"seed": params.seed, **_flat("arch", arch.model_dump()), **_flat("train", cfg.model_dump())})
        if arch.kind in BASELINE_KINDS:
            result = fit_baseline(model, train_set, val_set, getattr(arch, "alpha", 0.0))
        else:
            result = train_model(model, train_set, val_set, cfg, params.seed, [run.log_epoch], run_name)
        summary = {
            "train_seconds": result.seconds,
            "epochs": len(result.history),
            "best_epoch": result.best_epoch,
            "best_val_loss": result.best_val_loss,
            "framing": cfg.framing,
            "window": cfg.window,
            "dataset_hash": manifest["sha256"],
            "mlflow_run_id": run.run_id,
        }
        run.log_metrics({"train_seconds": result.seconds, "best_val_loss": result.best_val_loss})
        with tempfile.TemporaryDirectory() as scratch:
            from sinernn.plots import loss_curves

            loss_curves(result.history_rows(), run_name, Path(scratch) / "loss_curves.png")
            run.log_artifact(Path(scratch) / "loss_curves.png", "plots")
        if params.mlflow.log_models:
            run.log_torch_model(model, val_set.inputs[:4].numpy() if val_set.inputs.dim() == 3 else val_set.inputs.numpy())
        # DVC outputs last: a failure above leaves the previous ones as they were.
        save_checkpoint(model_dir / "model.pt", model, model_config)
        write_json(model_dir / "train.json", summary)
        write_csv(history_path, result.history_rows())
    return summary


def evaluate_job(
    params: Params, dataset_name: str, data_path: Path, models_dir: Path,
    metrics_path: Path, predictions_dir: Path, rollouts_dir: Path,
) -> dict:
    """Score every architecture of `run.architectures` trained on one dataset."""
    from sinernn.checkpoint import load_checkpoint
    from sinernn.evaluation import evaluate
    from sinernn.plots import truth_vs_prediction

    dataset, manifest = data.load(data_path)
    results, predictions, rollouts = {}, {}, {}
    for arch_name in params.run.architectures:
        model, config = load_checkpoint(models_dir / arch_name / "model.pt")
        summary = _read_summary(models_dir / arch_name / "train.json")
        tags = {
            "stage": "evaluate", "dataset": dataset_name, "architecture": arch_name, "kind": config["kind"],
            "framing": summary["framing"], "dataset_hash": manifest["sha256"],
            "train_run_id": summary["mlflow_run_id"],
        }
        run_name = f"evaluate-{dataset_name}-{arch_name}"
        with stage_run(params.mlflow.experiment, run_name, tags) as run:
            evaluation = evaluate(model, dataset, summary["framing"], summary["window"])
            metrics = {**evaluation.metrics, "train_seconds": summary["train_seconds"]}
            run.log_metrics(metrics)
            with tempfile.TemporaryDirectory() as scratch:
                scratch = Path(scratch)
                write_json(scratch / "metrics.json", metrics)
                run.log_artifact(scratch / "metrics.json")
                truth_vs_prediction(evaluation.predictions, f"{run_name}: one step", scratch / "predictions.png")
                run.log_artifact(scratch / "predictions.png", "plots")
                if evaluation.rollout:
                    truth_vs_prediction(evaluation.rollout, f"{run_name}: free-running", scratch / "rollout.png")
                    run.log_artifact(scratch / "rollout.png", "plots")
        results[arch_name] = metrics
        predictions[f"{arch_name}.csv"] = evaluation.predictions
        if evaluation.rollout:  # the naive framing has nothing to roll forward
            rollouts[f"{arch_name}.csv"] = evaluation.rollout
    write_json(metrics_path, results)
    replace_dir(predictions_dir, predictions)
    replace_dir(rollouts_dir, rollouts)
    return results


def _read_summary(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path} not found: run `dvc repro` (stage train) first") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is corrupt ({exc})") from None


def summarize_job(params: Params, eval_dir: Path, metrics_path: Path) -> dict:
    """Merge the per-dataset evaluation files into {dataset: {arch: {metric: value}}}."""
    merged = {}
    for name in params.run.train_datasets:
        merged[name] = _read_summary(eval_dir / f"{name}.json")
    write_json(metrics_path, merged)
    return merged
