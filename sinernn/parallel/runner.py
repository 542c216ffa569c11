"""`sinernn repro -j N`: the DVC pipeline with every stage whose inputs are ready started at once.

Each stage is still a DVC stage: the runner starts `dvc --wait-for-lock repro --single-item STAGE`
for it, so DVC checks it, runs it (or restores it from the run cache), and writes its entry of
dvc.lock exactly as a serial `dvc repro` does. DVC releases its repository lock while a command
runs and takes it again to record the result; `--wait-for-lock` makes the stages queue for it
instead of failing with "Unable to acquire lock". The runner only decides what starts when:

    dvc status  ->  the changed stages and everything after them (DVC skips those that turn out the same)
    ready       =   every stage it reads from has finished
    start       ->  up to N at a time, the ready stage with the longest path to the end first
    a failure   ->  its descendants never start; nothing new starts (unless --keep-going); the
                    stages already running finish and are recorded; the exit code is the stage's
    Ctrl-C      ->  passed on to every running stage, which stops without writing (exit 130)

Every stage gets its own process group and log file (.dvc/tmp/sinernn/logs/), so output never
interleaves: a line when it starts, a line with its time and its own summary when it ends, and the
end of its log when it fails. Stage commands hand themselves to the resident worker (worker.py).
Why this and not an existing engine: docs/performance.md.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from sinernn.core.errors import SinernnError
from sinernn.parallel import graph, record
from sinernn.parallel.handoff import WORKER_ENV
from sinernn.parallel.stage_log import summary, tail
from sinernn.parallel.worker import resident_worker
from sinernn.parallel.schedule import remaining_path

POLL_SECONDS = 0.05
EXIT_RUNNING = 75  # EX_TEMPFAIL: another runner holds the project (as `sinernn retrain` answers)
STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # passed on to the running stages
STOP_GRACE_SECONDS = 30  # after Ctrl-C, how long running stages get to stop before they are killed
@dataclass
class Running:
    stage: str
    process: subprocess.Popen
    started: float
    log: Path
    seconds: float = 0.0


@dataclass(frozen=True)
class Outcome:
    stage: str
    state: str  # ran | restored | unchanged | failed | not run
    seconds: float = 0.0
    exit_code: int = 0
    summary: str = ""


def available_cores() -> int:
    return len(os.sched_getaffinity(0))


def dvc_executable() -> str:
    """`dvc` beside this interpreter (a virtual environment's, even when it is not activated), else on PATH."""
    beside = Path(sys.executable).parent / "dvc"
    found = str(beside) if beside.exists() else shutil.which("dvc")
    if not found:
        raise SinernnError("dvc not found beside this Python or on PATH: install the project (make install)")
    return found


def reproduce(root: Path, targets: list[str] | None = None, jobs: int | None = None, force: bool = False,
              keep_going: bool = False, use_worker: bool = True, dry: bool = False, out: TextIO = sys.stdout) -> int:
    """Reproduce the pipeline at `root` (or the targets and what they read from); the exit code."""
    if dry:
        return _reproduce(root, targets, jobs, force, keep_going, use_worker, dry, out)
    (root / record.LOCK).parent.mkdir(parents=True, exist_ok=True)
    with (root / record.LOCK).open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # Two runners would start the same stages, and DVC's rwlock would fail one at random.
            print(f"sinernn repro: another `sinernn repro` is running in {root}; wait for it to finish", file=out)
            return EXIT_RUNNING
        return _reproduce(root, targets, jobs, force, keep_going, use_worker, dry, out)


def _reproduce(root: Path, targets, jobs, force: bool, keep_going: bool, use_worker: bool, dry: bool,
               out: TextIO) -> int:
    begun = time.monotonic()
    jobs = jobs or available_cores()
    dvc = dvc_executable()
    pipeline, names = graph.load(root, targets)
    todo = pipeline.to_run(names or None, force)
    if not todo:
        print("Data and pipelines are up to date.", file=out)
        return 0
    known = record.stage_seconds(root)
    within = {stage: pipeline.upstream[stage] & set(todo) for stage in todo}
    priority = remaining_path(within, {stage: known.get(stage, 1.0) for stage in todo})
    if dry:
        for stage in todo:
            print(f"{stage}  ({'changed' if stage in pipeline.changed else 'after a changed stage'}"
                  f"{f', last {known[stage]:.1f} s' if stage in known else ''})", file=out)
        return 0
    env = _stage_env()
    print(f"sinernn repro: {len(todo)} stage(s) to check, up to {jobs} at a time", file=out, flush=True)
    with resident_worker(root, env, use_worker, out) as address:
        if address:
            env[WORKER_ENV] = address
        started = time.monotonic()
        outcomes, stopped_by = _run(root, dvc, pipeline, todo, priority, jobs, force, keep_going, env, started, out)
    wall = time.monotonic() - started
    _remember(root, outcomes, jobs, wall, targets, force)
    code = _report(outcomes, jobs, wall, started - begun, out)
    if stopped_by:
        print(f"sinernn repro: stopped by {signal.Signals(stopped_by).name}; the stages that finished are "
              "recorded in dvc.lock, the others left their outputs as they were", file=out)
        return 128 + stopped_by
    return code


def _stage_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # the stages' `python`
    env.pop(WORKER_ENV, None)
    return env


def _own_group_and_lifetime() -> None:
    """In each stage's `dvc` process: its own process group (so that signals reach a stage only
    through the runner) and SIGTERM when the runner dies, however it dies."""
    os.setpgid(0, 0)
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _run(root, dvc, pipeline, todo, priority, jobs, force, keep_going, env, started, out) -> tuple[list[Outcome], int]:
    """Run the stages; (their outcomes, the signal that stopped the run or 0).

    Ctrl-C, SIGTERM and SIGHUP only set a flag here (an exception could land between starting a
    stage and noting it): the loop then passes the signal on, and a second one kills at once."""
    pending, running, outcomes = list(todo), {}, []
    stopping = False
    signals: list[int] = []
    logs = root / record.LOGS
    logs.mkdir(parents=True, exist_ok=True)
    previous = {signum: signal.signal(signum, lambda signum, frame: signals.append(signum)) for signum in STOPPING}
    try:
        while (pending or running) and not signals:
            if not stopping:
                busy = set(pending) | set(running)
                ready = sorted((s for s in pending if not pipeline.upstream[s] & busy), key=lambda s: -priority[s])
                for stage in ready[: jobs - len(running)]:
                    running[stage] = _start(stage, dvc, force, root, env, logs)
                    pending.remove(stage)
                    print(f"[{_clock(started)}] started  {stage}", file=out, flush=True)
            finished = _finished(running)
            if not finished:
                time.sleep(POLL_SECONDS)
                continue
            for run in finished:
                outcome = _outcome(run)
                outcomes.append(outcome)
                print(f"[{_clock(started)}] {outcome.state:<8} {run.stage}  {outcome.seconds:.1f} s"
                      f"{'  ' + outcome.summary if outcome.summary else ''}", file=out, flush=True)
                if outcome.state == "failed":
                    print(tail(run.log), file=out, flush=True)
                    for stage in sorted(pipeline.descendants({run.stage}) & set(pending)):
                        pending.remove(stage)
                        outcomes.append(Outcome(stage, "not run", summary=f"after {run.stage} failed"))
                    stopping = stopping or not keep_going
            if stopping and not running:
                outcomes += [Outcome(stage, "not run", summary="stopped after a failure") for stage in pending]
                pending.clear()
        if signals:
            print(f"sinernn repro: {signal.Signals(signals[0]).name}: stopping {len(running)} running stage(s) "
                  f"(again to kill them at once)", file=out, flush=True)
            stopped = list(running.values())
            _stop(running, signals)
            outcomes += [_outcome(run) for run in stopped]
            outcomes += [Outcome(stage, "not run", summary="stopped") for stage in pending]
            return outcomes, signals[0]
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return outcomes, 0


def _start(stage: str, dvc: str, force: bool, root: Path, env: dict, logs: Path) -> Running:
    log = logs / f"{stage.replace('/', '_')}.log"  # a .dvc data file's stage is a path
    command = [dvc, "--wait-for-lock", "repro", "--single-item", *(["--force"] if force else []), stage]
    with log.open("w") as handle:
        process = subprocess.Popen(command, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=handle,
                                   stderr=subprocess.STDOUT, preexec_fn=_own_group_and_lifetime)
    return Running(stage, process, time.monotonic(), log)


def _finished(running: dict[str, Running]) -> list[Running]:
    done = [run for run in running.values() if run.process.poll() is not None]
    for run in done:
        run.seconds = time.monotonic() - run.started
        del running[run.stage]
    return done


def _outcome(run: Running) -> Outcome:
    text = run.log.read_text(errors="replace")
    code = run.process.returncode
    if code != 0:
        # DVC's own error line names the command's code (not a line the stage printed itself)
        failed = re.findall(r"^ERROR: failed to reproduce .*, exited with (-?\d+)$", text, re.M)
        stage_code = int(failed[-1]) if failed else 1
        return Outcome(run.stage, "failed", run.seconds, 128 - stage_code if stage_code < 0 else stage_code or 1,
                       summary(text, failed=True))
    state = ("unchanged" if "didn't change, skipping" in text else
             "restored" if "is cached - skipping run" in text else "ran")
    return Outcome(run.stage, state, run.seconds, 0, summary(text) if state == "ran" else "")


def _stop(running: dict[str, Running], signals: list[int]) -> None:
    """Pass the signal to every running stage's group; kill those still there after the grace,
    or as soon as a second signal comes."""
    for run in running.values():
        _signal_group(run.process, signals[0])
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while running and time.monotonic() < deadline and len(signals) == 1:
        if not _finished(running):
            time.sleep(POLL_SECONDS)
    for run in list(running.values()):
        _signal_group(run.process, signal.SIGKILL)
        run.process.wait()
        run.seconds = time.monotonic() - run.started


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _clock(started: float) -> str:
    seconds = time.monotonic() - started
    return f"{int(seconds // 60):2d}:{seconds % 60:04.1f}"


def _remember(root: Path, outcomes: list[Outcome], jobs: int, wall: float, targets, force: bool) -> None:
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    times = {o.stage: {"seconds": round(o.seconds, 2), "jobs": jobs, "finished": now}
             for o in outcomes if o.state == "ran"}
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.state] = counts.get(outcome.state, 0) + 1
    record.save(root, times, {"finished": now, "jobs": jobs, "wall_seconds": round(wall, 2), "stages": counts,
                              "busy_seconds": round(sum(o.seconds for o in outcomes), 2),
                              "targets": targets or [], "force": force})


def _report(outcomes: list[Outcome], jobs: int, wall: float, setup: float, out: TextIO) -> int:
    counts = {state: sum(o.state == state for o in outcomes) for state in ("ran", "restored", "unchanged", "failed",
                                                                          "not run")}
    busy = sum(o.seconds for o in outcomes)
    shown = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
    print(f"sinernn repro: {shown}; {wall:.1f} s with -j {jobs} (stages busy {busy:.1f} s, "
          f"{busy / wall if wall else 0:.2f} at a time), after {setup:.1f} s of DVC's status and the worker's start",
          file=out)
    failed = [o for o in outcomes if o.state == "failed"]
    for outcome in failed:
        print(f"sinernn repro: stage {outcome.stage} failed (exit {outcome.exit_code}): {outcome.summary}", file=out)
    if counts["not run"]:
        print(f"sinernn repro: {counts['not run']} stage(s) not run: "
              f"{', '.join(o.stage for o in outcomes if o.state == 'not run')}", file=out)
    return failed[0].exit_code if failed else 0
