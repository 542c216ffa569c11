"""Shared fixtures: tiny real configs, everything written under tmp_path, one real MLflow store."""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml

from sinernn.core.config import parse_params

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
    raw["evaluate"].update(backtest_stride=100)  # 11 backtest origins on a 1040-value test split
    raw["run"].update(train_datasets=["clean"])
    # A dead trial is noticed after 2 x 1 + 5 seconds, not the default's 80.
    raw["tune"].update(n_trials=3, max_epochs=3, startup_trials=1, heartbeat_interval=1, sqlite_lock_wait=5)
    raw["diagnose"].update(published_epochs=10, corrected_epochs=2, gradient_windows=[8, 24], gradient_epochs=1,
                           stability_lrs=[0.01], stability_epochs=2, extrapolation_epochs=2,
                           memory_windows=[2, 8], memory_epochs=2, delay_lags=[2, 4], delay_epochs=2,
                           delay_samples=256, trend_architectures=["rnn"], trend_epochs=2)
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
    from sinernn.tune.postgres import postgres_server

    with postgres_server() as (url, name):
        pytestconfig.sinernn_postgres = name  # for the summary line (without xdist)
        yield url


# ---- the fault-injection table (tests marked `faults`, `make faults`) ------------------------
# Each scenario records its figure (how many trials lost, outputs corrupted, ... : expected 0)
# before asserting it, as one JSON line in a file every xdist worker appends to; the controller
# prints one table at the end, and with SINERNN_FAULTS_RESULTS writes it there as JSON.
FAULT_LOG = "SINERNN_FAULT_LOG"


def pytest_configure(config):
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist)
        fd, path = tempfile.mkstemp(prefix="sinernn-faults-", suffix=".jsonl")
        os.close(fd)
        os.environ[FAULT_LOG] = config.sinernn_fault_log = path


def repetitions(default: int = 1) -> int:
    """How many times a scenario repeats: SINERNN_FAULT_REPS (make faults) or its default."""
    return int(os.environ.get("SINERNN_FAULT_REPS") or default)


class FaultFigures:
    def __init__(self, scenario: str):
        self.scenario = scenario

    def record(self, figure: str, value: int, repetitions: int = 1) -> int:
        with open(os.environ[FAULT_LOG], "a") as log:
            log.write(json.dumps({"scenario": self.scenario, "figure": figure, "value": value,
                                  "repetitions": repetitions}) + "\n")
        return value


@pytest.fixture
def fault(request) -> FaultFigures:
    """Records a scenario's figure for the table: fault.record("trials lost", n, repetitions)."""
    marker = request.node.get_closest_marker("faults")
    return FaultFigures((marker.kwargs.get("scenario") if marker else None) or request.node.name)


def fault_table(path: str) -> list[dict]:
    rows: dict[tuple, dict] = {}
    for line in Path(path).read_text().splitlines():
        entry = json.loads(line)
        row = rows.setdefault((entry["scenario"], entry["figure"]), {**entry, "value": 0, "repetitions": 0})
        row["value"] += entry["value"]
        row["repetitions"] += entry["repetitions"]
    return sorted(rows.values(), key=lambda row: (row["scenario"], row["figure"]))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Says once, even under -q, where the distributed tests found their server. Under xdist the
    fixture ran in a worker; the controller then names the source its own probe finds. Then the
    fault table, when fault scenarios ran."""
    from sinernn.tune.postgres import THROWAWAY, source

    used = getattr(config, "sinernn_postgres", None)
    name = used or source()[0]
    terminalreporter.write_line(f"PostgreSQL for the distributed tests: {name}" + (
        " (started for the tests that need it, stopped after them)" if name == THROWAWAY else ""))

    log = getattr(config, "sinernn_fault_log", None)
    if not log or not Path(log).exists():
        return
    rows = fault_table(log)
    Path(log).unlink()
    if not rows:
        return
    width = max(len(row["scenario"]) for row in rows)
    terminalreporter.write_line("")
    terminalreporter.write_line(f"{'fault scenario':<{width}}  reps  figure (expected 0)")
    for row in rows:
        terminalreporter.write_line(f"{row['scenario']:<{width}}  {row['repetitions']:>4}  {row['figure']}: {row['value']}")
    if os.environ.get("SINERNN_FAULTS_RESULTS") and exitstatus == 0:  # a failed run is no measurement
        Path(os.environ["SINERNN_FAULTS_RESULTS"]).write_text(json.dumps(rows, indent=2) + "\n")
