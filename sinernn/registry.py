"""The MLflow Model Registry: every final model registered, and a `champion` per dataset.

    sinernn-<dataset>-<arch>       one registered model per dataset and architecture; each train
                                   run adds a version (its pt2 model, tagged with its metrics,
                                   dataset hash, framing, window and scaling)
    @champion                      on the best version of a dataset, across its architectures

The champion moves only when the challenger (the best model of this run) beats it on the newest
test split by `registry.margin` (relative): the current champion is re-scored on that split, not
trusted on its old figures, since the data may have drifted. Models load from the registry as pt2
programs (torch.export): nothing is unpickled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sinernn.errors import DataError, SinernnError

CHAMPION = "champion"
FORECAST_TAGS = ("framing", "window", "scale_mean", "scale_std")  # what predict needs beside weights


class ExportedModel:
    """A loaded pt2 program behind the interface evaluation uses. torch.export programs are fixed
    in inference mode and refuse .eval(), which evaluation calls on every model."""

    def __init__(self, program):
        self.program = program

    def __call__(self, inputs):
        return self.program(inputs)

    def eval(self):
        return self


def model_name(dataset: str, arch: str) -> str:
    return f"sinernn-{dataset}-{arch}"


def _client():
    import mlflow
    from mlflow import MlflowClient

    from sinernn.tracking import tracking_uri

    uri = tracking_uri()
    # Also the process-wide URIs: the registry resolves a `models:/<id>` source through the global
    # tracking URI, which would otherwise be ./mlflow.db of the current folder (wrong under
    # `dvc exp run --temp`, whose stages run in a copy of the project).
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def register(client, dataset: str, arch: str, summary: dict, metrics: dict, config: dict):
    """Add this run's model as a new version of sinernn-<dataset>-<arch>."""
    from mlflow.exceptions import MlflowException

    name = model_name(dataset, arch)
    try:
        client.create_registered_model(name, tags={"dataset": dataset, "architecture": arch})
    except MlflowException:
        pass  # it exists already
    tags = {**{k: str(v) for k, v in metrics.items() if v is not None},
            **{k: str(config[k]) for k in FORECAST_TAGS}, "dataset_hash": summary["dataset_hash"]}
    return client.create_model_version(
        name, source=f"models:/{summary['mlflow_model_id']}", run_id=summary["mlflow_run_id"],
        tags=tags, model_id=summary["mlflow_model_id"],
    )


def current_champion(client, dataset: str):
    """(registered model name, version) holding @champion for this dataset, or None."""
    for registered in client.search_registered_models(filter_string=f"name LIKE '{model_name(dataset, '')}%'"):
        if CHAMPION in registered.aliases:
            return registered.name, registered.aliases[CHAMPION]
    return None


def load(uri: str):
    """(model, forecast config) from models:/NAME@ALIAS, models:/NAME/VERSION or a checkpoint file."""
    if not uri.startswith("models:/"):
        from sinernn.checkpoint import load_checkpoint

        model, config = load_checkpoint(uri)
        if "scale_std" not in config:
            raise DataError(f"{uri} predates forecast metadata (scaling, window): retrain it with `dvc repro`")
        return model, config
    import mlflow.pytorch

    from sinernn.tracking import tracking_uri

    client = _client()
    name, _, ref = uri.removeprefix("models:/").partition("@")
    try:
        if ref:
            version = client.get_model_version_by_alias(name, ref)
        else:
            name, _, number = name.partition("/")
            version = client.get_model_version(name, number)
        mlflow.set_tracking_uri(tracking_uri())
        model = ExportedModel(mlflow.pytorch.load_model(f"models:/{version.name}/{version.version}"))
    except Exception as exc:
        raise SinernnError(f"cannot load {uri} from the MLflow registry ({type(exc).__name__}: {str(exc)[:200]})") from None
    tags = version.tags
    config = {"framing": tags["framing"], "window": int(tags["window"]),
              "scale_mean": float(tags["scale_mean"]), "scale_std": float(tags["scale_std"]),
              "name": version.name, "version": version.version}
    return model, config


def forecast(model, config: dict, series: np.ndarray, horizon: int) -> np.ndarray:
    """The next `horizon` values after `series`, predicted free-running from its last window."""
    from sinernn.evaluation import rollout

    if config["framing"] != "window":
        raise SinernnError(f"only window-framed models forecast a series (this one is {config['framing']})")
    window = config["window"]
    if len(series) < window:
        raise DataError(f"the series has {len(series)} values; this model needs the last {window}")
    seed = (np.asarray(series[-window:], dtype=np.float64) - config["scale_mean"]) / config["scale_std"]
    scaled = rollout(model, seed[None, :], horizon)[0]
    return scaled * config["scale_std"] + config["scale_mean"]


def score_on(model, config: dict, dataset, metric: str) -> float:
    from sinernn.evaluation import evaluate

    return float(evaluate(model, dataset, config["framing"], config["window"]).metrics[metric])


def register_and_decide(
    dataset_name: str, dataset, results: dict, summaries: dict, configs: dict, metric: str, margin: float,
) -> dict:
    """Register every architecture's model; move @champion to this run's best only if it beats
    the current champion, re-scored on this dataset's test split, by `margin`."""
    client = _client()
    versions = {arch: register(client, dataset_name, arch, summaries[arch], results[arch], configs[arch])
                for arch in results}
    best = min(results, key=lambda arch: results[arch][metric])
    challenger = versions[best]
    record = {"dataset": dataset_name, "metric": metric, "margin": margin,
              "challenger": {"name": challenger.name, "version": challenger.version, "score": results[best][metric]},
              "registered": {arch: v.version for arch, v in versions.items()}}

    holder = current_champion(client, dataset_name)
    if holder is None:
        decision, champion_score = "promoted: no champion yet", None
    else:
        champion_model, champion_config = load(f"models:/{holder[0]}@{CHAMPION}")
        champion_score = score_on(champion_model, champion_config, dataset, metric)
        record["champion"] = {"name": holder[0], "version": holder[1], "score": champion_score}
        if record["challenger"]["score"] < champion_score * (1 - margin):
            decision = "promoted: better than the champion by more than the margin"
        else:
            decision = "kept: the challenger is not better by the margin"
    if decision.startswith("promoted"):
        if holder is not None:
            client.delete_registered_model_alias(holder[0], CHAMPION)
        client.set_registered_model_alias(challenger.name, CHAMPION, challenger.version)
    record["decision"] = decision
    record["promoted"] = decision.startswith("promoted")
    for key, value in {"decision": decision, "challenger_score": record["challenger"]["score"],
                       "champion_score": champion_score}.items():
        client.set_model_version_tag(challenger.name, challenger.version, f"champion_{key}", str(value))
        client.set_tag(summaries[best]["mlflow_run_id"], f"champion_{key}", str(value))
    return record
