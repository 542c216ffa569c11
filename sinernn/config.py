"""Typed, validated view of `params.yaml`.

The YAML file is read once, at the boundary (a stage script or the CLI), and turned into these
models; everything below receives plain values from them. A bad value stops the run before any
work starts, with one line naming the key and what is allowed.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, ClassVar, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from sinernn.errors import SinernnError

# The published examples' data, sin(linspace(0, 10, 1000)), split in time: train | val | test.
PUBLISHED_SPLITS = (700, 150, 150)
# Dataset and architecture names become file paths (data/processed/NAME.npz, models/DATASET/ARCH)
# and MLflow filter strings (tags.dataset = 'NAME'): nothing there may need quoting or escaping.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
MAX_THREADS = 256
MAX_WORKERS = 64


class ParamsError(SinernnError):
    """params.yaml is missing, unreadable or invalid."""


class Strict(BaseModel):
    # forbid: a misspelt key is an error, not a silently ignored setting
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    section: ClassVar[str] = ""  # this model's key in params.yaml, to name it in errors

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False):
        """A copy with `update` applied and validated again.

        pydantic's own model_copy(update=...) skips validation, so an override such as
        `--epochs -3` would reach the training loop unchecked; here it is one ParamsError.
        """
        if not update:
            return super().model_copy(deep=deep)
        try:
            return type(self).model_validate({**self.model_dump(), **update})
        except ValidationError as exc:
            raise ParamsError(f"invalid override: {_describe(exc.errors()[0], prefix=self.section)}") from None


PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]


# ---- datasets -------------------------------------------------------------------------------


class DatasetTrain(Strict):
    """The `train.*` keys that depend on the data, set for one dataset (null: `train`'s value).

    Everything that trains on the dataset uses them: the train stage, the tune stage when it is
    `tune.dataset`, and so evaluation and predict, which read the window from the model.
    """

    window: PositiveInt | None = None
    scaling: Literal["global", "window", "diff"] | None = None
    batch_size: PositiveInt | None = None
    max_epochs: PositiveInt | None = None


class _Series(Strict):
    """What every source has: its season and its own training settings."""

    # Samples per season: the seasonal-naive baseline's lag and the scale of the backtest MASE.
    # 1 (no season) makes seasonal naive the persistence forecast.
    season: PositiveInt = 1
    train: DatasetTrain = DatasetTrain()


class SineSource(_Series):
    """One long series a*sin(2*pi*t/period + phase) + trend*t + N(0, noise_std^2), split in time."""

    source: Literal["sine"]
    period: PositiveFloat = 50.0  # in samples
    amplitude: PositiveFloat = 1.0
    phase: float = 0.0
    noise_std: Annotated[float, Field(ge=0)] = 0.0
    trend: float = 0.0  # added per sample: a series whose test values lie above every train value
    n_train: PositiveInt = 3000
    n_val: PositiveInt = 500
    n_test: PositiveInt = 1100
    # New data for retraining: snapshot N continues the series N lengths later in time, with
    # its noise redrawn and, optionally, drift per snapshot: period x (1 + period_drift * N),
    # phase + phase_drift * N (radians), noise_std + noise_drift * N.
    snapshot: Annotated[int, Field(ge=0)] = 0
    period_drift: Annotated[float, Field(gt=-1)] = 0.0
    phase_drift: float = 0.0
    noise_drift: Annotated[float, Field(ge=0)] = 0.0

    @field_validator("period_drift")
    @classmethod
    def _period_stays_positive(cls, drift: float, info: ValidationInfo) -> float:
        # A period of 0 divides by zero (NaN data, then a "diverged" training); below 0 the sine
        # runs backwards. `sinernn retrain` moves to the next snapshot and validates again.
        period, snapshot = info.data.get("period"), info.data.get("snapshot")
        if period is not None and snapshot is not None and 1 + drift * snapshot <= 0:
            raise ValueError(
                f"{drift} makes the period of snapshot {snapshot} {period * (1 + drift * snapshot):g} samples; "
                f"period x (1 + period_drift x snapshot) must stay above 0"
            )
        return drift


class RandomFreqSource(_Series):
    """Many independent short sines, each with its own random period and phase."""

    source: Literal["random_freq"]
    period_min: PositiveFloat = 20.0
    period_max: PositiveFloat = 80.0
    amplitude: PositiveFloat = 1.0
    noise_std: Annotated[float, Field(ge=0)] = 0.0
    n_train_series: PositiveInt = 256
    n_val_series: PositiveInt = 32
    n_test_series: PositiveInt = 16
    train_length: PositiveInt = 96  # samples per train/validation series
    test_length: PositiveInt = 1100  # samples per test series (long enough for the rollout)
    snapshot: Annotated[int, Field(ge=0)] = 0  # new data for retraining: other random series

    @model_validator(mode="after")
    def _periods_ordered(self) -> RandomFreqSource:
        if self.period_min > self.period_max:
            raise ValueError(
                f"period_min ({self.period_min}) must not exceed period_max ({self.period_max})"
            )
        return self


class CsvSource(_Series):
    """One numeric column of a CSV file under data/external/, split in time.

    time_column: optional time stamps (numbers or ISO 8601 dates), checked to be strictly increasing
    at a regular step. missing: what an empty value cell becomes; `error` refuses it, `interpolate`
    draws a line between its observed neighbours, `ffill` repeats the previous observed value.
    """

    source: Literal["csv"]
    path: str
    column: str
    time_column: str | None = None
    missing: Literal["error", "interpolate", "ffill"] = "error"
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.15
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.15

    @model_validator(mode="after")
    def _fractions_leave_train(self) -> CsvSource:
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must be below 1 (train needs the rest)")
        return self

    @field_validator("path")
    @classmethod
    def _under_data_external(cls, path: str) -> str:
        # Only the spelling is checked here; data.csv_source_path resolves symlinks against the
        # project root when it opens the file.
        if not path.startswith("data/external/"):
            raise ValueError(f"must lie under data/external/ (got {path!r})")
        if ".." in PurePosixPath(path).parts:
            raise ValueError(f"must lie under data/external/ and so may not contain '..' (got {path!r})")
        return path


DatasetConfig = Annotated[
    Union[SineSource, RandomFreqSource, CsvSource], Field(discriminator="source")
]


# ---- architectures --------------------------------------------------------------------------


class RecurrentArch(Strict):
    kind: Literal["rnn", "gru", "lstm"]
    hidden_size: PositiveInt = 32
    num_layers: PositiveInt = 1
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0


class TransformerArch(Strict):
    kind: Literal["transformer"]
    d_model: PositiveInt = 32
    nhead: PositiveInt = 2
    num_layers: PositiveInt = 1
    dim_feedforward: PositiveInt = 64
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0

    @model_validator(mode="after")
    def _heads_divide(self) -> TransformerArch:
        if self.d_model % self.nhead:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by nhead ({self.nhead})")
        return self


class RidgeArch(Strict):
    """Linear autoregression: Ridge regression on the last `window` values."""

    kind: Literal["ridge"]
    alpha: Annotated[float, Field(ge=0)] = 1e-6


class PersistenceArch(Strict):
    """Predicts that the next value equals the last one."""

    kind: Literal["persistence"]


class SeasonalNaiveArch(Strict):
    """Predicts that the next value equals the one a season ago (`datasets.<name>.season`)."""

    kind: Literal["seasonal_naive"]


ArchConfig = Annotated[
    Union[RecurrentArch, TransformerArch, RidgeArch, PersistenceArch, SeasonalNaiveArch], Field(discriminator="kind")
]
BASELINE_KINDS = ("ridge", "persistence", "seasonal_naive")


# ---- training -------------------------------------------------------------------------------


class TrainConfig(Strict):
    framing: Literal["window", "time_to_value", "naive"] = "window"
    window: PositiveInt = 32
    # How a window reaches the network (see sinernn/models.py): global (the train split's mean and
    # deviation), window (each window by its own), diff (first differences, integrated back).
    # window is the default measured best over every dataset (docs/forecasting.md).
    scaling: Literal["global", "window", "diff"] = "window"
    batch_size: PositiveInt = 64
    max_epochs: PositiveInt = 60
    lr: PositiveFloat = 3e-3
    lr_schedule: Literal["cosine", "plateau", "none"] = "cosine"
    grad_clip: Annotated[float, Field(ge=0)] = 1.0  # max gradient norm; 0 turns clipping off
    patience: PositiveInt = 15  # epochs without validation improvement before stopping
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


# ---- tuning ---------------------------------------------------------------------------------


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


class SearchSpace(Strict):
    """What a trial may change. A name set to null is not searched (params.yaml's value is used).

    hidden_size is the transformer's d_model (rounded up to a multiple of nhead); grad_clip is a
    choice of max norms, 0 meaning no clipping.
    """

    lr: FloatRange | None = FloatRange(low=1e-3, high=3e-2, log=True)
    hidden_size: IntRange | None = IntRange(low=8, high=64, log=True)
    num_layers: IntRange | None = IntRange(low=1, high=2)
    grad_clip: Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=1)] | None = [0.0, 1.0, 5.0]
    window: IntRange | None = None
    batch_size: Annotated[list[PositiveInt], Field(min_length=1)] | None = None


class TuneConfig(Strict):
    """The Optuna searches of stage `tune`: one study per architecture."""

    enabled: bool = True  # false: `tune` writes empty tuned/<arch>.json and train uses params.yaml
    # The dataset the searches train on; the tuned values are then used for every train dataset.
    # One dataset, so the tune stages depend on exactly its file (dvc.yaml cannot list several).
    dataset: str = "clean"
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


def check_storage_url(url: str) -> str:
    """The Optuna storage URLs sinernn opens, wherever they come from (params, --storage, env)."""
    if not url.startswith(("sqlite:///", "postgresql://", "postgresql+", "grpc://")):
        raise ValueError(f"storage must be null, sqlite:///PATH, postgresql://... or grpc://HOST:PORT "
                         f"(got {redact_url(url)!r})")
    return url


def storage_password(url: str) -> str | None:
    """The password a database URL carries, in its user part or as ?password=."""
    from urllib.parse import parse_qs, urlsplit

    database = _database_url(url)
    if database is not None:  # as SQLAlchemy reads it: a password may hold '/', '#' or '?'
        query = database.query.get("password")
        return database.password or (query if isinstance(query, str) else (query or [None])[0])
    parts = urlsplit(url)
    query = parse_qs(parts.query).get("password")
    return parts.password or (query[0] if query else None)


def redact_url(url: str) -> str:
    """The URL as it may be printed or logged: any password replaced by ***, as written (percent-
    encoded or not) in the user part and in every ?password= of the query."""
    database = _database_url(url)
    if database is not None and database.password:
        url = database.render_as_string(hide_password=True)
    url = re.sub(r"(?<=[?&;]password=)[^&;#]*", "***", url)
    scheme, separator, rest = url.partition("://")
    credentials, at, _ = rest.split("/", 1)[0].rpartition("@")
    if separator and at and ":" in credentials:
        url = f"{scheme}://{credentials.partition(':')[0]}:***@{rest[len(credentials) + 1:]}"
    return url


def redact_in(text: str, url: str) -> str:
    """An error text that may quote the URL (or its password) made safe to print."""
    text = text.replace(url, redact_url(url))
    password = storage_password(url)
    return text.replace(password, "***") if password else text


def _database_url(url: str):
    """A postgresql:// URL parsed the way SQLAlchemy (and so the storage) parses it, or None."""
    if not url.startswith("postgresql"):
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except ArgumentError:
        return None


# ---- diagnosis ------------------------------------------------------------------------------


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

    section: ClassVar[str] = "diagnose"

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


class Params(Strict):
    seed: Annotated[int, Field(ge=0)] = 0
    run: RunConfig
    datasets: dict[str, DatasetConfig] = Field(min_length=1)
    architectures: dict[str, ArchConfig] = Field(min_length=1)
    train: TrainConfig = TrainConfig()
    tune: TuneConfig = TuneConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    diagnose: DiagnoseConfig = DiagnoseConfig()
    registry: RegistryConfig = RegistryConfig()
    mlflow: MlflowConfig = MlflowConfig()

    @field_validator("datasets", "architectures")
    @classmethod
    def _safe_names(cls, named: dict) -> dict:
        for name in named:
            if not NAME_PATTERN.fullmatch(name):
                raise ValueError(
                    f"name {name!r} must match ^{NAME_PATTERN.pattern}$ (lower-case letters, digits, _ and -): "
                    f"it becomes part of file paths and MLflow filters"
                )
        return named

    def train_for(self, dataset: str) -> TrainConfig:
        """`train` with the dataset's own settings (datasets.<name>.train) over it."""
        own = self.datasets[dataset].train.model_dump(exclude_none=True)
        return self.train.model_copy(update=own) if own else self.train

    @model_validator(mode="after")
    def _cross_checks(self) -> Params:
        for name in self.run.datasets:
            if name not in self.datasets:
                raise ValueError(
                    f"run.datasets names unknown dataset {name!r}; defined: {sorted(self.datasets)}"
                )
        for name in self.run.train_datasets:
            if name not in self.run.datasets:
                raise ValueError(
                    f"run.train_datasets names {name!r}, which run.datasets does not generate; "
                    f"generated: {self.run.datasets}"
                )
        for name in self.run.architectures:
            if name not in self.architectures:
                raise ValueError(
                    f"run.architectures names unknown architecture {name!r}; "
                    f"defined: {sorted(self.architectures)}"
                )
        for name in self.tune.arch_space:
            if name not in self.architectures:
                raise ValueError(f"tune.arch_space names unknown architecture {name!r}; defined: {sorted(self.architectures)}")
            try:
                self.tune.space_for(name)
            except ValidationError as exc:
                raise ValueError(_describe(exc.errors()[0], prefix=f"tune.arch_space.{name}")) from None
        if self.tune.dataset not in self.run.datasets:
            raise ValueError(
                f"tune.dataset is {self.tune.dataset!r}, which run.datasets does not generate; "
                f"generated: {self.run.datasets}"
            )
        metric = REGISTRY_METRIC.fullmatch(self.registry.metric)
        if metric is None or (metric.group(1) and int(metric.group(1)) not in self.evaluate.horizons):
            raise ValueError(f"registry.metric is {self.registry.metric!r}: choose test_mse, test_mae or rollout_mse_H "
                             f"with H one of evaluate.horizons {self.evaluate.horizons}")
        if metric and metric.group(1):  # the gate rolls the newest test split forward that far
            for name in self.run.train_datasets:
                ds, window = self.datasets[name], self.train_for(name).window
                holds = {"sine": getattr(ds, "n_test", 0), "random_freq": getattr(ds, "test_length", 0) - window}
                if ds.source in holds and holds[ds.source] < int(metric.group(1)):
                    raise ValueError(f"registry.metric {self.registry.metric} needs {metric.group(1)} test values "
                                     f"after the seed window, but dataset {name!r} holds {holds[ds.source]}")
        if self.registry.enabled and not self.mlflow.log_models:
            raise ValueError("registry.enabled needs mlflow.log_models: true (the registry registers the logged models)")
        d = self.diagnose
        for key in ("gradient_dataset", "stability_dataset", "extrapolation_dataset", "memory_dataset"):
            name = getattr(d, key)
            if name not in self.run.datasets:
                raise ValueError(f"diagnose.{key} is {name!r}, which run.datasets does not generate; generated: {self.run.datasets}")
        if self.datasets[d.gradient_dataset].source != "sine":
            raise ValueError("diagnose.gradient_dataset must be a sine source (its splits are lengthened for long windows)")
        for key in ("extrapolation_arch", "memory_arch"):
            name = getattr(d, key)
            if name not in self.architectures or self.architectures[name].kind in BASELINE_KINDS:
                raise ValueError(f"diagnose.{key} must name a neural architecture of `architectures` (got {name!r})")
        if self.train.framing == "naive":
            baselines = [a for a in self.run.architectures if self.architectures[a].kind in BASELINE_KINDS]
            if baselines:
                raise ValueError(
                    f"train.framing naive reproduces a broken recurrent setup and has no input window "
                    f"for the baselines {baselines}: remove them from run.architectures"
                )
        self._windows_fit_the_data()
        self._scaling_fits_the_framing()
        return self

    def _scaling_fits_the_framing(self) -> None:
        kinds = {self.architectures[a].kind for a in self.run.architectures}
        if "seasonal_naive" in kinds and self.train.framing != "window":
            raise ValueError(f"the seasonal_naive baseline reads a season back in its input window: it needs "
                             f"train.framing window (got {self.train.framing})")
        lows = [space.window.low for space in map(self.tune.space_for, self.architectures) if space.window]
        for name in self.run.datasets:
            cfg, where = self.train_for(name), f"datasets.{name}.train" if self.datasets[name].train.scaling else "train"
            if cfg.scaling != "global" and cfg.framing != "window":
                raise ValueError(f"{where}.scaling {cfg.scaling} re-expresses input windows: it needs train.framing "
                                 f"window (got {cfg.framing})")
            # one value has no deviation (window) and no difference (diff)
            windows = {"the window": cfg.window, "tune.space.window.low": min(lows, default=cfg.window)}
            if name == self.diagnose.memory_dataset:
                windows["diagnose.memory_windows"] = min(self.diagnose.memory_windows)
            for key, shortest in windows.items():
                if cfg.scaling != "global" and shortest < 2:
                    raise ValueError(f"{where}.scaling {cfg.scaling} needs windows of at least 2 values on dataset "
                                     f"{name!r} ({key} is {shortest})")
            season = self.datasets[name].season
            train_length = getattr(self.datasets[name], "n_train", getattr(self.datasets[name], "train_length", None))
            if train_length is not None and season >= train_length:
                raise ValueError(f"datasets.{name}.season ({season}) must be shorter than its train split "
                                 f"({train_length}): the backtest's MASE is scaled by the naive error within it")
            if "seasonal_naive" in kinds and name in self.run.train_datasets and season > cfg.window:
                raise ValueError(f"datasets.{name}.season ({season}) exceeds its window ({cfg.window}): the "
                                 f"seasonal-naive baseline reads the value a season back from its input window")

    def _windows_fit_the_data(self) -> None:
        """Every window framed on a dataset needs more train values than its length (a window plus
        its target). Validation and test windows reach back into the split before them, so on one
        long series (sine, csv) those splits need only one value; on random_freq, whose splits are
        separate series, every split needs more than the window. The rollouts and backtests skip a
        horizon the test split cannot hold (evaluate notes it).

        Which windows: the dataset's train window and a tuning trial's tune.space.window.high on
        every dataset, diagnose.memory_windows on diagnose.memory_dataset. diagnose.gradient_windows
        lengthen their sine, and a CSV's length is only known when data.generate reads it.
        """
        window_highs = [space.window.high for space in map(self.tune.space_for, self.architectures) if space.window]
        for name, ds in self.datasets.items():
            own = self.train_for(name).window
            source = f"datasets.{name}.train.window" if ds.train.window else "train.window"
            window, source = (own, source) if own >= max(window_highs, default=0) else (max(window_highs), "tune.space.window.high")
            if name == self.diagnose.memory_dataset and max(self.diagnose.memory_windows) > window:
                window, source = max(self.diagnose.memory_windows), "diagnose.memory_windows"
            lengths = {"sine": ("n_train",), "random_freq": ("train_length", "test_length")}
            for key in lengths.get(ds.source, ()):
                if getattr(ds, key) <= window:
                    raise ValueError(
                        f"datasets.{name}.{key} ({getattr(ds, key)}) must exceed the longest window "
                        f"({window}, {source}) framed on it"
                    )


_UNION_TAGS = {"sine", "random_freq", "csv", "rnn", "gru", "lstm", "transformer", *BASELINE_KINDS}


def _describe(error: dict, prefix: str = "") -> str:
    """One readable line for one pydantic error: the dotted key and what is allowed."""
    loc = list(error["loc"])
    # A discriminated union puts the tag in the path (datasets.clean.sine.period); the user wrote
    # datasets.clean.period, so drop it.
    if len(loc) > 2 and loc[0] in ("datasets", "architectures") and loc[2] in _UNION_TAGS:
        del loc[2]
    location = ".".join(str(part) for part in [*([prefix] if prefix else []), *loc])
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    return f"{location}: {message}" if location else message


def parse_params(raw: object, origin: str = "params.yaml") -> Params:
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        first = _describe(exc.errors()[0])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ParamsError(f"invalid {origin}: {first}{more}") from None


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path} not found: run from the project root or pass --params") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}".replace("\n", " ")) from None
    return parse_params(raw, origin=str(path))
