"""params.yaml sections that describe the data and the models: `datasets` and `architectures`.

The shared base (`Strict`: unknown keys refused) and the limits every section uses live here too.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from sinernn.core.errors import SinernnError

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
            raise ParamsError(f"invalid override: {describe_error(exc.errors()[0], prefix=self.section)}") from None


PositiveInt = Annotated[int, Field(gt=0)]


PositiveFloat = Annotated[float, Field(gt=0)]


class DatasetTrain(Strict):
    """The `train.*` keys that depend on the data, set for one dataset (null: `train`'s value).

    Everything that trains on the dataset uses them: the train stage, the dataset's tune stages,
    and so evaluation and predict, which read the window from the model.
    """

    window: PositiveInt | None = None
    scaling: Literal["global", "window", "diff"] | None = None
    batch_size: PositiveInt | None = None
    max_epochs: PositiveInt | None = None
    rollout_steps: PositiveInt | None = None  # free-running steps in the loss (train.rollout_steps)


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

_UNION_TAGS = {"sine", "random_freq", "csv", "rnn", "gru", "lstm", "transformer", *BASELINE_KINDS}


def no_repeats(values: list) -> list:
    """A list of settings that names each once: a repeat would run the same measurement twice, and
    its rows would overwrite each other."""
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"lists each setting once; repeated: {', '.join(repeated)}")
    return values


def describe_error(error: dict, prefix: str = "") -> str:
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
