"""Datasets: synthetic sine series and user CSV series, split in time and scaled on train only.

Every dataset is stored the same way, as a set of series per split, each of shape (S, T):
S series of T samples. A single long series (clean, noisy, long_period, csv) has S = 1 and is cut
chronologically into train | val | test, so no future sample leaks into training:

    t = 0 ............................................................... N-1
        [------------ train ------------][---- val ----][------ test ------]

`random_freq` has many short independent series (S > 1), each its own draw of period and phase;
its splits are disjoint sets of series. Beside the observed values every split keeps the clean
signal (equal to the observations when there is no noise, or no known truth as for a CSV) and the
time of each sample, which the `time_to_value` framing uses as its input.
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sinernn.core.config_data import CsvSource, DatasetConfig, RandomFreqSource, SineSource
from sinernn.core.csv_series import csv_source_path, read_csv_series
from sinernn.core.errors import DataError
from sinernn.core.files import write_json, write_npz

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    observed: np.ndarray  # (S, T) what a model sees, in original units
    clean: np.ndarray  # (S, T) the noise-free signal where known, else the observations
    time: np.ndarray  # (S, T) sample index of each value


@dataclass(frozen=True)
class Dataset:
    name: str
    splits: dict[str, Split]
    scale_mean: float  # fitted on train observations only
    scale_std: float
    noise_std: float | None  # None where the noise level is unknown (CSV)
    source_info: dict = field(default_factory=dict)  # CSV: time stamps and filled cells (read_csv_series)

    def scale(self, values: np.ndarray) -> np.ndarray:
        return (values - self.scale_mean) / self.scale_std

    def unscale(self, values: np.ndarray) -> np.ndarray:
        return values * self.scale_std + self.scale_mean

    def contiguous(self) -> bool:
        """One series cut into consecutive splits (sine, csv), not separate series (random_freq)."""
        parts = [self.splits[split] for split in SPLITS]
        return all(p.observed.shape[0] == 1 for p in parts) and all(
            before.time[0, -1] < after.time[0, 0] for before, after in zip(parts, parts[1:]))

    def history(self, split: str, length: int) -> Split:
        """The last `length` values observed before `split` starts (fewer if there are fewer; none
        for train or separate series): the context a forecast at the split's start could read."""
        empty = self.splits[split].observed[:, :0]
        if split == SPLITS[0] or not self.contiguous() or length <= 0:
            return Split(empty, empty, empty)
        before = [self.splits[s] for s in SPLITS[: SPLITS.index(split)]]
        joined = {key: np.concatenate([getattr(p, key) for p in before], axis=1)[:, -length:]
                  for key in ("observed", "clean", "time")}
        return Split(**joined)

    def with_history(self, split: str, length: int) -> tuple[Split, int]:
        """The split preceded by up to `length` values of history, and how many were prepended."""
        history, part = self.history(split, length), self.splits[split]
        joined = Split(*(np.concatenate([getattr(history, key), getattr(part, key)], axis=1)
                         for key in ("observed", "clean", "time")))
        return joined, history.observed.shape[1]


def _sine_splits(cfg: SineSource, rng: np.random.Generator) -> dict[str, Split]:
    lengths = {"train": cfg.n_train, "val": cfg.n_val, "test": cfg.n_test}
    total = sum(lengths.values())
    n = cfg.snapshot  # snapshot n: the same process n lengths later, drifted n times
    time = np.arange(n * total, (n + 1) * total, dtype=np.float64)
    period = cfg.period * (1 + cfg.period_drift * n)
    clean = cfg.amplitude * np.sin(2 * math.pi * time / period + cfg.phase + cfg.phase_drift * n)
    if cfg.trend:  # (an `if`: a zero trend keeps the bytes, and so the hashes, of earlier data)
        clean = clean + cfg.trend * time
    noise_std = cfg.noise_std + cfg.noise_drift * n
    observed = clean + rng.normal(0.0, noise_std, size=clean.shape) if noise_std else clean
    splits, start = {}, 0
    for split in SPLITS:
        part = slice(start, start + lengths[split])
        splits[split] = Split(observed[None, part], clean[None, part], time[None, part])
        start += lengths[split]
    return splits


def _random_freq_splits(cfg: RandomFreqSource, rng: np.random.Generator) -> dict[str, Split]:
    shapes = {
        "train": (cfg.n_train_series, cfg.train_length),
        "val": (cfg.n_val_series, cfg.train_length),
        "test": (cfg.n_test_series, cfg.test_length),
    }
    splits = {}
    for split in SPLITS:
        n_series, length = shapes[split]
        period = rng.uniform(cfg.period_min, cfg.period_max, size=(n_series, 1))
        phase = rng.uniform(0.0, 2 * math.pi, size=(n_series, 1))
        time = np.broadcast_to(np.arange(length, dtype=np.float64), (n_series, length)).copy()
        clean = cfg.amplitude * np.sin(2 * math.pi * time / period + phase)
        noise = rng.normal(0.0, cfg.noise_std, size=clean.shape) if cfg.noise_std else 0.0
        splits[split] = Split(clean + noise, clean, time)
    return splits


