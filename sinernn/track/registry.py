"""The MLflow Model Registry: one registered model per dataset, and its `champion`.

    sinernn-<dataset>              every final model of the dataset is a version of it (tags:
                                   architecture, run_id, dataset_hash, window, its metrics)
    models:/sinernn-<dataset>@champion
                                   the one URI a deployment uses, whichever architecture wins

A version is a deployable forecaster (sinernn/serving.py): windows in the data's original units
in, forecasts in the same units out, scaling included. Whether @champion moves is the gate's
decision (gate.py); the move is a single `set_registered_model_alias` call, so there is never a
moment without a champion.

Only this project's pt2 export is ever loaded from the registry (`load` checks the MLmodel file
and the archive first); a pickled model or one with a code/ folder is refused, not executed.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import yaml

from sinernn import serving
from sinernn.core.errors import DataError, SinernnError, TrackingError

CHAMPION = "champion"
ONE_STEP_METRICS = {"test_mse": lambda e: float(np.mean(e**2)), "test_mae": lambda e: float(np.mean(np.abs(e)))}


def model_name(dataset: str) -> str:
    return f"sinernn-{dataset}"


def client():
    import mlflow
    from mlflow import MlflowClient

    from sinernn.track.tracking import tracking_uri

    uri = tracking_uri()
    # Also the process-wide URIs: the registry resolves a `models:/<id>` source through the global
    # tracking URI, which would otherwise be ./mlflow.db of the current folder (wrong under
    # `dvc exp run --temp`, whose stages run in a copy of the project).
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def register(client, dataset: str, arch: str, summary: dict, metrics: dict):
    """This training run's model as a version of sinernn-<dataset>. Idempotent: a run already
    registered (a re-run after a kill) gets its existing version back."""
    from mlflow.exceptions import MlflowException

    name = model_name(dataset)
    try:
        client.create_registered_model(name, tags={"dataset": dataset},
                                       description=f"Forecasters of dataset {dataset}; deploy models:/{name}@{CHAMPION}")
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    run_id = summary["mlflow_run_id"]
    for version in client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'"):
        return version
    tags = {**{k: str(v) for k, v in metrics.items() if v is not None},
            "architecture": arch, "run_id": run_id, "dataset_hash": summary["dataset_hash"],
            "window": str(summary["window"]), "format": serving.EXPORT_FORMAT}
    return client.create_model_version(name, source=f"models:/{summary['mlflow_model_id']}", run_id=run_id,
                                       tags=tags, model_id=summary["mlflow_model_id"])


def current_champion(client, dataset: str):
    """The version holding @champion of sinernn-<dataset> (an exact name), or None."""
    from mlflow.exceptions import MlflowException

    try:
        aliases = client.get_registered_model(model_name(dataset)).aliases
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    return client.get_model_version(model_name(dataset), aliases[CHAMPION]) if CHAMPION in aliases else None


@contextmanager
def exclusive_registry(root: Path) -> Iterator[None]:
    """One champion decision at a time per project (a retrain's register stage and a user's
    `dvc repro` could otherwise both read the same champion and both move the alias)."""
    with (root / ".sinernn-register.lock").open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # waits: a decision takes seconds
        yield


def check_export(directory: Path, uri: str) -> tuple[Path, dict]:
    """(path of the forecaster.pt2, the MLmodel's metadata) of a downloaded model, after checking
    that the model is this project's export and nothing else; raises UnsafeModel otherwise."""
    def refuse(why: str):
        return serving.UnsafeModel(f"{uri} is not a sinernn forecaster export ({why}); refusing to load it. "
                                   "Only models logged by `sinernn train` are served; register one with `dvc repro`")

    try:
        mlmodel = yaml.safe_load((directory / "MLmodel").read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise refuse(f"no readable MLmodel: {type(exc).__name__}") from None
    flavors = mlmodel.get("flavors") or {}
    pyfunc = flavors.get("python_function") or {}
    if set(flavors) != {"python_function"} or pyfunc.get("loader_module") != serving.LOADER_MODULE:
        raise refuse(f"flavors {sorted(flavors)}, loader {pyfunc.get('loader_module')!r}")
    if pyfunc.get("code") or (directory / "code").exists() or (directory / "python_model.pkl").exists():
        raise refuse("it carries code")
    metadata = mlmodel.get("metadata") or {}
    if metadata.get("format") != serving.EXPORT_FORMAT or not isinstance(metadata.get("window"), int):
        raise refuse(f"format {metadata.get('format')!r}")
    program = directory / "data" / serving.EXPORT_FILE
    if pyfunc.get("data") != f"data/{serving.EXPORT_FILE}" or not program.is_file():
        raise refuse(f"data {pyfunc.get('data')!r}")
    return program, metadata


def load(uri: str):
    """(step program, config) from models:/NAME@ALIAS, models:/NAME/VERSION or a checkpoint file.

    The step maps (N, W) windows in original units to (N, 1) next values; config holds the window.
    """
    if not uri.startswith("models:/"):
        from sinernn.core.checkpoint import load_checkpoint

        model, config = load_checkpoint(uri)
        if config.get("framing") != "window" or "scale_std" not in config:
            raise DataError(f"{uri} is not a window-framed model with its scaling: retrain it with `dvc repro`")
        return serving.Forecaster(model, config["scale_mean"], config["scale_std"]).eval(), {"window": config["window"]}
    with tempfile.TemporaryDirectory() as scratch:
        version, local = download(uri, Path(scratch))
        path, metadata = check_export(local, uri)
        program = serving.load_program(path)
    return program, {"window": metadata["window"], "name": version.name, "version": version.version,
                     "architecture": version.tags.get("architecture")}


def resolve(uri: str):
    """The model version of models:/NAME@ALIAS or models:/NAME/VERSION, read once: an alias that
    moves afterwards does not change what the caller loads."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client()
    name, _, ref = uri.removeprefix("models:/").partition("@")
    try:
        if ref:
            return mlflow_client.get_model_version_by_alias(name, ref)
        name, _, number = name.partition("/")
        return mlflow_client.get_model_version(name, number)
    except MlflowException as exc:
        raise _registry_error(uri, exc) from None


def download(uri: str, directory: Path):
    """(model version, local folder) of `uri`, downloaded into `directory`."""
    import mlflow
    from mlflow.exceptions import MlflowException

    version = resolve(uri)
    try:
        local = mlflow.artifacts.download_artifacts(f"models:/{version.name}/{version.version}", dst_path=str(directory))
    except MlflowException as exc:
        raise _registry_error(uri, exc) from None
    return version, Path(local)


def _registry_error(uri: str, exc) -> SinernnError:
    if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
        return SinernnError(f"cannot load {uri}: {exc.message[:200]}")
    return TrackingError(f"cannot load {uri} from the MLflow registry ({exc.message[:200]}); "
                         "check MLFLOW_TRACKING_URI or that the server is running")


def serve(uri: str, host: str, port: int) -> None:
    """Check the version behind `uri`, then hand a checked local copy to `mlflow models serve`
    (this process becomes the server). Serving the copy, not the URI, means MLflow loads exactly
    what was checked, even if the alias moves meanwhile; MLflow alone would load whatever the
    registry holds, pickles and code folders included."""
    import shutil
    import sys

    # A private folder (mkdtemp: mode 0700, a fresh name) that nobody else can change between the
    # check and the serving. It outlives this process, which becomes the server.
    private = Path(tempfile.mkdtemp(prefix="sinernn-serve-"))
    try:
        version, local = download(uri, private)
        path, metadata = check_export(local, uri)
        serving.load_program(path)  # the archive is validated before anything serves it
    except BaseException:
        shutil.rmtree(private, ignore_errors=True)  # a refused model leaves nothing behind
        raise
    bin_dir = Path(sys.executable).parent
    print(f"serving {uri} = {version.name} version {version.version} ({version.tags.get('architecture')}, "
          f"window {metadata['window']}) on http://{host}:{port}/invocations", flush=True)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
           "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false"}
    mlflow_cli = str(bin_dir / "mlflow") if (bin_dir / "mlflow").exists() else "mlflow"
    os.execvpe(mlflow_cli, [mlflow_cli, "models", "serve", "-m", str(local), "--env-manager", "local",
                            "--host", host, "--port", str(port)], env)


def forecast(step, config: dict, series: np.ndarray, horizon: int) -> np.ndarray:
    """The next `horizon` values after `series`, free-running from its last window."""
    window = config["window"]
    if len(series) < window:
        raise DataError(f"the series has {len(series)} values; this model needs the last {window}")
    return serving.forecast(step, np.asarray(series[-window:])[None, :], horizon)[0]
