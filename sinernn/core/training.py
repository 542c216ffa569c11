"""The one training loop: used by the train stage, and meant for the Optuna objective and the
diagnosis too. It knows nothing of MLflow: it reports each epoch to `on_epoch` callbacks, and the
caller decides what to log (a callback may also raise to stop early, as an Optuna pruner does).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from sinernn.core.config_data import BASELINE_KINDS, ArchConfig
from sinernn.core.config_stages import TrainConfig
from sinernn.core.data import Dataset
from sinernn.core.errors import TrainingDiverged
from sinernn.core.framing import Framed, frame
from sinernn.core.models import LinearAutoregression, Normalised, build_model


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    train_loss: float  # mean MSE over the epoch's batches, on scaled values
    val_loss: float
    grad_norm: float  # mean gradient norm before clipping
    lr: float


@dataclass
class TrainResult:
    history: list[EpochStats] = field(default_factory=list)
    best_epoch: int = 0
    best_val_loss: float = math.inf
    seconds: float = 0.0

    def history_rows(self) -> list[dict]:
        return [asdict(stats) for stats in self.history]


EpochCallback = Callable[[EpochStats], None]


def _batches(data: Framed, batch_size: int, generator: torch.Generator | None):
    """Mini-batches of (inputs, targets); one batch for an unbatched (naive) sequence."""
    if data.inputs.dim() == 2:  # (T, 1): the naive framing's single unbatched sequence
        yield data.inputs, data.targets
        return
    n = len(data.inputs)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        index = order[start : start + batch_size]
        yield data.inputs[index], data.targets[index]


@torch.no_grad()
def mean_loss(model: nn.Module, data: Framed, batch_size: int = 4096) -> float:
    model.eval()
    loss_fn = nn.MSELoss(reduction="sum")
    total, count = 0.0, 0
    for inputs, targets in _batches(data, batch_size, None):
        prediction = model(inputs)
        total += loss_fn(prediction.expand_as(targets), targets).item()
        count += targets.numel()
    return total / count


def _scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig):
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, cfg.max_epochs, eta_min=cfg.lr * 0.01)
    if cfg.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=max(1, cfg.patience // 3))
    return None


def train_model(
    model: nn.Module,
    train: Framed,
    val: Framed,
    cfg: TrainConfig,
    seed: int,
    on_epoch: list[EpochCallback] | None = None,
    description: str = "train",
) -> TrainResult:
    """Adam + schedule + optional clipping + early stopping on validation loss.

    Returns with the best-validation weights loaded into `model`. Raises TrainingDiverged as soon
    as a loss or gradient norm is NaN/inf, before anything could be saved.
    """
    generator = torch.Generator().manual_seed(seed)  # batch order depends on the seed alone
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = _scheduler(optimizer, cfg)
    max_norm = cfg.grad_clip if cfg.grad_clip > 0 else math.inf  # inf: measure, do not clip
    result = TrainResult()
    best_state = None
    started = time.perf_counter()

    progress = tqdm(range(1, cfg.max_epochs + 1), desc=description, disable=None, leave=False)
    # Dropout draws its masks from torch's global generator, which a new process seeds at random:
    # seeded here (and restored afterwards), a model with dropout trains the same way every time.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for epoch in progress:
            train_loss, grad_norm = _train_epoch(model, train, optimizer, max_norm, cfg, generator, epoch)
            val_loss = mean_loss(model, val)
            if not math.isfinite(val_loss):
                raise TrainingDiverged(f"validation loss became {val_loss} at epoch {epoch}; lower train.lr")
            stats = EpochStats(epoch, train_loss, val_loss, grad_norm, optimizer.param_groups[0]["lr"])
            result.history.append(stats)
            progress.set_postfix(train=f"{stats.train_loss:.2e}", val=f"{val_loss:.2e}")
            for callback in on_epoch or []:
                callback(stats)

            if val_loss < result.best_val_loss:
                result.best_val_loss, result.best_epoch = val_loss, epoch
                best_state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
            elif epoch - result.best_epoch >= cfg.patience:
                break
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(val_loss)
            elif scheduler is not None:
                scheduler.step()

    if best_state is not None:
        model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - started
    return result


def _train_epoch(model: nn.Module, train: Framed, optimizer, max_norm: float, cfg: TrainConfig,
                 generator: torch.Generator, epoch: int) -> tuple[float, float]:
    """One pass over the shuffled train batches: the mean loss and the mean gradient norm."""
    model.train()
    loss_fn = nn.MSELoss()
    losses, norms = [], []
    for inputs, targets in _batches(train, cfg.batch_size, generator):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(inputs), targets) if targets.shape[-1] == 1 else rollout_loss(model, inputs, targets)
        loss.backward()
        norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm))
        if not (math.isfinite(loss.item()) and math.isfinite(norm)):
            raise TrainingDiverged(
                f"training diverged at epoch {epoch}: loss {loss.item()}, gradient norm {norm}; "
                f"lower train.lr (now {cfg.lr}) or set train.grad_clip (now {cfg.grad_clip})"
            )
        optimizer.step()
        losses.append(loss.item())
        norms.append(norm)
    return sum(losses) / len(losses), sum(norms) / len(norms)


def rollout_loss(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The mean squared error of a free-running rollout: (B, W, 1) windows, (B, K) next values.

    Each prediction becomes the newest input of the next step, as in evaluation, and the gradient
    flows through the fed-back values: the network is trained on the errors it will compound."""
    window, errors = inputs, []
    for step in range(targets.shape[-1]):
        prediction = model(window)  # (B, 1)
        errors.append((prediction[:, 0] - targets[:, step]) ** 2)
        window = torch.cat([window[:, 1:], prediction[:, None, :]], dim=1)
    return torch.stack(errors).mean()


