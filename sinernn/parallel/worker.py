"""The resident worker of `sinernn repro`: the heavy imports paid once, each stage a fork of them.

A stage's own process pays its imports before it does any work: `import torch`, torch._dynamo (which
the first optimizer step and torch.export import), MLflow and its SQLite store, scikit-learn
(docs/performance.md). `sinernn repro` starts this process once per run; it imports those packages,
then listens on a Unix socket in a private folder (mode 0700, and only this user's processes are
served). A stage command hands itself over (handoff.py); the worker forks, and the copy becomes
that command:

    stage process (DVC's)          worker                          forked copy
    entry, argv, cwd, env,    -->  fork  ------------------------>  setsid; the stage's streams,
    sys.path + its 3 streams       reply: the copy's pid            folder, environment, argv;
    forwards Ctrl-C, SIGTERM  ---------------------------------->   sinernn.* imported afresh;
    exits like the copy       <--  reply: its exit status      <--  entry(argv) (sinernn.cli's), exits

What is preloaded is third-party code only: every `sinernn` module is imported by the copy from
disk, as a new process would, so an edited module takes effect in the next stage and DVC's record
of the code a stage ran stays true. The worker is single-threaded (a fork copies one thread; a
lock held by another would hang the copy), refuses to serve if importing left a thread running,
and dies with the runner that started it; each copy dies with the worker (PR_SET_PDEATHSIG) and is
killed, with its process group, when the stage process that handed it over disappears.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, TextIO

from sinernn.parallel.handoff import FORWARDED, MESSAGE_SIZE
from sinernn.parallel.stage_copy import become, die_with_parent

# What stages import that costs seconds: loaded once here, shared by every fork. (Order: torch
# before MLflow, which imports it when present.)
PRELOAD = (
    "numpy", "torch", "torch.nn", "torch.optim", "torch._dynamo", "torch.export", "sklearn.linear_model",
    "pydantic", "yaml", "tqdm", "matplotlib", "matplotlib.figure", "pandas", "sqlalchemy", "alembic",
    "mlflow", "mlflow.pyfunc", "mlflow.models", "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store", "optuna",
)
CLI_ENTRY = "sinernn.cli:main_in_process"  # what a stage's `sinernn.cli.main` hands over
DEFAULT_THREADS = 1  # torch's thread count with no OMP_NUM_THREADS, taken after the preload


def preload() -> None:
    global DEFAULT_THREADS
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # a stage that needs it imports it (and fails) itself
    if "torch" in sys.modules:  # started without OMP_NUM_THREADS: a new process's own default
        DEFAULT_THREADS = sys.modules["torch"].get_num_threads()


@contextmanager
def resident_worker(root: Path, env: dict[str, str], enabled: bool, out: TextIO,
                    entries: tuple[str, ...] = (CLI_ENTRY,)) -> Iterator[str | None]:
    """Start the worker for one run of the runner and yield its socket; None when it is off or did not start.
    entries: what stages may ask it to run (the sinernn command line)."""
    if not enabled:
        yield None
        return
    folder = tempfile.mkdtemp(prefix="sinernn-worker-")  # mode 0700: this user's processes only
    address = os.path.join(folder, "socket")
    own_env = {k: v for k, v in env.items() if k != "OMP_NUM_THREADS"}  # each copy applies its stage's
    command = [sys.executable, "-m", "sinernn.parallel.worker", "--socket", address, "--parent", str(os.getpid()),
               *(f"--entry={entry}" for entry in entries)]
    process = subprocess.Popen(command, cwd=root, env=own_env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                               text=True)
    try:
        ready = process.stdout.readline().strip() == "ready"
        if not ready:
            print("sinernn repro: the resident worker did not start; every stage imports its packages itself",
                  file=out, flush=True)
        yield address if ready else None
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()
        shutil.rmtree(folder, ignore_errors=True)


def serve(address: str, parent: int, entries: list[str]) -> None:
    """Serve until the runner stops: each request runs one of `entries` ("module:function") in a copy."""
    die_with_parent(signal.SIGTERM)
    if os.getppid() != parent:  # the runner was gone before prctl took effect
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches each stage through its own process
    preload()
    # Python threads hold Python's locks: a fork copies none of them running. (Native threads:
    # numpy's OpenBLAS and jemalloc start idle pools at import, and reset them in a forked child.)
    if threading.active_count() > 1:
        names = ", ".join(t.name for t in threading.enumerate() if t is not threading.main_thread())
        print(f"sinernn: worker not started: importing left threads running ({names}); forking is unsafe",
              file=sys.stderr)
        sys.exit(1)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(address)
    listener.listen(64)
    worker = os.getpid()
    copies: dict[int, socket.socket] = {}  # pid -> the connection of the stage it runs for

    def stop(signum, frame):
        if os.getpid() != worker:  # a copy between its fork and its own handlers: not the worker's to stop
            return
        for pid in copies:
            _kill_group(pid)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select(timeout=0.05):
            if key.fileobj is listener:
                try:
                    _accept(listener, selector, copies, entries)
                except Exception as exc:  # one bad request must not stop the stages of the others
                    print(f"sinernn: worker: a request failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            else:
                _hung_up(key, selector, copies)
        _reap(selector, copies)


def _hung_up(key, selector, copies: dict[int, socket.socket]) -> None:
    """The stage process closed its end (or reset it): it was killed, and so is its copy."""
    try:
        gone = not key.fileobj.recv(1)
    except OSError:
        gone = True
    if gone:
        if copies.get(key.data) is key.fileobj:
            _kill_group(key.data)
        selector.unregister(key.fileobj)


def _accept(listener: socket.socket, selector, copies: dict[int, socket.socket], entries: list[str]) -> None:
    connection, _ = listener.accept()
    connection.settimeout(5)  # a client that connects and says nothing must not hold the worker up
    try:
        message, fds, _, _ = socket.recv_fds(connection, MESSAGE_SIZE, 3)
        request = json.loads(message)
    except (OSError, ValueError):
        _reply(connection, {"refused": "unreadable request"})
        connection.close()
        return
    refusal = _refusal(connection, request, fds, entries)
    if refusal:
        _reply(connection, {"refused": refusal})
        for fd in fds:
            os.close(fd)
        connection.close()
        return
    sys.stdout.flush()
    sys.stderr.flush()
    # The copy runs the worker's signal handlers until it installs its own: block the signals a
    # stage process forwards until then (they stay pending and reach the copy's own handlers).
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    try:
        pid = os.fork()
    except OSError as exc:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        _reply(connection, {"refused": f"fork failed: {exc}"})
        connection.close()
        return
    if pid == 0:
        become(request, fds, [listener, *copies.values(), connection], blocked, DEFAULT_THREADS)
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    for fd in fds:
        os.close(fd)
    copies[pid] = connection
    connection.settimeout(None)
    _reply(connection, {"pid": pid})
    selector.register(connection, selectors.EVENT_READ, pid)


def _refusal(connection: socket.socket, request, fds: list[int], entries: list[str]) -> str:
    """Why this request is not run here ("" when it is): only this user's processes, this virtual
    environment's interpreter, and the entry points the runner named."""
    _, uid, _ = struct.unpack("3i", connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    if uid != os.getuid():
        return "another user"
    if not isinstance(request, dict) or len(fds) != 3:
        return "not a request with the three standard streams"
    if (os.path.realpath(str(request.get("executable"))) != os.path.realpath(sys.executable)
            or os.path.realpath(str(request.get("prefix"))) != os.path.realpath(sys.prefix)):
        return "another interpreter or environment"
    if request.get("entry") not in entries:
        return f"entry {request.get('entry')!r} is not one the runner named"
    return ""


def _reap(selector, copies: dict[int, socket.socket]) -> None:
    while copies:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        connection = copies.pop(pid, None)
        if connection is None:
            continue
        _reply(connection, {"status": status})
        if selector.get_map().get(connection.fileno()) is not None:
            selector.unregister(connection)
        connection.close()


def _reply(connection: socket.socket, message: dict) -> None:
    try:
        connection.send(json.dumps(message).encode())
    except OSError:
        pass  # the stage process is gone; its copy is killed when its end of the socket closes


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)  # the copy leads its own group: its children go too
    except (ProcessLookupError, PermissionError):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description="The resident worker of `sinernn repro` (started by it).")
    parser.add_argument("--socket", required=True, help="the Unix socket to listen on")
    parser.add_argument("--parent", type=int, required=True, help="the runner's pid: the worker stops with it")
    parser.add_argument("--entry", action="append", required=True, metavar="MODULE:FUNCTION",
                        help="what a stage may ask the worker to run (repeatable)")
    args = parser.parse_args()
    serve(args.socket, args.parent, args.entry)


if __name__ == "__main__":
    main()
