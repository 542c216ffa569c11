"""params.yaml is validated before any work: a bad value is one line naming the key."""

import subprocess
import sys

import pytest

from conftest import ROOT, write_params
from sinernn.config import ParamsError, load_params, parse_params


def test_the_shipped_params_are_valid():
    params = load_params(ROOT / "params.yaml")
    assert set(params.run.train_datasets) <= set(params.run.datasets)
    assert {"rnn", "gru", "lstm", "deep_lstm", "transformer", "ridge", "persistence"} <= set(params.architectures)


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda p: p["train"].update(lr="fast"), "train.lr"),
        (lambda p: p["train"].update(lr=-0.1), "train.lr: Input should be greater than 0"),
        (lambda p: p["train"].update(learning_rate=0.1), "train.learning_rate: unknown key"),
        (lambda p: p["train"].update(framing="sliding"), "train.framing"),
        (lambda p: p["architectures"]["rnn"].update(kind="mamba"), "architectures.rnn"),
        (lambda p: p["run"].update(architectures=["rnn", "xlstm"]), "unknown architecture 'xlstm'"),
        (lambda p: p["run"].update(datasets=["clean", "stocks"]), "unknown dataset 'stocks'"),
        (lambda p: p["run"].update(train_datasets=["long_period"], datasets=["clean"]), "run.train_datasets"),
        (lambda p: p["datasets"]["clean"].update(n_test=100), "datasets.clean.n_test is 100"),
        (lambda p: p["datasets"]["random_freq"].update(period_min=90.0), "period_min"),
        (lambda p: p["datasets"]["sample_csv"].update(test_fraction=0.9), "val_fraction + test_fraction"),
        (lambda p: p["datasets"]["sample_csv"].update(path="/etc/passwd"), "data/external/"),
        (lambda p: p["architectures"]["transformer"].update(nhead=3), "divisible by nhead"),
        (lambda p: p["train"].update(framing="naive"), "baselines"),
    ],
)
def test_an_invalid_value_names_its_key(raw_params, mutate, expected):
    mutate(raw_params)
    with pytest.raises(ParamsError) as error:
        parse_params(raw_params)
    message = str(error.value)
    assert expected in message
    assert "\n" not in message


def test_cli_rejects_bad_params_with_one_line_and_no_outputs(tmp_path, raw_params):
    raw_params["train"]["batch_size"] = 0
    path = write_params(tmp_path / "params.yaml", raw_params)
    result = subprocess.run(
        [sys.executable, "-m", "sinernn.cli", "generate", "--dataset", "clean", "--params", str(path),
         "--out", str(tmp_path / "out/clean.npz")],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "train.batch_size: Input should be greater than 0" in result.stderr
    assert not (tmp_path / "out").exists()


def test_missing_and_malformed_params_files(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "absent.yaml")
    (tmp_path / "broken.yaml").write_text("train: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path / "broken.yaml")
