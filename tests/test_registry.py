"""The MLflow Model Registry on a real SQLite store: one model per dataset, the champion gate,
forecasts in original units, and loading that refuses what it should not run."""

import io
import json
import math
import os
import pickle
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from conftest import write_params
from mlflow import MlflowClient

from sinernn import serving
from sinernn.cli import main
from sinernn.core.config import parse_params
from sinernn.core.evaluation import rollout
from sinernn.core.models import build_model
from sinernn.jobs.evaluate import evaluate_job
from sinernn.jobs.generate import generate_job
from sinernn.jobs.register import register_job
from sinernn.jobs.train import train_job
from sinernn.track import registry

PERIOD = 37.7


@pytest.fixture
def store(tracked, tmp_path, monkeypatch):
    """A registry of its own per test: champions must not leak from one test into another."""
    uri = f"sqlite:///{tmp_path / 'registry.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def level_sine(t, level=5.0):
    """A sine far from zero mean, so a model that ignored the scaling would be visibly wrong."""
    return level + 2.0 * np.sin(2 * np.pi * np.asarray(t) / PERIOD)


def write_csv(path: Path, values) -> None:
    path.write_text("value\n" + "\n".join(f"{v:.12f}" for v in values) + "\n")


def _pipeline(params, tmp_path, archs, dataset="clean", snapshot=0, source=None):
    """generate -> train -> evaluate -> register, for the given architectures and data."""
    source = source or params.datasets["clean"].model_copy(update={"snapshot": snapshot, "phase_drift": 0.3})
    params = params.model_copy(update={"run": params.run.model_copy(update={"architectures": archs}),
                                       "datasets": {**params.datasets, dataset: source}})
    npz = tmp_path / f"data/processed/{dataset}.npz"
    generate_job(params, dataset, npz)
    for arch in archs:
        train_job(params, dataset, arch, npz, tmp_path / f"models/{dataset}/{arch}", tmp_path / f"h/{arch}.csv")
    evaluate_job(params, dataset, npz, tmp_path / f"models/{dataset}", tmp_path / f"reports/eval/{dataset}.json",
                      tmp_path / "p", tmp_path / "r")
    return register_job(params, dataset, npz, tmp_path / f"models/{dataset}", tmp_path / f"reports/eval/{dataset}.json",
                             tmp_path / f"reports/registry/{dataset}.json")


def _csv_source(params, name):
    return parse_params({**params.model_dump(), "datasets": {**params.model_dump()["datasets"], name: {
        "source": "csv", "path": f"data/external/{name}.csv", "column": "value", "val_fraction": 0.15,
        "test_fraction": 0.5}}}).datasets[name]


# ---- the exported forecaster ----------------------------------------------------------------


@pytest.mark.parametrize("config", [
    {"kind": "rnn", "hidden_size": 8, "num_layers": 1, "dropout": 0.0},
    {"kind": "gru", "hidden_size": 8, "num_layers": 2, "dropout": 0.0},
    {"kind": "lstm", "hidden_size": 8, "num_layers": 2, "dropout": 0.0},
    {"kind": "transformer", "d_model": 8, "nhead": 2, "num_layers": 1, "dim_feedforward": 16, "dropout": 0.0},
    {"kind": "ridge", "input_length": 12},
    {"kind": "persistence"},
], ids=lambda c: c["kind"])
def test_the_exported_program_forecasts_in_original_units_like_the_pipeline_rollout(config, tmp_path):
    """Parity with a reference: the evaluation's own rollout in scaled units, unscaled by hand."""
    model = build_model(config, seed=1).eval()
    mean, std = 5.0, 2.0
    windows = level_sine(np.arange(20)[None, :] + np.arange(3)[:, None])[:, -12:]  # (3, 12), original units
    program = serving.load_program(serving.export(serving.Forecaster(model, mean, std), windows,
                                                  tmp_path / "f.pt2"))
    reference = rollout(model, (windows - mean) / std, 15) * std + mean
    assert np.allclose(serving.forecast(program, windows, 15), reference, atol=1e-4)
    assert serving.forecast(program, windows[:1], 1).shape == (1, 1)  # any batch size


# ---- registering and the champion -----------------------------------------------------------


