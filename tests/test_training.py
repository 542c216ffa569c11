"""The one training loop and the one evaluation, on tiny real data."""

import math

import numpy as np
import pytest
import torch

from sinernn.core import data
from sinernn.core.config_data import SineSource
from sinernn.core.config_stages import TrainConfig
from sinernn.core.errors import TrainingDiverged
from sinernn.core.evaluation import evaluate, predict, rollout
from sinernn.core.framing import frame
from sinernn.core.models import build_model
from sinernn.core.training import fit_baseline, train_model

WINDOW = 16
HORIZONS = [100, 1000]


@pytest.fixture(scope="module")
def clean():
    cfg = SineSource(source="sine", period=20.3, n_train=400, n_val=100, n_test=1100)
    return data.generate("clean", cfg, seed=0, window=WINDOW)


@pytest.fixture(scope="module")
def noisy():
    cfg = SineSource(source="sine", period=20.3, noise_std=0.1, n_train=400, n_val=100, n_test=1100)
    return data.generate("noisy", cfg, seed=0, window=WINDOW)


def _sets(dataset, framing="window"):
    return frame(dataset, "train", framing, WINDOW), frame(dataset, "val", framing, WINDOW)


def _model(kind, **extra):
    config = {"kind": kind, "hidden_size": 16, "num_layers": 1, "dropout": 0.0, "input_length": WINDOW, **extra}
    return build_model(config, seed=0)


def test_a_trained_lstm_beats_the_persistence_baseline(clean):
    train, val = _sets(clean)
    model = _model("lstm")
    result = train_model(model, train, val, TrainConfig(max_epochs=15, batch_size=32, lr=0.01), seed=0)
    persistence = evaluate(_model("persistence"), clean, "window", WINDOW).metrics["test_mse"]
    trained = evaluate(model, clean, "window", WINDOW).metrics["test_mse"]
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert trained < persistence / 10


def test_training_is_reproducible_for_a_seed(clean):
    train, val = _sets(clean)
    cfg = TrainConfig(max_epochs=2, batch_size=32)
    runs = [train_model(_model("gru"), train, val, cfg, seed=s).history for s in (5, 5, 6)]
    assert runs[0] == runs[1] != runs[2]


@pytest.mark.parametrize("kind, extra", [("gru", {}), ("transformer", {"d_model": 16, "nhead": 2,
                                                                      "dim_feedforward": 32})])
def test_training_with_dropout_is_reproducible_in_a_new_process_too(clean, kind, extra):
    """Dropout draws from torch's global generator, which every new process seeds at random: two
    runs of a search (two processes) gave different trial values until training seeded it."""
    train, val = _sets(clean)
    cfg = TrainConfig(max_epochs=2, batch_size=32)
    histories = []
    for _ in range(2):
        torch.seed()  # what a new process starts with: a random global generator
        model = _model(kind, dropout=0.3, **extra)
        histories.append(train_model(model, train, val, cfg, seed=5).history)
    assert histories[0] == histories[1]


def test_epoch_events_reach_every_callback(clean):
    train, val = _sets(clean)
    seen = []
    train_model(_model("rnn"), train, val, TrainConfig(max_epochs=3), seed=0, on_epoch=[seen.append])
    assert [stats.epoch for stats in seen] == [1, 2, 3]
    assert all(stats.grad_norm > 0 and stats.lr > 0 for stats in seen)


def test_early_stopping_restores_the_best_weights(clean):
    train, val = _sets(clean)
    cfg = TrainConfig(max_epochs=40, lr=0.5, lr_schedule="none", patience=2, grad_clip=0.1)
    model = _model("rnn")
    result = train_model(model, train, val, cfg, seed=0)
    assert len(result.history) < 40
    best = min(stats.val_loss for stats in result.history)
    assert result.best_val_loss == best
    from sinernn.core.training import mean_loss

    assert mean_loss(model, val) == pytest.approx(best)


def test_a_diverging_run_stops_with_a_clear_error(clean):
    train, val = _sets(clean)
    poisoned = type(train)(train.inputs.clone(), train.targets.clone())
    poisoned.targets[3] = float("nan")
    with pytest.raises(TrainingDiverged, match="diverged at epoch 1"):
        train_model(_model("lstm"), poisoned, val, TrainConfig(max_epochs=2), seed=0)


def test_ridge_is_exact_on_a_clean_sine(clean):
    # A sampled sine obeys x[t+1] = 2 cos(w) x[t] - x[t-1]: a linear autoregression fits it exactly.
    train, val = _sets(clean)
    model = _model("ridge")
    fit_baseline(model, train, val, alpha=1e-8)
    metrics = evaluate(model, clean, "window", WINDOW, HORIZONS).metrics
    assert metrics["test_mse"] < 1e-8
    assert metrics["rollout_mse_100"] < 1e-6


def test_rollout_feeds_predictions_back():
    class AddOne(torch.nn.Module):
        def forward(self, x):
            return x[:, -1, :] + 1

    forecast = rollout(AddOne(), np.zeros((2, 4)), steps=5)
    np.testing.assert_array_equal(forecast, [[1, 2, 3, 4, 5]] * 2)


