"""`sinernn diagnose --code FILE` on the reader's own setup: the published examples, written as
such files under examples/diagnose/, are its tests, run through the real command line.

    sinernn diagnose --code examples/diagnose/published_example1.py
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sinernn.answer.diagnosis import diagnose
from sinernn.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples/diagnose"

# file -> the checks that must fire, exactly (with the default 100 full-batch epochs)
EXPECTED = {
    "published_example1.py": {"shapes", "constant", "no_information", "beyond_range"},
    "published_example2.py": {"shapes", "constant", "no_information", "beyond_range"},
    "published_example3.py": {"crash", "beyond_range"},
    "time_input.py": {"beyond_range"},
    "windowed.py": set(),
}


def _checks(output: str) -> set[str]:
    return {line.split("]", 1)[1].split(":", 1)[0].strip() for line in output.splitlines() if line.startswith("[")}


def test_every_example_file_has_an_expectation():
    assert {p.name for p in EXAMPLES.glob("*.py")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_command_finds_what_is_wrong_with_each_example(name):
    result = subprocess.run([sys.executable, "-m", "sinernn.cli", "diagnose", "--code", str(EXAMPLES / name)],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert _checks(result.stdout) == EXPECTED[name], result.stdout + result.stderr
    assert result.returncode == (1 if EXPECTED[name] else 0)
    if not EXPECTED[name]:
        assert "no problem found" in result.stdout


def test_the_crash_finding_explains_the_unbatched_input(capsys):
    assert main(["diagnose", "--code", str(EXAMPLES / "published_example3.py"), "--epochs", "1"]) == 1
    out = capsys.readouterr().out
    assert "reads as ONE unbatched sequence of 1000 steps" in out and "Give the input a batch dimension" in out


def test_the_help_says_the_file_is_executed(capsys):
    with pytest.raises(SystemExit):
        main(["diagnose", "--help"])
    assert "EXECUTES this file" in " ".join(capsys.readouterr().out.split())


BROKEN = {
    "no build": ("x = 1\n", "defines no build() function"),
    "build raises": ("def build():\n    raise RuntimeError('no data here')\n", "running it raised RuntimeError: no data here"),
    "import fails": ("import not_a_module_anywhere\n", "running it raised ModuleNotFoundError"),
    "wrong return": ("def build():\n    return 42\n", "build() returned int"),
    "unknown key": ("import torch\ndef build():\n    return {'model': torch.nn.Linear(1, 1), 'inputs': torch.zeros(2, 1), "
                    "'targets': torch.zeros(2, 1), 'optimiser': None}\n", "unknown keys ['optimiser']"),
    "not a module": ("import torch\ndef build():\n    return (lambda x: x), torch.zeros(2, 1), torch.zeros(2, 1)\n",
                     "not an nn.Module"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_file_that_gives_no_setup_is_one_clear_error(case, tmp_path, capsys):
    source, message = BROKEN[case]
    path = tmp_path / "my_setup.py"
    path.write_text(source)
    assert main(["diagnose", "--code", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err


def test_a_missing_file_is_named(tmp_path, capsys):
    assert main(["diagnose", "--code", str(tmp_path / "absent.py")]) == 2
    assert "absent.py: no such file" in capsys.readouterr().err


def test_a_diverging_setup_is_found(tmp_path, capsys):
    path = tmp_path / "explodes.py"
    path.write_text("import torch\n"
                    "def build():\n"
                    "    torch.manual_seed(0)\n"
                    "    x = torch.randn(64, 8, 1); y = x[:, -1]\n"
                    "    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 1))\n"
                    "    return {'model': model, 'inputs': x, 'targets': y,\n"
                    "            'optimizer': torch.optim.SGD(model.parameters(), lr=10.0)}\n")
    assert main(["diagnose", "--code", str(path), "--epochs", "200"]) == 1
    assert "[error] diverged: the loss became" in capsys.readouterr().out


def test_future_inputs_inside_the_training_range_are_fine():
    """The same model and data as time_input.py, asked about times it was trained on: no finding;
    the times after them: the finding. The check compares ranges, not the model."""
    model = torch.nn.Linear(1, 1)
    time = torch.linspace(0, 10, 1000).reshape(-1, 1)
    inside = time[torch.randperm(1000, generator=torch.Generator().manual_seed(0))][:700]  # shuffled: no order
    assert diagnose(model, inside, torch.sin(inside), future_inputs=time[100:300]) == []
    found = diagnose(model, inside, torch.sin(inside), future_inputs=time[:300] + 10)
    assert [f.check for f in found] == ["beyond_range"] and "100% of the future inputs" in found[0].message


def test_a_time_grid_is_flagged_in_any_order_and_noise_is_not():
    """Without future_inputs: a shuffled time axis is still a regular grid (a warning); random
    inputs are not."""
    time = torch.linspace(0, 10, 1000).reshape(-1, 1)
    shuffled = time[torch.randperm(1000, generator=torch.Generator().manual_seed(0))]
    [finding] = diagnose(torch.nn.Linear(1, 1), shuffled, torch.sin(shuffled))
    assert (finding.check, finding.severity) == ("beyond_range", "warning")
    noise = torch.randn(1000, 1, generator=torch.Generator().manual_seed(0))
    assert diagnose(torch.nn.Linear(1, 1), noise, torch.sin(noise)) == []


def test_a_few_future_inputs_outside_is_a_warning():
    time = torch.linspace(0, 10, 1000).reshape(-1, 1)
    [finding] = diagnose(torch.nn.Linear(1, 1), time[:700], torch.sin(time[:700]), future_inputs=time[600:750])
    assert finding.severity == "warning" and "33% of the future inputs" in finding.message


LOADABLE = {
    # a file sinernn must load as the reader's own Python would: (name, source)
    "dataclass with postponed annotations": ("setup.py", "from __future__ import annotations\nimport dataclasses, torch\n"
                                             "@dataclasses.dataclass\nclass Config:\n    hidden: int = 4\n"),
    "no .py suffix": ("setup.txt", "import torch\n"),
}


@pytest.mark.parametrize("case", sorted(LOADABLE))
def test_the_file_loads_as_python_would_load_it(case, tmp_path, capsys):
    name, head = LOADABLE[case]
    path = tmp_path / name
    path.write_text(head + (EXAMPLES / "windowed.py").read_text().split('"""', 2)[2])
    assert main(["diagnose", "--code", str(path), "--epochs", "30"]) in (0, 1), capsys.readouterr().err
    assert "sinernn: error" not in capsys.readouterr().err
    assert not any(str(tmp_path) == entry for entry in sys.path), "sys.path is restored"
    assert not any(m.startswith("sinernn_user_setup_") for m in sys.modules)


def test_a_file_that_exits_while_loading_is_one_clear_error(tmp_path, capsys):
    path = tmp_path / "script.py"
    path.write_text("import argparse\nargparse.ArgumentParser().parse_args(['--nope'])\n")
    assert main(["diagnose", "--code", str(path)]) == 2
    assert 'guard a script\'s own code with `if __name__ == "__main__":`' in capsys.readouterr().err


def test_code_needs_no_params_file_and_refuses_dataset_options(tmp_path):
    """Run from a folder without params.yaml, as a reader's own project is."""
    command = [sys.executable, "-m", "sinernn.cli", "diagnose", "--code", str(EXAMPLES / "published_example3.py"),
               "--epochs", "1"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 1 and "[error] crash" in result.stdout, result.stderr
    refused = subprocess.run([*command, "--arch", "lstm"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert refused.returncode == 2 and "--arch and --framing go with --dataset" in refused.stderr
