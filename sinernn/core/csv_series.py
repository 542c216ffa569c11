"""A user's CSV file as one series: its value column, its optional time column, its gaps.

Every problem is one line naming the file, the row and what was expected (exit 2).
"""

from __future__ import annotations

import csv
import math
from datetime import datetime
from pathlib import Path
from typing import TextIO

import numpy as np

from sinernn.core.config_data import CsvSource
from sinernn.core.errors import DataError


def read_csv_series(path: Path, cfg: CsvSource) -> tuple[np.ndarray, dict]:
    """Column `cfg.column` of a CSV file as floats, its empty cells filled as `cfg.missing` says.

    Also returns what was read, for the manifest: how many cells were filled and, with a
    `cfg.time_column`, its first and last stamp and its step. Every refusal names the file and row.
    """
    if not path.is_file():
        raise DataError(f"CSV file {path} not found (add it under data/external/ with `dvc add`)")
    with path.open(newline="") as handle:
        return read_csv_stream(handle, path, cfg)


def read_csv_stream(handle: TextIO, path: Path | str, cfg: CsvSource) -> tuple[np.ndarray, dict]:
    """read_csv_series of an open text stream (standard input); `path` names it in every error."""
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
