"""The stage side of the resident worker: hand this command to it, or say that none is there.

`sinernn repro` starts one worker process (worker.py) that has already imported torch, MLflow and
the other heavy packages, and passes its socket to every stage as $SINERNN_WORKER. A stage script
calls `sinernn.cli.main`, which comes here first: the command line, working folder, environment,
module search path and the three standard streams go to the worker, which forks a copy of itself
to run the command and answers with the copy's pid, then with its exit status. This process waits,
forwards Ctrl-C and termination to the copy, and ends the way the copy ended (its exit code, or
the same signal), so DVC sees what it would have seen had the command run here.

Only the standard library is imported here: this is the whole cost of a stage's own process.
No worker (the variable unset, the socket gone or another user's, the worker refusing: another
interpreter, say): `run_in_worker` returns None and the command runs in this process as usual. Once
the request is sent, the command never runs here: a worker that dies is an error (exit 70).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys

WORKER_ENV = "SINERNN_WORKER"  # the worker's socket, set by `sinernn repro` for its stages
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
MESSAGE_SIZE = 1 << 20  # one request: argv, environment and sys.path (SOCK_SEQPACKET keeps it whole)


def request(entry: str, argv: list[str]) -> dict:
    """What the copy needs to run `entry(argv)` as this process would have run it."""
    return {"entry": entry, "argv": argv, "sys_argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ),
            "path": sys.path, "executable": sys.executable, "prefix": sys.prefix}


def run_in_worker(entry: str, argv: list[str]) -> int | None:
    """The exit code of `entry(argv)` run by the worker, or None when no worker takes it.
    entry: "module:function", the function that runs a command in-process and returns its code."""
    address = os.environ.get(WORKER_ENV)
    if not address or not _streams_open():
        return None
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        connection.connect(address)
        if _peer_uid(connection) != os.getuid():  # someone else's socket: it gets neither environment nor streams
            raise OSError("the worker's socket belongs to another user")
        socket.send_fds(connection, [json.dumps(request(entry, argv)).encode()], [0, 1, 2])
    except OSError:
        connection.close()
        return None  # nothing was sent: run here
    try:
        reply = json.loads(connection.recv(MESSAGE_SIZE))
    except (OSError, ValueError):
        reply = {}
    if "refused" in reply:  # another interpreter, say: nothing was started, run here
        connection.close()
        return None
    if "pid" not in reply:  # it may have started the command: never run it a second time
        connection.close()
        return _worker_gone()
    return _wait(connection, reply["pid"])


def _peer_uid(connection: socket.socket) -> int:
    return struct.unpack("3i", connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))[1]


def _worker_gone() -> int:
    print("sinernn: error: the resident worker of `sinernn repro` stopped while running this stage; "
          "run it again", file=sys.stderr)
    return 70


def _streams_open() -> bool:
    try:
        for fd in (0, 1, 2):
            os.fstat(fd)
    except OSError:
        return False
    return True


def _wait(connection: socket.socket, pid: int) -> int:
    def forward(signum, frame):  # to the copy's process group (it leads one): its children too
        for send in (os.killpg, os.kill):  # (kill: the copy has not made its group yet)
            try:
                return send(pid, signum)
            except ProcessLookupError:
                continue

    for signum in FORWARDED:
        signal.signal(signum, forward)
    try:
        answer = connection.recv(MESSAGE_SIZE)
    finally:
        connection.close()
    if not answer:  # the worker died: its copies die with it (PR_SET_PDEATHSIG)
        return _worker_gone()
    status = json.loads(answer)["status"]
    if os.WIFSIGNALED(status):  # end the same way, so that DVC reports the same signal
        signum = os.WTERMSIG(status)
        for default in {*FORWARDED, signum} - {signal.SIGKILL, signal.SIGSTOP}:
            signal.signal(default, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return 128 + signum
    return os.waitstatus_to_exitcode(status)
