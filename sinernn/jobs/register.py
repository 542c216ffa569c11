"""Job of the `register` stage: one dataset's models registered, @champion moved only if beaten."""

from __future__ import annotations

from pathlib import Path

from sinernn.core import data
from sinernn.core.config import Params
from sinernn.core.errors import DataError
from sinernn.core.files import read_output, write_json


def register_job(params: Params, dataset_name: str, data_path: Path, models_dir: Path, eval_path: Path,
                 out_path: Path) -> dict:
    """Register this run's models of one dataset as versions of sinernn-<dataset>, decide on its
    champion and move it if beaten; write the decision."""
    if not params.registry.enabled:
        record = {"dataset": dataset_name, "decision": "registry.enabled is false", "promoted": False}
        write_json(out_path, record)
        return record
    import torch

    torch.set_num_threads(params.train.threads)  # the gate's scoring, as every stage (jobs/evaluate.py)
    dataset, _ = data.load(data_path)
    results = read_output(eval_path)
    summaries = {arch: read_output(models_dir / arch / "train.json") for arch in results}
    if any(summary["framing"] != "window" for summary in summaries.values()):
        record = {"dataset": dataset_name, "promoted": False,
                  "decision": f"not registered: only window-framed models forecast a series (train.framing is {params.train.framing})"}
        write_json(out_path, record)
        return record
    for arch, summary in summaries.items():
        if "mlflow_model_id" not in summary:
            raise DataError(f"{models_dir / arch}/train.json has no logged MLflow model: train with mlflow.log_models: true")
    from mlflow.exceptions import MlflowException

    from sinernn.track.gate import register_and_decide  # here: registry.enabled false needs no torch

    try:
        record = register_and_decide(dataset_name, dataset, results, summaries, params.registry.metric,
                                     params.registry.margin)
    except (MlflowException, OSError) as exc:
        from sinernn.core.errors import TrackingError

        raise TrackingError(f"the MLflow registry failed ({type(exc).__name__}: {str(exc)[:300]}); "
                            "check MLFLOW_TRACKING_URI or that the server is running") from None
    write_json(out_path, record)
    return record
