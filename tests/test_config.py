"""params.yaml is validated before any work: a bad value is one line naming the key."""

import subprocess
import sys

import pytest
from conftest import ROOT, write_params

from sinernn.core.config import load_params, parse_params
from sinernn.core.config_data import ParamsError


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
        (lambda p: p["datasets"]["random_freq"].update(test_length=10), "datasets.random_freq.test_length (10)"),
        (lambda p: p["datasets"]["clean"].update(train={"window": 4, "scaling": "sideways"}), "datasets.clean.train.scaling"),
        (lambda p: p["datasets"]["clean"].update(season=40), "datasets.clean.season (40) exceeds its window (16)"),
        (lambda p: p["datasets"]["clean"].update(train={"scaling": "diff"}) or p["train"].update(framing="time_to_value")
         or p["run"].update(architectures=["rnn"]), "datasets.clean.train.scaling diff re-expresses input windows"),
        (lambda p: p["evaluate"].update(horizons=[10, 1]), "evaluate.horizons: must be increasing"),
        (lambda p: p["datasets"]["noisy"].update(train={"rollout_steps": 8}) or p["train"].update(framing="time_to_value", scaling="global")
         or p["run"].update(architectures=["rnn"]) or [d.get("train", {}).pop("scaling", None) for d in p["datasets"].values()],
         "rollout_steps 8 on dataset 'noisy' feeds predictions back into input windows: it needs train.framing window"),
        (lambda p: p["train"].update(rollout_steps=0), "train.rollout_steps: Input should be greater than or equal to 1"),
        (lambda p: p["train"].update(rollout_steps=257), "train.rollout_steps: Input should be less than or equal to 256"),
        (lambda p: p["train"].update(window=1), "train.scaling window needs windows of at least 2 values on dataset 'sample_csv'"),
        (lambda p: p["datasets"]["clean"].update(train={"scaling": "diff"}) or p["tune"]["space"].update(window={"low": 1, "high": 8}),
         "datasets.clean.train.scaling diff needs windows of at least 2 values on dataset 'clean' (tune.space.window.low is 1)"),
        (lambda p: p["datasets"]["clean"].update(season=300), "datasets.clean.season (300) must be shorter than its train split (300)"),
        (lambda p: p["train"].update(framing="time_to_value", scaling="global") or [d.get("train", {}).pop("scaling", None) for d in p["datasets"].values()],
         "the seasonal_naive baseline reads a season back in its input window"),
        (lambda p: p["registry"].update(metric="rollout_mse_0100"), "registry.metric is 'rollout_mse_0100'"),
        (lambda p: p["registry"].update(metric="rollout_mse_1000") or p["datasets"]["clean"].update(n_test=500),
         "registry.metric rollout_mse_1000 needs 1000 test values after the seed window, but dataset 'clean' holds 500"),
        (lambda p: p["registry"].update(metric="rollout_mse_50"), "registry.metric is 'rollout_mse_50'"),
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


# ---- params that validated but crashed later (issue 9) ----------------------------------------


@pytest.mark.parametrize(
    "mutate, expected",
    [
        # train.window is 16 in the tiny params: a train split of 16 values holds no (window, next) pair
        (lambda p: p["datasets"]["clean"].update(n_train=16), "datasets.clean.n_train (16) must exceed the longest window"),
        # ... and neither does a dataset's own longer window
        (lambda p: p["datasets"]["clean"].update(train={"window": 300}), "datasets.clean.n_train (300) must exceed the longest window (300, datasets.clean.train.window)"),
        # separate series (random_freq) have no history before a split: every split needs a window
        (lambda p: p["datasets"]["random_freq"].update(train_length=16), "datasets.random_freq.train_length (16) must exceed"),
        # a tuning trial may draw any window up to tune.space.window.high
        (lambda p: p["tune"]["space"].update(window={"low": 8, "high": 300}), "datasets.clean.n_train (300) must exceed the longest window (300, tune.space.window.high)"),
        # the memory measurement frames diagnose.memory_dataset with each of these windows
        (lambda p: p["diagnose"].update(memory_windows=[2, 300]), "datasets.noisy.n_train (300) must exceed the longest window (300, diagnose.memory_windows)"),
        # the corrected examples frame the published data, whose val and test splits hold 150 values
        (lambda p: p["diagnose"].update(corrected_window=150), "diagnose.corrected_window"),
    ],
    ids=["n_train", "dataset-window", "random-freq", "tune-window", "memory-window", "corrected-window"],
)
def test_a_window_as_long_as_its_data_is_rejected(raw_params, mutate, expected):
    mutate(raw_params)
    with pytest.raises(ParamsError) as error:
        parse_params(raw_params)
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("snapshot, drift", [(2, -0.5), (3, -0.5), (10, -0.2)])
def test_a_period_drifting_to_zero_or_below_is_rejected(raw_params, snapshot, drift):
    # snapshot N uses period x (1 + period_drift x N): zero divides by zero, below zero runs the sine backwards
    raw_params["datasets"]["clean"].update(snapshot=snapshot, period_drift=drift)
    with pytest.raises(ParamsError, match=r"datasets\.clean\.period_drift: .* snapshot"):
        parse_params(raw_params)
    raw_params["datasets"]["clean"].update(snapshot=1)  # one step of the same drift is fine
    parse_params(raw_params)


