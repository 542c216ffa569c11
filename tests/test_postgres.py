"""Where the distributed tests get PostgreSQL: the three sources of sinernn/postgres.py, and the
throwaway server exercised for real with the local server out of reach."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from sqlalchemy.engine import make_url

from conftest import ROOT
from sinernn import postgres

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
    probe pointed at a closed port. They start their own server, pass, and stop it."""
    before, folders = _servers(), set(Path(tempfile.gettempdir()).glob("sinernn-pg-*"))
    env = {k: v for k, v in os.environ.items() if k != "SINERNN_TEST_POSTGRES"}
    env.update(SINERNN_TEST_POSTGRES_LOCAL=CLOSED, PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "inner"),
         "tests/test_tune_distributed.py::test_local_workers_share_a_postgres_study"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "1 passed" in run.stdout
    assert f"PostgreSQL for the distributed tests: {postgres.THROWAWAY}" in run.stdout
    assert _servers() == before  # stopped
    assert set(Path(tempfile.gettempdir()).glob("sinernn-pg-*")) == folders  # and its cluster deleted
