"""The multi-machine recipe of docs/deployment.md ("Many machines, securely"), run as written:
every step of deploy/secure_recipe.sh but the SSH tunnel, on 127.0.0.1, with a real PostgreSQL
role (the `postgres` fixture's server; see sinernn/tune/postgres.py) and a real `mlflow server` with
basic auth and TLS. Strangers are refused; two workers, one straight on PostgreSQL and one through
the storage proxy, log every trial; no password reaches a command line, a log or a file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path

import psycopg
import pytest
import requests
from conftest import ROOT, write_params
from mlflow import MlflowClient
from psycopg import sql
from sqlalchemy.engine import make_url

import optuna
from sinernn import cli
from sinernn.core.config import parse_params
from sinernn.jobs.generate import generate_job
from sinernn.tune import storage as tune_storage
from sinernn.tune.storage import open_storage
from sinernn.tune.study import study_name

RECIPE = ROOT / "deploy/secure_recipe.sh"
SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Deployment:
    """The recipe's settings for this machine, its secrets, and what it started."""

    def __init__(self, tmp_path: Path, admin_url: str):
        url = make_url(admin_url)
        self.role = f"sinernn_{uuid.uuid4().hex[:8]}"
        self.databases = [f"{self.role}_{name}" for name in ("optuna", "mlflow", "auth")]
        self.tracking_port, self.proxy_port = _free_port(), _free_port()
        self.config = tmp_path / "config"
        self.pgpass = tmp_path / "pgpass"
        # ':' and '\' are the characters .pgpass needs escaped.
        self.db_password = f"{secrets.token_urlsafe(12)}:\\{secrets.token_urlsafe(6)}"
        self.admin_password, self.worker_password = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        self.new_admin_password = secrets.token_urlsafe(16)
        # The host (or socket directory) and port of the fixture's server.
        self.db_host = url.host or url.query["host"]
        self.db_port = str(url.port or url.query.get("port") or 5432)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SINERNN_", "PG", "DVC_"))}
        self.env.update({
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "SINERNN_BIN": str(Path(sys.executable).parent),
            "SINERNN_DB_HOST": self.db_host, "SINERNN_DB_PORT": self.db_port,
            # The test servers have no TLS (a Unix socket ignores sslmode anyway); the recipe's
            # default, verify-full, needs the database server's CA certificate.
            "SINERNN_DB_SSLMODE": "prefer",
            "SINERNN_DB_ROLE": self.role, "SINERNN_DB_OPTUNA": self.databases[0],
            "SINERNN_DB_MLFLOW": self.databases[1], "SINERNN_DB_AUTH": self.databases[2],
            "SINERNN_TRACKING_HOST": "127.0.0.1", "SINERNN_TRACKING_BIND": "127.0.0.1",
            "SINERNN_TRACKING_PORT": str(self.tracking_port), "SINERNN_TRACKING_WORKERS": "1",
            "SINERNN_ARTIFACTS": str(tmp_path / "artifacts"), "SINERNN_PROXY_PORT": str(self.proxy_port),
            "SINERNN_CONFIG_DIR": str(self.config), "PGPASSFILE": str(self.pgpass),
        })
        self.uri = f"https://127.0.0.1:{self.tracking_port}"
        self.cert = self.config / "tracking-cert.pem"
        self.processes: dict[str, subprocess.Popen] = {}
        self.outputs: dict[str, str] = {}  # what each step printed, to search for passwords

    def run(self, step: str, *args: str, **env: str) -> str:
        done = subprocess.run([str(RECIPE), step, *args], env={**self.env, **env}, capture_output=True, text=True,
                              timeout=120)
        self.outputs[f"step {step} {' '.join(args)}"] = done.stdout + done.stderr
        assert done.returncode == 0, f"secure_recipe.sh {step}: {done.stderr[-3000:]}"
        return done.stdout

    def start(self, label: str, step: str, *args: str, cwd: Path | None = None, **env: str) -> subprocess.Popen:
        process = subprocess.Popen([str(RECIPE), step, *args], env={**self.env, **env}, cwd=cwd, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes[label] = process
        return process

    def finish(self, label: str, timeout: float = 180) -> int:
        self.outputs[label] = self.processes[label].communicate(timeout=timeout)[0]
        return self.processes[label].returncode

    def storage_url(self) -> str:
        """SINERNN_OPTUNA_STORAGE as a client gets it: eval "$(deploy/secure_recipe.sh env)"."""
        return subprocess.run(["bash", "-c", 'eval "$("$0" env)" && printf %s "$SINERNN_OPTUNA_STORAGE"', str(RECIPE)],
                              env=self.env, capture_output=True, text=True, check=True).stdout

    def status(self, *, auth: tuple[str, str] | None = None, scheme: str = "https", **headers: str) -> int | None:
        """The status of an experiments search, None when the connection itself is refused."""
        try:
            return requests.get(f"{scheme}://127.0.0.1:{self.tracking_port}{SEARCH}", auth=auth, headers=headers,
                                verify=str(self.cert), timeout=30).status_code
        except requests.exceptions.ConnectionError:
            return None

    def wait_until_up(self, label: str, seconds: float = 90) -> None:
        deadline = time.time() + seconds
        while time.time() < deadline and self.processes[label].poll() is None:
            try:
                if requests.get(f"{self.uri}/health", verify=str(self.cert), timeout=2).status_code == 200:
                    return
            except requests.exceptions.ConnectionError:
                time.sleep(0.2)
        self.stop()
        raise AssertionError(f"the {label} did not start:\n{self.outputs[label][-3000:]}")

    def stop(self) -> None:
        """Ctrl-C for whatever still runs (SIGINT to its process group, as a terminal sends it),
        and a second one after a second, which makes uvicorn stop waiting for clients' idle
        connections; everything's output kept."""
        running = {label: p for label, p in self.processes.items() if not p.stdout.closed}
        for signum, seconds in ((signal.SIGINT, 1), (signal.SIGINT, 10), (signal.SIGKILL, 10)):
            for process in running.values():
                if process.poll() is None:
                    try:
                        os.killpg(process.pid, signum)
                    except ProcessLookupError:
                        pass  # its group ended meanwhile
            deadline = time.time() + seconds
            while time.time() < deadline and any(p.poll() is None for p in running.values()):
                time.sleep(0.1)
        for label in running:
            self.finish(label)


@pytest.fixture
def deployment(tmp_path, postgres):
    with psycopg.connect(postgres, autocommit=True) as admin:
        allowed = admin.execute("SELECT rolsuper OR (rolcreaterole AND rolcreatedb) FROM pg_roles "
                                "WHERE rolname = current_user").fetchone()[0]
    if not allowed:
        pytest.skip(f"the PostgreSQL user of {make_url(postgres).render_as_string()} may not create roles and databases")
    deployment = Deployment(tmp_path, postgres)
    try:
        yield deployment
    finally:
        deployment.stop()
        with psycopg.connect(postgres, autocommit=True) as admin:
            for name in deployment.databases:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(deployment.role)))


