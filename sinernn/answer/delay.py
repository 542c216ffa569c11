"""The delay task: where vanishing gradients really bite.

A sine's next value needs only the last two values, so it cannot show whether a cell can remember.
Here the target IS a value from far back: each sample is a sequence of k+1 independent values,
uniform on [-1, 1], and the model must output the first one after reading all of them:

    inputs   x[0] x[1] ... x[k]        (B, k+1, 1)
    target   x[0]                      (B, 1): the input k steps before the last one

Nothing after x[0] says anything about it, so the only way to the target is to carry x[0] through
k steps of the recurrence, and the only signal that teaches it is a gradient that flows back k
steps. Predicting the mean scores the target's variance, 1/3; a cell "learns lag k" when its test
MSE falls below LEARNED_FRACTION of that variance. Each cell is trained with the pipeline's own
loop (`train_model`: Adam, cosine schedule, the best validation epoch kept; no early stopping:
learning this task often starts only after a long plateau), with gradient clipping on and off.

PyTorch initialises an LSTM's forget-gate bias near 0, so at first the cell keeps about half of its
memory per step, 0.5^k after k steps. The common remedy (Gers et al. 2000; Jozefowicz et al. 2015)
starts that bias at 1; `diagnose.delay_forget_bias` adds such an LSTM beside the default one.
"""

from __future__ import annotations

import torch

from sinernn.answer.measurements import Inputs
from sinernn.core.config import Params
from sinernn.core.config_data import RecurrentArch
from sinernn.core.config_stages import DiagnoseConfig, TrainConfig
from sinernn.core.errors import TrainingDiverged
from sinernn.core.framing import Framed
from sinernn.core.models import build_model
from sinernn.core.training import mean_loss, train_model

LEARNED_FRACTION = 0.1  # test MSE below 10% of the target variance (R^2 above 0.9): the lag is learned
TARGET_VARIANCE = 1 / 3  # of a uniform value on [-1, 1]: the MSE of predicting the mean, 0


def delay_samples(lag: int, n_samples: int, seed: int) -> Framed:
    """n_samples sequences of lag+1 uniform values; the target is each sequence's first value."""
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.rand(n_samples, lag + 1, 1, generator=generator) * 2 - 1  # (N, k+1, 1)
    return Framed(inputs, inputs[:, 0, :].clone())  # (N, 1)


def cells(cfg: DiagnoseConfig) -> list[tuple[str, float | None]]:
    """(kind, forget-gate bias) of every cell of the task: the plain ones, then the lstm with its bias."""
    plain = [(kind, None) for kind in cfg.delay_architectures]
    return plain + ([("lstm", cfg.delay_forget_bias)] if cfg.delay_forget_bias is not None else [])


def delay_cell(kind: str, forget_bias: float | None, cfg: DiagnoseConfig, train: TrainConfig, seed: int) -> list[dict]:
    """One cell's rows, for each clipping setting, shortest lag first.

    A cell (with a clipping setting) that fails at a lag is not trained at the longer ones: its limit
    is the longest lag learned without a break (lag_limits), which a longer lag cannot change, and
    the time goes to the cells still learning. Each cell is a stage of its own (delay_part)."""
    results, failed = [], set()
    for lag in sorted(cfg.delay_lags):
        sets = task_sets(lag, cfg, seed)
        for clip in cfg.delay_clips:
            if clip in failed:
                continue
            row = _train_one(kind, forget_bias, lag, clip, cfg, train, seed, sets)
            if not row["learned"]:
                failed.add(clip)
            results.append(row)
    return results


def order_rows(rows: list[dict], cfg: DiagnoseConfig) -> list[dict]:
    """Rows of several cells as one table: by lag, then cell, then clipping, as the settings list them."""
    names = [cell_name(kind, forget_bias) for kind, forget_bias in cells(cfg)]
    clips = list(cfg.delay_clips)
    return sorted(rows, key=lambda r: (r["lag"], names.index(r["architecture"]), clips.index(r["grad_clip"])))


def delay_part(params: Params, inputs: Inputs, item: str) -> list[dict]:
    """The delay task for one plain cell of diagnose.delay_architectures (stage diagnose_delay@<cell>)."""
    return delay_cell(item, None, params.diagnose, params.train, params.seed)


def delay_forget_bias_part(params: Params, inputs: Inputs, item: None) -> list[dict]:
    """The lstm with its forget-gate bias started at diagnose.delay_forget_bias (none: no rows)."""
    cfg = params.diagnose
    return [] if cfg.delay_forget_bias is None else delay_cell("lstm", cfg.delay_forget_bias, cfg, params.train, params.seed)


