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

import csv
import hashlib
import json
import math
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from sinernn.config import CsvSource, DatasetConfig, RandomFreqSource, SineSource
from sinernn.errors import DataError
from sinernn.files import write_json, write_npz

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


# ---- sources --------------------------------------------------------------------------------


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


def read_csv_series(path: Path, cfg: CsvSource) -> tuple[np.ndarray, dict]:
    """Column `cfg.column` as floats, its empty cells filled as `cfg.missing` says.

    Also returns what was read, for the manifest: how many cells were filled and, with a
    `cfg.time_column`, its first and last stamp and its step. Every refusal names the file and row.
    """
    if not path.is_file():
        raise DataError(f"CSV file {path} not found (add it under data/external/ with `dvc add`)")
    with path.open(newline="") as handle:
        lines = list(csv.reader(handle))
    header = lines[0] if lines else []
    for column in filter(None, (cfg.column, cfg.time_column)):
        if column not in header:
            raise DataError(f"{path}: no column {column!r}; columns are {header}")
    while len(lines) > 1 and not lines[-1]:
        lines.pop()  # blank lines at the end of the file
    # A blank line inside the data is a row of empty cells (csv.DictReader would drop it, shifting
    # every later value one step earlier in time): in a one-column file, that is a gap.
    rows = [dict(zip(header, line)) for line in lines[1:]]
    values = np.array(
        [_csv_value(path, row_number, row, cfg) for row_number, row in enumerate(rows, start=2)],
        dtype=np.float64,
    )  # row 1 is the header; NaN marks an empty cell (a written 'nan' is refused by _csv_value)
    info = {
        "n_filled": int(np.isnan(values).sum()), "missing": cfg.missing, "time_column": cfg.time_column,
        "time_start": None, "time_end": None, "time_step": None,
    }
    if cfg.time_column:
        info |= _check_time(path, cfg.time_column, [(row.get(cfg.time_column) or "").strip() for row in rows])
    return _fill_gaps(path, cfg, values), info


def _csv_value(path: Path, row_number: int, row: dict, cfg: CsvSource) -> float:
    cell = (row.get(cfg.column) or "").strip()
    if not cell:
        if cfg.missing == "error":
            raise DataError(
                f"{path}, row {row_number}: missing value in column {cfg.column!r} "
                f"(a CSV dataset may set `missing: interpolate` or `missing: ffill` to fill it)"
            )
        return math.nan
    try:
        value = float(cell)
    except ValueError:
        raise DataError(
            f"{path}, row {row_number}: non-numeric value {cell!r} in column {cfg.column!r}"
        ) from None
    if not math.isfinite(value):
        raise DataError(f"{path}, row {row_number}: value {cell!r} is not finite")
    return value


def _parse_stamp(cell: str, like: float | datetime | None) -> float | datetime | None:
    """A number, else an ISO 8601 date/datetime, of the same kind as `like` (the first stamp); None
    if it is neither. Numbers and dates, or naive and zone-aware datetimes, have no common step."""
    try:
        number = float(cell)
        return number if math.isfinite(number) and not isinstance(like, datetime) else None
    except ValueError:
        pass
    try:  # a month alone (ISO 8601's reduced precision, 1958-03) is its first day
        stamp = datetime.fromisoformat(cell + "-01" if len(cell) == 7 and cell[4] == "-" else cell)
    except ValueError:
        return None
    if like is None or (isinstance(like, datetime) and (like.tzinfo is None) == (stamp.tzinfo is None)):
        return stamp
    return None


class Months(int):
    """A step of whole calendar months: monthly, quarterly or yearly dates are regular although
    the days between them differ (28 to 31, 365 or 366)."""

    def __str__(self) -> str:
        return f"{int(self)} month" + ("s" if self != 1 else "")


def _time_step(earlier, later, months: bool):
    """later - earlier: a number, a timedelta, or, in calendar mode, whole months (a stamp on
    another day of the month or at another time of day is then a step of no whole months)."""
    if not months:
        return later - earlier
    if (later.day, later.time()) != (earlier.day, earlier.time()):
        return later - earlier  # never equal to a Months step: reported as irregular
    return Months((later.year - earlier.year) * 12 + later.month - earlier.month)