def fit_baseline(model: nn.Module, train: Framed, val: Framed, alpha: float) -> TrainResult:
    """Fit a scikit-learn baseline (closed form, one 'epoch') and report it like a training run.

    The ridge regression is fitted on what its linear layer sees: under `window` or `diff`
    scaling, the re-expressed windows against the targets re-expressed the same way.
    """
    from sklearn.linear_model import Ridge  # imported here: only the baseline stages pay for it

    started = time.perf_counter()
    linear, inputs, targets = model, train.inputs, train.targets
    if isinstance(model, Normalised):
        linear = model.inner
        with torch.no_grad():
            inputs, shift, scale = model.encode(train.inputs)
            targets = (train.targets - shift) / scale
    if isinstance(linear, LinearAutoregression):
        ridge = Ridge(alpha=alpha).fit(inputs[..., 0].numpy().astype("float64"), targets[:, 0].numpy().astype("float64"))
        with torch.no_grad():
            linear.linear.weight.copy_(torch.as_tensor(ridge.coef_, dtype=torch.float32)[None, :])
            linear.linear.bias.fill_(float(ridge.intercept_))
    train_loss, val_loss = mean_loss(model, train), mean_loss(model, val)
    stats = EpochStats(1, train_loss, val_loss, 0.0, 0.0)
    return TrainResult([stats], 1, val_loss, time.perf_counter() - started)


@dataclass
class Prepared:
    model: nn.Module  # freshly built, untrained
    model_config: dict  # what the checkpoint stores: the architecture plus its input length
    train_set: Framed
    val_set: Framed


@dataclass
class Fitted:
    model: nn.Module
    model_config: dict
    result: TrainResult
    val_set: Framed


def diff_scale(dataset: Dataset) -> float:
    """The deviation of the train split's one-step differences, in globally scaled units: what
    `diff` scaling divides them by so that the network sees values of order one."""
    steps = dataset.scale(dataset.splits["train"].observed)
    return float(np.diff(steps, axis=1).std()) or 1.0


def prepare(arch: ArchConfig, cfg: TrainConfig, dataset: Dataset, seed: int, season: int = 1) -> Prepared:
    """Frame the dataset and build the (seeded) model, ready for `fit`.

    The model config records everything a forecast needs to rebuild it: the input length, the
    scaling (and its train-fitted difference scale) and, for seasonal naive, the season.
    """
    # Rollout-aware training frames the next rollout_steps values as targets; a baseline is fitted
    # in closed form on the next value, and validation stays one step ahead for every model.
    steps = cfg.rollout_steps if arch.kind not in BASELINE_KINDS else 1
    train_set = frame(dataset, "train", cfg.framing, cfg.window, steps)
    val_set = frame(dataset, "val", cfg.framing, cfg.window)
    # Scaling re-expresses input windows: the other framings have none (a time, one sequence).
    scaling = cfg.scaling if cfg.framing == "window" else "global"
    model_config = {**arch.model_dump(), "input_length": int(train_set.inputs.shape[-2]), "scaling": scaling}
    if scaling == "diff":
        model_config["diff_scale"] = diff_scale(dataset)
    if arch.kind == "seasonal_naive":
        model_config["season"] = season
    return Prepared(build_model(model_config, seed=seed), model_config, train_set, val_set)


def fit(
    prepared: Prepared,
    arch: ArchConfig,
    cfg: TrainConfig,
    seed: int,
    on_epoch: list[EpochCallback] | None = None,
    description: str = "train",
) -> TrainResult:
    """Train the prepared model (or fit it, for a baseline)."""
    if arch.kind in BASELINE_KINDS:
        return fit_baseline(prepared.model, prepared.train_set, prepared.val_set, getattr(arch, "alpha", 0.0))
    return train_model(prepared.model, prepared.train_set, prepared.val_set, cfg, seed, on_epoch, description)


def fit_architecture(
    arch: ArchConfig,
    cfg: TrainConfig,
    dataset: Dataset,
    seed: int,
    on_epoch: list[EpochCallback] | None = None,
    description: str = "train",
    season: int = 1,
) -> Fitted:
    """Frame, build, then train (or fit, for a baseline). The train stage and every Optuna trial
    go through here, so a tuned value means the same thing in both."""
    prepared = prepare(arch, cfg, dataset, seed, season)
    result = fit(prepared, arch, cfg, seed, on_epoch, description)
    return Fitted(prepared.model, prepared.model_config, result, prepared.val_set)
