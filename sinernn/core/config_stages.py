"""params.yaml sections that configure the stages: train, run, tune, diagnose, evaluate, registry, mlflow."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from sinernn.core.config_data import (
    MAX_THREADS, MAX_WORKERS, PUBLISHED_SPLITS, PositiveFloat, PositiveInt, Strict, no_repeats,
)
from sinernn.core.secrets import check_storage_url, storage_password


MAX_ROLLOUT_STEPS = 256  # each step is one more forward pass per batch


class TrainConfig(Strict):
    framing: Literal["window", "time_to_value", "naive"] = "window"
    window: PositiveInt = 32
    # How a window reaches the network (see sinernn/core/models.py): global (the train split's mean and
    # deviation), window (each window by its own), diff (first differences, integrated back).
    # window is the default measured best over every dataset (docs/forecasting.md).
    scaling: Literal["global", "window", "diff"] = "window"
    batch_size: PositiveInt = 64
    max_epochs: PositiveInt = 60
    lr: PositiveFloat = 3e-3
    lr_schedule: Literal["cosine", "plateau", "none"] = "cosine"
    grad_clip: Annotated[float, Field(ge=0)] = 1.0  # max gradient norm; 0 turns clipping off
    patience: PositiveInt = 15  # epochs without validation improvement before stopping
    # Rollout-aware training: the loss averages the errors of this many free-running steps, each
    # prediction fed back as the newest input (1: the next value only). Needs framing window.
    rollout_steps: Annotated[int, Field(ge=1, le=MAX_ROLLOUT_STEPS)] = 1
    threads: Annotated[int, Field(gt=0, le=MAX_THREADS)] = Field(
        default=1, description=f"torch threads, 1 to {MAX_THREADS}; small recurrent nets run fastest on one")

    section: ClassVar[str] = "train"


class RunConfig(Strict):
    """What `dvc repro` builds: the lists the dvc.yaml matrices run over.

    Generating a dataset takes seconds; training every architecture on it takes minutes, so the
    datasets that are trained and evaluated are a separate (sub)list.
    """

    datasets: list[str] = Field(min_length=1)  # generated and versioned
    train_datasets: list[str] = Field(min_length=1)  # trained and evaluated, x architectures
    architectures: list[str] = Field(min_length=1)

    section: ClassVar[str] = "run"


class _Range(Strict):
    """A search range; subclasses give low and high their type."""

    @model_validator(mode="after")
    def _ordered(self) -> _Range:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        return self


class FloatRange(_Range):
    low: PositiveFloat
    high: PositiveFloat
    log: bool = False


class IntRange(_Range):
    low: PositiveInt
    high: PositiveInt
    log: bool = False


Fraction = Annotated[float, Field(ge=0, lt=1)]


class FractionRange(_Range):
    """A range within [0, 1), such as a dropout probability's."""

    low: Fraction
    high: Fraction
    log: bool = False

    @model_validator(mode="after")
    def _log_above_zero(self) -> FractionRange:
        if self.log and self.low == 0:
            raise ValueError("log: true needs low > 0 (a log scale never reaches 0)")
        return self


class SearchSpace(Strict):
    """What a trial may change. A name set to null is not searched (params.yaml's value is used).

    hidden_size is the transformer's d_model (rounded up to a multiple of nhead); grad_clip is a
    choice of max norms, 0 meaning no clipping; dropout is a probability in [0, 1).
    """

    lr: FloatRange | None = FloatRange(low=1e-3, high=3e-2, log=True)
    hidden_size: IntRange | None = IntRange(low=8, high=64, log=True)
    num_layers: IntRange | None = None  # null: each architecture keeps its own (lstm stays one layer)
    grad_clip: Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=1)] | None = [0.0, 1.0, 5.0]
    window: IntRange | None = None
    batch_size: Annotated[list[PositiveInt], Field(min_length=1)] | None = None
    # the recurrent models' and the transformer's dropout (the baselines have none)
    dropout: FractionRange | None = None


