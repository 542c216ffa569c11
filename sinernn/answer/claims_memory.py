"""The measurements behind the published answer's claims about memory (gathered by stage `claims`;
each runs as a stage of its own through its `..._part` function, measurements.py):

    delay_variant     the delay task (delay.py) for one of a stacked lstm, a wider lstm, an rnn with
                      relu and a transformer, at diagnose.delay_lags, clipping off and the task's budget
    on_sine           the same one-layer and bigger lstms and both rnns on a sine: one step and rollout
    activation        rnn tanh against relu: gradient versus lag, and which learning rates diverge
    long_window       the transformer beside the recurrent cells on a noisy series with long windows

The delay task's settings are diagnose's, so the diagnose_delay stages' rnn, gru and lstm rows
(clipping off) are the baseline these rows are set against; those stages already trained them.
"""

from __future__ import annotations

from torch import nn

from sinernn.answer.delay import task_sets, train_on_lag
from sinernn.answer.gradients import decay_summary, gradient_by_lag
from sinernn.answer.measurements import DELAY_VARIANTS, Inputs
from sinernn.core.config import Params
from sinernn.core.config_data import RecurrentArch
from sinernn.core.data import Dataset
from sinernn.core.errors import TrainingDiverged
from sinernn.core.evaluation import evaluate
from sinernn.core.framing import frame
from sinernn.core.models import build_model
from sinernn.core.training import train_model

CLIP = 0.0  # the delay task without clipping: the diagnose stage's rows to compare with


def variants(params: Params) -> dict[str, dict]:
    """name -> model config (without its input length) of each model compared with the one-layer cells."""
    c, d = params.claims, params.diagnose
    stacked = params.architectures[c.stacked_arch]
    return {
        "lstm": RecurrentArch(kind="lstm", hidden_size=d.cell_hidden, num_layers=1).model_dump(),
        f"lstm {stacked.hidden_size}x{stacked.num_layers}": stacked.model_dump(),
        f"lstm {c.wide_hidden}x1": RecurrentArch(kind="lstm", hidden_size=c.wide_hidden, num_layers=1).model_dump(),
        "rnn tanh": RecurrentArch(kind="rnn", hidden_size=d.cell_hidden, num_layers=1).model_dump(),
        "rnn relu": {**RecurrentArch(kind="rnn", hidden_size=d.cell_hidden, num_layers=1).model_dump(), "relu": True},
        "transformer": params.architectures[c.transformer_arch].model_dump(),
    }


def build(config: dict, input_length: int, seed: int) -> nn.Module:
    """The pipeline's model; for "relu", its rnn with the same initial weights and a relu instead of tanh."""
    relu = config.get("relu", False)
    model = build_model({**{k: v for k, v in config.items() if k != "relu"}, "input_length": input_length}, seed=seed)
    if relu:  # same weights, only the activation differs: the comparison isolates the activation
        tanh = model.rnn
        model.rnn = nn.RNN(tanh.input_size, tanh.hidden_size, tanh.num_layers, nonlinearity="relu", batch_first=True)
        model.rnn.load_state_dict(tanh.state_dict())
    return model


def order_variant_rows(rows: list[dict], params: Params) -> list[dict]:
    """The variants' rows (one part each) as one table: by lag, then variant."""
    names = list(variant_names(params).values())
    return sorted(rows, key=lambda r: (r["lag"], names.index(r["architecture"])))


def variant_names(params: Params) -> dict[str, str]:
    """The role of each model compared with the one-layer cells (a stage's item) -> its name in `variants`."""
    c = params.claims
    stacked = params.architectures[c.stacked_arch]
    names = {"stacked": f"lstm {stacked.hidden_size}x{stacked.num_layers}", "wide": f"lstm {c.wide_hidden}x1",
             "relu": "rnn relu", "transformer": "transformer"}
    assert list(names) == DELAY_VARIANTS and set(names.values()) <= set(variants(params))
    return names


def delay_variant(params: Params, variant: str) -> list[dict]:
    """One variant on the delay task, lag by lag, not trained beyond the first lag it fails (as the
    diagnose stage does with its cells)."""
    d = params.diagnose
    name = variant_names(params)[variant]
    config = variants(params)[name]
    results = []
    for lag in sorted(d.delay_lags):
        model = build(config, lag + 1, params.seed)
        row = train_on_lag(model, name, lag, CLIP, d, params.train, params.seed, task_sets(lag, d, params.seed))
        row["parameters"] = sum(p.numel() for p in model.parameters())  # "same budget" is epochs and lr, not size
        results.append(row)
        if not row["learned"]:
            break
    return results


def delay_variants_part(params: Params, inputs: Inputs, item: str) -> list[dict]:
    return delay_variant(params, item)


