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
    raw["claims"].update(linear_lags=[1, 2, 3], derivative_amplitudes=[1.0, 100.0], derivative_periods=[37.7],
                         derivative_epochs=1, ratio_periods=[8.0, 64.0], ratio_architectures=["rnn"], ratio_epochs=1,
                         horizon=10, wide_hidden=8, sine_epochs=1, activation_window=24, activation_lrs=[0.01],
                         long_window=24, long_window_epochs=1, overfit_hidden=[4, 8], overfit_epochs=1)
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


def claims_measured() -> dict:
    """A claims stage summary (reports/claims/summary.json) in its committed shape, small: every
    verdict of sinernn/answer/claims_verdicts.py comes out refuted, and changing the figures of one
    claim flips that claim alone (tests/test_claims.py)."""
    linear = [{"dataset": name, "pure_sine": name == "clean", "k": k, "test_mse": mse, "relative_mse": mse / 0.5,
               "noise_variance": noise, "test_variance": 0.5}
              for name, noise, errors in (("clean", 0.0, {1: 1e-3, 2: 1e-30, 3: 1e-30, 32: 1e-29}),
                                          ("noisy", 0.01, {1: 0.03, 2: 0.02, 3: 0.015, 32: 0.011}))
              for k, mse in errors.items()]
    derivatives = [{"amplitude": a, "period": p, "inputs": inputs, "derivative_bound": a * 6.283 / p,
                    "model_bound": (1.414 if inputs == "scaled" else a) * 6.283 / p, "diverged": False,
                    "relative_test_mse": 1e-4, "median_grad_norm": norm, "max_grad_norm": 2 * norm}
                   for a in (1.0, 100.0) for p in (320.0, 8.0) for inputs, norm in (("scaled", 0.05), ("raw", 0.05 * a))]
    ratio = [{"period": p, "ratio": 32 / p, "architecture": kind, "horizon": int(p), "diverged": False, "test_mse": mse,
              "rollout_mse": 10 * mse, "relative_test_mse": 2 * mse, "relative_rollout_mse": 20 * mse,
              "vs_persistence": mse / 0.1} for p in (16.0, 320.0) for kind, mse in (("lstm", 1e-4), ("persistence", 0.1))]
    delay = [{"lag": lag, "architecture": name, "grad_clip": 0.0, "diverged": False, "test_mse": mse,
              "learned": mse < 0.0333} for name, mses in (("lstm 32x2", {8: 0.001, 16: 0.2}), ("lstm 64x1", {8: 0.001, 16: 0.2}),
                                                          ("rnn relu", {8: 0.2}), ("transformer", {8: 0.001, 16: 0.2}))
             for lag, mse in mses.items()]
    return {
        "linear_memory": linear, "derivatives": derivatives, "window_ratio": ratio,
        "tuning": [{"dataset": "clean", "architecture": arch, "n_complete": 8, "best_trial": 5,
                    "objective_spread": {"best": 1e-6, "median": 1.5e-6},
                    "importances": {"lr": lr, "hidden_size": 0.9 - lr, "grad_clip": 0.05, "batch_size": 0.03, "dropout": 0.02}}
                   for arch, lr in (("rnn", 0.1), ("lstm", 0.2), ("gru", 0.7))],
        "overfitting": [{"dataset": "noisy", "architecture": "lstm", "hidden_size": h, "diverged": False, "epochs": 10,
                         "best_epoch": 8, "train_mse": 0.0098, "val_mse": 0.0101, "test_mse": test, "noise_variance": 0.01}
                        for h, test in ((8, 0.0102), (128, 0.0105))],
        "delay_variants": delay,
        "on_sine": [{"architecture": name, "epochs_budget": 30, "diverged": False, "test_mse": 1e-5, "rollout_mse": 1e-3,
                     "parameters": 1000} for name in ("lstm", "lstm 32x2", "lstm 64x1", "rnn tanh", "rnn relu", "transformer")],
        "activation": {"gradients": [{"architecture": name, "window": 128, "diverged": False, "init_summary": {"ratio_W_to_1": r},
                                      "trained_summary": {"ratio_W_to_1": r}, "init": [1.0], "trained": [1.0]}
                                     for name, r in (("rnn tanh", 1e-20), ("rnn relu", 1e-5))],
                       "stability": [{"architecture": name, "lr": 0.1, "diverged": name == "rnn relu", "best_val_loss": None}
                                     for name in ("rnn tanh", "rnn relu")]},
        "long_window": [{"architecture": name, "window": 128, "diverged": False, "test_mse": 0.01 * r, "noise_floor_ratio": r}
                        for name, r in (("rnn", 1.3), ("gru", 1.1), ("lstm", 1.05), ("transformer", 1.08))],
    }