class TuneConfig(Strict):
    """The Optuna searches of stage `tune`: one study per (train dataset, architecture)."""

    enabled: bool = True  # false: `tune` writes empty tuned/<dataset>/<arch>.json; train uses params.yaml
    n_trials: PositiveInt = 12  # finished (complete or pruned) trials per study, over all workers
    timeout: PositiveFloat | None = None  # seconds per worker; stops early, the study can resume
    max_epochs: PositiveInt | None = None  # per trial; null: train.max_epochs
    pruner: Literal["median", "hyperband", "none"] = "median"
    startup_trials: Annotated[int, Field(ge=0)] = 4  # random trials before TPE and pruning start
    workers: Annotated[int, Field(gt=0, le=MAX_WORKERS)] = Field(
        default=1, description=f"local worker processes, 1 to {MAX_WORKERS}; more than 1 trades exact "
        "reproducibility for speed")
    storage: str | None = None  # null: sqlite optuna/studies.db; postgresql://...; grpc://host:port
    # seconds; a trial whose heartbeat is older than 2x this (plus sqlite_lock_wait on SQLite) is
    # failed as dead...
    heartbeat_interval: PositiveInt = 10
    max_retry: Annotated[int, Field(ge=0)] = 1  # ...and re-queued this many times
    # seconds a SQLite writer waits for the lock before it fails ("database is locked")
    sqlite_lock_wait: PositiveInt = 60
    # seconds; a RUNNING trial with no heartbeat at all (killed before its first, or run through
    # the gRPC proxy) is failed and re-queued once it has reported no epoch for this long
    stall_timeout: PositiveInt = 600
    space: SearchSpace = SearchSpace()
    # Per-architecture changes to `space`, e.g. {deep_lstm: {num_layers: {low: 2, high: 3}}}, so
    # that tuning does not turn the stacked LSTM into the plain one.
    arch_space: dict[str, dict] = {}

    section: ClassVar[str] = "tune"

    @model_validator(mode="before")
    @classmethod
    def _no_shared_dataset(cls, values):
        if isinstance(values, dict) and "dataset" in values:
            raise ValueError("tune.dataset is gone: every train dataset now has its own studies (tuned/<dataset>/"
                             "<arch>.json), so values tuned on one series no longer train another; delete the key "
                             "(`sinernn tune --dataset NAME` searches one dataset)")
        return values

    def space_for(self, arch_name: str) -> SearchSpace:
        return SearchSpace.model_validate({**self.space.model_dump(), **self.arch_space.get(arch_name, {})})

    @model_validator(mode="after")
    def _storage_kind(self) -> TuneConfig:
        if self.storage is not None:
            check_storage_url(self.storage)
            if storage_password(self.storage):
                # params.yaml's tune section is a DVC param: it is copied into dvc.lock, and both go to git.
                raise ValueError("storage must not hold a password (params are written to dvc.lock): "
                                 "put it in ~/.pgpass or $PGPASSFILE, or set $SINERNN_OPTUNA_STORAGE")
        return self


