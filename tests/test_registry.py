"""The MLflow Model Registry on a real SQLite store: versions, the champion, and forecasts."""

import io
import sys

import numpy as np
import pytest
from mlflow import MlflowClient

from conftest import write_params
from sinernn import jobs, registry
from sinernn.cli import main
from sinernn.config import parse_params


@pytest.fixture
def store(tracked, tmp_path, monkeypatch):
    """A registry of its own per test: champions must not leak from one test into another."""
    uri = f"sqlite:///{tmp_path / 'registry.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def _pipeline(params, tmp_path, archs, dataset="clean", snapshot=0):
    """generate -> train -> evaluate -> register, for the given architectures and data snapshot."""
    source = params.datasets[dataset].model_copy(update={"snapshot": snapshot, "phase_drift": 0.3})
    params = params.model_copy(update={"run": params.run.model_copy(update={"architectures": archs}),
                                       "datasets": {**params.datasets, dataset: source}})
    npz = tmp_path / f"data/processed/{dataset}.npz"
    jobs.generate_job(params, dataset, npz)
    for arch in archs:
        jobs.train_job(params, dataset, arch, npz, tmp_path / f"models/{dataset}/{arch}", tmp_path / f"h/{arch}.csv")
    jobs.evaluate_job(params, dataset, npz, tmp_path / f"models/{dataset}", tmp_path / f"reports/eval/{dataset}.json",
                      tmp_path / "p", tmp_path / "r")
    return jobs.register_job(params, dataset, npz, tmp_path / f"models/{dataset}", tmp_path / f"reports/eval/{dataset}.json",
                             tmp_path / f"reports/registry/{dataset}.json")


def test_every_model_is_registered_and_the_best_becomes_champion(store, tmp_path, params):
    record = _pipeline(params, tmp_path, ["ridge", "persistence"])
    client = MlflowClient(store)
    assert record["promoted"] and record["decision"] == "promoted: no champion yet"
    champion = client.get_model_version_by_alias("sinernn-clean-ridge", "champion")  # ridge is exact on a sine
    assert champion.version == record["registered"]["ridge"]
    assert float(champion.tags["test_mse"]) < 1e-8 and champion.tags["dataset_hash"]
    assert "champion" not in client.get_registered_model("sinernn-clean-persistence").aliases

    # New data (the next snapshot, drifted in phase) and a run whose best model is worse than the
    # champion, re-scored on the new test split: registered, but not promoted.
    again = _pipeline(params, tmp_path, ["persistence"], snapshot=1)
    assert not again["promoted"] and again["decision"].startswith("kept")
    assert again["champion"]["name"] == "sinernn-clean-ridge"
    assert again["challenger"]["score"] > again["champion"]["score"]
    assert client.get_model_version_by_alias("sinernn-clean-ridge", "champion").version == champion.version
    versions = client.search_model_versions("name = 'sinernn-clean-persistence'")
    assert len(versions) == 2
    newest = max(versions, key=lambda v: int(v.version))
    assert newest.tags["champion_decision"].startswith("kept")


def test_a_better_challenger_moves_the_alias(store, tmp_path, params):
    first = _pipeline(params, tmp_path, ["persistence"])
    assert first["promoted"]
    second = _pipeline(params, tmp_path, ["ridge"], snapshot=1)
    client = MlflowClient(store)
    assert second["promoted"] and second["champion"]["name"] == "sinernn-clean-persistence"
    assert client.get_model_version_by_alias("sinernn-clean-ridge", "champion").version == second["registered"]["ridge"]
    assert "champion" not in client.get_registered_model("sinernn-clean-persistence").aliases


def test_predict_forecasts_a_sine_with_the_champion(store, tmp_path, params, raw_params, monkeypatch, capsys):
    _pipeline(params, tmp_path, ["ridge"])
    period = params.datasets["clean"].period
    t = np.arange(200)
    (tmp_path / "series.csv").write_text("value\n" + "\n".join(f"{v:.9f}" for v in np.sin(2 * np.pi * t / period)))
    path = write_params(tmp_path / "params.yaml", raw_params)
    args = ["predict", "--params", str(path), "--model", "models:/sinernn-clean-ridge@champion", "--horizon", "25"]

    assert main([*args, "--input", str(tmp_path / "series.csv")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "step,prediction" and len(lines) == 26
    forecast = np.array([float(line.split(",")[1]) for line in lines[1:]])
    truth = np.sin(2 * np.pi * np.arange(200, 225) / period)
    assert np.abs(forecast - truth).max() < 1e-3  # the continuation of the sine

    monkeypatch.setattr(sys, "stdin", io.StringIO((tmp_path / "series.csv").read_text()))
    assert main([*args, "--input", "-"]) == 0
    assert capsys.readouterr().out.strip().splitlines() == lines  # stdin gives the same forecast

    # A checkpoint file works too, without the registry.
    assert main([*args[:3], "--model", str(tmp_path / "models/clean/ridge/model.pt"), "--horizon", "25",
                 "--input", str(tmp_path / "series.csv")]) == 0
    assert capsys.readouterr().out.strip().splitlines() == lines


def test_predict_explains_a_series_too_short_and_an_unknown_model(store, tmp_path, params, raw_params, capsys):
    _pipeline(params, tmp_path, ["ridge"])
    (tmp_path / "short.csv").write_text("value\n1\n2\n")
    path = write_params(tmp_path / "params.yaml", raw_params)
    assert main(["predict", "--params", str(path), "--model", "models:/sinernn-clean-ridge@champion",
                 "--input", str(tmp_path / "short.csv")]) == 2
    assert "needs the last 16" in capsys.readouterr().err
    assert main(["predict", "--params", str(path), "--model", "models:/sinernn-nowhere@champion",
                 "--input", str(tmp_path / "short.csv")]) == 2
    assert "cannot load models:/sinernn-nowhere@champion" in capsys.readouterr().err


def test_the_registry_needs_logged_models(raw_params):
    raw_params["mlflow"]["log_models"] = False
    with pytest.raises(Exception, match="registry.enabled needs mlflow.log_models: true"):
        parse_params(raw_params)