@pytest.mark.parametrize("section, key, most", [("train", "threads", 256), ("tune", "workers", 64)])
def test_thread_and_worker_counts_are_bounded(raw_params, section, key, most):
    raw_params[section][key] = most
    parse_params(raw_params)
    raw_params[section][key] = most + 1
    with pytest.raises(ParamsError, match=rf"{section}\.{key}: Input should be less than or equal to {most}"):
        parse_params(raw_params)


@pytest.mark.parametrize("section", ["datasets", "architectures"])
@pytest.mark.parametrize("name", ["../evil", "Clean", "a b", "x' OR '1'='1", "_hidden", "a" * 65, ""])
def test_names_that_become_paths_and_filters_are_restricted(raw_params, section, name):
    raw_params[section][name] = dict(raw_params[section]["clean" if section == "datasets" else "rnn"])
    with pytest.raises(ParamsError) as error:
        parse_params(raw_params)
    assert f"{section}: name {name!r} must match" in str(error.value)


@pytest.mark.parametrize("path", ["data/external/../../secret.csv", "data/external/sub/../../../x.csv", "data/external/.."])
def test_a_csv_path_climbing_out_of_data_external_is_rejected(raw_params, path):
    raw_params["datasets"]["sample_csv"]["path"] = path
    with pytest.raises(ParamsError, match=r"datasets\.sample_csv\.path: .*'\.\.'"):
        parse_params(raw_params)


def test_an_override_is_validated_again(params):
    # pydantic's model_copy(update=...) skips validation; the CLI's overrides go through it
    with pytest.raises(ParamsError, match=r"train\.max_epochs: Input should be greater than 0"):
        params.train.model_copy(update={"max_epochs": -3})
    with pytest.raises(ParamsError, match="unknown dataset 'stocks'"):
        params.model_copy(update={"run": params.run.model_copy(update={"datasets": ["clean", "stocks"]})})
    assert params.train.model_copy(update={"max_epochs": 2}).max_epochs == 2
    assert params.train.model_copy() == params.train


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["diagnose", "--dataset", "clean", "--arch", "lstm", "--epochs", "-3"], "--epochs must be at least 1 (got -3)"),
        (["diagnose", "--example", "1", "--epochs", "0"], "--epochs must be at least 1 (got 0)"),
        (["tune", "--dataset", "clean", "--arch", "lstm", "--workers", "65"], "--workers must be between 1 and 64 (got 65)"),
        (["tune", "--dataset", "clean", "--arch", "lstm", "--workers", "0"], "--workers must be between 1 and 64 (got 0)"),
        (["predict", "--model", "absent.pt", "--input", "absent.csv", "--horizon", "10001"],
         "--horizon must be between 1 and 10000 (got 10001)"),
    ],
)
def test_cli_refuses_out_of_range_options_in_one_line(tmp_path, monkeypatch, raw_params, capsys, argv, expected):
    from sinernn.cli import main

    monkeypatch.chdir(tmp_path)  # nothing to read: the option is refused before any work
    path = write_params(tmp_path / "params.yaml", raw_params)
    assert main([*argv, "--params", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"sinernn: error: {expected}\n"


def test_the_registry_may_judge_by_any_evaluated_horizon(raw_params):
    raw_params["registry"]["metric"] = "rollout_mse_10"
    assert parse_params(raw_params).registry.metric == "rollout_mse_10"