class CleanSignalOracle(torch.nn.Module):
    """Knows the noise-free sine: maps the last two inputs of a window to the clean value after them.

    The lookup holds every pair a forecast can meet: two observations (a window of the split),
    an observation then a clean value (the first value fed back in a rollout), two clean values
    (the rest of the rollout). Past the end of the series it answers NaN, which a backtest's
    longest rollouts from late origins ask for and leave unscored: a NaN that was scored would
    fail the assertions below.
    """

    def __init__(self, dataset):
        super().__init__()
        parts = [dataset.splits[name] for name in ("train", "val", "test")]
        observed, clean = (np.float32(dataset.scale(np.concatenate([getattr(p, kind)[0] for p in parts])))
                           for kind in ("observed", "clean"))
        self.next_clean = {}
        for t in range(1, len(clean) - 1):
            for pair in ((observed[t - 1], observed[t]), (observed[t - 1], clean[t]), (clean[t - 1], clean[t])):
                self.next_clean[tuple(map(float, pair))] = float(clean[t + 1])

    def forward(self, x):
        last_two = x[:, -2:, 0].tolist()
        return torch.tensor([[self.next_clean.get(tuple(pair), math.nan)] for pair in last_two])


def test_a_model_that_predicts_the_clean_signal_is_at_the_noise_floor(noisy):
    """The one-step error of the perfect forecaster is the noise itself (ratio ~1, 0.1 std noise
    on 1,100 targets), and its rollout, scored against the clean signal, is exact."""
    metrics = evaluate(CleanSignalOracle(noisy), noisy, "window", WINDOW, HORIZONS).metrics
    assert metrics["noise_floor_ratio"] == pytest.approx(1.0, abs=0.1)
    assert metrics["rollout_mse_100"] < 1e-10 and metrics["rollout_mse_1000"] < 1e-10  # scored against noise: ~1e-2


def test_time_to_value_cannot_extrapolate():
    """Trained on half a period of a slow sine, time -> value fits the times it saw and fails the
    times after them: the forecast's error is many times the error on the training times."""
    half_period = data.generate("slow", SineSource(source="sine", period=200, n_train=100, n_val=20, n_test=1100),
                                seed=0, window=WINDOW)
    train, val = _sets(half_period, "time_to_value")
    model = build_model({"kind": "lstm", "hidden_size": 32, "num_layers": 1, "dropout": 0.0, "input_length": 1}, 0)
    cfg = TrainConfig(framing="time_to_value", max_epochs=100, patience=100, batch_size=32, lr=1e-2)
    train_model(model, train, val, cfg, seed=0)
    scaled_error = np.mean((predict(model, train.inputs) - train.targets.numpy().reshape(-1)) ** 2)
    in_range = float(scaled_error) * half_period.scale_std**2
    metrics = evaluate(model, half_period, "time_to_value", WINDOW, HORIZONS).metrics
    assert in_range < 0.01  # it learned the times it was shown, so the comparison means something
    assert metrics["rollout_mse_1000"] > 100 * in_range


def test_naive_framing_broadcasts_and_learns_only_a_constant(clean):
    train, val = _sets(clean, "naive")
    model = _model("rnn")
    with pytest.warns(UserWarning, match="target size"):
        train_model(model, train, val, TrainConfig(framing="naive", max_epochs=30, lr=0.01), seed=0)
    metrics = evaluate(model, clean, "naive", WINDOW, HORIZONS).metrics
    variance = float(np.var(clean.splits["test"].observed))
    assert metrics["test_mse"] > 0.5 * variance  # no better than predicting the mean
    assert metrics["rollout_mse_100"] is None
    assert math.isfinite(metrics["test_mse"])


def test_rollout_aware_training_scores_the_free_running_forecast_it_will_make(noisy):
    """train.rollout_steps: targets are the next K values after each window, and the loss is the
    error of K free-running steps, checked against the serving forecast's own loop."""
    from sinernn.core.training import rollout_loss
    from sinernn.serving import forecast

    steps = 5
    framed = frame(noisy, "train", "window", WINDOW, steps)
    series = noisy.scale(noisy.splits["train"].observed[0])
    assert framed.targets.shape == (len(series) - WINDOW - steps + 1, steps)
    assert np.allclose(framed.targets[7].numpy(), series[7 + WINDOW: 7 + WINDOW + steps])
    model = _model("gru")
    inputs, targets = framed.inputs[:12], framed.targets[:12]
    with torch.no_grad():
        loss = float(rollout_loss(model, inputs, targets))
        fed_back = forecast(lambda windows: model(windows[:, :, None]), inputs[:, :, 0].numpy(), steps)
    assert loss == pytest.approx(float(np.mean((fed_back - targets.numpy()) ** 2)), rel=1e-5)
    assert loss != pytest.approx(float(torch.mean((model(inputs) - targets[:, :1]) ** 2)), rel=1e-3)  # not one step

    train, val = frame(noisy, "train", "window", WINDOW, steps), frame(noisy, "val", "window", WINDOW)
    result = train_model(model, train, val, TrainConfig(max_epochs=2, batch_size=32, rollout_steps=steps), seed=0)
    assert result.history[-1].train_loss < result.history[0].train_loss


def test_networks_train_on_the_rollout_and_baselines_and_validation_stay_one_step(noisy, params):
    from sinernn.core.training import prepare, rollout_loss

    cfg = TrainConfig(window=WINDOW, scaling="global", rollout_steps=5, max_epochs=1, lr=1e-12, batch_size=10_000)
    gru = prepare(params.architectures["gru"], cfg, noisy, 0)
    assert (gru.train_set.targets.shape[1], gru.val_set.targets.shape[1]) == (5, 1)
    assert prepare(params.architectures["ridge"], cfg, noisy, 0).train_set.targets.shape[1] == 1
    with torch.no_grad():
        before = float(rollout_loss(gru.model, gru.train_set.inputs, gru.train_set.targets))
    # one batch, a learning rate that changes nothing: the epoch's loss is the rollout's, not one step's
    trained = train_model(gru.model, gru.train_set, gru.val_set, cfg, seed=0)
    assert trained.history[0].train_loss == pytest.approx(before, rel=1e-4)
