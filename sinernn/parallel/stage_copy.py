"""The worker's forked copy becomes the stage's process: its streams, folder, environment,
arguments and module search path; the project's code imported afresh; the state a preloaded
package fixed at import set as a new process would have it; then the command, and its exit.
"""

from __future__ import annotations

import atexit
import ctypes
import importlib
import os
import random
import signal
import socket
import sys
import threading
import traceback

PR_SET_PDEATHSIG = 1


def die_with_parent(signum: int = signal.SIGKILL) -> None:
    """Be sent `signum` when the process that started this one exits (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum)
    except (OSError, AttributeError):
        pass


def become(request: dict, fds: list[int], sockets: list[socket.socket], blocked: set, default_threads: int) -> None:
    """In the forked copy: take on the stage's streams, folder, environment and arguments, run
    the command as `sinernn.cli` would, and exit with its code. Never returns."""
    code = 70
    try:
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)  # a signal sent meanwhile arrives now
        worker = os.getppid()
        os.setsid()
        die_with_parent()
        if os.getppid() != worker:  # the worker died before prctl: its stage process reports it
            os._exit(70)
        for sock in sockets:
            sock.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.path[:] = request["path"]
        sys.argv[:] = request["sys_argv"]
        for name in [name for name in sys.modules if name == "sinernn" or name.startswith("sinernn.")]:
            del sys.modules[name]  # the project's code comes from disk, as it is now
        importlib.invalidate_caches()
        _as_a_new_process(default_threads)
        _standard_streams()
        module, _, function = request["entry"].partition(":")
        code = getattr(importlib.import_module(module), function)(request["argv"])
    except SystemExit as exc:  # as the interpreter ends on it: a message is printed, and is code 1
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt:
        code = 130
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


def _as_a_new_process(default_threads: int) -> None:
    """Undo what a preloaded package fixed when the worker imported it, from the worker's
    environment and not the stage's: torch's thread count (OMP_NUM_THREADS, read at import), and
    the global random states of torch, numpy and `random` (random in every new process; here they
    would be the worker's, shared by every copy). The hash seed alone stays the worker's."""
    random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()
    torch = sys.modules.get("torch")
    if torch is None:
        return
    threads = os.environ.get("OMP_NUM_THREADS", "")
    torch.set_num_threads(int(threads) if threads.isdigit() and int(threads) > 0 else default_threads)
    torch.seed()


def _standard_streams() -> None:
    """New sys.stdin/stdout/stderr on fds 0-2, buffered as Python buffers a new process's."""
    encoding = sys.stdout.encoding
    sys.stdin = sys.__stdin__ = open(0, "r", encoding=encoding, closefd=False)
    sys.stdout = sys.__stdout__ = open(1, "w", buffering=1 if os.isatty(1) else -1, encoding=encoding,
                                       closefd=False)
    sys.stderr = sys.__stderr__ = open(2, "w", buffering=1, encoding=encoding, errors="backslashreplace",
                                       closefd=False)
