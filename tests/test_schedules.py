"""The three shipped schedules, executed: each runs deploy/retrain.sh in a clone whose
`sinernn retrain` is a stub exiting 0 (promoted), 1 (kept), 75 (locked) or 2 (bad input), and
each must read that code as documented: 0, 1 and 75 are fine, anything else is a failure."""

import configparser
import os
import re
import shlex
import shutil
import subprocess

import pytest
import yaml
from conftest import ROOT

CODES = {0: True, 1: True, 75: True, 2: False}  # exit code -> a successful outcome?
INSTALL_DIR = "/opt/sinernn"  # where the shipped files expect the clone


@pytest.fixture
def clone(tmp_path):
    """deploy/retrain.sh in a clone whose install is a no-op and whose sinernn is a stub."""
    root = tmp_path / "sinernn"
    (root / "deploy").mkdir(parents=True)
    shutil.copy(ROOT / "deploy/retrain.sh", root / "deploy/retrain.sh")
    (root / "Makefile").write_text("install data/external/sample.csv:\n\t@true\n")
    stub = root / ".venv/bin/sinernn"
    stub.parent.mkdir(parents=True)
    stub.write_text('#!/bin/sh\necho "stub: sinernn $*"\nexit "$STUB_EXIT"\n')
    stub.chmod(0o755)
    for path in ("params.yaml", "dvc.lock", "reports/retrain.json", "models/clean/train.json", "tuned/clean/lstm.json"):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("{}\n")  # what the workflow commits
    return root


def _env(code: int, **extra) -> dict:
    return {**os.environ, "STUB_EXIT": str(code), **extra}


@pytest.mark.parametrize("code", CODES)
def test_the_systemd_unit_reads_the_exit_code(clone, code):
    service = configparser.ConfigParser()
    service.read(ROOT / "deploy/systemd/sinernn-retrain.service")
    unit = service["Service"]
    command = shlex.split(unit["ExecStart"].replace(INSTALL_DIR, str(clone)))
    ran = subprocess.run(command, cwd=unit["WorkingDirectory"].replace(INSTALL_DIR, str(clone)),
                         env=_env(code), capture_output=True, text=True)
    assert ran.returncode == code and "stub: sinernn retrain" in ran.stdout
    # systemd's rule: 0 and the SuccessExitStatus codes are success, any other code a failure.
    success = ran.returncode == 0 or str(ran.returncode) in unit["SuccessExitStatus"].split()
    assert success == CODES[code]


def test_the_systemd_timer_is_weekly():
    timer = configparser.ConfigParser()
    timer.read(ROOT / "deploy/systemd/sinernn-retrain.timer")
    assert timer["Timer"]["OnCalendar"].startswith("Mon") and timer["Install"]["WantedBy"] == "timers.target"


@pytest.mark.parametrize("code", CODES)
def test_the_crontab_line_logs_the_exit_code(clone, code):
    lines = [line for line in (ROOT / "deploy/crontab").read_text().splitlines() if line and not line.startswith("#")]
    assert len(lines) == 1
    fields = lines[0].split(None, 5)
    assert all(re.fullmatch(r"[\d*/,-]+", field) for field in fields[:5])
    assert "%" not in fields[5]  # cron would turn it into a newline
    subprocess.run(["sh", "-c", fields[5].replace(INSTALL_DIR, str(clone))], env=_env(code), check=True)
    log = (clone / "reports/retrain.log").read_text()
    assert "stub: sinernn retrain" in log and f"retrain exit {code}\n" in log


def _workflow_steps() -> dict:
    workflow = yaml.safe_load((ROOT / ".github/workflows/retrain.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert re.fullmatch(r"(\S+ ){4}\S+", triggers["schedule"][0]["cron"]) and "workflow_dispatch" in triggers
    return {step["name"]: step for step in workflow["jobs"]["retrain"]["steps"] if "name" in step}


@pytest.mark.parametrize("code", CODES)
def test_the_github_workflow_commits_what_changed_and_fails_as_documented(clone, tmp_path, code):
    """The three steps run as GitHub runs them (bash -e, the step output substituted): whatever
    the retrain changed is committed and pushed; the job fails on any code but 0, 1 and 75."""
    steps = _workflow_steps()
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=clone, check=True)
    subprocess.run([*git, "add", "-A"], cwd=clone, check=True)
    subprocess.run([*git, "commit", "-qm", "start"], cwd=clone, check=True)
    subprocess.run(["git", "remote", "add", "origin", str(remote)], cwd=clone, check=True)
    subprocess.run(["git", "push", "-q", "-u", "origin", "main"], cwd=clone, check=True)
    # What a real retrain changes: 75 nothing; the others at least their reports/retrain.json entry.
    stub = clone / ".venv/bin/sinernn"
    stub.write_text(stub.read_text().replace(
        'exit "$STUB_EXIT"', '[ "$STUB_EXIT" = 75 ] || echo "[{\\"exit\\": $STUB_EXIT}]" > reports/retrain.json\nexit "$STUB_EXIT"'))

    outputs = tmp_path / "github_output"
    outputs.write_text("")
    ran = []
    for name in ("Retrain", "Commit the new state", "Judge the outcome"):
        script = steps[name]["run"].replace("${{ steps.retrain.outputs.code }}", str(code))
        ran.append(subprocess.run(["bash", "-e", "-c", script], cwd=clone, env=_env(code, GITHUB_OUTPUT=str(outputs)),
                                  capture_output=True, text=True))
        if ran[-1].returncode != 0:
            break  # GitHub skips the later steps of a failed job
    assert f"code={code}\n" in outputs.read_text()
    assert [r.returncode == 0 for r in ran] == [True, True, CODES[code]], [r.stderr for r in ran]
    pushed = subprocess.run(["git", "log", "--format=%s", "main"], cwd=remote, capture_output=True, text=True).stdout
    assert (f"Retrain (exit {code})" in pushed) == (code != 75)


def test_make_retrain_runs_the_same_script():
    dry_run = subprocess.run(["make", "--no-print-directory", "-n", "retrain"], cwd=ROOT, capture_output=True, text=True)
    assert dry_run.returncode == 0 and dry_run.stdout.strip() == "deploy/retrain.sh"
