"""Faults injected for real, each scenario's figure recorded for the table (`make faults`).

Tuning on the local SQLite study: a worker SIGKILLed in the study's last trial, a trial killed
between `ask` and its first heartbeat, a live trial behind a held SQLite write lock. Outputs: a
folder output killed between its staging and its swap, the temporaries a kill leaves, a full disk,
corrupt study and tracking databases. Every figure counts damage and is expected to be 0.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import repetitions, write_params

import optuna
from sinernn.core.config import parse_params
from sinernn.core.errors import TuneError
from sinernn.jobs.generate import generate_job
from sinernn.tune.storage import open_storage
from sinernn.tune.study import make_study, study_name

pytestmark = pytest.mark.faults


@pytest.fixture
def clean_npz(tracked, tmp_path, params):
    npz = tmp_path / "data/processed/clean.npz"
    generate_job(params, "clean", npz)
    return npz


def _cli(tmp_path, *args, env=None, **popen):
    return subprocess.Popen([sys.executable, "-m", "sinernn.cli", *args], cwd=tmp_path,
                            env={**os.environ, **(env or {})}, text=True, **popen)


def _tune_command(tmp_path, raw_params, npz, arch="lstm", *extra):
    path = write_params(tmp_path / "params.yaml", raw_params)
    return ["tune", "--params", str(path), "--dataset", "clean", "--arch", arch, "--data", str(npz), "--out", str(tmp_path / f"{arch}.json"),
            *extra]


def _study_name(raw_params, arch, npz):
    return study_name(parse_params(raw_params), "clean", arch, json.loads(npz.with_suffix(".json").read_text())["sha256"])


def _sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'optuna/studies.db'}"


def _trials(tmp_path, name):
    storage = open_storage(_sqlite_url(tmp_path), 1, 1)
    try:
        return optuna.load_study(study_name=name, storage=storage).trials
    except KeyError:
        return []  # not created yet


def _training(tmp_path, number: int | None = None) -> bool:
    """Whether trial `number` (any, if None) is RUNNING and has reported an epoch: read straight
    from the SQLite file, cheap enough to poll every few milliseconds."""
    database = tmp_path / "optuna/studies.db"
    if not database.exists():
        return False
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1) as connection:
            rows = connection.execute(
                "SELECT t.number FROM trials t JOIN trial_intermediate_values v ON v.trial_id = t.trial_id "
                "WHERE t.state = 'RUNNING'").fetchall()
    except sqlite3.OperationalError:
        return False  # the tables are not created yet
    return any(number is None or row[0] == number for row in rows)


def _running_with_heartbeat_older_than(tmp_path, seconds: float) -> int:
    """RUNNING trials whose last heartbeat is older than `seconds` (readable under a write lock:
    the database is in WAL mode)."""
    with sqlite3.connect(f"file:{tmp_path / 'optuna/studies.db'}?mode=ro", uri=True, timeout=1) as connection:
        return connection.execute(
            "SELECT count(*) FROM trials t JOIN trial_heartbeats h ON h.trial_id = t.trial_id "
            "WHERE t.state = 'RUNNING' AND (julianday('now') - julianday(h.heartbeat)) * 86400 > ?",
            (seconds,)).fetchone()[0]


def _wait_for(condition, seconds=90, what="the condition"):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _finished(trials):
    return sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials)


# ---- tuning ----------------------------------------------------------------------------------


@pytest.mark.faults(scenario="tune worker SIGKILLed in the study's last trial, stage re-run")
def test_a_study_killed_in_its_last_trial_finishes_when_resumed(tracked, tmp_path, raw_params, clean_npz, fault):
    # Long trials (no early stop), so that the last one is caught training.
    raw_params["tune"].update(n_trials=2, max_epochs=120, pruner="none")
    raw_params["train"]["patience"] = 120
    hangs = lost = 0
    errors = []
    reps = repetitions()
    for rep in range(reps):
        raw_params["seed"] = 42 + rep  # a new study each repetition
        name = _study_name(raw_params, "lstm", clean_npz)
        command = _tune_command(tmp_path, raw_params, clean_npz)
        victim = _cli(tmp_path, *command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        last = raw_params["tune"]["n_trials"] - 1
        _wait_for(lambda: _training(tmp_path, last), what="the last trial to train")
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        resumed = _cli(tmp_path, *command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            _, err = resumed.communicate(timeout=120)
            errors += [err[-2000:]] if resumed.returncode else []
        except subprocess.TimeoutExpired:
            resumed.kill()
            resumed.communicate()
            hangs += 1
        lost += raw_params["tune"]["n_trials"] - _finished(_trials(tmp_path, name))
    fault.record("hangs", hangs, reps)
    fault.record("trials lost", lost, reps)
    assert (hangs, lost) == (0, 0)
    assert not errors, errors


@pytest.mark.faults(scenario="tune trial killed between ask and its first heartbeat")
def test_a_trial_that_never_sent_a_heartbeat_is_retried_after_the_stall_timeout(
        tracked, tmp_path, raw_params, clean_npz, fault):
    raw_params["tune"].update(n_trials=2, stall_timeout=3)
    params = parse_params(raw_params)
    name = _study_name(raw_params, "rnn", clean_npz)
    study = make_study(open_storage(_sqlite_url(tmp_path), 1, 1), name, params, "clean", params.seed)
    # A real process that takes a trial and dies before its heartbeat thread starts.
    killer = (f"import optuna, os, signal\n"
              f"from sinernn.tune.storage import open_storage\n"
              f"study = optuna.load_study(study_name={name!r}, storage=open_storage({_sqlite_url(tmp_path)!r}, 1, 1))\n"
              f"study.ask()\n"
              f"os.kill(os.getpid(), signal.SIGKILL)\n")
    assert subprocess.run([sys.executable, "-c", killer], cwd=tmp_path).returncode == -signal.SIGKILL
    assert [t.state.name for t in study.trials] == ["RUNNING"]

    tune = _cli(tmp_path, *_tune_command(tmp_path, raw_params, clean_npz, "rnn"),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _, err = tune.communicate(timeout=120)
        hangs = 0
    except subprocess.TimeoutExpired:
        tune.kill()
        _, err = tune.communicate()
        hangs = 1
    trials = _trials(tmp_path, name)
    fault.record("hangs", hangs)
    fault.record("trials lost", params.tune.n_trials - _finished(trials))
    assert hangs == 0
    assert tune.returncode == 0, err[-2000:]
    assert _finished(trials) == params.tune.n_trials
    assert trials[0].state.name == "FAIL" and "stalled" in trials[0].user_attrs["fail_reason"]
    assert [t.system_attrs.get("failed_trial") for t in trials].count(0) == 1  # retried once


@pytest.mark.faults(scenario="SQLite write lock held while a trial trains")
def test_a_live_trial_blocked_by_the_sqlite_lock_is_not_failed_as_dead(tracked, tmp_path, raw_params, clean_npz, fault):
    """The write lock outlasts 2 heartbeat intervals but not the lock wait: a stale check run
    meanwhile (another worker starting, the coordinator) must not fail the live trial."""
    raw_params["tune"].update(n_trials=4, max_epochs=30, pruner="none", startup_trials=1)
    params = parse_params(raw_params)
    name = _study_name(raw_params, "lstm", clean_npz)
    workers = _cli(tmp_path, *_tune_command(tmp_path, raw_params, clean_npz, "lstm", "--workers", "2"),
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for(lambda: _training(tmp_path), what="a trial to train")
    # Longer than two heartbeat intervals; shorter than the lock wait (at least 5 s), so the
    # writers wait instead of failing with "database is locked".
    hold = 2 * params.tune.heartbeat_interval + 2
    tune = params.tune
    checker_storage = open_storage(_sqlite_url(tmp_path), tune.heartbeat_interval, tune.max_retry,
                                          tune.sqlite_lock_wait)
    lock = sqlite3.connect(tmp_path / "optuna/studies.db", timeout=30, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # the write lock: every writer now waits
    time.sleep(hold - 1)
    # The precondition: a live trial's heartbeat now looks older than two intervals.
    silent = _running_with_heartbeat_older_than(tmp_path, 2 * tune.heartbeat_interval)
    # What a worker does before each trial: fail the trials whose heartbeat looks stale.
    check = threading.Thread(target=optuna.storages.fail_stale_trials,
                             args=(optuna.load_study(study_name=name, storage=checker_storage),))
    check.start()
    time.sleep(1)
    lock.execute("ROLLBACK")
    lock.close()
    check.join(timeout=60)
    try:
        _, err = workers.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        workers.kill()
        _, err = workers.communicate()
    trials = _trials(tmp_path, name)
    failed_live = sum(t.state.name == "FAIL" and not t.user_attrs.get("fail_reason") for t in trials)
    fault.record("live trials failed as dead", failed_live)
    assert silent >= 1, "no live trial looked silent while the lock was held: the test tested nothing"
    assert failed_live == 0
    assert workers.returncode == 0, err[-2000:]
    assert _finished(trials) == params.tune.n_trials


# ---- outputs ---------------------------------------------------------------------------------


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.faults(scenario="SIGKILL while a folder output is written or swapped in")
@pytest.mark.parametrize("exchange", ["atomic exchange", "no exchange (rename aside)"])
@pytest.mark.parametrize("point", ["folder-written", "folder-swapped"])
def test_a_folder_output_killed_mid_swap_is_the_old_or_the_new_never_half(tmp_path, point, exchange, fault):
    """Without RENAME_EXCHANGE (NFS, FUSE), a kill between the two renames leaves no folder for a
    moment: the next write of that output moves the old one back before anything else."""
    target = tmp_path / "reports/predictions/clean"
    no_exchange = "import sinernn.core.files\nsinernn.core.files._exchange = lambda a, b: False\n" if exchange.startswith("no") else ""
    writer = (f"import sys\n{no_exchange}from sinernn.core.files import replace_dir\n"
              "replace_dir(sys.argv[1], {f'{n}.csv': [{'step': 1, 'value': sys.argv[2]}] for n in range(50)})\n")
    subprocess.run([sys.executable, "-c", writer, str(target), "old"], check=True)
    corrupted = 0
    reps = repetitions()
    for rep in range(reps):
        old = _snapshot(target)
        new = {name: data.replace(b"old", b"new") for name, data in old.items()}
        killed = subprocess.run([sys.executable, "-c", writer, str(target), "new"],
                                env={**os.environ, "SINERNN_FAILPOINT": point})
        assert killed.returncode == -signal.SIGKILL
        if not target.exists():  # only between the two renames of the fallback
            assert exchange.startswith("no") and point == "folder-swapped"
            from sinernn.core.files import remove_leftovers

            remove_leftovers(target)  # what the next write of this output does first
        now = _snapshot(target)
        corrupted += now not in (old, new)
        subprocess.run([sys.executable, "-c", writer, str(target), "old"], check=True)  # back to old
    fault.record("outputs corrupted", corrupted, reps)
    assert corrupted == 0
    # The kill's leftovers: ignored by git, removed by the next write of the same output.
    subprocess.run([sys.executable, "-c", writer, str(target), "new"], env={**os.environ, "SINERNN_FAILPOINT": point})
    assert [p for p in target.parent.iterdir() if p.name != "clean"], "the kill should have left a temporary"
    subprocess.run([sys.executable, "-c", writer, str(target), "again"], check=True)
    assert [p.name for p in target.parent.iterdir()] == ["clean"]


@pytest.mark.faults(scenario="SIGKILL between a file's write and its rename")
def test_a_killed_write_leaves_the_old_file_and_nothing_git_would_commit(tmp_path, fault):
    from conftest import ROOT

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / ".gitignore").write_text((ROOT / ".gitignore").read_text())
    target = tmp_path / "models/clean/lstm/train.json"
    writer = "import sys\nfrom sinernn.core.files import write_json\nwrite_json(sys.argv[1], {'run': sys.argv[2]})\n"
    subprocess.run([sys.executable, "-c", writer, str(target), "old"], check=True)
    killed = subprocess.run([sys.executable, "-c", writer, str(target), "new"],
                            env={**os.environ, "SINERNN_FAILPOINT": "file-written"})
    assert killed.returncode == -signal.SIGKILL
    corrupted = json.loads(target.read_text()) != {"run": "old"}
    assert len(list(target.parent.iterdir())) == 2  # train.json and the kill's temporary
    # The shipped workflow commits with `git add ... models ...`: the temporary must not go in.
    subprocess.run(["git", "add", "models"], cwd=tmp_path, check=True)
    staged = subprocess.run(["git", "diff", "--cached", "--name-only"], cwd=tmp_path, capture_output=True,
                            text=True, check=True).stdout.split()
    fault.record("outputs corrupted", int(corrupted))
    fault.record("kill leftovers committed", len(staged) - 1)
    assert staged == ["models/clean/lstm/train.json"]
    assert not corrupted


def _small_filesystem(folder: Path, size_kib: int):
    """A real size-limited file system: a tmpfs, where mounting is allowed (root). Whether it was."""
    folder.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(folder)],
                             capture_output=True)
    return mounted.returncode == 0


@pytest.mark.faults(scenario="disk full while an output is written")
@pytest.mark.parametrize("stage", ["generate", "train"])
def test_a_full_disk_is_one_clear_error_and_keeps_the_previous_output(tracked, tmp_path, raw_params, params, stage, fault):
    """generate writes its .npz with zipfile, train its model.pt with torch.save: both must say
    "no space" (exit 74) and leave the previous outputs as they were."""
    small = tmp_path / "small"
    if not _small_filesystem(small, 512):
        pytest.skip("mounting a small tmpfs needs root (a file size limit would also stop mlflow.db)")
    try:
        path = write_params(tmp_path / "params.yaml", raw_params)
        if stage == "generate":
            command = ["generate", "--params", str(path), "--dataset", "clean", "--out", str(small / "clean.npz")]
        else:
            npz = tmp_path / "data/processed/clean.npz"
            generate_job(params, "clean", npz)
            command = ["train", "--params", str(path), "--dataset", "clean", "--arch", "lstm", "--data", str(npz),
                       "--model-dir", str(small / "lstm"), "--history", str(small / "lstm.csv")]
        first = _cli(tmp_path, *command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert first.wait(timeout=120) == 0, first.stderr.read()
        before = {p.relative_to(small): p.read_bytes() for p in small.rglob("*") if p.is_file()}
        free = os.statvfs(small).f_bavail * os.statvfs(small).f_frsize  # fill the disk but 8 KiB
        (small / "filler").write_bytes(b"\0" * (free - 8 * 1024))
        before[Path("filler")] = (small / "filler").read_bytes()
        # a bigger output than there is room for
        raw_params["datasets"]["clean"]["n_test"] *= 4
        raw_params["architectures"]["lstm"]["hidden_size"] = 96
        write_params(path, raw_params)
        full = _cli(tmp_path, *command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, err = full.communicate(timeout=120)
        after = {p.relative_to(small): p.read_bytes() for p in small.rglob("*") if p.is_file()}
        fault.record("outputs corrupted", int(after != before))
        assert full.returncode == 74, err
        assert "Traceback" not in err and err.count("sinernn: error:") == 1, err  # (MLflow logs an INFO line)
        assert f"no space left writing {small}/" in err and "earlier outputs are unchanged" in err
        assert after == before  # the old outputs as they were, no temporary left behind
    finally:
        subprocess.run(["umount", str(small)], capture_output=True)


@pytest.mark.faults(scenario="truncated optuna/studies.db")
def test_a_corrupt_study_database_is_one_clear_error_naming_the_file_and_the_fix(
        tracked, tmp_path, raw_params, clean_npz, fault):
    raw_params["tune"].update(n_trials=1)
    tune = _cli(tmp_path, *_tune_command(tmp_path, raw_params, clean_npz, "rnn"), stdout=subprocess.PIPE,
                stderr=subprocess.PIPE)
    assert tune.wait(timeout=120) == 0
    database = tmp_path / "optuna/studies.db"
    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    database.write_bytes(database.read_bytes()[: database.stat().st_size // 3])
    tuned = (tmp_path / "rnn.json").read_bytes()
    raw_params["tune"].update(n_trials=2)
    again = _cli(tmp_path, *_tune_command(tmp_path, raw_params, clean_npz, "rnn"), stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE)
    _, err = again.communicate(timeout=120)
    fault.record("outputs corrupted", int((tmp_path / "rnn.json").read_bytes() != tuned))
    assert again.returncode == 2
    assert err.strip() == (f"sinernn: error: {database} is corrupt (database disk image is malformed): restore it "
                           f"from a backup, or move it aside (mkdir -p {database}.corrupt && mv {database} "
                           f"{database}-wal {database}-shm {database}.corrupt/) and re-run to start the studies afresh")


def test_a_locked_study_database_is_not_called_corrupt(tmp_path):
    """A database another process holds locked is in use, not broken: moving it aside would lose
    a live study."""
    database = tmp_path / "studies.db"
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("CREATE TABLE other_tool (x)")
    holder.execute("BEGIN EXCLUSIVE")  # e.g. a backup tool, or the sqlite3 shell in a transaction
    try:
        with pytest.raises(TuneError) as refused:
            open_storage(f"sqlite:///{database}", 1, 1, 1)
    finally:
        holder.close()
    assert "corrupt" not in str(refused.value) and "database is locked" in str(refused.value)


@pytest.mark.faults(scenario="truncated mlflow.db")
def test_a_corrupt_tracking_database_is_one_clear_error_naming_the_file_and_the_fix(tmp_path, raw_params, fault):
    store = tmp_path / "mlflow.db"
    path = write_params(tmp_path / "params.yaml", raw_params)
    (tmp_path / "data/external").mkdir(parents=True)
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{store}"}
    out = tmp_path / "data/processed/clean.npz"
    first = _cli(tmp_path, "generate", "--params", str(path), "--dataset", "clean", "--out", str(out), env=env,
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert first.wait(timeout=120) == 0, first.stderr.read()
    before = out.read_bytes()
    store.write_bytes(store.read_bytes()[: store.stat().st_size // 3])
    again = _cli(tmp_path, "generate", "--params", str(path), "--dataset", "clean", "--out", str(out), env=env,
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = again.communicate(timeout=120)
    fault.record("outputs corrupted", int(out.read_bytes() != before))
    assert again.returncode == 4, err
    assert len(err.strip().splitlines()) == 1
    assert f"{store} is corrupt: restore it from a backup, or move it aside (mv {store} {store}.corrupt)" in err


def _open_at_once(url: str, processes: int) -> int:
    """How many of `processes` processes, started together on an empty database, fail to open it."""
    start = time.time() + 3  # every process imports first, then all open at this instant
    opener = (f"import sys, time\nfrom sinernn.core.errors import TuneError\nfrom sinernn.tune.storage import open_storage\ntime.sleep(max(0, {start} - time.time()))\n"
              f"try:\n    open_storage({url!r}, 1, 1)\nexcept TuneError as exc:\n"
              f"    sys.exit(str(exc))\n")
    openers = [subprocess.Popen([sys.executable, "-c", opener], stderr=subprocess.PIPE, text=True)
               for _ in range(processes)]
    return sum(process.wait(timeout=120) != 0 for process in openers)


@pytest.mark.faults(scenario="4 workers open an empty study database at the same instant")
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_workers_opening_an_empty_study_database_together_all_start(tmp_path, database, fault, request):
    reps = repetitions()
    failed = 0
    for rep in range(reps):
        if database == "sqlite":
            url = f"sqlite:///{tmp_path / f'studies-{rep}.db'}"
            failed += _open_at_once(url, 4)
        else:
            from urllib.parse import urlsplit, urlunsplit

            import psycopg

            server = request.getfixturevalue("postgres")
            name = f"race_{os.getpid()}_{rep}"
            admin_url = server.replace("postgresql+psycopg://", "postgresql://")
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {name}")
                admin.execute(f"CREATE DATABASE {name}")
            try:
                failed += _open_at_once(urlunsplit(urlsplit(server)._replace(path=f"/{name}")), 4)
            finally:
                with psycopg.connect(admin_url, autocommit=True) as admin:
                    admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    fault.record("workers that failed to start", failed, reps)
    assert failed == 0
