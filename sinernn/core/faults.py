"""Fault injection for the kill tests: SIGKILL at a named point, between two writes.

    SINERNN_FAILPOINT=<name>    the point to die at; SINERNN_RETRAIN_PID, set by `sinernn retrain`
                                for its children, is killed too, as a crash of the machine would.

Points: pipeline, apply, registered, promoted, recorded (see sinernn/jobs/retrain.py); file-written
(before a file's rename), folder-written and folder-swapped (before and after a folder's swap; see
sinernn/core/files.py). Unset, a point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal


def failpoint(name: str) -> None:
    if os.environ.get("SINERNN_FAILPOINT") != name:
        return
    retrain_pid = int(os.environ.get("SINERNN_RETRAIN_PID") or os.getpid())
    if retrain_pid != os.getpid():
        os.kill(retrain_pid, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
