"""The champion served by a real `mlflow models serve` process, asked over HTTP in original units."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pytest
from conftest import write_params
from test_registry import _csv_source, _pipeline, level_sine, write_csv

from sinernn.cli import main

WINDOW = 16  # the tiny params' train.window


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture
def served_champion(tracked, tmp_path, params, raw_params, monkeypatch):
    """A level-5 sine's ridge champion in its own store, served on a free 127.0.0.1 port."""
    store = f"sqlite:///{tmp_path / 'registry.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    write_csv(tmp_path / "data/external/level.csv", level_sine(np.arange(1200)))
    _pipeline(params, tmp_path, ["ridge"], dataset="level", source=_csv_source(params, "level"))
    copies = set(Path(tempfile.gettempdir()).glob("sinernn-serve-*"))
    port = _free_port()
    write_params(tmp_path / "params.yaml", raw_params)
    server = subprocess.Popen(  # the documented command: it checks the model, then runs mlflow models serve
        [sys.executable, "-m", "sinernn.cli", "serve", "--model", "models:/sinernn-level@champion", "--port", str(port)],
        env={**os.environ, "MLFLOW_TRACKING_URI": store}, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,  # its workers die with it
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/ping", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"mlflow models serve did not start:\n{server.stdout.read().decode()[-3000:]}")
                time.sleep(0.5)
        yield url, store
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        for copy in set(Path(tempfile.gettempdir()).glob("sinernn-serve-*")) - copies:
            shutil.rmtree(copy)  # the checked copy the server ran from


def test_the_served_champion_answers_in_the_data_units(served_champion, tmp_path, capsys):
    url, store = served_champion
    t = np.arange(300, 300 + WINDOW)
    window = level_sine(t)

    answer = _post(f"{url}/invocations", {"inputs": [window.tolist()]})["predictions"]  # horizon 1 by default
    assert np.asarray(answer).shape == (1, 1)
    assert abs(answer[0][0] - level_sine(t[-1] + 1)) < 1e-3  # the next value, in original units

    horizon = 20
    forecast = np.asarray(_post(f"{url}/invocations", {"inputs": [window.tolist()], "params": {"horizon": horizon}})["predictions"])
    truth = level_sine(np.arange(t[-1] + 1, t[-1] + 1 + horizon))
    assert forecast.shape == (1, horizon) and np.abs(forecast[0] - truth).max() < 1e-3

    # The same through mlflow.pyfunc and through `sinernn predict`, to 1e-6.
    loaded = mlflow.pyfunc.load_model("models:/sinernn-level@champion")
    assert np.abs(loaded.predict(window[None].astype(np.float32), params={"horizon": horizon}) - forecast).max() < 1e-6
    (tmp_path / "window.csv").write_text("value\n" + "\n".join(repr(v) for v in window.astype(np.float32).tolist()))
    assert main(["predict", "--params", str(tmp_path / "params.yaml"), "--model", "models:/sinernn-level@champion",
                 "--input", str(tmp_path / "window.csv"), "--horizon", str(horizon)]) == 0
    predicted = np.array([float(line.split(",")[1]) for line in capsys.readouterr().out.strip().splitlines()[1:]])
    assert np.abs(predicted - forecast[0]).max() < 1e-6


def test_a_horizon_out_of_range_is_a_client_error(served_champion):
    url, _ = served_champion
    request = urllib.request.Request(f"{url}/invocations", json.dumps(
        {"inputs": [level_sine(np.arange(WINDOW)).tolist()], "params": {"horizon": 0}}).encode(),
        {"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=30)
    assert answer.value.code == 400 and "horizon must be between 1 and" in answer.value.read().decode()
