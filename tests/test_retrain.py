"""Retraining's bookkeeping on its own: exit codes read from DVC's output, and the journal that
makes the next retrain finish an interrupted one. (The real thing, killed at every point, runs in
tests/test_pipeline_e2e.py.)"""

import json
import subprocess

import pytest

from sinernn.core.files import write_json
from sinernn.jobs import retrain


def _dvc_output(stderr: str) -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess(["dvc"], 1, "", stderr)


@pytest.mark.parametrize("stage_output, code", [
    ("sinernn: error: data/external/x.csv, row 5: non-numeric value\nERROR: failed to reproduce 'generate@x': "
     "failed to run: python stages/generate.py, exited with 2", 2),
    ("sinernn: error: the loss became NaN\nERROR: failed to reproduce 'train@a': ..., exited with 3", 3),
    ("sinernn: error: cannot use the MLflow tracking store\nERROR: ..., exited with 4", 4),
    # A stage that crashed before it could speak (an import error) exits 1: not "champion kept".
    ("ModuleNotFoundError: No module named 'torch'\nERROR: failed to reproduce 'train@a': ..., exited with 1", 70),
    ("ERROR: failed to reproduce 'train@a': failed to run: python stages/train.py, exited with -9", 70),  # OOM killer
    ("ERROR: Unable to acquire lock. Most likely another DVC process is running", 70),
])
def test_only_meaningful_stage_codes_pass_through(stage_output, code):
    assert retrain._failure(_dvc_output(stage_output), "exp run").exit_code == code


class Dvc:
    """Records the dvc commands a recovery runs; every one succeeds."""

    def __init__(self):
        self.calls = []

    def __call__(self, *args, failpoint_name=None):
        self.calls.append(args)
        return subprocess.CompletedProcess(["dvc", *args], 0, "", "")


@pytest.fixture
def interrupted(tmp_path, params, monkeypatch):
    """A retrain that applied its experiment, then failed to register (tracking server down)."""
    journal = {"experiment": "retrain-1", "phase": "registering", "entry": {"experiment": "retrain-1"},
               "champions": {"clean": 1}, "params_yaml": "seed: 0\n"}
    write_json(tmp_path / retrain.JOURNAL, journal)
    write_json(tmp_path / retrain.HISTORY, [{"experiment": "retrain-1", "outcome": "failed", "exit_code": 4}])
    write_json(tmp_path / "reports/registry/clean.json", {"dataset": "clean", "promoted": True})
    monkeypatch.setattr(retrain, "_champions", lambda params: {"clean": 2})  # what the registry says after
    return tmp_path


def test_a_retrain_that_failed_after_its_apply_is_finished_by_the_next(interrupted, params):
    dvc = Dvc()
    entry = retrain._finish_interrupted(dvc, interrupted, params)
    assert dvc.calls == [("repro", "register@clean"), ("config", "core.remote")]
    assert entry["outcome"] == "promoted" and entry["champions"] == {"clean": {"before": 1, "after": 2}}
    assert entry["recovered"] and not (interrupted / retrain.JOURNAL).exists()
    assert [e["outcome"] for e in json.loads((interrupted / retrain.HISTORY).read_text())] == ["failed", "promoted"]


def test_a_retrain_that_cannot_be_finished_is_abandoned_after_three_failures(interrupted, params):
    failed = {"experiment": "retrain-1", "outcome": "failed", "exit_code": 2}
    write_json(interrupted / retrain.HISTORY, [failed] * retrain.MAX_FAILURES)
    dvc = Dvc()
    entry = retrain._finish_interrupted(dvc, interrupted, params)
    assert dvc.calls == [] and entry["outcome"] == "abandoned" and "dvc status" in entry["error"]
    assert not (interrupted / retrain.JOURNAL).exists()


def _pipeline_journal(root, params_yaml):
    journal = {"experiment": "retrain-2", "phase": "pipeline", "champions": {"clean": 1}, "params_yaml": params_yaml,
               "entry": {"experiment": "retrain-2", "overrides": {"datasets.clean.snapshot": 1}}}
    write_json(root / retrain.JOURNAL, journal)


def test_a_retrain_killed_mid_pipeline_gets_its_params_put_back(tmp_path, params):
    """`dvc exp run -S` writes the overrides into params.yaml while it sets the experiment up."""
    before = "seed: 0\ndatasets:\n  clean: {source: sine, period: 37.7}\n"
    _pipeline_journal(tmp_path, before)
    (tmp_path / "params.yaml").write_text("seed: 0\ndatasets:\n  clean:\n    source: sine\n    period: 37.7\n    snapshot: 1\n")
    entry = retrain._finish_interrupted(Dvc(), tmp_path, params)
    assert entry["outcome"] == "interrupted" and "params.yaml put back" in entry["error"]
    assert (tmp_path / "params.yaml").read_text() == before


def test_params_edited_since_the_kill_are_left_alone(tmp_path, params):
    _pipeline_journal(tmp_path, "seed: 0\ndatasets:\n  clean: {source: sine, period: 37.7}\n")
    edited = "seed: 7\ndatasets:\n  clean: {source: sine, period: 37.7, snapshot: 1}\n"  # someone changed the seed
    (tmp_path / "params.yaml").write_text(edited)
    entry = retrain._finish_interrupted(Dvc(), tmp_path, params)
    assert "left as it is" in entry["error"] and (tmp_path / "params.yaml").read_text() == edited
