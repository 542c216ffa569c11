"""Where studies live: SQLite (WAL) under optuna/, PostgreSQL, or Optuna's gRPC proxy.

An RDBStorage, because heartbeats (a killed worker's trial failed and retried instead of staying
RUNNING for ever) exist only there.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from sinernn.core.config import Params
from sinernn.core.errors import TuneError
from sinernn.core.secrets import check_storage_url, redact_in, redact_url

STORAGE_ENV = "SINERNN_OPTUNA_STORAGE"


def storage_url(params: Params, cli_storage: str | None, root: Path) -> str:
    """--storage, then $SINERNN_OPTUNA_STORAGE, then tune.storage, then SQLite under the project.

    A relative SQLite path is taken from the project root (DVC_ROOT), not the working folder:
    `dvc exp run --temp` runs stages in a copy that is deleted afterwards, study included."""
    url = cli_storage or os.environ.get(STORAGE_ENV) or params.tune.storage
    if not url:
        return f"sqlite:///{root / 'optuna' / 'studies.db'}"
    where = "--storage" if cli_storage else f"${STORAGE_ENV}" if os.environ.get(STORAGE_ENV) else "tune.storage"
    try:
        check_storage_url(url)
    except ValueError as exc:
        raise TuneError(f"{where}: {exc}") from None
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_absolute():
        url = f"sqlite:///{root / url.removeprefix('sqlite:///')}"
    return url


def quiet_optuna():
    """Import optuna without its notices: heartbeats are 'experimental' since v2.8 and we rely on
    them knowingly; per-trial INFO lines would drown the progress output."""
    import warnings

    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def open_storage(url: str, heartbeat_interval: int, max_retry: int, lock_wait: int = 60):
    """The study storage behind `url`. lock_wait: seconds a SQLite writer waits for the lock."""
    optuna = quiet_optuna()
    if url.startswith("grpc://"):
        # Optuna's gRPC proxy (`sinernn storage-proxy`): many workers, few database connections.
        host, _, port = url.removeprefix("grpc://").partition(":")
        try:
            return optuna.storages.GrpcStorageProxy(host=host, port=int(port or 13000))
        except Exception as exc:
            raise TuneError(f"cannot reach the Optuna storage proxy {url} ({type(exc).__name__}: {str(exc)[:200]})") from None

    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        # WAL lets readers and one writer work at once; it is a property of the file, set once.
        try:
            with sqlite3.connect(path, timeout=lock_wait) as connection:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA schema_version").fetchone()  # reads the header: corrupt?
        except sqlite3.DatabaseError as exc:
            if getattr(exc, "sqlite_errorname", "") in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
                files = f"{path} {path}-wal {path}-shm"  # the journal belongs to the database
                raise TuneError(f"{path} is corrupt ({exc}): restore it from a backup, or move it aside "
                                f"(mkdir -p {path}.corrupt && mv {files} {path}.corrupt/) and re-run to start "
                                "the studies afresh") from None
            raise TuneError(f"cannot open the Optuna storage {path} ({exc})") from None
        engine_kwargs = {"connect_args": {"timeout": lock_wait}}  # wait for a lock instead of failing
    else:
        engine_kwargs = {"pool_pre_ping": True}
    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period(url, heartbeat_interval, lock_wait),
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry),
            )
        except Exception as exc:
            # Two processes opening an empty database at the same instant both create Optuna's
            # tables; the loser's INSERT of the schema version fails. The tables exist by then.
            if _lost_schema_race(exc) and attempt + 1 < SCHEMA_ATTEMPTS:
                time.sleep(0.5 * (attempt + 1))
                continue
            reason = redact_in(f"{type(exc).__name__}: {exc}", url)[:200]
            raise TuneError(f"cannot open the Optuna storage {redact_url(url)} ({reason})") from None


SCHEMA_ATTEMPTS = 5


def _lost_schema_race(exc: Exception) -> bool:
    text = str(exc)
    return any(sign in text for sign in ("UNIQUE constraint failed", "duplicate key value", "already exists"))


def grace_period(url: str, heartbeat_interval: int, lock_wait: int) -> int:
    """How old a heartbeat may get before its trial counts as dead. A live worker's heartbeat
    write can wait `lock_wait` seconds for the SQLite lock, so on SQLite the grace covers that."""
    return 2 * heartbeat_interval + (lock_wait if url.startswith("sqlite:") else 0)


def serve_proxy(url: str, host: str, port: int, heartbeat_interval: int, max_retry: int, lock_wait: int) -> None:
    """Run Optuna's gRPC storage proxy in front of `url` until interrupted."""
    optuna = quiet_optuna()
    storage = open_storage(url, heartbeat_interval, max_retry, lock_wait)
    print(f"Optuna storage proxy for {redact_url(url)} on grpc://{host}:{port} (Ctrl-C stops it)", flush=True)
    optuna.storages.run_grpc_proxy_server(storage, host=host, port=port)

