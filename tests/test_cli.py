"""The command line as a table: every subcommand's handler, and one list of default paths shared
by the CLI, its help texts and dvc.yaml."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from sinernn import cli
from sinernn.cli import build_parser
from sinernn.commands import COMMANDS
from sinernn.core import paths

ROOT = Path(__file__).resolve().parents[1]
# How dvc.yaml names what the CLI's help calls DATASET and ARCH.
FILLED = {"${item.dataset}": "DATASET", "${item.arch}": "ARCH"}


def _subparser(name: str):
    actions = build_parser()._subparsers._group_actions[0]
    return actions.choices[name]


def _stage_arguments() -> list[tuple[str, str, str, list[str]]]:
    """(command, --flag, value, the command's words) for every option of every stage command in
    dvc.yaml. A stage runs stages/<command>.py: its own name, or `measure` for a measurement."""
    found = []
    for stage, spec in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        words = shlex.split(spec["cmd"])
        command = Path(words[1]).stem
        assert words[:2] == ["python", f"stages/{command}.py"] and command in (stage, "measure"), words[:2]
        found += [(command, flag, value, words[2:]) for flag, value in zip(words[2:], words[3:])
                  if flag.startswith("--") and not value.startswith("--")]
    return found


def _as_help(value: str) -> str:
    for written, shown in FILLED.items():
        value = value.replace(written, shown)
    return value


def _measurement_out(words: list[str]) -> str:
    """Where `sinernn measure NAME [--item ITEM]` writes by default, ITEM as dvc.yaml writes it."""
    from sinernn.answer.measurements import PARTS, file_name

    name, item = words[0], dict(zip(words, words[1:])).get("--item")
    return f"{paths.default(paths.MEASUREMENTS, family=PARTS[name].family)}/{file_name(name, item)}"


def _templates(value: str) -> list[str]:
    """The templates of sinernn/paths.py that `value` fills (a family folder filled by name)."""
    return [t for t in vars(paths).values() if isinstance(t, str) and (
        paths.shown(t) == _as_help(value) or value in (t.format(family=f) for f in ("diagnose", "claims") if "{family}" in t))]


def mismatches() -> list[str]:
    """Every path option dvc.yaml passes to a stage that is not the CLI's default for it."""
    problems = []
    for stage, flag, value, words in _stage_arguments():
        if "/" not in value:
            continue
        action = next(a for a in _subparser(stage)._actions if flag in a.option_strings)
        shown = re.search(r"\(default: ([^)\s]+)\)", action.help or "")
        if stage == "measure" and flag == "--out":  # one file per measurement, named by the table
            if value != _measurement_out(words):
                problems.append(f"measure --out {value}: `sinernn measure` writes {_measurement_out(words)}")
        elif not _templates(value):
            problems.append(f"{stage} {flag} {value}: no template of sinernn/paths.py")
        # --tuned is the one path option without a default: train runs untuned by hand
        elif flag != "--tuned" and (not shown or shown.group(1) != _as_help(value)):
            problems.append(f"{stage} {flag} {value}: the CLI's help says {action.help!r}")
    return problems


def test_every_path_dvc_yaml_passes_is_the_clis_default():
    """`sinernn train --dataset clean --arch lstm` by hand reads and writes what `dvc repro` does."""
    assert len(_stage_arguments()) > 20
    assert mismatches() == []


def test_every_command_has_a_handler_and_its_own_name():
    parser = build_parser()
    names = [command.name for command in COMMANDS]
    assert len(names) == len(set(names))
    for command in COMMANDS:
        args = parser.parse_args([command.name, *_required(command.name)])
        assert args.handler is command.handler


def _required(name: str) -> list[str]:
    return {"generate": ["--dataset", "clean"], "tune": ["--dataset", "clean", "--arch", "lstm"], "storage-proxy": ["--storage", "x"],
            "train": ["--dataset", "clean", "--arch", "lstm"], "evaluate": ["--dataset", "clean"],
            "diagnose": ["--all"], "register": ["--dataset", "clean"], "predict": ["--model", "m.pt"],
            "serve": ["--dataset", "clean"], "measure": ["corrected"]}.get(name, [])


def test_the_help_shows_the_defaults_of_sinernn_paths():
    text = _subparser("evaluate").format_help()
    for template in (paths.DATA, paths.MODELS, paths.EVAL, paths.PREDICTIONS, paths.ROLLOUTS, paths.BACKTESTS):
        assert paths.shown(template) in text


def test_the_check_sees_a_path_that_drifted(monkeypatch):
    """The check itself: a CLI default that no longer matches dvc.yaml is caught."""
    monkeypatch.setattr(paths, "EVAL", "reports/evaluation/{dataset}.json")
    assert [m for m in mismatches() if m.startswith(("evaluate --metrics", "register --eval"))] != []


JOBS = {"generate": "generate_job", "tune": "tune_job", "train": "train_job", "evaluate": "evaluate_job",
        "summarize": "summarize_job", "diagnose": "diagnose_job", "claims": "claims_job", "report": "report_job",
        "register": "register_job", "measure": "measure_job"}
STAGE = {"measure": "claims_overfitting"}  # a stage that runs the command


@pytest.mark.parametrize("stage", sorted(JOBS))
def test_a_stage_run_by_hand_without_paths_uses_the_paths_dvc_yaml_passes(stage, monkeypatch):
    """The handler's defaults, not only the help text: `sinernn <stage>` with no path options hands its
    job the very paths dvc.yaml gives the stage."""
    import importlib

    import sinernn.core.config as config

    params = config.load_params(ROOT / "params.yaml")
    names = {"${item.dataset}": params.run.train_datasets[0], "${item.arch}": params.run.architectures[0]}
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][STAGE.get(stage, stage)]
    words = shlex.split(spec["cmd"])[2:]
    for written, name in names.items():
        words = [word.replace(written, name) for word in words]
    # (--tuned has no default: train runs untuned by hand unless told otherwise)
    given = {value for flag, value in zip(words, words[1:]) if flag.startswith("--") and "/" in value
             and flag != "--tuned"}
    by_hand = []
    for word in words:  # drop the path options (and their values), keep the rest
        if by_hand and by_hand[-1].startswith("--") and word in given:
            by_hand.pop()
        elif word not in given:
            by_hand.append(word)

    received = []
    module = importlib.import_module(f"sinernn.jobs.{stage}")
    monkeypatch.setattr(module, JOBS[stage], lambda *args, **kwargs: received.append([*args, *kwargs.values()])
                        or _fake_result(stage))
    monkeypatch.chdir(ROOT)  # load_params(params.yaml) as a stage does
    assert cli.main([stage, *by_hand]) == 0
    passed = {str(value) for value in received[0] if isinstance(value, Path)}
    assert passed >= given and given, (passed, given)