def on_sine(params: Params, dataset: Dataset, names: list[str] | None = None) -> list[dict]:
    """Each model on claims.sine_dataset with the same budget (claims.sine_epochs, train's settings):
    one-step and rollout error."""
    c = params.claims
    config = params.train_for(c.sine_dataset).model_copy(update={"framing": "window", "max_epochs": c.sine_epochs,
                                                                 "rollout_steps": 1})
    train_set, val_set = frame(dataset, "train", "window", config.window), frame(dataset, "val", "window", config.window)
    results = []
    for name, model_config in variants(params).items():
        if names is not None and name not in names:
            continue
        model = build(model_config, config.window, params.seed)
        row = {"architecture": name, "epochs_budget": c.sine_epochs}
        try:
            result = train_model(model, train_set, val_set, config, params.seed, description=f"sine {name}")
        except TrainingDiverged:
            results.append({**row, "diverged": True, "test_mse": None, "rollout_mse": None})
            continue
        metrics = evaluate(model, dataset, "window", config.window, [c.horizon]).metrics
        results.append({**row, "diverged": False, "epochs": len(result.history), "test_mse": metrics["test_mse"],
                        "rollout_mse": metrics[f"rollout_mse_{c.horizon}"],
                        "parameters": sum(p.numel() for p in model.parameters())})
    return results


def activation(params: Params, dataset: Dataset) -> dict:
    """rnn tanh against relu: gradient versus lag (claims.activation_window) at initialisation and
    after claims.sine_epochs, and every learning rate of claims.activation_lrs without clipping."""
    c = params.claims
    window = c.activation_window
    config = params.train_for(c.sine_dataset).model_copy(update={"framing": "window", "window": window, "grad_clip": 0.0,
                                                                 "max_epochs": c.sine_epochs, "rollout_steps": 1})
    train_set, val_set = frame(dataset, "train", "window", window), frame(dataset, "val", "window", window)
    probe = (train_set.inputs[:256], train_set.targets[:256])
    configs = variants(params)
    gradients, stability = [], []
    for name in ("rnn tanh", "rnn relu"):
        model = build(configs[name], window, params.seed)
        at_init = gradient_by_lag(model, *probe)
        row = {"architecture": name, "window": window, "init": at_init, "init_summary": decay_summary(at_init)}
        try:
            train_model(model, train_set, val_set, config, params.seed, description=f"gradient {name}")
            trained = gradient_by_lag(model, *probe)
            row.update(diverged=False, trained=trained, trained_summary=decay_summary(trained))
        except TrainingDiverged:
            row.update(diverged=True, trained=None, trained_summary=None)
        gradients.append(row)
        for lr in c.activation_lrs:
            run = config.model_copy(update={"lr": lr, "window": params.train_for(c.sine_dataset).window, "lr_schedule": "none"})
            short = frame(dataset, "train", "window", run.window), frame(dataset, "val", "window", run.window)
            model = build(configs[name], run.window, params.seed)
            try:
                result = train_model(model, *short, run, params.seed, description=f"stability {name} lr={lr:g}")
                stability.append({"architecture": name, "lr": lr, "diverged": False, "best_val_loss": result.best_val_loss})
            except TrainingDiverged:
                stability.append({"architecture": name, "lr": lr, "diverged": True, "best_val_loss": None})
    return {"gradients": gradients, "stability": stability}


def long_window(params: Params, dataset: Dataset) -> list[dict]:
    """The transformer and the one-layer cells reading claims.long_window values of a noisy series,
    one step ahead, scored against the noise floor."""
    c, d = params.claims, params.diagnose
    config = params.train_for(c.long_window_dataset).model_copy(update={
        "framing": "window", "window": c.long_window, "max_epochs": c.long_window_epochs, "rollout_steps": 1})
    models = {kind: RecurrentArch(kind=kind, hidden_size=d.cell_hidden, num_layers=1).model_dump()
              for kind in ("rnn", "gru", "lstm")} | {"transformer": params.architectures[c.transformer_arch].model_dump()}
    train_set = frame(dataset, "train", "window", c.long_window)
    val_set = frame(dataset, "val", "window", c.long_window)
    results = []
    for name, model_config in models.items():
        model = build(model_config, c.long_window, params.seed)
        try:
            train_model(model, train_set, val_set, config, params.seed, description=f"long window {name}")
        except TrainingDiverged:
            results.append({"architecture": name, "window": c.long_window, "diverged": True, "test_mse": None,
                            "noise_floor_ratio": None})
            continue
        metrics = evaluate(model, dataset, "window", c.long_window).metrics
        results.append({"architecture": name, "window": c.long_window, "diverged": False,
                        "test_mse": metrics["test_mse"], "noise_floor_ratio": metrics["noise_floor_ratio"]})
    return results


def on_sine_part(params: Params, inputs: Inputs, item: None) -> list[dict]:
    return on_sine(params, inputs.dataset(params.claims.sine_dataset))


def activation_part(params: Params, inputs: Inputs, item: None) -> dict:
    return activation(params, inputs.dataset(params.claims.sine_dataset))


def long_window_part(params: Params, inputs: Inputs, item: None) -> list[dict]:
    return long_window(params, inputs.dataset(params.claims.long_window_dataset))