def _scram_verifies(verifier: str, password: str) -> bool:
    """Whether PostgreSQL's stored SCRAM-SHA-256 verifier (pg_authid.rolpassword) is of this
    password: SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey> (RFC 5802)."""
    _, parameters, keys = verifier.split("$")
    iterations, salt = parameters.split(":")
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return hashlib.sha256(client_key).digest() == base64.b64decode(keys.split(":")[0])


def _check_role(deployment: Deployment, admin_url: str) -> None:
    """The role is no superuser, has exactly the password in .pgpass, and libpq finds it there for
    the recipe's URL (which holds none). Whether the server refuses a connection without it is up
    to its pg_hba.conf: checked where the server asks for passwords, warned about where it trusts."""
    url = deployment.storage_url()
    assert make_url(url).password is None
    with psycopg.connect(url, passfile=str(deployment.pgpass)) as connection:
        assert connection.info.password == deployment.db_password  # read from .pgpass, escapes undone
    with psycopg.connect(admin_url, autocommit=True) as admin:
        flags = admin.execute("SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls FROM pg_roles "
                              "WHERE rolname = %s", [deployment.role]).fetchone()
        assert flags == (False,) * 5
        owners = admin.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = ANY(%s)",
                               [deployment.databases]).fetchall()
        assert owners == [(deployment.role,)] * 3
        try:
            verifier = admin.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", [deployment.role]).fetchone()[0]
            assert verifier.startswith("SCRAM-SHA-256$") and _scram_verifies(verifier, deployment.db_password)
        except psycopg.errors.InsufficientPrivilege:
            pass  # pg_authid is for superusers; a CREATEROLE admin cannot check the stored verifier
        empty = deployment.pgpass.with_name("empty-pgpass")
        empty.touch(mode=0o600)
        accepted = []
        for attempt in ({"passfile": str(empty)}, {"password": "not-" + deployment.db_password}):
            try:
                with psycopg.connect(url, connect_timeout=10, **attempt):
                    accepted.append(attempt)
            except psycopg.OperationalError as exc:
                assert "password" in str(exc), exc
        if accepted:  # only a `trust` line in pg_hba.conf can explain that
            trusting = admin.execute("SELECT count(*) FROM pg_hba_file_rules WHERE auth_method = 'trust'").fetchone()[0]
            assert trusting, f"PostgreSQL accepted the role without its password: {accepted}"
            warnings.warn(f"{make_url(admin_url).render_as_string()}: pg_hba.conf trusts this connection, so the refusal of a "
                          "connection without the role's password is not checked here")


