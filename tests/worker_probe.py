"""A command for the resident worker's tests (tests/test_parallel.py): what a forked copy sees."""

from __future__ import annotations

import json
import os
import signal
import sys
import time

VERSION = 1  # the test edits this line between two runs: the copy must import the file afresh


def main(argv: list[str]) -> int:
    action = argv[0]
    if action == "describe":
        print(json.dumps({"cwd": os.getcwd(), "argv": argv, "sys_argv": sys.argv, "probe": os.environ.get("PROBE"),
                          "version": VERSION, "pid": os.getpid()}))
        print("to stderr", file=sys.stderr)
        return int(argv[1])
    if action == "threads":  # what torch took from this stage's environment
        import torch

        print(torch.get_num_threads())
        return 0
    if action == "seeds":  # a new process's random states: drawn at random, not the worker's
        import random

        import numpy
        import torch

        print(json.dumps([torch.initial_seed(), int(numpy.random.randint(1 << 30)), random.random()]))
        return 0
    if action == "wait-with-child":  # a process of its own under the copy, as tune's workers are
        import subprocess

        child = subprocess.Popen(["sleep", "60"])
        print(child.pid, flush=True)
        try:
            child.wait()
        except KeyboardInterrupt:
            return 130
        return 0
    if action == "kill-myself":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "wait":  # until interrupted; says where it is first (inside the try: the test
        try:                # interrupts as soon as it has read the line)
            print(os.getpid(), flush=True)
            time.sleep(60)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            return 130
    return 0