def _csv_splits(name: str, cfg: CsvSource, project_root: Path, window: int) -> tuple[dict[str, Split], dict]:
    path = csv_source_path(name, cfg, project_root)
    values, info = read_csv_series(path, cfg)
    n_test = int(len(values) * cfg.test_fraction)
    n_val = int(len(values) * cfg.val_fraction)
    n_train = len(values) - n_val - n_test
    # Validation and test windows reach back into the split before them (Dataset.history): those
    # splits need one value each, the train split more than a window.
    if n_train <= window or min(n_val, n_test) < 1:
        raise DataError(
            f"{path} has {len(values)} values: too short for window {window} "
            f"(train/val/test would get {n_train}/{n_val}/{n_test}; train needs more than {window} "
            f"values, validation and test at least one)"
        )
    time = np.arange(len(values), dtype=np.float64)
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, None)}
    splits = {
        split: Split(values[None, lo:hi], values[None, lo:hi], time[None, lo:hi])
        for split, (lo, hi) in bounds.items()
    }
    return splits, info


def generate(
    name: str, cfg: DatasetConfig, seed: int, window: int, project_root: Path = Path(".")
) -> Dataset:
    """Build one dataset. The random stream depends on the seed and the dataset's name only."""
    snapshot = getattr(cfg, "snapshot", 0)
    # Snapshot 0 keeps the original stream (and so the data hashes of earlier runs).
    rng = np.random.default_rng([seed, zlib.crc32(name.encode()), *([snapshot] if snapshot else [])])
    source_info = {}  # what the CSV reader did (stamps, filled cells); nothing for a generated series
    if isinstance(cfg, SineSource):
        splits = _sine_splits(cfg, rng)
    elif isinstance(cfg, RandomFreqSource):
        splits = _random_freq_splits(cfg, rng)
    else:
        splits, source_info = _csv_splits(name, cfg, project_root, window)
    train = splits["train"].observed
    std = float(train.std())
    if std == 0.0:
        raise DataError(f"dataset {name!r}: the train split is constant, so it cannot be scaled")
    noise_std = None if isinstance(cfg, CsvSource) else cfg.noise_std + getattr(cfg, "noise_drift", 0.0) * snapshot
    return Dataset(name, splits, float(train.mean()), std, noise_std, source_info=source_info)


def check_window(dataset: Dataset, window: int, key: str) -> None:
    """The train split must hold more than `window` values (a window plus the value it predicts),
    and so must every split of separate series; on one long series the validation and test
    windows reach back into the split before them."""
    for split, part in dataset.splits.items():
        length = part.observed.shape[1]
        if length <= window and (split == "train" or not dataset.contiguous()):
            raise DataError(
                f"{key}: window {window} needs more than {window} values per split, but dataset "
                f"{dataset.name!r} has {length} in its {split} split"
            )


def _arrays(dataset: Dataset) -> dict[str, np.ndarray]:
    arrays = {"scale": np.array([dataset.scale_mean, dataset.scale_std])}
    for split, part in dataset.splits.items():
        arrays[f"{split}_observed"] = part.observed
        arrays[f"{split}_clean"] = part.clean
        arrays[f"{split}_time"] = part.time
    return arrays


def content_hash(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(arrays[name], dtype=np.float64).tobytes())
    return digest.hexdigest()


def save(dataset: Dataset, cfg: DatasetConfig, seed: int, npz_path: Path, manifest_path: Path) -> dict:
    """Write the arrays and a JSON manifest (source, shapes, content hash); returns the manifest."""
    arrays = _arrays(dataset)
    manifest = {
        "name": dataset.name,
        "source": cfg.model_dump(),
        "seed": seed,
        "shapes": {split: list(part.observed.shape) for split, part in dataset.splits.items()},
        "scale": {"mean": dataset.scale_mean, "std": dataset.scale_std},
        "noise_std": dataset.noise_std,
        "sha256": content_hash(arrays),
    }
    if dataset.source_info:  # CSV only, so sine manifests keep their bytes
        manifest["csv"] = dataset.source_info
    write_npz(npz_path, arrays)
    write_json(manifest_path, manifest)
    return manifest


def load(npz_path: Path) -> tuple[Dataset, dict]:
    """Read a dataset and its manifest; a missing or damaged file is a DataError."""
    npz_path = Path(npz_path)
    manifest_path = npz_path.with_suffix(".json")
    for path in (npz_path, manifest_path):
        if not path.is_file():
            raise DataError(f"data file {path} not found: run `dvc repro` (stage generate) first")
    try:
        manifest = json.loads(manifest_path.read_text())
        with np.load(npz_path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise DataError(f"data file {npz_path} is corrupt ({exc}): regenerate it with `dvc repro`") from None
    if content_hash(arrays) != manifest.get("sha256"):
        raise DataError(f"data file {npz_path} does not match its manifest hash: regenerate it")
    splits = {
        split: Split(arrays[f"{split}_observed"], arrays[f"{split}_clean"], arrays[f"{split}_time"])
        for split in SPLITS
    }
    mean, std = arrays["scale"]
    dataset = Dataset(manifest["name"], splits, float(mean), float(std), manifest["noise_std"])
    return dataset, manifest
