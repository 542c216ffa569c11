"""Forecasting series nobody generated: scaling as a choice, history before a split, horizons and
backtests, the seasonal-naive baseline.

    train:    {scaling: window}                       # global | window | diff
    datasets: {weekly: {..., season: 52, train: {window: 64}}}
    evaluate: {horizons: [1, 10, 100], backtest_stride: 10}
"""

import numpy as np
import pytest
import torch

from sinernn import serving
from sinernn.core import data
from sinernn.core.config_data import PersistenceArch, RecurrentArch, SineSource
from sinernn.core.config_stages import TrainConfig
from sinernn.core.data import Dataset, Split
from sinernn.core.evaluation import evaluate
from sinernn.core.framing import frame
from sinernn.core.models import build_model
from sinernn.core.training import fit_architecture

WINDOW = 16


@pytest.fixture(autouse=True)
def one_thread():
    """As the pipeline trains (train.threads: 1): two threads on a busy 2-core machine take minutes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _sine(**options) -> Dataset:
    cfg = SineSource(source="sine", **{"period": 20.3, "n_train": 400, "n_val": 50, "n_test": 30, **options})
    return data.generate("series", cfg, seed=0, window=WINDOW)


def _line(length: int = 300) -> Dataset:
    """x(t) = t: persistence is wrong by exactly h at h steps ahead."""
    t = np.arange(length, dtype=np.float64)[None, :]
    cuts = {"train": slice(0, 200), "val": slice(200, 250), "test": slice(250, length)}
    splits = {name: Split(t[:, part], t[:, part], t[:, part]) for name, part in cuts.items()}
    return Dataset("line", splits, float(t[:, :200].mean()), float(t[:, :200].std()), None)


def _fit(dataset, kind, scaling="global", **train):
    arch = PersistenceArch(kind="persistence") if kind == "persistence" else RecurrentArch(kind=kind, hidden_size=16)
    cfg = TrainConfig(window=WINDOW, scaling=scaling, **{"max_epochs": 15, "lr": 0.01, "batch_size": 32, **train})
    return fit_architecture(arch, cfg, dataset, seed=0).model


# ---- every value of a split is a target, exactly once -----------------------------------------


def test_validation_and_test_windows_reach_back_so_every_value_is_a_target_once():
    dataset = _sine()
    targets = {split: frame(dataset, split, "window", WINDOW).targets[:, 0].numpy() for split in data.SPLITS}
    assert [len(targets[s]) for s in data.SPLITS] == [400 - WINDOW, 50, 30]  # was 384 / 34 / 14
    everything = dataset.scale(np.concatenate([dataset.splits[s].observed[0] for s in data.SPLITS]))
    np.testing.assert_allclose(np.concatenate([targets[s] for s in data.SPLITS]), everything[WINDOW:], rtol=1e-6)
    first_test = frame(dataset, "test", "window", WINDOW)
    np.testing.assert_allclose(first_test.inputs[0, :, 0].numpy(),  # the last values of validation
                               dataset.scale(dataset.splits["val"].observed[0, -WINDOW:]), rtol=1e-6)


def test_separate_series_have_no_history_to_reach_back_into():
    from sinernn.core.config_data import RandomFreqSource

    cfg = RandomFreqSource(source="random_freq", n_train_series=2, n_val_series=2, n_test_series=3,
                           train_length=40, test_length=50)
    dataset = data.generate("many", cfg, seed=0, window=WINDOW)
    assert len(frame(dataset, "test", "window", WINDOW).targets) == 3 * (50 - WINDOW)


# ---- scaling ------------------------------------------------------------------------------------


def _model(scaling: str, kind: str = "gru"):
    config = {"kind": kind, "hidden_size": 8, "num_layers": 1, "dropout": 0.0, "input_length": WINDOW,
              "scaling": scaling, "diff_scale": 0.3}
    return build_model(config, seed=0).eval()


@torch.no_grad()
def test_window_scaling_answers_a_shifted_and_stretched_window_shifted_and_stretched():
    x = torch.randn(5, WINDOW, 1)
    model = _model("window")
    torch.testing.assert_close(model(3 * x + 40), 3 * model(x) + 40, rtol=1e-4, atol=1e-3)
    plain = _model("global")  # the same network without it: far from it
    assert not torch.allclose(plain(3 * x + 40), 3 * plain(x) + 40, atol=1.0)


@torch.no_grad()
def test_diff_scaling_answers_a_shifted_window_shifted():
    x = torch.randn(5, WINDOW, 1)
    model = _model("diff")
    torch.testing.assert_close(model(x + 40), model(x) + 40, rtol=1e-5, atol=1e-4)


def test_on_a_rising_trend_global_scaling_loses_to_persistence_and_window_and_diff_beat_it():
    # the test split lies above every training value: the networks must continue, not recall, levels
    dataset = _sine(period=20.0, trend=0.01, noise_std=0.05, n_val=100, n_test=200)
    assert dataset.splits["test"].observed.min() > dataset.splits["train"].observed.max() - 1
    mse = {scaling: evaluate(_fit(dataset, "gru", scaling), dataset, "window", WINDOW).metrics["test_mse"]
           for scaling in ("global", "window", "diff")}
    persistence = evaluate(_fit(dataset, "persistence"), dataset, "window", WINDOW).metrics["test_mse"]
    assert mse["global"] > persistence
    assert mse["window"] < persistence / 2 and mse["diff"] < persistence / 2, (mse, persistence)


@pytest.mark.parametrize("scaling", ["window", "diff"])
def test_ridge_is_fitted_on_what_its_linear_layer_sees(scaling):
    # a sine obeys a linear recurrence, also in re-expressed units: exact only if fitted in them
    from sinernn.core.config_data import RidgeArch

    dataset = _sine(n_test=200)
    cfg = TrainConfig(window=WINDOW, scaling=scaling)
    model = fit_architecture(RidgeArch(kind="ridge", alpha=1e-10), cfg, dataset, seed=0).model
    assert evaluate(model, dataset, "window", WINDOW).metrics["test_mse"] < 1e-8


def test_a_diff_model_reloads_from_its_checkpoint_with_its_difference_scale(tmp_path):
    from sinernn.core.checkpoint import load_checkpoint, save_checkpoint
    from sinernn.core.training import prepare

    dataset = _sine(n_test=200)
    prepared = prepare(RecurrentArch(kind="gru", hidden_size=8), TrainConfig(window=WINDOW, scaling="diff"), dataset, 0)
    assert prepared.model_config["diff_scale"] == pytest.approx(float(np.diff(dataset.scale(dataset.splits["train"].observed)).std()))
    save_checkpoint(tmp_path / "model.pt", prepared.model, prepared.model_config)
    reloaded, _ = load_checkpoint(tmp_path / "model.pt")
    x = torch.randn(3, WINDOW, 1)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), prepared.model.eval()(x))


def test_scaling_leaves_the_framings_without_a_window_alone():
    # time_to_value feeds one time value: a window scaling of it would feed the network zeros
    from sinernn.core.training import prepare

    dataset = _sine(n_test=200)
    prepared = prepare(RecurrentArch(kind="lstm", hidden_size=8), TrainConfig(framing="time_to_value", scaling="window"), dataset, 0)
    assert prepared.model_config["scaling"] == "global"
    with torch.no_grad():
        inputs = prepared.train_set.inputs[:5]
        assert not torch.allclose(prepared.model(inputs), prepared.model(inputs * 0))
    with pytest.raises(ValueError, match="at least 2 values"):
        build_model({"kind": "gru", "hidden_size": 4, "num_layers": 1, "dropout": 0.0, "input_length": 1, "scaling": "diff"})


def test_the_exported_forecaster_applies_the_scaling_it_was_trained_with(tmp_path):
    dataset = _sine(period=20.0, trend=0.01, n_val=100, n_test=200)
    model = _fit(dataset, "gru", "window", max_epochs=2)
    forecaster = serving.Forecaster(model, dataset.scale_mean, dataset.scale_std)
    windows = np.linspace(5, 9, 3 * WINDOW).reshape(3, WINDOW)  # above every training value
    program = serving.load_program(serving.export(forecaster, serving.example_windows(dataset, WINDOW),
                                                  tmp_path / "forecaster.pt2"))
    with torch.no_grad():
        scaled = dataset.scale(windows)
        expected = dataset.unscale(model(torch.as_tensor(scaled, dtype=torch.float32)[:, :, None]).numpy())
    np.testing.assert_allclose(serving.forecast(program, windows, 1), expected, rtol=1e-4)


# ---- horizons, backtests, seasonal naive -----------------------------------------------------


def test_persistence_on_a_line_is_wrong_by_exactly_h_at_h_steps_ahead():
    dataset = _line()
    persistence = build_model({"kind": "persistence"})
    evaluation = evaluate(persistence, dataset, "window", WINDOW, [1, 5, 50], season=1, stride=7)
    for row in evaluation.backtest:
        assert row["mae"] == pytest.approx(row["horizon"])
        assert row["mse"] == pytest.approx(row["horizon"] ** 2)
        assert row["mase"] == pytest.approx(row["horizon"])  # in-sample one-step naive error: 1
        assert row["seasonal_naive_mae"] == pytest.approx(row["horizon"])
    assert len(evaluation.backtest) == 50  # the test split holds 50 values
    assert evaluation.metrics["backtest_mae_5"] == pytest.approx(5)


def test_seasonal_naive_is_exact_on_a_purely_periodic_series():
    dataset = _sine(period=12.0, n_test=100)
    naive = build_model({"kind": "seasonal_naive", "season": 12})
    evaluation = evaluate(naive, dataset, "window", WINDOW, [1, 12, 50], season=12, stride=3)
    assert evaluation.metrics["test_mse"] < 1e-12  # sin(2 pi t / 12) repeats up to rounding
    assert evaluation.metrics["rollout_mse_50"] < 1e-12
    assert max(row["mae"] for row in evaluation.backtest) < 1e-6  # the forecast runs in float32
    assert max(row["seasonal_naive_mae"] for row in evaluation.backtest) < 1e-10
    persistence = evaluate(build_model({"kind": "persistence"}), dataset, "window", WINDOW).metrics["test_mse"]
    assert persistence > 0.1


def test_a_horizon_longer_than_the_test_split_is_skipped_and_named():
    dataset = _sine()  # 30 test values
    evaluation = evaluate(build_model({"kind": "persistence"}), dataset, "window", WINDOW, [1, 10, 100], stride=1)
    assert evaluation.metrics["rollout_mse_10"] is not None and evaluation.metrics["backtest_mae_10"] is not None
    assert evaluation.metrics["rollout_mse_100"] is None and evaluation.metrics["backtest_mae_100"] is None
    assert evaluation.skipped == ["rollout_mse_100, backtest_*_100: the test split (30 values) holds forecasts "
                                  "of at most 30 steps"]


def test_a_forecast_that_diverges_is_named_and_left_out_not_written_as_inf():
    class Explodes(torch.nn.Module):  # doubles the last value: 150 steps overflow float32
        def forward(self, x):
            return x[:, -1, :] * 2 + 1

    evaluation = evaluate(Explodes(), _sine(n_test=200), "window", WINDOW, [1, 150], stride=50)
    assert evaluation.metrics["rollout_mse_1"] is not None and evaluation.metrics["rollout_mse_150"] is None
    assert all(value is None or np.isfinite(value) for value in evaluation.metrics.values())
    assert any("not finite (the forecast diverged)" in note for note in evaluation.skipped)


def test_a_season_the_train_split_cannot_hold_leaves_mase_out_with_a_note():
    naive = build_model({"kind": "seasonal_naive", "season": 12})
    dataset = _sine(n_train=10, n_val=20, n_test=100)  # 10 train values: none 12 apart
    evaluation = evaluate(naive, dataset, "window", 12, [1, 10], season=12, stride=5)
    assert evaluation.metrics["backtest_mase_1"] is None and evaluation.metrics["backtest_mae_1"] is not None
    assert any("no two values 12 steps apart" in note for note in evaluation.skipped)