def _check_time(path: Path, column: str, cells: list[str]) -> dict:
    """Refuse time stamps that are not strictly increasing at one regular step, at the first bad row.

    Returns the first and last stamp as written and the step (e.g. '1.0' or '7 days, 0:00:00').
    """
    stamps, step, months = [], None, False
    for row_number, cell in enumerate(cells, start=2):  # row 1 is the header
        where = f"{path}, row {row_number}"
        stamp = _parse_stamp(cell, like=stamps[0] if stamps else None)
        if stamp is None:
            what = f"unparseable time stamp {cell!r}" if cell else "missing time stamp"
            raise DataError(
                f"{where}: {what} in column {column!r} (expected a number or an ISO 8601 date, "
                f"the same kind as row 2; empty stamps are not filled)"
            )
        if len(stamps) == 1 and isinstance(stamp, datetime):
            # Calendar mode when the first two dates share the day of the month and the time.
            months = (stamp.day, stamp.time()) == (stamps[0].day, stamps[0].time()) and stamp > stamps[0]
        if stamps:
            got = _time_step(stamps[-1], stamp, months)
            step = got if step is None else step
            zero = got * 0  # 0.0, 0 months or timedelta(0)
            if got < zero:
                raise DataError(f"{where}: time stamp {cell!r} in column {column!r} is not increasing (unsorted)")
            if got == zero:
                raise DataError(f"{where}: duplicated time stamp {cell!r} in column {column!r}")
            # Datetime steps are exact; float stamps such as 0.1, 0.2, 0.3 differ by rounding.
            regular = math.isclose(got, step, rel_tol=1e-9) if isinstance(step, float) else got == step
            if not regular:
                raise DataError(f"{where}: irregular step (got {got}, expected {step}) in time column {column!r}")
        stamps.append(stamp)
    first, last = (cells[0], cells[-1]) if cells else (None, None)
    return {"time_start": first, "time_end": last, "time_step": None if step is None else str(step)}


def _fill_gaps(path: Path, cfg: CsvSource, values: np.ndarray) -> np.ndarray:
    """Fill the NaNs (empty cells) by position: the spacing is regular, so rows stand for time."""
    gaps = np.isnan(values)
    if not gaps.any():
        return values
    seen = np.flatnonzero(~gaps)  # indices of observed values
    if gaps[0]:
        raise DataError(
            f"{path}, row 2: missing value in column {cfg.column!r} at the start of the series: "
            f"missing: {cfg.missing} needs an earlier value (trim the leading empty rows)"
        )
    if cfg.missing == "interpolate":
        if gaps[-1]:
            first_row = seen[-1] + 1 + 2  # the index after the last observed value; data rows start at 2
            raise DataError(
                f"{path}, row {first_row}: missing value in column {cfg.column!r} at the end of the "
                f"series: missing: interpolate needs a later value (trim the trailing empty rows or use ffill)"
            )
        return np.interp(np.arange(len(values)), seen, values[seen])
    last_seen = np.maximum.accumulate(np.where(gaps, 0, np.arange(len(values))))
    return values[last_seen]  # ffill


def csv_source_path(name: str, cfg: CsvSource, project_root: Path) -> Path:
    """The CSV file of dataset `name`, refused unless it really lies under data/external/.

    The config already refuses a '..' in the path; a symlink (to the file or to a folder on the
    way) is only seen here, by resolving it. A symlink into the project's DVC cache is what
    `dvc config cache.type symlink` makes of a tracked file, so that is allowed too.
    """
    root = Path(project_root).resolve()
    path = root / cfg.path
    resolved = path.resolve()
    allowed = [(root / "data" / "external").resolve(), (root / ".dvc" / "cache").resolve()]
    if not any(resolved.is_relative_to(folder) for folder in allowed):
        raise DataError(
            f"datasets.{name}.path: {cfg.path} resolves to {resolved}, outside {allowed[0]}: "
            f"a CSV source must be a file under data/external/, not a link to elsewhere"
        )
    return resolved  # what was checked is what is read, even if the link changes meanwhile


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


# ---- storage --------------------------------------------------------------------------------


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
