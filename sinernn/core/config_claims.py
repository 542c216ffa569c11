"""params.yaml section `claims`: the measurements behind each claim of the published answer
(stage `claims`, sinernn/answer/claims*.py). The delay task's own settings (lags, learning rate,
epochs, samples, hidden size) come from `diagnose`, so the cells compared here and there ran the
same task under the same budget."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator

from sinernn.core.config_data import PositiveFloat, PositiveInt, Strict, no_repeats

Cell = Literal["rnn", "gru", "lstm"]


class ClaimsConfig(Strict):
    # 1. Memory of a sine: the best linear predictor from the last k values.
    linear_lags: list[PositiveInt] = Field(default=[1, 2, 3, 8, 32], min_length=2)
    linear_datasets: list[str] = Field(default=["clean", "noisy"], min_length=1)
    # 2. Derivatives: A sin(2 pi t / P) for every amplitude A and period P, inputs scaled and raw.
    derivative_amplitudes: list[PositiveFloat] = Field(default=[1.0, 10.0, 100.0], min_length=2)
    derivative_periods: list[Annotated[float, Field(gt=2)]] = Field(default=[37.7, 8.0], min_length=1)
    derivative_epochs: PositiveInt = 10
    # 3. Window / period: sines of these periods, read through windows of train.window values.
    ratio_periods: list[Annotated[float, Field(gt=2)]] = Field(default=[16.0, 32.0, 64.0, 128.0, 320.0], min_length=2)
    ratio_architectures: list[Cell] = Field(default=["rnn", "gru", "lstm"], min_length=1)
    ratio_epochs: PositiveInt = 20
    horizon: PositiveInt = 100  # free-running steps of every rollout scored here
    # 4, 7, 8. More capacity, another activation, attention: the delay task at diagnose.delay_lags
    # (clipping off), beside the diagnose stage's own rnn, gru and lstm, and on a sine.
    stacked_arch: str = "deep_lstm"  # an lstm of `architectures` with more than one layer
    wide_hidden: PositiveInt = 64  # the one-layer lstm made wider (diagnose.cell_hidden is the base)
    transformer_arch: str = "transformer"
    sine_dataset: str = "clean"  # capacity and activation, one step and rollout, same budget
    sine_epochs: PositiveInt = 30
    activation_window: PositiveInt = 128  # gradient versus lag, tanh against relu
    activation_lrs: list[PositiveFloat] = Field(default=[0.001, 0.01, 0.1], min_length=1)
    long_window_dataset: str = "noisy"  # 8: the transformer where a long window could average noise
    long_window: PositiveInt = 128
    long_window_epochs: PositiveInt = 20
    # 6. Overfitting: one architecture at several hidden sizes on a noisy series, the pipeline's loop.
    overfit_dataset: str = "noisy"
    overfit_arch: Cell = "lstm"
    overfit_hidden: list[PositiveInt] = Field(default=[8, 32, 128], min_length=2)
    overfit_epochs: PositiveInt = 60

    section: ClassVar[str] = "claims"

    @field_validator("linear_lags", "linear_datasets", "derivative_amplitudes", "derivative_periods",
                     "ratio_periods", "ratio_architectures", "activation_lrs", "overfit_hidden")
    @classmethod
    def _no_repeats(cls, values: list) -> list:
        return no_repeats(values)
