"""`sinernn repro -j N`: the DVC pipeline on every core, as DVC itself would have run it.

A small real DVC project (a -> b, c -> d, and e on its own; each stage sleeps, then writes a
digest of its inputs) shows what the runner promises: independent stages at once, the dvc.lock of
a serial `dvc repro`, a failure that stops what depends on it and names itself with its exit
code, Ctrl-C and a killed process tree that lose nothing. The resident worker has its own tests
below, on a probe command (tests/worker_probe.py); the real pipeline runs under the runner in
tests/test_pipeline_e2e.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from sinernn.parallel.graph import Pipeline
from sinernn.parallel.schedule import critical_path, list_schedule, topological

TESTS = Path(__file__).resolve().parent
STEP = '''
import hashlib, json, os, sys, time
name, seconds, out, *inputs = sys.argv[1:]
if os.environ.get("IGNORE_INT") == name:  # a long stage that will not stop on Ctrl-C
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    seconds = "60"
os.makedirs("timeline", exist_ok=True)
started = time.time()
open(f"timeline/{name}.start", "w").close()
time.sleep(float(seconds))
if os.environ.get("FAIL") == name:
    sys.exit(3)
digest = hashlib.sha256(name.encode() + b"".join(open(i, "rb").read() for i in inputs)).hexdigest()
open(out, "w").write(digest + "\\n")
json.dump({"start": started, "end": time.time()}, open(f"timeline/{name}.json", "w"))
print(f"{name} wrote {out}")
'''
STAGES = {"a": ("0.2", []), "b": ("1.5", ["a"]), "c": ("1.5", ["a"]), "d": ("0.2", ["b", "c"]), "e": ("0.2", [])}


def _project(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "step.py").write_text(STEP)
    stages = {name: {"cmd": f"python step.py {name} {seconds} {name}.txt {' '.join(f'{i}.txt' for i in inputs)}",
                     "deps": ["step.py", *(f"{i}.txt" for i in inputs)], "outs": [f"{name}.txt"]}
              for name, (seconds, inputs) in STAGES.items()}
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    subprocess.run(["dvc", "init", "--no-scm", "-q"], cwd=root, check=True, env=_env())
    return root


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "SINERNN_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return {**env, **extra}


def _repro_command(*options: str) -> list[str]:
    """The runner as `sinernn repro` calls it (sinernn's own params.yaml check left out: this project has none)."""
    return [sys.executable, "-c", "import sys; from pathlib import Path; from sinernn.parallel.runner import "
            f"reproduce; sys.exit(reproduce(Path.cwd(), use_worker=False, {', '.join(options)}))"]


def _repro(root: Path, *options: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(_repro_command(*options), cwd=root, env=_env(**env), capture_output=True, text=True,
                          timeout=120)


def _lock(root: Path) -> dict:
    return yaml.safe_load((root / "dvc.lock").read_text())["stages"]


def _timeline(root: Path, name: str) -> dict:
    return json.loads((root / "timeline" / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def serial_lock(tmp_path_factory) -> dict:
    """What a plain serial `dvc repro` writes for the project."""
    root = _project(tmp_path_factory.mktemp("serial") / "project")
    subprocess.run(["dvc", "repro", "-q"], cwd=root, env=_env(), check=True, capture_output=True)
    return _lock(root)


def test_independent_stages_run_at_once_and_dvc_lock_is_what_a_serial_repro_writes(tmp_path, serial_lock):
    root = _project(tmp_path / "project")
    result = _repro(root, "jobs=2")
    assert result.returncode == 0, result.stdout + result.stderr
    b, c = _timeline(root, "b"), _timeline(root, "c")
    assert b["start"] < c["end"] and c["start"] < b["end"]  # b and c overlapped
    assert _timeline(root, "d")["start"] >= max(b["end"], c["end"])  # d waited for both
    assert _lock(root) == serial_lock
    assert "5 ran" in result.stdout and "b wrote b.txt" in result.stdout  # each stage's own last line
    again = _repro(root, "jobs=2")
    assert again.returncode == 0 and "up to date" in again.stdout
    # what `sinernn plan` reads: every stage's time, and the run
    record = json.loads((root / ".dvc/tmp/sinernn/runs.json").read_text())
    assert set(record["stages"]) == set(STAGES) and record["runs"][-1]["stages"] == {"ran": 5}


def test_a_changed_data_file_is_saved_and_cached_as_dvc_repro_does(tmp_path):
    """A `.dvc` data file is a stage of the pipeline (named by its path, as data/external/sample.csv.dvc
    is): a new snapshot of the file gets its new hash in the .dvc file and a place in the cache, so
    that a plain `dvc repro` after it has nothing to do."""
    root = _project(tmp_path / "project")
    (root / "data").mkdir()
    (root / "data/raw.txt").write_text("first snapshot\n")
    subprocess.run(["dvc", "add", "-q", "data/raw.txt"], cwd=root, env=_env(), check=True)
    pipeline = yaml.safe_load((root / "dvc.yaml").read_text())
    pipeline["stages"]["a"]["deps"].append("data/raw.txt")
    (root / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    assert _repro(root, "jobs=2").returncode == 0
    (root / "data/raw.txt").write_text("second snapshot\n")
    result = _repro(root, "jobs=2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (root / ".dvc/tmp/sinernn/logs/data_raw.txt.dvc.log").exists()  # its log, by its path
    saved = yaml.safe_load((root / "data/raw.txt.dvc").read_text())["outs"][0]["md5"]
    assert saved == hashlib.md5(b"second snapshot\n").hexdigest()
    assert (root / ".dvc/cache/files/md5" / saved[:2] / saved[2:]).exists()
    again = subprocess.run(["dvc", "repro"], cwd=root, env=_env(), capture_output=True, text=True)
    assert "Data and pipelines are up to date" in again.stdout, again.stdout
    # named by its path on the command line too, and in the plan
    targeted = _repro(root, "targets=['data/raw.txt.dvc']", "force=True")
    assert targeted.returncode == 0 and "1 ran" in targeted.stdout, targeted.stdout
    code = ("from pathlib import Path; from sinernn.parallel.plan import plan, describe; "
            "print(describe(plan(Path.cwd(), ['data/raw.txt.dvc'])))")
    shown = subprocess.run([sys.executable, "-c", code], cwd=root, env=_env(), capture_output=True, text=True)
    assert shown.returncode == 0 and "data/raw.txt.dvc" in shown.stdout, shown.stdout + shown.stderr


def test_a_stage_whose_run_is_in_dvcs_run_cache_is_restored_not_run(tmp_path, serial_lock):
    root = _project(tmp_path / "project")
    assert _repro(root, "jobs=2").returncode == 0
    (root / "b.txt").unlink()
    (root / "timeline/b.json").unlink()
    result = _repro(root, "jobs=2")
    assert result.returncode == 0 and "restored b" in " ".join(result.stdout.split()), result.stdout
    assert (root / "b.txt").exists() and not (root / "timeline/b.json").exists()  # checked out, not run
    assert _lock(root) == serial_lock


def test_one_job_runs_one_stage_at_a_time(tmp_path, serial_lock):
    root = _project(tmp_path / "project")
    assert _repro(root, "jobs=1").returncode == 0
    b, c = _timeline(root, "b"), _timeline(root, "c")
    assert b["end"] <= c["start"] or c["end"] <= b["start"]
    assert _lock(root) == serial_lock


def test_a_failed_stage_stops_what_depends_on_it_and_names_itself_with_its_exit_code(tmp_path):
    root = _project(tmp_path / "project")
    result = _repro(root, "jobs=2", FAIL="b")
    assert result.returncode == 3, result.stdout  # the stage's own code, not DVC's
    assert "stage b failed (exit 3)" in result.stdout and "not run: d" in result.stdout
    assert "b" not in _lock(root) and "d" not in _lock(root) and not (root / "d.txt").exists()
    assert "a" in _lock(root)  # what finished before is recorded


def test_keep_going_runs_every_stage_that_does_not_depend_on_the_failure(tmp_path, serial_lock):
    root = _project(tmp_path / "project")
    result = _repro(root, "jobs=1", "keep_going=True", FAIL="b")
    assert result.returncode == 3
    assert set(_lock(root)) == {"a", "c", "e"} and not (root / "d.txt").exists()
    assert _repro(root, "jobs=2").returncode == 0 and _lock(root) == serial_lock  # then the rest


@pytest.mark.faults(scenario="sinernn repro interrupted (SIGINT) while two stages run, then run again")
def test_ctrl_c_stops_every_stage_and_a_rerun_finishes_as_a_serial_repro(tmp_path, serial_lock, fault):
    root = _project(tmp_path / "project")
    runner = subprocess.Popen(_repro_command("jobs=2"), cwd=root, env=_env(), stdout=subprocess.PIPE, text=True)
    log = root / ".dvc/tmp/sinernn/logs/b.log"
    _wait_for(lambda: log.exists() and "Running stage 'b'" in log.read_text(errors="ignore"))
    time.sleep(0.3)
    runner.send_signal(signal.SIGINT)  # as Ctrl-C does, to the runner alone: it passes it on
    output, _ = runner.communicate(timeout=60)
    assert runner.returncode == 130, output
    assert "stopping" in output and not (root / "d.txt").exists()
    assert _repro(root, "jobs=2").returncode == 0
    fault.record("dvc.lock unlike a serial dvc repro's", int(_lock(root) != serial_lock))
    assert subprocess.run(["dvc", "status", "-q"], cwd=root, env=_env()).returncode == 0
    assert _lock(root) == serial_lock


@pytest.mark.faults(scenario="sinernn repro's whole process tree SIGKILLed while two stages run, then run again")
def test_a_killed_process_tree_loses_nothing(tmp_path, serial_lock, fault):
    """SIGKILL to the runner and every process under it at once, as the OOM killer or systemd's
    stop of a service's cgroup does, while b and c run: a rerun finishes as a serial repro."""
    root = _project(tmp_path / "project")
    runner = subprocess.Popen(_repro_command("jobs=2"), cwd=root, env=_env(), stdout=subprocess.DEVNULL,
                              start_new_session=True)
    _wait_for(lambda: (root / "timeline/b.start").exists() and (root / "timeline/c.start").exists())
    tree = [runner.pid, *(p.pid for p in psutil.Process(runner.pid).children(recursive=True))]
    assert len(tree) >= 5  # the runner, and per stage a dvc process and its command
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    runner.wait()
    # (as a restarted service does, the rerun starts once the killed processes are gone: DVC takes
    # a zombie not yet reaped for a live holder of its locks)
    _wait_for(lambda: not any(psutil.pid_exists(pid) for pid in tree), 30)
    assert not (root / "d.txt").exists()
    assert _repro(root, "jobs=2").returncode == 0
    fault.record("dvc.lock unlike a serial dvc repro's", int(_lock(root) != serial_lock))
    assert subprocess.run(["dvc", "status", "-q"], cwd=root, env=_env()).returncode == 0
    assert _lock(root) == serial_lock


@pytest.mark.faults(scenario="a DVC rwlock file left empty by a killed DVC, then sinernn repro")
def test_an_rwlock_file_a_killed_dvc_left_unreadable_is_removed_before_anything_runs(tmp_path, serial_lock, fault):
    """DVC rewrites .dvc/tmp/rwlock in place; killed mid-write, it leaves it empty, and every DVC
    command then fails ("manually remove ... rwlock"): seen when the test above killed the tree
    while a stage's DVC was starting."""
    root = _project(tmp_path / "project")
    (root / ".dvc/tmp").mkdir(exist_ok=True)
    (root / ".dvc/tmp/rwlock").write_text("")
    assert subprocess.run(["dvc", "repro", "-q"], cwd=root, env=_env(), capture_output=True).returncode != 0
    result = _repro(root, "jobs=2")
    fault.record("runs that failed on it", int(result.returncode != 0))
    assert result.returncode == 0 and "removed" in result.stdout and _lock(root) == serial_lock


def test_dry_lists_what_would_run_and_runs_nothing(tmp_path):
    root = _project(tmp_path / "project")
    result = _repro(root, "dry=True")
    assert result.returncode == 0 and [line.split()[0] for line in result.stdout.splitlines()] == list(STAGES)
    assert not (root / "a.txt").exists() and not (root / "dvc.lock").exists()


def test_a_second_runner_on_the_same_project_is_refused(tmp_path, serial_lock):
    """Two runners would start the same stages, and DVC's rwlock would fail one of them at random."""
    root = _project(tmp_path / "project")
    first = subprocess.Popen(_repro_command("jobs=2"), cwd=root, env=_env(), stdout=subprocess.PIPE, text=True)
    _wait_for(lambda: (root / "timeline/a.start").exists())
    second = _repro(root, "jobs=2")
    first.communicate(timeout=60)
    assert second.returncode == 75 and "another `sinernn repro` is running" in second.stdout
    assert first.returncode == 0 and _lock(root) == serial_lock


def test_sigterm_stops_every_stage_as_ctrl_c_does(tmp_path, serial_lock):
    root = _project(tmp_path / "project")
    runner = subprocess.Popen(_repro_command("jobs=2"), cwd=root, env=_env(), stdout=subprocess.PIPE, text=True)
    _wait_for(lambda: (root / "timeline/b.start").exists() and (root / "timeline/c.start").exists())
    runner.send_signal(signal.SIGTERM)  # systemctl stop, or kill
    output, _ = runner.communicate(timeout=60)
    assert runner.returncode == 128 + signal.SIGTERM and "SIGTERM: stopping 2" in output, output
    assert _repro(root, "jobs=2").returncode == 0 and _lock(root) == serial_lock


def test_a_second_ctrl_c_kills_the_stages_that_did_not_stop(tmp_path):
    root = _project(tmp_path / "project")
    runner = subprocess.Popen(_repro_command("jobs=2"), cwd=root, env=_env(IGNORE_INT="b"), stdout=subprocess.PIPE,
                              text=True)
    _wait_for(lambda: (root / "timeline/b.start").exists() and (root / "timeline/c.start").exists())
    runner.send_signal(signal.SIGINT)
    time.sleep(1)  # c stopped; b ignores it (it would be given 30 s)
    started = time.monotonic()
    runner.send_signal(signal.SIGINT)
    runner.communicate(timeout=60)
    assert runner.returncode == 130 and time.monotonic() - started < 10
    assert not (root / "b.txt").exists()


def _ended(pid: int) -> bool:
    """Gone, or a zombie its parent has not reaped yet (it may vanish between two looks)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_for(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# ---- what to run, and the plan --------------------------------------------------------------

GRAPH = {"a": frozenset(), "b": frozenset({"a"}), "c": frozenset({"a"}), "d": frozenset({"b", "c"}), "e": frozenset()}


def test_the_stages_to_run_are_the_changed_ones_and_everything_after_them():
    pipeline = Pipeline(GRAPH, changed=frozenset({"b"}), frozen=frozenset())
    assert pipeline.to_run() == ["b", "d"]
    assert pipeline.to_run(["c"]) == []  # c's closure (a, c) has nothing changed
    assert pipeline.to_run(["d"], force=True) == ["a", "b", "c", "d"]
    assert Pipeline(GRAPH, frozenset({"a"}), frozenset({"c"})).to_run() == ["a", "b", "d"]  # frozen: never


def test_the_plan_of_the_docstring_example():
    seconds = {"a": 10.0, "b": 20.0, "c": 30.0, "d": 5.0, "e": 0.0}
    assert critical_path(GRAPH, seconds) == (45.0, ["a", "c", "d"])
    assert list_schedule(GRAPH, seconds, 1).wall_seconds == 65.0
    assert list_schedule(GRAPH, seconds, 2).wall_seconds == 45.0
    assert topological(GRAPH) == ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize("seed", range(5))
def test_a_list_schedule_lies_between_the_critical_path_and_the_total_work(seed):
    import random

    rng = random.Random(seed)
    names = [f"s{i}" for i in range(30)]
    upstream = {name: frozenset(rng.sample(names[:i], k=min(i, rng.randint(0, 3)))) for i, name in enumerate(names)}
    seconds = {name: rng.uniform(1, 20) for name in names}
    length, _ = critical_path(upstream, seconds)
    walls = [list_schedule(upstream, seconds, n).wall_seconds for n in (1, 2, 4, 8, 64)]
    assert walls[0] == pytest.approx(sum(seconds.values()))
    assert all(wall >= length - 1e-9 for wall in walls) and walls[-1] == pytest.approx(length)
    # Graham: at every moment either every core is busy or a stage of a longest chain runs
    assert all(wall <= sum(seconds.values()) / n + length + 1e-9 for wall, n in zip(walls, (1, 2, 4, 8, 64)))


# ---- the resident worker --------------------------------------------------------------------


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    """A worker as `sinernn repro` starts it, for the probe command."""
    import io

    from sinernn.parallel.worker import resident_worker

    with resident_worker(tmp_path_factory.mktemp("worker"), _env(), True, io.StringIO(),
                         entries=("worker_probe:main",)) as address:
        assert address, "the worker did not start"
        yield address


def _hand_over(worker: str, *argv: str, cwd: Path | None = None, probe: str = "x", path: Path = TESTS,
               env_extra: dict | None = None, entry: str = "worker_probe:main", **popen):
    """A stage's process handing `worker_probe.main(argv)` to the worker (exit 99: it ran here)."""
    code = ("import sys; from sinernn.parallel.handoff import run_in_worker; "
            f"code = run_in_worker({entry!r}, sys.argv[1:]); sys.exit(99 if code is None else code)")
    env = _env(SINERNN_WORKER=worker, PROBE=probe, PYTHONPATH=str(path), **(env_extra or {}))
    if not (env_extra or {}).get("OMP_NUM_THREADS"):
        env.pop("OMP_NUM_THREADS", None)
    return subprocess.Popen([sys.executable, "-c", code, *argv], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def test_the_worker_runs_a_command_as_the_stage_process_would(worker, tmp_path):
    process = _hand_over(worker, "describe", "7", cwd=tmp_path, probe="from the stage")
    out, err = process.communicate(timeout=30)
    assert process.returncode == 7, err
    seen = json.loads(out)
    assert (seen["cwd"], seen["argv"], seen["probe"]) == (str(tmp_path), ["describe", "7"], "from the stage")
    assert seen["sys_argv"] == ["-c", "describe", "7"] and seen["pid"] != process.pid  # a forked copy
    assert err.strip() == "to stderr"


def test_the_copy_imports_the_project_afresh(worker, tmp_path):
    """Preloaded are third-party packages only: a module edited between two stages takes effect."""
    shutil.copy(TESTS / "worker_probe.py", tmp_path / "worker_probe.py")
    first = json.loads(_hand_over(worker, "describe", "0", path=tmp_path).communicate(timeout=30)[0])
    source = (tmp_path / "worker_probe.py").read_text().replace("VERSION = 1", "VERSION = 2")
    (tmp_path / "worker_probe.py").write_text(source)
    second = json.loads(_hand_over(worker, "describe", "0", path=tmp_path).communicate(timeout=30)[0])
    assert (first["version"], second["version"]) == (1, 2)


@pytest.mark.parametrize("threads", ["1", None])
def test_the_copy_takes_torchs_thread_count_from_its_stage_as_a_new_process_does(worker, threads):
    """torch reads OMP_NUM_THREADS when it is imported: by the worker, with the worker's environment.
    The copy sets it again from the stage's (the evaluate stage ran 10x slower until it did)."""
    env = {"OMP_NUM_THREADS": threads} if threads else {}
    fresh = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                           env={k: v for k, v in _env(**env).items() if threads or k != "OMP_NUM_THREADS"},
                           capture_output=True, text=True).stdout
    process = _hand_over(worker, "threads", **({"env_extra": env} if env else {}))
    out, _ = process.communicate(timeout=30)
    assert out == fresh
    if threads:
        assert out.strip() == threads


def test_a_copy_killed_by_a_signal_ends_its_stage_process_the_same_way(worker):
    process = _hand_over(worker, "kill-myself")
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL  # as DVC would have seen it without the worker


def test_ctrl_c_reaches_the_copy_and_a_killed_stage_process_takes_its_copy_along(worker):
    process = _hand_over(worker, "wait")
    process.stdout.readline()  # the copy is waiting
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 130 and "interrupted" in out

    process = _hand_over(worker, "wait")
    copy = int(process.stdout.readline())
    process.kill()
    process.wait()
    _wait_for(lambda: _ended(copy), 10)


def test_each_copy_starts_with_random_states_of_its_own_as_a_new_process_does(worker):
    """torch, numpy and `random` drew their seeds when the worker imported them: every copy would
    share them (two stages drawing the same unseeded numbers) unless a copy draws new ones."""
    seeds = [json.loads(_hand_over(worker, "seeds").communicate(timeout=30)[0]) for _ in range(2)]
    assert all(a != b for a, b in zip(*seeds)), seeds


def test_ctrl_c_reaches_the_processes_a_copy_started(worker):
    process = _hand_over(worker, "wait-with-child")
    child = int(process.stdout.readline())
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=30)
    assert process.returncode == 130
    _wait_for(lambda: _ended(child), 10)


def test_the_worker_runs_only_the_entry_points_the_runner_named(worker):
    process = _hand_over(worker, "describe", "0", entry="worker_probe:main_too")
    process.communicate(timeout=30)
    assert process.returncode == 99  # refused: the stage process runs it itself


def test_a_worker_that_dies_under_a_stage_fails_the_stage_and_never_runs_it_twice(tmp_path):
    import io

    from sinernn.parallel.worker import resident_worker

    with resident_worker(tmp_path, _env(), True, io.StringIO(), entries=("worker_probe:main",)) as address:
        process = _hand_over(address, "wait")
        copy = int(process.stdout.readline())
        worker_pid = psutil.Process(copy).ppid()
        os.kill(worker_pid, signal.SIGKILL)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 70 and "resident worker" in err and "interrupted" not in out
    _wait_for(lambda: _ended(copy), 10)


def test_without_a_worker_the_command_runs_in_its_own_process(tmp_path):
    process = _hand_over(str(tmp_path / "no-socket"), "describe", "0")
    process.communicate(timeout=30)
    assert process.returncode == 99


# ---- one MLflow store, several stages at once -----------------------------------------------

STAGE_RUN = '''
import os, sys, time
import mlflow, mlflow.store.tracking.sqlalchemy_store  # imported first, so that only opening the store is raced
from sinernn.track.tracking import stage_run
print("ready", flush=True)
while not os.path.exists(sys.argv[2]):  # all of them open the new store at the same instant
    time.sleep(0.01)
with stage_run("parallel", f"stage-{sys.argv[1]}", {"stage": "test"}) as run:
    run.log_metrics({"x": float(sys.argv[1])})
'''


@pytest.mark.faults(scenario="four stages opening one new MLflow store at the same instant")
def test_stages_that_open_one_new_mlflow_store_at_once_lose_no_run(tmp_path, fault):
    """Two processes creating a new SQLite store at once both create MLflow's tables and fail
    ("table experiments already exists", a half-migrated schema): seen with two generate stages
    under `sinernn repro -j 2` before the store's creation took a lock."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    go = tmp_path / "go"
    processes = [subprocess.Popen([sys.executable, "-c", STAGE_RUN, str(i), str(go)], env=_env(MLFLOW_TRACKING_URI=uri),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(4)]
    for process in processes:  # their imports done
        assert process.stdout.readline().strip() == "ready"
    go.touch()
    outputs = [p.communicate(timeout=120)[0] for p in processes]
    fault.record("stages that failed", sum(p.returncode != 0 for p in processes))
    assert [p.returncode for p in processes] == [0, 0, 0, 0], outputs
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("parallel").experiment_id])
    assert sorted(r.info.run_name for r in runs) == [f"stage-{i}" for i in range(4)]
    assert {r.info.status for r in runs} == {"FINISHED"} and sorted(r.data.metrics["x"] for r in runs) == [0, 1, 2, 3]