def test_every_model_is_a_version_of_one_registered_model_and_the_best_is_champion(store, tmp_path, params):
    record = _pipeline(params, tmp_path, ["ridge", "persistence"])
    client = MlflowClient(store)
    assert record["promoted"] and record["decision"] == "promoted: no champion yet"
    assert [m.name for m in client.search_registered_models()] == ["sinernn-clean"]
    champion = client.get_model_version_by_alias("sinernn-clean", "champion")
    assert champion.tags["architecture"] == "ridge"  # exact on a sine
    assert int(champion.version) == record["registered"]["ridge"] == record["challenger"]["version"]
    assert float(champion.tags["test_mse"]) < 1e-8 and champion.tags["dataset_hash"] and champion.tags["run_id"]
    # the gate scores the exported programs on the evaluation's targets (every test value)
    evaluated = json.loads((tmp_path / "reports/eval/clean.json").read_text())
    assert record["scores"]["persistence"] == pytest.approx(evaluated["persistence"]["test_mse"], rel=1e-4)

    # New data (the next snapshot, drifted in phase) and a worse run: registered, not promoted.
    again = _pipeline(params, tmp_path, ["persistence"], snapshot=1)
    assert not again["promoted"] and again["decision"].startswith("kept")
    assert again["champion"]["architecture"] == "ridge"
    assert again["challenger"]["score"] > again["champion"]["score"]
    assert client.get_model_version_by_alias("sinernn-clean", "champion").version == champion.version
    assert len(client.search_model_versions("name = 'sinernn-clean'")) == 3


def test_a_better_challenger_moves_the_alias_in_one_call(store, tmp_path, params, monkeypatch):
    first = _pipeline(params, tmp_path, ["persistence"])
    assert first["promoted"]

    def no_gap(*args, **kwargs):
        raise AssertionError("the alias was deleted: there would be a moment without a champion")

    moves = []
    real_set = MlflowClient.set_registered_model_alias

    def counted(self, *args, **kwargs):
        moves.append(args)
        return real_set(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "delete_registered_model_alias", no_gap)
    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", counted)
    second = _pipeline(params, tmp_path, ["ridge"], snapshot=1)
    assert second["promoted"] and second["champion"]["architecture"] == "persistence"
    assert moves == [("sinernn-clean", "champion", second["registered"]["ridge"])]
    champion = MlflowClient(store).get_model_version_by_alias("sinernn-clean", "champion")
    assert int(champion.version) == second["registered"]["ridge"]


def test_a_re_run_registers_nothing_twice(store, tmp_path, params):
    """A register stage killed after registering is simply run again."""
    _pipeline(params, tmp_path, ["ridge"])
    npz, models = tmp_path / "data/processed/clean.npz", tmp_path / "models/clean"
    ridge_only = params.model_copy(update={"run": params.run.model_copy(update={"architectures": ["ridge"]})})
    again = register_job(ridge_only, "clean", npz, models, tmp_path / "reports/eval/clean.json", tmp_path / "again.json")
    assert again["decision"] == "kept: the challenger is the champion already"
    assert len(MlflowClient(store).search_model_versions("name = 'sinernn-clean'")) == 1


@pytest.mark.parametrize("other", ["clean-v2", "clean_v2"])
def test_a_champion_survives_a_promotion_on_a_dataset_with_a_similar_name(store, tmp_path, params, other):
    _pipeline(params, tmp_path, ["ridge"], dataset=other)
    assert _pipeline(params, tmp_path, ["persistence"], dataset="clean")["decision"] == "promoted: no champion yet"
    client = MlflowClient(store)
    assert client.get_model_version_by_alias(f"sinernn-{other}", "champion").tags["architecture"] == "ridge"
    assert client.get_model_version_by_alias("sinernn-clean", "champion").tags["architecture"] == "persistence"


def test_a_challenger_better_only_through_another_scaling_is_not_promoted(store, tmp_path, params):
    """The champion is scored with its own scaling. New data whose train part sits at another
    level has another mean: fed with that scaling, the exact champion would look worse than
    persistence and be replaced."""
    write_csv(tmp_path / "data/external/level.csv", level_sine(np.arange(1200)))
    source = _csv_source(params, "level")
    first = _pipeline(params, tmp_path, ["ridge"], dataset="level", source=source)
    assert first["promoted"]
    # The same sine, but the train part (the first 35 %) at level 25 instead of 5.
    values = level_sine(np.arange(1200))
    values[:420] += 20.0
    write_csv(tmp_path / "data/external/level.csv", values)
    second = _pipeline(params, tmp_path, ["persistence"], dataset="level", source=source)
    assert second["champion"]["score"] < 1e-6  # still exact: its own scaling
    assert not second["promoted"] and second["decision"] == "kept: the challenger is not better by the margin"


def test_non_finite_scores_never_win(store, tmp_path, params, monkeypatch):
    champion = f"models:/sinernn-clean/{_pipeline(params, tmp_path, ['persistence'])['challenger']['version']}"
    real_load = registry.load

    def candidates_forecast_nan(uri):  # a run whose models blew up: every forecast NaN
        step, config = real_load(uri)
        if uri == champion:
            return step, config
        return (lambda windows: torch.full((len(windows), 1), math.nan)), config

    monkeypatch.setattr(registry, "load", candidates_forecast_nan)
    record = _pipeline(params, tmp_path, ["ridge"], snapshot=1)
    assert record["scores"]["ridge"] is None and not record["promoted"]
    assert record["decision"] == "kept: no candidate has a finite score"
    assert MlflowClient(store).get_model_version_by_alias("sinernn-clean", "champion").tags["architecture"] == "persistence"
    assert (tmp_path / "reports/registry/clean.json").is_file()  # written: NaN is recorded as null