def _fake_result(stage: str):
    return {"train": {"best_val_loss": 1.0, "epochs": 1, "train_seconds": 0.0},
            "tune": {"best_value": None, "note": "test"}, "register": {"decision": "kept"}}.get(stage, {})


def test_set_overrides_one_param_for_one_command_and_is_validated(tmp_path):
    from sinernn.core.config import ParamsError, load_params

    path = Path(__file__).resolve().parents[1] / "params.yaml"
    before = path.read_bytes()
    params = load_params(path, ["tune.n_trials=3", "mlflow.experiment=demo", "train.grad_clip=0"])
    assert (params.tune.n_trials, params.mlflow.experiment, params.train.grad_clip) == (3, "demo", 0)
    assert path.read_bytes() == before  # the file itself is untouched
    with pytest.raises(ParamsError, match=r"tune\.n_trials: Input should be greater"):
        load_params(path, ["tune.n_trials=-1"])
    with pytest.raises(ParamsError, match="expected KEY=VALUE"):
        load_params(path, ["tune.n_trials"])
    with pytest.raises(ParamsError, match="seed is not a section"):
        load_params(path, ["seed.x=1"])
    assert build_parser().parse_args(["tune", "--dataset", "clean", "--arch", "gru", "-S", "a=1", "--set", "b=2"]).set == ["a=1", "b=2"]


def test_retrain_refuses_set_because_dvc_repro_reads_params_yaml_itself():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "sinernn.cli", "retrain", "-S", "seed=1"], capture_output=True,
                            text=True, cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 2 and "edit the file, not --set" in result.stderr
