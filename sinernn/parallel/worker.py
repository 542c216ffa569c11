"""The resident worker of `sinernn repro`: the heavy imports paid once, each stage a fork of them.

A stage's own process costs about 5 s before it does any work: `import torch`, torch._dynamo (which
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
import atexit
import ctypes
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
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, TextIO

from sinernn.parallel.handoff import MESSAGE_SIZE

# What stages import that costs seconds: loaded once here, shared by every fork. (Order: torch
# before MLflow, which imports it when present.)
PRELOAD = (
    "numpy", "torch", "torch.nn", "torch.optim", "torch._dynamo", "torch.export", "sklearn.linear_model",
    "pydantic", "yaml", "tqdm", "matplotlib", "matplotlib.figure", "pandas", "sqlalchemy", "alembic",
    "mlflow", "mlflow.pyfunc", "mlflow.models", "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store", "optuna",
)
PR_SET_PDEATHSIG = 1
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
def resident_worker(root: Path, env: dict[str, str], enabled: bool, out: TextIO) -> Iterator[str | None]:
    """Start the worker for one run of the runner and yield its socket; None when it is off or did not start."""
    if not enabled:
        yield None
        return
    folder = tempfile.mkdtemp(prefix="sinernn-worker-")  # mode 0700: this user's processes only
    address = os.path.join(folder, "socket")
    own_env = {k: v for k, v in env.items() if k != "OMP_NUM_THREADS"}  # each copy applies its stage's
    process = subprocess.Popen([sys.executable, "-m", "sinernn.parallel.worker", "--socket", address,
                                "--parent", str(os.getpid())], cwd=root, env=own_env, stdout=subprocess.PIPE,
                               stdin=subprocess.DEVNULL, text=True)
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


def die_with_parent(signum: int = signal.SIGKILL) -> None:
    """Be sent `signum` when the process that started this one exits (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum)
    except (OSError, AttributeError):
        pass


def serve(address: str, parent: int) -> None:
    die_with_parent(signal.SIGTERM)
    if os.getppid() != parent:  # the runner was gone before prctl took effect
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches each stage through its own process
    preload()
    if threading.active_count() > 1:
        names = ", ".join(t.name for t in threading.enumerate() if t is not threading.main_thread())
        print(f"sinernn: worker not started: importing left threads running ({names}); forking is unsafe",
              file=sys.stderr)
        sys.exit(1)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(address)
    listener.listen(64)
    copies: dict[int, socket.socket] = {}  # pid -> the connection of the stage it runs for

    def stop(signum, frame):
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
                _accept(listener, selector, copies)
            else:  # the stage process closed its end: it was killed; so is its copy
                pid = key.data
                if copies.get(pid) is key.fileobj and not key.fileobj.recv(1):
                    _kill_group(pid)
                    selector.unregister(key.fileobj)
        _reap(selector, copies)


def _accept(listener: socket.socket, selector, copies: dict[int, socket.socket]) -> None:
    connection, _ = listener.accept()
    _, uid, _ = struct.unpack("3i", connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    try:
        message, fds, _, _ = socket.recv_fds(connection, MESSAGE_SIZE, 3)
        request = json.loads(message)
    except (OSError, ValueError):
        connection.close()
        return
    refusal = ("another user" if uid != os.getuid() else "another interpreter"
               if os.path.realpath(request.get("executable", "")) != os.path.realpath(sys.executable)
               else "" if len(fds) == 3 else "no standard streams")
    if refusal:
        _reply(connection, {"refused": refusal})
        for fd in fds:
            os.close(fd)
        connection.close()
        return
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _become(request, fds, [listener, *copies.values(), connection])
    for fd in fds:
        os.close(fd)
    copies[pid] = connection
    _reply(connection, {"pid": pid})
    selector.register(connection, selectors.EVENT_READ, pid)


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


def _become(request: dict, fds: list[int], sockets: list[socket.socket]) -> None:
    """In the forked copy: take on the stage's streams, folder, environment and arguments, run
    the command as `sinernn.cli` would, and exit with its code. Never returns."""
    code = 70
    try:
        os.setsid()
        die_with_parent()
        for sock in sockets:
            sock.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.path[:] = request["path"]
        sys.argv[:] = request["sys_argv"]
        for name in [name for name in sys.modules if name == "sinernn" or name.startswith("sinernn.")]:
            del sys.modules[name]  # the project's code comes from disk, as it is now
        importlib.invalidate_caches()
        _as_a_new_process()
        _standard_streams()
        module, _, function = request["entry"].partition(":")
        code = getattr(importlib.import_module(module), function)(request["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    except BaseException:
        traceback.print_exc()
    finally:
        # As the interpreter ends: wait for non-daemon threads, run the exit handlers, flush.
        try:
            threading._shutdown()
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _as_a_new_process() -> None:
    """Undo what a preloaded package fixed when the worker imported it, from the worker's
    environment and not the stage's: torch's thread count (OMP_NUM_THREADS, read at import) and
    its global random seed (random in every new process; here it would be the worker's, shared)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    threads = os.environ.get("OMP_NUM_THREADS", "")
    torch.set_num_threads(int(threads) if threads.isdigit() and int(threads) > 0 else DEFAULT_THREADS)
    torch.seed()


def _standard_streams() -> None:
    """New sys.stdin/stdout/stderr on fds 0-2, buffered as Python buffers a new process's."""
    encoding = sys.stdout.encoding
    sys.stdin = sys.__stdin__ = open(0, "r", encoding=encoding, closefd=False)
    sys.stdout = sys.__stdout__ = open(1, "w", buffering=1 if os.isatty(1) else -1, encoding=encoding,
                                       closefd=False)
    sys.stderr = sys.__stderr__ = open(2, "w", buffering=1, encoding=encoding, errors="backslashreplace",
                                       closefd=False)


def main() -> None:
    parser = argparse.ArgumentParser(description="The resident worker of `sinernn repro` (started by it).")
    parser.add_argument("--socket", required=True, help="the Unix socket to listen on")
    parser.add_argument("--parent", type=int, required=True, help="the runner's pid: the worker stops with it")
    args = parser.parse_args()
    serve(args.socket, args.parent)


if __name__ == "__main__":
    main()
