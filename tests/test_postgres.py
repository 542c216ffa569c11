"""Where the distributed tests get PostgreSQL: the three sources of sinernn/tune/postgres.py, and the
throwaway server exercised for real with the local server out of reach."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from conftest import ROOT
from sqlalchemy.engine import make_url

from sinernn.tune import postgres

CLOSED = "postgresql://postgres@127.0.0.1:9/test"  # nothing listens on port 9


def test_an_explicit_url_wins_and_an_unreachable_local_server_means_a_throwaway(monkeypatch):
    monkeypatch.setenv("SINERNN_TEST_POSTGRES", "postgresql://someone@db.invalid/x")
    assert postgres.source() == ("SINERNN_TEST_POSTGRES", "postgresql://someone@db.invalid/x")
    monkeypatch.delenv("SINERNN_TEST_POSTGRES")
    monkeypatch.setenv("SINERNN_TEST_POSTGRES_LOCAL", CLOSED)
    assert postgres.source() == (postgres.THROWAWAY, None)


def test_another_database_of_the_same_server():
    assert postgres.with_database("postgresql://postgres@127.0.0.1:5432/test", "mlflow") == \
        "postgresql://postgres@127.0.0.1:5432/mlflow"
    socket_url = "postgresql://postgres:@/postgres?host=/tmp/sinernn-pg-x"  # the throwaway server's form
    moved = make_url(postgres.with_database(socket_url, "test"))
    assert (moved.database, moved.query["host"], moved.username) == ("test", "/tmp/sinernn-pg-x", "postgres")


def _servers() -> set[str]:
    """Command lines of running throwaway servers (their data folders are named sinernn-pg-*)."""
    listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return {line for line in listing.splitlines() if "sinernn-pg-" in line and "postgres" in line}


def test_the_distributed_tests_pass_on_a_throwaway_server_and_leave_none_behind(tmp_path):
    """The PostgreSQL tests as on a machine without a server: no SINERNN_TEST_POSTGRES, the local
    probe pointed at a closed port. They start their own server, pass, and stop and delete it.
    (The inner run has a temporary folder of its own, so servers of other tests do not count; a
    short one: the server's socket lives in it, and a socket path must stay under ~100 bytes.)"""
    scratch = Path(tempfile.mkdtemp(prefix="sinernn-t-"))
    env = {k: v for k, v in os.environ.items() if k != "SINERNN_TEST_POSTGRES"}
    env.update(SINERNN_TEST_POSTGRES_LOCAL=CLOSED, TMPDIR=str(scratch),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}")
    inner = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "inner"),
         "tests/test_tune_distributed.py::test_local_workers_share_a_postgres_study"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = inner.communicate(timeout=600)
    finally:
        if inner.poll() is None:  # a hung run: stop it whole, its server with it
            os.killpg(inner.pid, signal.SIGTERM)
            inner.wait(timeout=60)
    assert inner.returncode == 0, output[-3000:]
    assert "1 passed" in output
    assert f"PostgreSQL for the distributed tests: {postgres.THROWAWAY}" in output  # what the fixture used
    assert not [line for line in _servers() if str(scratch) in line]  # stopped
    assert not list(scratch.glob("sinernn-pg-*"))  # and its cluster deleted
    shutil.rmtree(scratch, ignore_errors=True)
