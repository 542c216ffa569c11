"""Typed, validated view of `params.yaml`.

The YAML file is read once, at the boundary (a stage script or the CLI), and turned into these
models; everything below receives plain values from them. A bad value stops the run before any
work starts, with one line naming the key and what is allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from sinernn.core.config_claims import ClaimsConfig
from sinernn.core.config_data import (
    BASELINE_KINDS, NAME_PATTERN, ArchConfig, DatasetConfig, ParamsError, Strict, describe_error,
)
from sinernn.core.config_stages import (
    REGISTRY_METRIC, DiagnoseConfig, EvaluateConfig, MlflowConfig, RegistryConfig, RunConfig, TrainConfig, TuneConfig,
)


class Params(Strict):
    seed: Annotated[int, Field(ge=0)] = 0
    run: RunConfig
    datasets: dict[str, DatasetConfig] = Field(min_length=1)
    architectures: dict[str, ArchConfig] = Field(min_length=1)
    train: TrainConfig = TrainConfig()
    tune: TuneConfig = TuneConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    diagnose: DiagnoseConfig = DiagnoseConfig()
    claims: ClaimsConfig = ClaimsConfig()
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
        self._names_exist()
        self._registry_fits()
        self._diagnose_fits()
        self._claims_fit()
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

    def _names_exist(self) -> None:
        """Every name that run, tune and tune.arch_space use is defined."""
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
                raise ValueError(describe_error(exc.errors()[0], prefix=f"tune.arch_space.{name}")) from None

    def _registry_fits(self) -> None:
        """registry.metric is one the evaluation computes, on test splits long enough for it."""
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

    def _diagnose_fits(self) -> None:
        """The diagnose stage's datasets are generated and its architectures are networks."""
        d = self.diagnose
        for key in ("gradient_dataset", "stability_dataset", "extrapolation_dataset", "memory_dataset", "trend_dataset"):
            name = getattr(d, key)
            if name not in self.run.datasets:
                raise ValueError(f"diagnose.{key} is {name!r}, which run.datasets does not generate; generated: {self.run.datasets}")
        for key in ("gradient_dataset", "trend_dataset"):
            if self.datasets[getattr(d, key)].source != "sine":
                raise ValueError(f"diagnose.{key} must be a sine source (it is generated again with other settings)")
        for key in ("extrapolation_arch", "memory_arch"):
            name = getattr(d, key)
            if name not in self.architectures or self.architectures[name].kind in BASELINE_KINDS:
                raise ValueError(f"diagnose.{key} must name a neural architecture of `architectures` (got {name!r})")

    def _claims_fit(self) -> None:
        """The claims stage reads generated datasets and compares the architectures it names."""
        c = self.claims
        for key, names in (("linear_datasets", c.linear_datasets), ("sine_dataset", [c.sine_dataset]),
                           ("long_window_dataset", [c.long_window_dataset]), ("overfit_dataset", [c.overfit_dataset])):
            missing = [name for name in names if name not in self.run.datasets]
            if missing:
                raise ValueError(f"claims.{key}: {', '.join(missing)} not in run.datasets, which are generated: {self.run.datasets}")
        if self.datasets[c.sine_dataset].source != "sine":
            raise ValueError("claims.sine_dataset must be a sine source (it is generated again with other periods and amplitudes)")
        stacked, attention = self.architectures.get(c.stacked_arch), self.architectures.get(c.transformer_arch)
        if stacked is None or stacked.kind != "lstm" or stacked.num_layers < 2:
            raise ValueError(f"claims.stacked_arch must name an lstm of `architectures` with num_layers >= 2 (got {c.stacked_arch!r})")
        if attention is None or attention.kind != "transformer":
            raise ValueError(f"claims.transformer_arch must name a transformer of `architectures` (got {c.transformer_arch!r})")

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
            if cfg.rollout_steps > 1 and cfg.framing != "window":
                raise ValueError(f"rollout_steps {cfg.rollout_steps} on dataset {name!r} feeds predictions back into "
                                 f"input windows: it needs train.framing window (got {cfg.framing})")
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


def parse_params(raw: object, origin: str = "params.yaml") -> Params:
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        first = describe_error(exc.errors()[0])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ParamsError(f"invalid {origin}: {first}{more}") from None


def load_params(path: str | Path = "params.yaml", overrides: Sequence[str] = ()) -> Params:
    """The params file, with `KEY=VALUE` overrides (dotted keys, YAML values, as `dvc exp run -S`),
    validated as a whole."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path} not found: run from the project root or pass --params") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}".replace("\n", " ")) from None
    if isinstance(raw, dict):  # (a file that holds no mapping: parse_params says so)
        for override in overrides:
            _override(raw, override)
    shown = f"{path} with --set {' '.join(overrides)}" if overrides else str(path)
    return parse_params(raw, origin=shown)


def _override(raw: dict, override: str) -> None:
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise ParamsError(f"--set {override!r}: expected KEY=VALUE, e.g. --set tune.n_trials=10")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ParamsError(f"--set {override!r}: {text!r} is not a YAML value") from None
    *parents, last = key.strip().split(".")
    node = raw
    for name in parents:
        if not isinstance(node, dict) or not isinstance(node.get(name, {}), dict):
            raise ParamsError(f"--set {override!r}: {name} is not a section of the params")
        node = node.setdefault(name, {})
    node[last] = value