def _listening_addresses(port: int) -> list:
    """The addresses a TCP port listens on, from the kernel's socket tables (Linux): each
    address is hex, in 32-bit words of the machine's byte order."""
    import ipaddress

    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                address = ipaddress.ip_address(b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)))
                found.append(getattr(address, "ipv4_mapped", None) or address)  # gRPC: ::ffff:127.0.0.1
    return found


def _command_lines_holding(passwords: list[str]) -> list[str]:
    """The command lines of every process on this machine (Linux) that hold one of the passwords."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            line = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # ended meanwhile
        found += [f"the command line of {line[:80]!r} holds password #{i}" for i, p in enumerate(passwords) if p in line]
    return found


def _places_holding(passwords: list[str], deployment: Deployment, files: list[Path], runs) -> list[str]:
    """Every step's and server's output, the files, every MLflow param and tag."""
    texts = dict(deployment.outputs)
    texts.update({str(path): path.read_text(errors="replace") for path in files})
    for run in runs:
        texts[f"run {run.info.run_id}"] = json.dumps([run.data.params, run.data.tags])
    return [f"{where} holds password #{i}" for where, text in texts.items() for i, p in enumerate(passwords) if p in text]


@pytest.mark.faults(scenario="strangers on the network of the multi-machine recipe")
def test_the_secure_recipe_refuses_strangers_and_its_workers_log_every_trial(
        deployment, tracked, tmp_path, raw_params, postgres, fault, monkeypatch):
    d = deployment
    raw_params["mlflow"]["experiment"] = f"secure-{uuid.uuid4().hex[:8]}"
    raw_params["tune"].update(n_trials=3, max_epochs=1, startup_trials=1)
    params_path = write_params(tmp_path / "params.yaml", raw_params)

    d.run("database", SINERNN_DB_ADMIN_URL=postgres, SINERNN_DB_PASSWORD=d.db_password)
    d.run("pgpass", SINERNN_DB_PASSWORD=d.db_password)
    assert stat.S_IMODE(d.pgpass.stat().st_mode) == 0o600
    d.run("tls-cert")
    d.start("tracking server", "tracking-server", MLFLOW_AUTH_ADMIN_PASSWORD=d.admin_password)
    proxy = d.start("storage proxy", "storage-proxy", "--params", str(params_path))
    params = parse_params(raw_params)
    npz = tmp_path / "data/processed/clean.npz"
    generate_job(params, "clean", npz)  # what `dvc repro generate` gives every machine
    assert "storage proxy" in proxy.stdout.readline()
    deadline = time.time() + 30  # the proxy prints its line just before it binds the port
    while not (listening := _listening_addresses(d.proxy_port)) and time.time() < deadline:
        time.sleep(0.2)
    # the proxy, unauthenticated, is for this machine only
    assert listening and all(address.is_loopback for address in listening), listening
    d.wait_until_up("tracking server")

    admin = ("admin", d.admin_password)
    assert d.status(auth=admin) == 200  # the control: the server answers a valid login
    # The wrong password is the admin password that MLflow once shipped.
    strangers = {"no password": d.status(), "a wrong password": d.status(auth=("admin", "password1234")),
                 "plain HTTP": d.status(auth=admin, scheme="http"),
                 "another Host header": d.status(auth=admin, Host=f"evil.example:{d.tracking_port}")}
    served_to_strangers = fault.record("requests served without a valid password, TLS and host",
                                       sum(code == 200 for code in strangers.values()))
    assert served_to_strangers == 0, strangers
    assert strangers == {"no password": 401, "a wrong password": 401, "plain HTTP": None, "another Host header": 403}
    _check_role(d, postgres)

    d.run("tracking-user", MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=d.admin_password,
          SINERNN_MLFLOW_PASSWORD=d.worker_password)
    worker = {"MLFLOW_TRACKING_USERNAME": "sinernn", "MLFLOW_TRACKING_PASSWORD": d.worker_password}
    tune = ["--params", str(params_path), "--dataset", "clean", "--arch", "rnn", "--data", str(npz)]
    d.start("worker on PostgreSQL", "worker", *tune, "--out", str(tmp_path / "direct.json"), cwd=tmp_path, **worker)
    d.start("worker on the proxy", "worker", *tune, "--out", str(tmp_path / "proxied.json"),
            "--storage", f"grpc://127.0.0.1:{d.proxy_port}", cwd=tmp_path, **worker)
    command_lines = set()
    while any(d.processes[label].poll() is None for label in ("worker on PostgreSQL", "worker on the proxy")):
        command_lines.update(_command_lines_holding([d.db_password, d.admin_password, d.worker_password]))
        time.sleep(0.5)
    for label in ("worker on PostgreSQL", "worker on the proxy"):
        assert d.finish(label) == 0, d.outputs[label][-3000:]

    storage = open_storage(d.storage_url(), 1, 1)
    name = study_name(params, "clean", "rnn", json.loads(npz.with_suffix(".json").read_text())["sha256"])
    trials = optuna.load_study(study_name=name, storage=storage).trials
    finished = {t.number for t in trials if t.state.name in ("COMPLETE", "PRUNED")}
    assert len(finished) == 3
    for key, value in {**worker, "MLFLOW_TRACKING_SERVER_CERT_PATH": str(d.cert)}.items():
        monkeypatch.setenv(key, value)
    client = MlflowClient(d.uri)
    experiment = client.get_experiment_by_name(raw_params["mlflow"]["experiment"])
    runs = client.search_runs([experiment.experiment_id], f"tags.optuna_study = '{name}'", max_results=1000)
    logged = {int(r.data.tags["optuna_trial"]) for r in runs if "optuna_trial" in r.data.tags}
    assert fault.record("trials with no MLflow run on the server", len(finished - logged)) == 0
    assert logged <= {t.number for t in trials}
    assert len([r for r in runs if "optuna_trial" not in r.data.tags]) == 1  # both workers under one study run

    # The admin's password changed with the recipe's own step: the old one no longer opens it.
    d.run("tracking-user", "admin", MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=d.admin_password,
          SINERNN_MLFLOW_PASSWORD=d.new_admin_password)
    assert (d.status(auth=admin), d.status(auth=("admin", d.new_admin_password))) == (401, 200)

    d.stop()
    every_secret = [d.db_password, d.admin_password, d.worker_password, d.new_admin_password,
                    (d.config / "flask-secret-key").read_text().strip()]
    files = [params_path, tmp_path / "direct.json", tmp_path / "proxied.json", d.config / "mlflow-auth.ini"]
    leaks = sorted(command_lines) + _places_holding(every_secret, d, files, runs)
    assert fault.record("places holding a password", len(leaks)) == 0, leaks


@pytest.mark.parametrize("host, warned", [("127.0.0.1", False), ("localhost", False), ("::1", False),
                                          ("0.0.0.0", True), ("10.0.0.5", True), ("proxy.example", True)])
def test_the_storage_proxy_warns_when_it_listens_beyond_this_machine(host, warned, raw_params, tmp_path, monkeypatch, capsys):
    served = []
    monkeypatch.setattr(tune_storage, "serve_proxy", lambda *args: served.append(args))
    path = write_params(tmp_path / "params.yaml", raw_params)
    assert cli.main(["storage-proxy", "--params", str(path), "--storage", "sqlite:///studies.db", "--host", host]) == 0
    assert served and served[0][1] == host  # it still serves
    err = capsys.readouterr().err
    assert ("no authentication" in err) == warned and len(err.splitlines()) == int(warned)