def test_a_champion_whose_score_is_not_finite_is_replaced(store, tmp_path, params, monkeypatch):
    champion = f"models:/sinernn-clean/{_pipeline(params, tmp_path, ['ridge'])['challenger']['version']}"
    real_load = registry.load

    def champion_forecasts_inf(uri):  # the champion blows up on the new data
        step, config = real_load(uri)
        if uri == champion:
            return (lambda windows: torch.full((len(windows), 1), math.inf)), config
        return step, config

    monkeypatch.setattr(registry, "load", champion_forecasts_inf)
    record = _pipeline(params, tmp_path, ["persistence"], snapshot=1)
    assert record["champion"]["score"] is None and record["promoted"]
    assert record["decision"] == "promoted: the champion's score is not finite on the newest data"


# ---- what a deployment calls ----------------------------------------------------------------


def test_predict_forecasts_a_sine_with_the_champion(store, tmp_path, params, raw_params, monkeypatch, capsys):
    _pipeline(params, tmp_path, ["ridge"])
    t = np.arange(200)
    (tmp_path / "series.csv").write_text("value\n" + "\n".join(f"{v:.9f}" for v in np.sin(2 * np.pi * t / PERIOD)))
    path = write_params(tmp_path / "params.yaml", raw_params)
    args = ["predict", "--params", str(path), "--model", "models:/sinernn-clean@champion", "--horizon", "25"]

    assert main([*args, "--input", str(tmp_path / "series.csv")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "step,prediction" and len(lines) == 26
    forecast = np.array([float(line.split(",")[1]) for line in lines[1:]])
    truth = np.sin(2 * np.pi * np.arange(200, 225) / PERIOD)
    assert np.abs(forecast - truth).max() < 1e-3  # the continuation of the sine

    monkeypatch.setattr(sys, "stdin", io.StringIO((tmp_path / "series.csv").read_text()))
    assert main([*args, "--input", "-"]) == 0
    assert capsys.readouterr().out.strip().splitlines() == lines  # stdin gives the same forecast

    # A checkpoint file works too, without the registry.
    assert main([*args[:3], "--model", str(tmp_path / "models/clean/ridge/model.pt"), "--horizon", "25",
                 "--input", str(tmp_path / "series.csv")]) == 0
    checkpoint = np.array([float(line.split(",")[1]) for line in capsys.readouterr().out.strip().splitlines()[1:]])
    assert np.abs(checkpoint - forecast).max() < 1e-5


def test_predict_explains_a_series_too_short_and_an_unknown_model(store, tmp_path, params, raw_params, capsys):
    _pipeline(params, tmp_path, ["ridge"])
    (tmp_path / "short.csv").write_text("value\n1\n2\n")
    path = write_params(tmp_path / "params.yaml", raw_params)
    assert main(["predict", "--params", str(path), "--model", "models:/sinernn-clean@champion",
                 "--input", str(tmp_path / "short.csv")]) == 2
    assert "needs the last 16" in capsys.readouterr().err
    assert main(["predict", "--params", str(path), "--model", "models:/sinernn-nowhere@champion",
                 "--input", str(tmp_path / "short.csv")]) == 2
    assert "cannot load models:/sinernn-nowhere@champion" in capsys.readouterr().err


class Planted(mlflow.pyfunc.PythonModel):
    """Unpickling this runs code: it touches the file named in `marker`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))

    def predict(self, context, model_input):
        return model_input


def _plant(kind: str, marker: Path, tmp_path: Path):
    """A model that would run code when loaded, logged to the store."""
    with mlflow.start_run():
        if kind == "pickled pyfunc":
            return mlflow.pyfunc.log_model(name="model", python_model=Planted(str(marker)), pip_requirements=[])
        if kind == "pickle-format pytorch":
            return mlflow.pytorch.log_model(build_model({"kind": "persistence"}), name="model",
                                            serialization_format="pickle", pip_requirements=[])
        # Our loader and format, but a .pt2 archive that carries a pickle, or a code folder.
        windows = level_sine(np.arange(20)[None, :] + np.arange(3)[:, None])[:, -16:]
        archive = serving.export(serving.Forecaster(build_model({"kind": "persistence"}), 0.0, 1.0), windows,
                                 tmp_path / serving.EXPORT_FILE)
        code_paths = None
        if kind == "pt2 carrying a pickle":
            with zipfile.ZipFile(archive, "a") as pt2:
                pt2.writestr(f"{archive.stem}/data/constants/planted.pt", pickle.dumps(Planted(str(marker))))
        else:
            (tmp_path / "planted_code.py").write_text(f"import pathlib; pathlib.Path({str(marker)!r}).touch()\n")
            code_paths = [str(tmp_path / "planted_code.py")]
        return mlflow.pyfunc.log_model(name="model", loader_module=serving.LOADER_MODULE, data_path=str(archive),
                                       code_paths=code_paths, pip_requirements=[],
                                       metadata={"format": serving.EXPORT_FORMAT, "window": 16})


def test_the_planted_pickle_does_run_when_loaded_without_checks(store, tmp_path):
    """The control for the test below: MLflow's own loader runs it (MLflow 3.17 allows pickles)."""
    marker = tmp_path / "code-ran"
    info = _plant("pickled pyfunc", marker, tmp_path)
    with pytest.raises(Exception):  # what the pickle rebuilds is no model; the harm is done by then
        mlflow.pyfunc.load_model(info.model_uri)
    assert marker.exists()


@pytest.mark.faults(scenario="registry @champion pointed at a foreign model")
@pytest.mark.parametrize("planted", ["pickled pyfunc", "pickle-format pytorch", "pt2 carrying a pickle", "code folder"])
def test_a_model_planted_under_champion_is_refused_and_never_run(store, tmp_path, params, raw_params, capsys, planted,
                                                                  monkeypatch, fault):
    _pipeline(params, tmp_path, ["ridge"])
    marker = tmp_path / "code-ran"
    info = _plant(planted, marker, tmp_path)
    served = []
    monkeypatch.setattr(os, "execvpe", lambda *args: served.append(args))  # sinernn serve must never get there
    client = MlflowClient(store)
    version = client.create_model_version("sinernn-clean", source=info.model_uri, model_id=info.model_id)
    client.set_registered_model_alias("sinernn-clean", "champion", version.version)

    (tmp_path / "series.csv").write_text("value\n" + "\n".join(str(v) for v in np.sin(np.arange(40) / 6)))
    path = write_params(tmp_path / "params.yaml", raw_params)
    assert main(["predict", "--params", str(path), "--model", "models:/sinernn-clean@champion",
                 "--input", str(tmp_path / "series.csv")]) == 2
    refusal = capsys.readouterr().err
    assert "not a sinernn forecaster export" in refusal or "refused" in refusal
    # `sinernn serve` refuses it before MLflow (which would load it as it is) sees it.
    copies = set(Path(tempfile.gettempdir()).glob("sinernn-serve-*"))
    assert main(["serve", "--params", str(path), "--dataset", "clean"]) == 2 and served == []
    assert set(Path(tempfile.gettempdir()).glob("sinernn-serve-*")) == copies  # its download removed
    # The register stage, which re-scores the champion, refuses it too, and keeps it.
    with pytest.raises(serving.UnsafeModel):
        _pipeline(params, tmp_path, ["persistence"], snapshot=1)
    kept = client.get_model_version_by_alias("sinernn-clean", "champion").version == version.version
    fault.record("champions lost", int(not kept))
    fault.record("planted code run", int(marker.exists()))
    assert kept
    assert not marker.exists()


def test_serve_hands_mlflow_the_checked_copy_of_the_resolved_version(store, tmp_path, params, raw_params, monkeypatch):
    record = _pipeline(params, tmp_path, ["ridge", "persistence"])
    served = []
    monkeypatch.setattr(os, "execvpe", lambda file, args, env: served.append((args, env)))
    path = write_params(tmp_path / "params.yaml", raw_params)
    assert main(["serve", "--params", str(path), "--dataset", "clean", "--port", "5999"]) == 0
    (args, env), = served
    assert args[1:3] == ["models", "serve"] and args[args.index("--host") + 1] == "127.0.0.1"
    copy = Path(args[args.index("-m") + 1])  # a local folder, not the alias: what was checked is served
    assert copy.is_dir() and (copy / "data" / serving.EXPORT_FILE).is_file()
    assert registry.check_export(copy, "copy")[1]["architecture"] == "ridge" == record["challenger"]["architecture"]
    private = next(folder for folder in (copy, *copy.parents) if folder.name.startswith("sinernn-serve-"))
    assert oct(private.stat().st_mode & 0o777) == "0o700"  # a fresh folder private to this user
    assert env["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"
    shutil.rmtree(private)  # the server would have kept it


def test_the_registry_needs_logged_models(raw_params):
    raw_params["mlflow"]["log_models"] = False
    with pytest.raises(Exception, match="registry.enabled needs mlflow.log_models: true"):
        parse_params(raw_params)
