"""Shared fixtures: tiny real configs, everything written under tmp_path, one real MLflow store."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml

from sinernn.config import parse_params

ROOT = Path(__file__).resolve().parents[1]


def tiny_raw_params() -> dict:
    """The project's params.yaml shrunk so a training run takes a second or two."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name, ds in raw["datasets"].items():
        if ds["source"] == "sine":
            ds.update(n_train=300, n_val=100, n_test=1040)
        elif ds["source"] == "random_freq":
            ds.update(n_train_series=8, n_val_series=4, n_test_series=2, train_length=40, test_length=1040)
    raw["train"].update(window=16, max_epochs=3, batch_size=64)
    raw["run"].update(train_datasets=["clean"])
    raw["tune"].update(n_trials=3, max_epochs=3, startup_trials=1, heartbeat_interval=1)
    raw["diagnose"].update(published_epochs=10, corrected_epochs=2, gradient_windows=[8, 24], gradient_epochs=1,
                           stability_lrs=[0.01], stability_epochs=2, extrapolation_epochs=2,
                           memory_windows=[2, 8], memory_epochs=2)
    return raw


@pytest.fixture
def raw_params() -> dict:
    return copy.deepcopy(tiny_raw_params())


@pytest.fixture
def params(raw_params):
    return parse_params(raw_params)


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory) -> str:
    """One real SQLite tracking store for the session (creating its tables takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def tracked(mlflow_store, monkeypatch, tmp_path):
    """Run from an empty project folder with the CSV in place, logging to the session store."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/external").mkdir(parents=True)
    shutil.copy(ROOT / "data/external/sample.csv", tmp_path / "data/external/sample.csv")
    return mlflow_store


def write_params(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def postgres(pytestconfig) -> str:
    """A PostgreSQL database URL for the distributed tests, from the first source that serves:
    SINERNN_TEST_POSTGRES, the local server, or a throwaway one stopped after the session."""
    from sinernn.postgres import postgres_server

    with postgres_server() as (url, name):
        pytestconfig.sinernn_postgres = name  # for the summary line (without xdist)
        yield url


def pytest_terminal_summary(terminalreporter, config):
    """Says once, even under -q, where the distributed tests found their server. Under xdist the
    fixture ran in a worker; the controller then names the source its own probe finds."""
    from sinernn.postgres import THROWAWAY, source

    used = getattr(config, "sinernn_postgres", None)
    name = used or source()[0]
    terminalreporter.write_line(f"PostgreSQL for the distributed tests: {name}" + (
        " (started for the tests that need it, stopped after them)" if name == THROWAWAY else ""))
