"""MLflow at the edge: where the store is, one run per stage job, batched metric logging.

Default store: `sqlite:///<project root>/mlflow.db` with artifacts in `<project root>/mlartifacts`.
The project root is DVC_ROOT when DVC runs the stage: `dvc exp run --temp` and `--queue` run in a
temporary copy under .dvc/tmp/exps/, but DVC_ROOT still names the real repository, so every run
lands in the same store as `dvc repro` instead of a database that vanishes with the copy.
MLFLOW_TRACKING_URI overrides all of this (a shared tracking server).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sinernn.core.errors import TrackingError
from sinernn.core.secrets import redact_in, redact_url

# Fail in seconds, not minutes, when a tracking server is unreachable (MLflow's own defaults retry
# for a long time). A user's explicit setting wins.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")

METRIC_BATCH = 500  # per-epoch metrics are sent in batches, not one request per value
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"  # MLflow 3's UI


def project_root() -> Path:
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def default_tracking_uri(root: Path) -> str:
    return f"sqlite:///{root / 'mlflow.db'}"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(project_root())


def git_commit(root: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


class StageRun:
    """One MLflow run for one stage job; created through `stage_run`."""

    def __init__(self, client, run_id: str):
        self.client, self.run_id, self._pending = client, run_id, []

    def log_epoch(self, stats) -> None:
        """An `on_epoch` callback for training.train_model: buffers, sends in batches."""
        from mlflow.entities import Metric

        timestamp = _now_ms()
        for key in ("train_loss", "val_loss", "grad_norm", "lr"):
            self._pending.append(Metric(key, float(getattr(stats, key)), timestamp, stats.epoch))
        if len(self._pending) >= METRIC_BATCH:
            self.flush()

    def log_series(self, key: str, values: list[float]) -> None:
        """One metric over steps 1..N, e.g. a loss curve recorded outside the training loop."""
        from mlflow.entities import Metric

        timestamp = _now_ms()
        self._pending += [Metric(key, float(v), timestamp, step) for step, v in enumerate(values, 1)]
        self.flush()

    def flush(self) -> None:
        for start in range(0, len(self._pending), 1000):  # MLflow's per-request limit
            self.client.log_batch(self.run_id, metrics=self._pending[start : start + 1000])
        self._pending.clear()

    def log_metrics(self, metrics: dict[str, float | None], step: int = 0, model_id: str | None = None,
                    dataset=None) -> None:
        """model_id: also that logged model's metrics (the Models tab), on `dataset` (mlflow_dataset)."""
        from mlflow.entities import Metric

        timestamp = _now_ms()
        on = {"model_id": model_id, "dataset_name": dataset.name if dataset else None,
              "dataset_digest": dataset.digest if dataset else None}
        batch = [Metric(k, float(v), timestamp, step, **on) for k, v in metrics.items() if v is not None]
        self.client.log_batch(self.run_id, metrics=batch)

    def log_input(self, dataset, context: str) -> None:
        """The run's dataset (None: none) as an MLflow input, for the runs table's Dataset column and
        filter; context: training, validation or test. MLflow keeps one input per dataset and run."""
        from mlflow.entities import DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        if dataset is not None:
            self.client.log_inputs(self.run_id, [DatasetInput(dataset, [InputTag(MLFLOW_DATASET_CONTEXT, context)])])

    def attach(self, run_id: str) -> "StageRun | None":
        """Another run of the store to log into (an evaluation into its model's training run), or
        None when it is not there to take it: not in this store (deleted, or trained against
        another), or made by another DVC experiment than this one (`dvc exp run` skipping a
        training must not rewrite the workspace's run). A store that fails otherwise raises."""
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

        try:
            found = self.client.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
                return None
            raise
        same_experiment = found.data.tags.get("dvc_experiment", "") == os.environ.get("DVC_EXP_NAME", "")
        return StageRun(self.client, run_id) if found.info.lifecycle_stage == "active" and same_experiment else None

    def log_params(self, params: dict[str, object]) -> None:
        from mlflow.entities import Param

        self.client.log_batch(self.run_id, params=[Param(k, str(v)) for k, v in params.items()])

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), folder)

    def log_dict(self, payload: dict, artifact_file: str) -> None:
        self.client.log_dict(self.run_id, payload, artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_figure(self, figure, artifact_file: str, dpi: int | None = None) -> None:
        """A matplotlib figure as a PNG artifact, closed afterwards (default dpi: sinernn.track.plots)."""
        import matplotlib.pyplot as plt

        from sinernn.track.plots import DPI

        try:
            self.client.log_figure(self.run_id, figure, artifact_file, save_kwargs={"dpi": dpi or DPI})
        finally:
            plt.close(figure)


def _now_ms() -> int:
    return int(time.time() * 1000)


def source_tags(root: Path) -> dict[str, str]:
    """The runs table's Source and Version: the script (stages/<name>.py under dvc repro) and the
    commit. The fluent API sets them; MlflowClient does not."""
    script = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    name = str(script.relative_to(root)) if script and script.is_relative_to(root) else (script.name if script else "")
    return {"mlflow.source.type": "LOCAL", "mlflow.source.name": name, "mlflow.source.git.commit": git_commit(root)}


def _experiment_id(client, name: str, root: Path, embedded: bool) -> str:
    """The experiment's id, created if new: marked as model training (MLflow 3's UI then opens it on
    its runs, not on GenAI traces), artifacts beside mlflow.db at the project root when embedded
    (an absolute location, so runs from temporary experiment copies land there too)."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        location = (root / "mlartifacts").as_uri() if embedded else None
        try:
            return client.create_experiment(name, artifact_location=location, tags={EXPERIMENT_KIND: MODEL_TRAINING})
        except Exception:
            experiment = client.get_experiment_by_name(name)  # another process created it meanwhile
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":  # its name stays taken until `mlflow gc` purges it
        raise TrackingError(f"MLflow experiment {name!r} is deleted: restore it (mlflow experiments restore "
                            f"--experiment-id {experiment.experiment_id}) or log elsewhere (-S mlflow.experiment=NAME)")
    if EXPERIMENT_KIND not in experiment.tags:  # one made before this tag, or by someone else
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND, MODEL_TRAINING)
    return experiment.experiment_id


def _recovery(uri: str, exc: Exception) -> str:
    """What to do about a store that cannot be used: a corrupt SQLite file is not a server that is
    down, and retrying cannot fix it."""
    text = str(exc)
    if uri.startswith("sqlite:///") and "database or disk is full" in text:
        return f"the disk holding {uri.removeprefix('sqlite:///')} is full: free some space and run it again"
    if uri.startswith("sqlite:///") and ("malformed" in text or "not a database" in text):
        path = uri.removeprefix("sqlite:///")
        return (f"{path} is corrupt: restore it from a backup, or move it aside "
                f"(mv {path} {path}.corrupt) and re-run to start an empty store")
    return "check MLFLOW_TRACKING_URI or that the server is running"


@contextmanager
def _creating_store(uri: str) -> Iterator[None]:
    """One process at a time opens a SQLite store: two that open a new one at the same instant
    (`sinernn repro -j 2` starting two stages) both create MLflow's tables, and both fail with
    "table experiments already exists" or a half-migrated schema. The lock file sits beside it."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    path = Path(uri.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(f".{path.name}.lock").open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@contextmanager
def stage_run(
    experiment: str,
    run_name: str,
    tags: dict[str, str],
    parent_run_id: str | None = None,
    resume_run_id: str | None = None,
    killed_by: tuple[type[BaseException], ...] = (),
) -> Iterator[StageRun]:
    """Open an MLflow run; it ends FINISHED, or FAILED with the error recorded as a tag.

    parent_run_id: nest it under that run (works across processes and machines, unlike the
    fluent API's nested runs). resume_run_id: continue that run instead of creating one.
    killed_by: exceptions that end the run KILLED rather than FAILED (a pruned Optuna trial).
    Connecting happens first, so an unreachable store stops the job before any work is done.
    """
    import mlflow
    from mlflow import MlflowClient

    uri = tracking_uri()
    root = project_root()
    embedded = uri == default_tracking_uri(root)
    # log_model goes through the fluent API: same store. (This also sets MLFLOW_TRACKING_URI in
    # this process's environment, so decide `embedded` before.)
    mlflow.set_tracking_uri(uri)
    try:
        with _creating_store(uri):
            client = MlflowClient(tracking_uri=uri)  # creates and migrates a new store's tables
        if resume_run_id:
            client.update_run(resume_run_id, status="RUNNING")
            run_id = resume_run_id
        else:
            experiment_id = _experiment_id(client, experiment, root, embedded)
            sources = source_tags(root)
            all_tags = {"git_commit": sources["mlflow.source.git.commit"],
                        "dvc_experiment": os.environ.get("DVC_EXP_NAME", ""), **sources, **tags}
            if parent_run_id:
                all_tags["mlflow.parentRunId"] = parent_run_id
            run_id = client.create_run(experiment_id, run_name=run_name, tags=all_tags).info.run_id
    except TrackingError:
        raise
    except Exception as exc:
        reason = redact_in(" ".join(str(exc).split()), uri)[:200]
        raise TrackingError(
            f"cannot use the MLflow tracking store {redact_url(uri)} ({type(exc).__name__}: {reason}); "
            + _recovery(uri, exc)
        ) from None
    stage = StageRun(client, run_id)
    try:
        yield stage
        stage.flush()
    except BaseException as exc:
        try:
            stage.flush()
            killed = isinstance(exc, killed_by) if killed_by else False
            client.set_tag(stage.run_id, "error" if not killed else "stopped", f"{type(exc).__name__}: {exc}"[:5000])
            client.set_terminated(stage.run_id, status="KILLED" if killed else "FAILED")
        except Exception:
            pass  # the original error is the one the user must see
        raise
    client.set_terminated(stage.run_id, status="FINISHED")


def flat_params(prefix: str, values: dict) -> dict:
    """{"prefix.key": value}: a params section as MLflow params."""
    return {f"{prefix}.{key}": value for key, value in values.items()}