def settings(cfg: DiagnoseConfig) -> dict:
    """What the report needs to say how the task was run and judged."""
    return {"target_variance": TARGET_VARIANCE, "learned_below": LEARNED_FRACTION * TARGET_VARIANCE,
            "learned_fraction": LEARNED_FRACTION, "epochs": cfg.delay_epochs, "samples": cfg.delay_samples,
            "lr": cfg.delay_lr, "hidden": cfg.cell_hidden, "forget_bias": cfg.delay_forget_bias}


def cell_name(kind: str, forget_bias: float | None) -> str:
    return kind if forget_bias is None else f"{kind} (forget bias {forget_bias:g})"


def _set_forget_bias(model: torch.nn.Module, value: float) -> None:
    """The forget-gate bias of every LSTM layer (gates are ordered input, forget, cell, output)."""
    lstm = next(m for m in model.modules() if isinstance(m, torch.nn.LSTM))
    hidden = lstm.hidden_size
    with torch.no_grad():
        for name, bias in lstm.named_parameters():
            if name.startswith("bias_"):  # b_ih + b_hh is the gate's bias: put it all in b_ih
                bias[hidden : 2 * hidden] = value if name.startswith("bias_ih") else 0.0


def _train_one(kind: str, forget_bias: float | None, lag: int, clip: float, cfg: DiagnoseConfig, train: TrainConfig,
               seed: int, sets: tuple[Framed, Framed, Framed]) -> dict:
    arch = RecurrentArch(kind=kind, hidden_size=cfg.cell_hidden, num_layers=1)
    model = build_model({**arch.model_dump(), "input_length": lag + 1}, seed=seed)
    if forget_bias is not None:
        _set_forget_bias(model, forget_bias)
    return train_on_lag(model, cell_name(kind, forget_bias), lag, clip, cfg, train, seed, sets)


def train_on_lag(model: torch.nn.Module, name: str, lag: int, clip: float, cfg: DiagnoseConfig, train: TrainConfig,
                 seed: int, sets: tuple[Framed, Framed, Framed]) -> dict:
    """One model on one lag of the task, with the task's budget; its row of the results."""
    train_set, val_set, test_set = sets
    config = train.model_copy(update={"lr": cfg.delay_lr, "grad_clip": clip, "max_epochs": cfg.delay_epochs,
                                      "rollout_steps": 1, "patience": cfg.delay_epochs})
    row = {"lag": lag, "architecture": name, "grad_clip": clip}
    try:
        result = train_model(model, train_set, val_set, config, seed, description=f"delay {name} k={lag} clip={clip:g}")
    except TrainingDiverged as exc:  # an exploding gradient is one of the outcomes measured here
        return {**row, "diverged": True, "test_mse": None, "learned": False, "reason": str(exc)}
    test_mse = mean_loss(model, test_set)
    return {**row, "diverged": False, "test_mse": test_mse, "epochs": len(result.history),
            "mean_grad_norm": sum(s.grad_norm for s in result.history) / len(result.history),
            "learned": test_mse < LEARNED_FRACTION * TARGET_VARIANCE}


def task_sets(lag: int, cfg: DiagnoseConfig, seed: int) -> tuple[Framed, Framed, Framed]:
    """Train, validation and test sequences for one lag. Separate seeds: the test sequences are
    never seen in training."""
    return (delay_samples(lag, cfg.delay_samples, seed), delay_samples(lag, cfg.delay_samples // 4, seed + 1),
            delay_samples(lag, cfg.delay_samples // 4, seed + 2))


def lag_limits(results: list[dict]) -> list[dict]:
    """Per cell and clipping: the longest lag learned, and the first lag (above it) not learned.

    "Longest learned" counts only an unbroken run from the shortest lag: a cell that fails at 16 but
    succeeds at 32 by luck has a limit of 8, not 32."""
    cells: dict[tuple[str, float], list[dict]] = {}
    for row in results:
        cells.setdefault((row["architecture"], row["grad_clip"]), []).append(row)
    limits = []
    for (kind, clip), rows in cells.items():
        rows = sorted(rows, key=lambda r: r["lag"])
        first_failure = next((r for r in rows if not r["learned"]), None)
        learned = [r["lag"] for r in rows if first_failure is None or r["lag"] < first_failure["lag"]]
        limits.append({"architecture": kind, "grad_clip": clip, "longest_learned": max(learned, default=None),
                       "first_failed": first_failure["lag"] if first_failure else None,
                       "failed_by_diverging": bool(first_failure and first_failure["diverged"]),
                       "longest_tried": rows[-1]["lag"]})
    return limits
