"""Atomic file writes: an output either appears complete or not at all.

Every writer goes through `atomic_path`: the content is written to a temporary file beside the
target and renamed over it only when the write succeeded, so a crash or an error never leaves a
half-written output and never damages the previous one.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates the file private (0600); outputs get the usual umask-based mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(target: str | Path, payload: object) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n")


def write_text(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_npz(target: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Like np.savez, but byte-for-byte reproducible: fixed member order and timestamps.

    np.savez stamps each member with the current time, so identical data would get a new DVC
    hash on every run and needlessly re-run every downstream stage.
    """
    with atomic_path(target) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            member = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            member.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(member, buffer.getvalue())


def write_csv(target: str | Path, rows: list[dict]) -> None:
    """Rows of equal keys as CSV with a header (the format `dvc plots` reads)."""
    import csv

    with atomic_path(target) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)


@contextmanager
def staged_dir(target: str | Path) -> Iterator[Path]:
    """A folder filled in a staging copy beside `target`, swapped in whole only on success."""
    import shutil

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield staging
        staging.chmod(0o755)  # mkdtemp makes it private
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def replace_dir(target: str | Path, files: dict[str, list[dict]]) -> None:
    """Write a folder of CSV files (name -> rows) that replaces `target` whole, only on success."""
    with staged_dir(target) as staging:
        for name, rows in files.items():
            write_csv(staging / name, rows)
