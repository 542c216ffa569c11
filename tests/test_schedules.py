"""The three shipped schedules run the same retrain command, on a schedule, treating "champion
kept" (exit 1) as success."""

import configparser
import re
import subprocess

import yaml

from conftest import ROOT

COMMAND = "make retrain"


def test_the_github_workflow_runs_on_a_schedule_and_by_hand():
    workflow = yaml.safe_load((ROOT / ".github/workflows/retrain.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert re.fullmatch(r"(\S+ ){4}\S+", triggers["schedule"][0]["cron"])
    assert "workflow_dispatch" in triggers
    steps = workflow["jobs"]["retrain"]["steps"]
    retrain = next(step for step in steps if step.get("id") == "retrain")
    assert COMMAND in retrain["run"] and '"$code" -ne 1' in retrain["run"]


def test_the_systemd_units_run_the_same_command_weekly():
    service = configparser.ConfigParser()
    service.read(ROOT / "deploy/systemd/sinernn-retrain.service")
    assert service["Service"]["ExecStart"].endswith(COMMAND)
    assert "1" in service["Service"]["SuccessExitStatus"].split()
    timer = configparser.ConfigParser()
    timer.read(ROOT / "deploy/systemd/sinernn-retrain.timer")
    assert timer["Timer"]["OnCalendar"] and timer["Install"]["WantedBy"] == "timers.target"


def test_the_crontab_line_runs_the_same_command():
    lines = [line for line in (ROOT / "deploy/crontab").read_text().splitlines() if line and not line.startswith("#")]
    assert len(lines) == 1
    fields = lines[0].split(None, 5)
    assert all(re.fullmatch(r"[\d*/,-]+", field) for field in fields[:5]) and COMMAND in fields[5]


def test_make_retrain_is_the_sinernn_command():
    dry_run = subprocess.run(["make", "--no-print-directory", "-n", "retrain"], cwd=ROOT, capture_output=True, text=True)
    assert dry_run.returncode == 0
    assert any(line.strip().endswith("sinernn retrain") for line in dry_run.stdout.splitlines())
