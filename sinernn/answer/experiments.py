"""The measurements behind the report: each function returns plain numbers (JSON-ready); all but
the published examples and `framing_only` train with the pipeline's own loop. Each runs as a stage
of its own through its `..._part` function (measurements.py); stage `diagnose` gathers them and
sinernn/answer/report.py reads them.

    published_part        one of the three examples as written, and what the diagnosis says about it
    framing_only_example  a published example with only the framing changed: windows, nothing else
    corrected_examples    the same layers on windowed next-step prediction, with the pipeline's loop
    gradient_lags         gradient norm versus lag, rnn/gru/lstm, short and long windows
    stability             learning rate x gradient clipping: which runs explode
    extrapolation         time_to_value against window, scored beyond the training range
    memory                one-step error against window length on the noisy series
"""

from __future__ import annotations

import numpy as np
import torch

from sinernn.answer.diagnosis import diagnose
from sinernn.answer.gradients import decay_summary, gradient_by_lag
from sinernn.answer.measurements import Inputs
from sinernn.answer.published import build_example, published_data, run_example
from sinernn.core.config import Params
from sinernn.core.config_data import PUBLISHED_SPLITS, RecurrentArch
from sinernn.core.config_stages import DiagnoseConfig, TrainConfig
from sinernn.core.data import Dataset, Split, check_window
from sinernn.core.errors import TrainingDiverged
from sinernn.core.framing import Framed, frame
from sinernn.core.models import build_model
from sinernn.core.training import fit_architecture, train_model

# The layers of each published example, as one of the pipeline's architectures.
EXAMPLE_ARCHS = {
    1: ({"kind": "rnn", "hidden_size": 10, "num_layers": 1}, 0.01),
    2: ({"kind": "lstm", "hidden_size": 10, "num_layers": 1}, 0.01),
    3: ({"kind": "lstm", "hidden_size": 50, "num_layers": 3}, 0.001),
}


def _published_as_dataset(window: int) -> Dataset:
    """The examples' own data, sin(linspace(0, 10, 1000)), split 70/15/15 in time."""
    x, y = published_data()
    time_, values = x.numpy().reshape(-1), y.numpy().reshape(-1).astype(np.float64)
    cuts = np.cumsum([0, *PUBLISHED_SPLITS])  # [0, 700, 850, 1000]
    splits = {name: Split(values[None, a:b], values[None, a:b], time_[None, a:b].astype(np.float64))
              for name, a, b in zip(("train", "val", "test"), cuts, cuts[1:])}
    return Dataset("published", splits, float(values[: cuts[1]].mean()), float(values[: cuts[1]].std()), 0.0)


def framing_only_example(cfg: DiagnoseConfig, seed: int, number: int) -> dict:
    """A published example with only its framing changed: windows of the last W values predict
    the next one. The rest is as published: the same layers and output pick, Adam at the example's
    learning rate, `published_epochs` full-batch epochs, raw values (no scaling), no clipping, no
    schedule, no early stopping; trained on the first 70% of the series, scored on the last 15%."""
    _, series = published_data()
    values = series.reshape(-1)
    window, (train_end, test_start) = cfg.corrected_window, (PUBLISHED_SPLITS[0], sum(PUBLISHED_SPLITS[:2]))
    windows = values.unfold(0, window + 1, 1)  # (N, W+1): row i holds values i .. i+W
    ends = torch.arange(window, len(values))  # the index of each row's target
    train_rows, test_rows = windows[ends < train_end], windows[ends >= test_start]
    model, lr = build_example(number, seed, cfg.example2_hidden)
    batch_first = model.recurrent.batch_first  # examples 1 and 2 index the sequence first: (W, N, 1)

    def split(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = rows[:, :window, None]
        return (inputs if batch_first else inputs.transpose(0, 1)), rows[:, window:]

    (x_train, y_train), (x_test, y_test) = split(train_rows), split(test_rows)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(cfg.published_epochs):  # full batches: nothing random after the seeded initialisation
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x_train), y_train)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        test_mse = float(torch.nn.functional.mse_loss(model(x_test), y_test))
    return {"example": number, "lr": lr, "window": window, "epochs": cfg.published_epochs,
            "final_loss": loss.item(), "test_mse": test_mse, "target_variance": float(y_test.var(unbiased=False))}