class DiagnoseConfig(Strict):
    """Stage `diagnose`: the published examples and the measurements the report rests on."""

    published_epochs: PositiveInt = 1000  # as published
    example2_hidden: PositiveInt = 10  # the published example 2 leaves `hidden` open
    corrected_window: PositiveInt = 32
    corrected_epochs: PositiveInt = 60
    gradient_dataset: str = "clean"  # a sine source; its splits are lengthened for long windows
    gradient_windows: list[PositiveInt] = Field(default=[32, 512], min_length=1)
    gradient_architectures: list[Literal["rnn", "gru", "lstm"]] = Field(default=["rnn", "gru", "lstm"], min_length=1)
    gradient_hidden: PositiveInt = 32
    gradient_epochs: PositiveInt = 5
    stability_dataset: str = "clean"
    stability_lrs: list[PositiveFloat] = Field(default=[0.001, 0.01, 0.1, 1.0], min_length=1)
    stability_clips: list[Annotated[float, Field(ge=0)]] = Field(default=[0.0, 1.0], min_length=1)
    stability_epochs: PositiveInt = 15
    extrapolation_dataset: str = "clean"
    extrapolation_arch: str = "lstm"
    extrapolation_epochs: PositiveInt = 40
    memory_dataset: str = "noisy"
    memory_arch: str = "lstm"
    memory_windows: list[PositiveInt] = Field(default=[2, 8, 32], min_length=1)
    memory_epochs: PositiveInt = 30
    # The delay task (sinernn/answer/delay.py): remember the first of lag+1 random values.
    delay_lags: list[PositiveInt] = Field(default=[8, 16, 32, 64, 128], min_length=1)
    delay_architectures: list[Literal["rnn", "gru", "lstm"]] = Field(default=["rnn", "gru", "lstm"], min_length=1)
    delay_clips: list[Annotated[float, Field(ge=0)]] = Field(default=[0.0, 1.0], min_length=1)
    delay_forget_bias: float | None = 1.0  # one more LSTM, its forget-gate bias started here (null: none)
    cell_hidden: PositiveInt = 32  # every cell of the delay task and the trend case
    delay_lr: PositiveFloat = 0.01
    delay_epochs: PositiveInt = 100
    delay_samples: Annotated[int, Field(ge=256)] = 2048  # training sequences; validation and test a quarter each
    # The trend case: a sine plus a linear trend, with each scaling in turn.
    trend_dataset: str = "clean"  # a sine dataset; its trend is replaced by `trend`
    trend: float = 0.002  # per sample
    trend_architectures: list[Literal["rnn", "gru", "lstm"]] = Field(default=["rnn", "gru", "lstm"], min_length=1)
    trend_scalings: list[Literal["global", "window", "diff"]] = Field(default=["global", "window"], min_length=1)
    trend_epochs: PositiveInt = 30
    trend_horizon: PositiveInt = 100  # free-running steps scored against the clean series

    section: ClassVar[str] = "diagnose"

    @field_validator("delay_lags", "delay_architectures", "delay_clips", "trend_architectures", "trend_scalings")
    @classmethod
    def _no_repeats(cls, values: list) -> list:
        return no_repeats(values)

    @field_validator("corrected_window")
    @classmethod
    def _corrected_window_fits(cls, window: int) -> int:
        if window >= min(PUBLISHED_SPLITS):
            raise ValueError(
                f"{window} must be below {min(PUBLISHED_SPLITS)}: the published data's train/val/test splits "
                f"hold {'/'.join(map(str, PUBLISHED_SPLITS))} values, and each needs a window plus its target"
            )
        return window


class EvaluateConfig(Strict):
    """Stage `evaluate`: free-running rollouts and a rolling-origin backtest at these horizons."""

    # Steps ahead; one longer than the test split allows is skipped with a note, never silently.
    horizons: list[PositiveInt] = Field(default=[1, 10, 100, 1000], min_length=1)
    # Backtest forecasts start at every `backtest_stride`-th value of the test split.
    backtest_stride: PositiveInt = 10

    section: ClassVar[str] = "evaluate"

    @field_validator("horizons")
    @classmethod
    def _sorted_unique(cls, horizons: list[int]) -> list[int]:
        if horizons != sorted(set(horizons)):
            raise ValueError(f"must be increasing, without repeats (got {horizons})")
        return horizons


REGISTRY_METRIC = re.compile(r"test_mse|test_mae|rollout_mse_([1-9][0-9]*)")


class RegistryConfig(Strict):
    """Stage `register`: every final model in the MLflow Model Registry, a champion per dataset."""

    enabled: bool = True
    # test_mse | test_mae | rollout_mse_<H> for a horizon H of evaluate.horizons
    metric: str = "test_mse"
    margin: Annotated[float, Field(ge=0, lt=1)] = 0.05  # a challenger must be this much better (relative)

    section: ClassVar[str] = "registry"


class MlflowConfig(Strict):
    experiment: str = Field(default="sinernn", min_length=1)
    log_models: bool = True

    section: ClassVar[str] = "mlflow"
