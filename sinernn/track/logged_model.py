"""A trained model logged to MLflow as a deployable forecaster (the train stage's export).

Kept apart from tracking.py: only the train stage exports, and the export is the costliest part of
that stage after training itself (benchmarks/overhead.py measures it).
"""

from __future__ import annotations

import contextlib
from contextlib import contextmanager
from pathlib import Path

from sinernn import serving


def log_forecaster(run_id: str, forecaster, example_windows, metadata: dict, params: dict | None = None) -> str:
    """The model as a deployable forecaster (see sinernn/serving.py): exported with
    torch.export, logged the MLflow 3 way (name=) as a pyfunc with a signature, a `horizon`
    param and an input example in original units. params: its training params, shown beside
    its metrics in the experiment's Models tab. Returns its logged-model id."""
    import tempfile

    import mlflow
    import mlflow.pyfunc
    import numpy as np
    import torch
    from mlflow.models import ModelSignature
    from mlflow.types import ParamSchema, ParamSpec, Schema, TensorSpec

    example = np.asarray(example_windows, dtype=np.float32)  # (N, W), original units
    with tempfile.TemporaryDirectory() as scratch:
        path = serving.export(forecaster, example, Path(scratch) / serving.EXPORT_FILE)
        # (N, W) windows in, (N, horizon) forecasts out; `horizon` defaults to 1, the next value.
        signature = ModelSignature(
            inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, example.shape[1]))]),
            outputs=Schema([TensorSpec(np.dtype(np.float64), (-1, -1))]),
            params=ParamSchema([ParamSpec("horizon", "long", 1)]),
        )
        with mlflow.start_run(run_id=run_id), _no_requirement_scan():
            info = mlflow.pyfunc.log_model(
                name=f"{metadata['dataset']}-{metadata['architecture']}",  # its name in the Models tab
                loader_module=serving.LOADER_MODULE,
                data_path=str(path),
                signature=signature,
                input_example=(example, {"horizon": 1}),
                metadata={"format": serving.EXPORT_FORMAT, **metadata},
                params={key: str(value) for key, value in (params or {}).items()},
                # Explicit requirements: inferring them imports every package and takes
                # seconds. The loader is this package: serve with --env-manager local.
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}"],
            )
    return info.model_id


@contextmanager
def _no_requirement_scan():
    """Skip MLflow's check of the model's requirements against the installed packages: it maps
    every installed distribution to its modules (about a second per train stage, benchmarks/
    overhead.py), to compare the torch and mlflow versions that log_forecaster just read from
    those very packages. (MLflow pins exactly in requirements.lock; a renamed hook is left alone.)"""
    from unittest import mock

    import mlflow.pyfunc
    import mlflow.utils.environment

    hooks = [module for module in (mlflow.pyfunc, mlflow.utils.environment)
             if hasattr(module, "warn_dependency_requirement_mismatches")]
    with contextlib.ExitStack() as stack:
        for module in hooks:
            stack.enter_context(mock.patch.object(module, "warn_dependency_requirement_mismatches", lambda requirements: None))
        yield