def corrected_examples(cfg: DiagnoseConfig, train: TrainConfig, seed: int) -> list[dict]:
    """Each example's layers, framed as 'the last W values predict the next one'."""
    dataset = _published_as_dataset(cfg.corrected_window)
    results = []
    for number, (arch, lr) in EXAMPLE_ARCHS.items():
        if number == 2:  # the published example 2 leaves its hidden size open
            arch = {**arch, "hidden_size": cfg.example2_hidden}
        # global scaling, as for the pipeline's own sines: only the framing differs from the examples
        config = train.model_copy(update={"lr": lr, "window": cfg.corrected_window, "max_epochs": cfg.corrected_epochs,
                                          "framing": "window", "scaling": "global"})
        fitted = fit_architecture(RecurrentArch(**arch), config, dataset, seed, description=f"corrected {number}")
        test = frame(dataset, "test", "window", cfg.corrected_window)
        with torch.no_grad():
            mse = float(((fitted.model(test.inputs) - test.targets) ** 2).mean()) * dataset.scale_std**2
        losses = [stats.train_loss for stats in fitted.result.history]
        findings = diagnose(fitted.model, test.inputs, test.targets, losses)
        results.append({"example": number, "architecture": arch, "lr": lr, "window": cfg.corrected_window,
                        "epochs": len(losses), "test_mse": mse, "target_variance": float(test.targets.var(unbiased=False) * dataset.scale_std**2),
                        "findings": [f.as_dict() for f in findings]})
    return results


def _long_sine(params: Params, window: int) -> Dataset:
    """The clean sine with splits long enough for a window of `window` values."""
    from sinernn.core.data import generate

    source = params.datasets[params.diagnose.gradient_dataset]
    cfg = source.model_copy(update={"n_train": max(source.n_train, 2 * window + 500), "n_val": max(source.n_val, window + 200)})
    return generate(params.diagnose.gradient_dataset, cfg, params.seed, window)


def gradient_lags(params: Params) -> list[dict]:
    """g(k) for k = 1..W at initialisation and after training, per architecture and window."""
    cfg = params.diagnose
    results = []
    for window in cfg.gradient_windows:
        dataset = _long_sine(params, window)
        train_set = frame(dataset, "train", "window", window)
        val_set = frame(dataset, "val", "window", window)
        probe = Framed(train_set.inputs[:256], train_set.targets[:256])
        for kind in cfg.gradient_architectures:
            arch = RecurrentArch(kind=kind, hidden_size=cfg.gradient_hidden, num_layers=1)
            model = build_model({**arch.model_dump(), "input_length": window}, seed=params.seed)
            at_init = gradient_by_lag(model, probe.inputs, probe.targets)
            config = params.train.model_copy(update={"window": window, "max_epochs": cfg.gradient_epochs, "framing": "window"})
            result = train_model(model, train_set, val_set, config, params.seed, description=f"{kind} W={window}")
            trained = gradient_by_lag(model, probe.inputs, probe.targets)
            results.append({"architecture": kind, "window": window, "epochs": len(result.history),
                            "val_loss": result.best_val_loss, "init": at_init, "trained": trained,
                            "init_summary": decay_summary(at_init), "trained_summary": decay_summary(trained)})
    return results


def stability(params: Params, dataset: Dataset) -> list[dict]:
    """The exploding side: the same rnn at several learning rates, with and without clipping."""
    cfg = params.diagnose
    arch = RecurrentArch(kind="rnn", hidden_size=cfg.gradient_hidden, num_layers=1)
    train_set = frame(dataset, "train", "window", params.train.window)
    val_set = frame(dataset, "val", "window", params.train.window)
    results = []
    for lr in cfg.stability_lrs:
        for clip in cfg.stability_clips:
            config = params.train.model_copy(update={"lr": lr, "grad_clip": clip, "max_epochs": cfg.stability_epochs,
                                                     "lr_schedule": "none", "framing": "window"})
            norms: list[float] = []
            model = build_model({**arch.model_dump(), "input_length": params.train.window}, seed=params.seed)
            outcome = {"lr": lr, "grad_clip": clip}
            try:
                result = train_model(model, train_set, val_set, config, params.seed,
                                     [lambda stats: norms.append(stats.grad_norm)], f"lr={lr} clip={clip}")
                outcome.update(diverged=False, best_val_loss=result.best_val_loss, final_val_loss=result.history[-1].val_loss)
            except TrainingDiverged as exc:
                outcome.update(diverged=True, best_val_loss=None, final_val_loss=None, reason=str(exc))
            outcome["max_grad_norm"] = max(norms) if norms else None
            results.append(outcome)
    return results


