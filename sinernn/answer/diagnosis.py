"""Look at a model, its input and target tensors and its loss curve; say in plain words what is wrong.

    findings = diagnose(model, inputs, targets, losses=..., exception=...)

Each check answers one question and stays quiet when the answer is "fine", so a correct setup
gets no finding at all (a test holds it to that):

    crash            did training raise? which line, and what about the shapes caused it
    shapes           does the prediction have the target's shape, or does the loss broadcast?
    constant         did the loss settle at the target's variance (the model predicts a constant)?
    no_information   can the target be told from the input at all (one input for all targets,
                     or a nearest-neighbour predictor that does no better than the mean)?
    diverged         did the loss become NaN/inf?
    beyond_range     will the inputs the model forecasts from lie outside the range it was trained
                     on? Checked on future_inputs when given (an error when half of them or more
                     are outside); otherwise a warning for an input that is a regular grid, like a
                     time stamp, shuffled or not.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

PLATEAU_TOLERANCE = 0.05  # a final loss within 5% of var(target) is "predicting a constant"


@dataclass(frozen=True)
class Finding:
    check: str
    severity: str  # "error": the setup cannot learn the task; "warning": it may not
    message: str

    def as_dict(self) -> dict:
        return asdict(self)


def diagnose(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    losses: list[float] | None = None,
    exception: BaseException | None = None,
    future_inputs: torch.Tensor | None = None,
) -> list[Finding]:
    findings: list[Finding] = []
    prediction = None
    if exception is not None:
        findings.append(_crash(model, inputs, exception))
    else:
        try:
            with torch.no_grad():
                prediction = model(inputs)
        except Exception as exc:  # the forward pass itself is broken
            findings.append(_crash(model, inputs, exc))
    if prediction is not None:
        findings += _shapes(prediction, targets)
    findings += _loss_curve(losses or [], targets)
    findings += _information(inputs, targets, prediction)
    findings += _beyond_range(inputs, future_inputs)
    return findings


def _crash(model: nn.Module, inputs: torch.Tensor, exc: BaseException) -> Finding:
    cause = f"{type(exc).__name__}: {exc}"
    recurrent = next((m for m in model.modules() if isinstance(m, nn.RNNBase)), None)
    if recurrent is not None and inputs.dim() == 2:
        layout = "(batch, seq, features)" if recurrent.batch_first else "(seq, batch, features)"
        explanation = (
            f"the input has shape {tuple(inputs.shape)}, which {type(recurrent).__name__} reads as ONE "
            f"unbatched sequence of {inputs.shape[0]} steps: batch_first={recurrent.batch_first} does not "
            f"apply, and the output is 2-D (seq, hidden), so indexing it as 3-D {layout} fails. "
            f"Give the input a batch dimension, e.g. windows of shape (batch, window, 1)"
        )
    else:
        explanation = "read the traceback: the shapes at the failing line are the usual cause"
    return Finding("crash", "error", f"training crashed with {cause}; {explanation}")


def _shapes(prediction: torch.Tensor, targets: torch.Tensor) -> list[Finding]:
    if prediction.shape == targets.shape:
        return []
    try:
        torch.broadcast_shapes(prediction.shape, targets.shape)
    except RuntimeError:
        return [Finding("shapes", "error", f"the prediction {tuple(prediction.shape)} and the target "
                        f"{tuple(targets.shape)} have incompatible shapes: the loss cannot compare them")]
    if prediction.numel() < targets.numel():
        return [Finding(
            "shapes", "error",
            f"silent broadcasting: the model returns {prediction.numel()} value(s) {tuple(prediction.shape)} "
            f"but there are {targets.numel()} targets {tuple(targets.shape)}; MSELoss compares every target "
            f"with the same prediction (PyTorch only warns), so the best the model can learn is the "
            f"targets' mean. Predict one value per target",
        )]
    return [Finding("shapes", "warning", f"the prediction {tuple(prediction.shape)} is broadcast against "
                    f"the target {tuple(targets.shape)}: check that the loss compares what you mean")]


def _loss_curve(losses: list[float], targets: torch.Tensor) -> list[Finding]:
    if not losses:
        return []
    if not all(math.isfinite(value) for value in losses):
        epoch = next(i for i, value in enumerate(losses, 1) if not math.isfinite(value))
        return [Finding("diverged", "error", f"the loss became {losses[epoch - 1]} at epoch {epoch}: "
                        "lower the learning rate or clip the gradient norm")]
    variance = float(targets.float().var(unbiased=False))
    final = losses[-1]
    if variance > 0 and abs(final - variance) <= PLATEAU_TOLERANCE * variance and len(losses) >= 10:
        return [Finding(
            "constant", "error",
            f"the loss settled at {final:.4g}, the variance of the target ({variance:.4g}): the model "
            f"predicts a constant (the mean) and has learned nothing about the input",
        )]
    return []


def _information(inputs: torch.Tensor, targets: torch.Tensor, prediction: torch.Tensor | None) -> list[Finding]:
    """Can the target be told from the input? Checked on the samples the loss actually sees."""
    n_targets = targets.shape[0] if targets.dim() else 1
    if prediction is not None and prediction.dim() <= 1 and n_targets > 1:
        return [Finding(
            "no_information", "error",
            f"all {n_targets} targets share one input (the whole sequence) and one prediction: no input "
            f"tells one target from another. Frame the data as (input, target) pairs, e.g. the last W "
            f"values -> the next one",
        )]
    features = inputs.reshape(inputs.shape[0], -1).float()
    values = targets.reshape(targets.shape[0], -1).float()
    if features.shape[0] != values.shape[0] or features.shape[0] < 20:
        return []
    # Nearest-neighbour check: if the target of a held-out sample is no closer to the target of its
    # nearest input than to the mean, the input says nothing (usable) about it.
    half = features.shape[0] // 2
    order = torch.randperm(features.shape[0], generator=torch.Generator().manual_seed(0))
    fit, held = order[:half], order[half:]
    nearest = torch.cdist(features[held], features[fit]).argmin(dim=1)
    nn_error = float(((values[fit][nearest] - values[held]) ** 2).mean())
    mean_error = float(((values[fit].mean(0) - values[held]) ** 2).mean())
    if mean_error > 0 and nn_error >= 0.9 * mean_error:
        return [Finding(
            "no_information", "error",
            f"the input carries no usable information about the target: predicting each target from its "
            f"nearest input ({nn_error:.3g}) is no better than predicting the mean ({mean_error:.3g})",
        )]
    return []


def _beyond_range(inputs: torch.Tensor, future_inputs: torch.Tensor | None) -> list[Finding]:
    """Inputs outside the training range say nothing a network has learned: between the points it
    was fitted on it interpolates, beyond them a tanh or ReLU net continues flat or straight, never
    the pattern (the report measures it: the time_to_value framing on the sine)."""
    features = _per_sample(inputs)
    fix = ("feed the model what repeats, the last W values (windows) instead of the time, and normalise each "
           "window if the level drifts")
    if future_inputs is not None:
        future = _per_sample(future_inputs)
        if future.shape[1] != features.shape[1]:
            return [Finding("beyond_range", "warning", f"future_inputs have {future.shape[1]} value(s) per sample, the "
                            f"training inputs {features.shape[1]}: they cannot be compared")]
        low, high = features.min(0).values, features.max(0).values
        tolerance = 1e-6 * (high - low).clamp(min=1e-12)
        outside = ((future < low - tolerance) | (future > high + tolerance)).any(dim=1)
        share = float(outside.float().mean())
        if share == 0:
            return []
        return [Finding("beyond_range", "error" if share >= 0.5 else "warning",
                        f"{share:.0%} of the future inputs lie outside the range the model was trained on "
                        f"([{float(future.min()):.4g}, {float(future.max()):.4g}] against [{float(low.min()):.4g}, "
                        f"{float(high.max()):.4g}]): there the network must extrapolate, and it has learned nothing "
                        f"there. Fix: {fix}")]
    column = _time_grid(features)
    if column is None:
        return []
    values = features[:, column]
    return [Finding("beyond_range", "warning", f"input value {column} of each sample is a regular grid, from "
                    f"{float(values.min()):.4g} to {float(values.max()):.4g} in equal steps, like a time stamp: if you "
                    f"forecast, the future's inputs lie beyond that range, where the input tells the model nothing "
                    f"(pass them as future_inputs to check). Fix: {fix}")]


def _per_sample(tensor: torch.Tensor) -> torch.Tensor:
    """(samples, values per sample) in float: a 0-d tensor is one sample of one value."""
    return tensor.reshape(tensor.shape[0], -1).float() if tensor.dim() else tensor.reshape(1, 1).float()


def _time_grid(features: torch.Tensor) -> int | None:
    """The first input column whose values, in any order, are distinct and equally spaced (a time
    axis, shuffled or not), when there are enough samples to tell."""
    if features.shape[0] < 20:
        return None
    for column in range(features.shape[1]):
        steps = features[:, column].sort().values.diff()
        mean = float(steps.mean())
        if mean > 0 and float((steps - mean).abs().max()) <= 1e-3 * mean:
            return column
    return None


def describe(findings: list[Finding]) -> str:
    if not findings:
        return ("no problem found: the shapes match, the loss falls below the target's variance, the input predicts "
                "the target, and no input grows beyond the training range")
    return "\n".join(f"[{f.severity}] {f.check}: {f.message}" for f in findings)