def extrapolation(params: Params, dataset: Dataset) -> list[dict]:
    """time_to_value (y = f(t)) against window, both scored on the test split, which lies after
    the training range in time: the first must extrapolate, the second only continues a pattern."""
    from sinernn.core.evaluation import evaluate

    cfg = params.diagnose
    arch = params.architectures[cfg.extrapolation_arch]
    results = []
    for framing in ("time_to_value", "window"):
        # the dataset's own settings (its scaling applies to the window framing only)
        config = params.train_for(cfg.extrapolation_dataset).model_copy(
            update={"framing": framing, "max_epochs": cfg.extrapolation_epochs})
        fitted = fit_architecture(arch, config, dataset, params.seed, description=framing)
        metrics = evaluate(fitted.model, dataset, framing, config.window).metrics
        results.append({"framing": framing, "architecture": cfg.extrapolation_arch,
                        "val_mse_scaled": fitted.result.best_val_loss, "test_mse": metrics["test_mse"],
                        "test_variance": float(np.var(dataset.splits["test"].observed))})
    return results


def memory(params: Params, dataset: Dataset) -> list[dict]:
    """One-step error against window length on a noisy series: a longer history averages the
    noise away, so the error should fall towards the noise floor sigma^2."""
    from sinernn.core.evaluation import evaluate

    cfg = params.diagnose
    arch = params.architectures[cfg.memory_arch]
    # Before any training: a CSV's length is only known now (params.yaml checks the synthetic ones).
    check_window(dataset, max(cfg.memory_windows), "diagnose.memory_windows")
    results = []
    for window in cfg.memory_windows:
        config = params.train_for(cfg.memory_dataset).model_copy(
            update={"window": window, "max_epochs": cfg.memory_epochs, "framing": "window"})
        fitted = fit_architecture(arch, config, dataset, params.seed, description=f"W={window}")
        metrics = evaluate(fitted.model, dataset, "window", window).metrics
        results.append({"window": window, "architecture": cfg.memory_arch, "test_mse": metrics["test_mse"],
                        "noise_floor_ratio": metrics["noise_floor_ratio"], "noise_variance": (dataset.noise_std or 0) ** 2})
    return results


# ---- the parts of the diagnose stage, one DVC stage each (sinernn/answer/measurements.py) ------


def published_part(params: Params, inputs: Inputs, item: str) -> dict:
    """One published example as written: its summary and findings, and its loss curve (for MLflow
    and the published-losses plot)."""
    cfg = params.diagnose
    run = run_example(int(item), seed=params.seed, epochs=cfg.published_epochs, hidden=cfg.example2_hidden)
    findings = diagnose(run.model, run.inputs, run.targets, run.losses, run.exception)
    return {"result": {**run.summary(), "findings": [f.as_dict() for f in findings]}, "losses": run.losses}


def framing_only_part(params: Params, inputs: Inputs, item: str) -> dict:
    return framing_only_example(params.diagnose, params.seed, int(item))


def corrected_part(params: Params, inputs: Inputs, item: None) -> list[dict]:
    return corrected_examples(params.diagnose, params.train, params.seed)


def gradients_part(params: Params, inputs: Inputs, item: None) -> list[dict]:
    return gradient_lags(params)


def stability_part(params: Params, inputs: Inputs, item: None) -> list[dict]:
    return stability(params, inputs.dataset(params.diagnose.stability_dataset))


def extrapolation_part(params: Params, inputs: Inputs, item: None) -> list[dict]:
    return extrapolation(params, inputs.dataset(params.diagnose.extrapolation_dataset))


def memory_part(params: Params, inputs: Inputs, item: None) -> list[dict]:
    return memory(params, inputs.dataset(params.diagnose.memory_dataset))
