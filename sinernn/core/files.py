"""Atomic file writes: an output either appears complete or not at all.

Every writer goes through `atomic_path` (a file) or `staged_dir` (a folder): the content is
written to a temporary beside the target, flushed to disk, and renamed over it only when the write
succeeded, so a crash, a kill or a full disk never leaves a half-written output and never damages
the previous one. A folder is swapped with one atomic exchange (renameat2 RENAME_EXCHANGE), so a
kill at any moment leaves either the old folder or the new one. Where the file system cannot
exchange, the old folder is first renamed aside (`...-previous`), and a kill before the new one is
in place is undone by the next write of the same folder, which moves the old one back first.

Temporaries are named `.<target>.sinernn-<host>-<pid>-<random>` (host: a short hash of the
machine's name): .gitignore and .dvcignore skip them, and the next write of the same target
removes those whose process on this machine is gone (a SIGKILL's leftovers). A write that fails
because the disk is full raises OSError(ENOSPC) naming the output, whatever library wrote it.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import io
import json
import os
import re
import shutil
import socket
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from sinernn.core.errors import DataError
from sinernn.core.faults import failpoint

HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
LEFTOVER = re.compile(r"^\.(?P<target>.+)\.sinernn-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-(?P<tail>[^.]+)(\.tmp)?$")
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
NEARLY_FULL = 1 << 20  # bytes free under which a failed write is taken for a full disk


def _temporary_prefix(target: Path) -> str:
    return f".{target.name}.sinernn-{HOST}-{os.getpid()}-"


def remove_leftovers(target: Path) -> list[Path]:
    """Delete the temporaries of `target` left by processes of this machine that no longer exist;
    if `target` itself is missing because a folder swap was killed halfway, move it back first."""
    removed = []
    for path in sorted(target.parent.glob(f".{target.name}.sinernn-*")):
        match = LEFTOVER.match(path.name)
        if not match or match["target"] != target.name or match["host"] != HOST or _alive(int(match["pid"])):
            continue  # another output's, another machine's (a shared folder), or a live writer's
        if match["tail"] == "previous" and not target.exists():
            os.replace(path, target)  # the old folder, renamed aside by a swap that was killed
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


@contextmanager
def _full_disk_named(target: Path) -> Iterator[None]:
    """A write of `target` that fails on a full disk raises OSError(ENOSPC/EFBIG, ..., target)."""
    try:
        yield
    except Exception as exc:
        full = _no_space(exc, target)
        if full is None:
            raise
        raise full from exc


def _no_space(exc: BaseException, target: Path) -> OSError | None:
    """The error to raise for a write of `target` that failed on a full disk, else None. torch,
    zipfile and numpy report it in their own ways (torch.save: a RuntimeError whose context holds
    the OSError), so the chain is searched, and as a last resort a failure with almost no space
    left counts too. The project's own errors, and one already naming its file (an inner output),
    pass unchanged."""
    from sinernn.core.errors import SinernnError

    if isinstance(exc, (SinernnError, NoSpace)):
        return None
    cause = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno in NO_SPACE:
            return NoSpace(cause.errno, cause.strerror or os.strerror(cause.errno), str(target))
        cause = cause.__cause__ or cause.__context__
    try:
        stats = os.statvfs(target.parent)
    except OSError:
        return None
    if stats.f_bavail * stats.f_frsize < NEARLY_FULL:
        return NoSpace(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
    return None


class NoSpace(OSError):
    """A full disk (or quota), naming the output whose write it stopped."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync(path: Path) -> None:
    """Flush a file's or a folder's entries to disk (a rename is durable only once its folder is)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _public(path: Path, mode: int) -> None:
    """mkstemp/mkdtemp create private temporaries (0600/0700); outputs get the umask-based mode."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    fd, tmp_name = tempfile.mkstemp(prefix=_temporary_prefix(target), suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with _full_disk_named(target):
            yield tmp
            _public(tmp, 0o666)
            _fsync(tmp)
            failpoint("file-written")
            os.replace(tmp, target)
            _fsync(target.parent)
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


def write_csv(target: str | Path, rows: list[dict], header: list[str] | None = None) -> None:
    """Rows of equal keys as CSV with a header (the format `dvc plots` reads); `header` names the
    columns when there may be no row."""
    with atomic_path(target) as tmp:
        tmp.write_text(csv_text(rows, header))


def csv_text(rows: list[dict], header: list[str] | None = None) -> str:
    """write_csv's text, for an MLflow artifact (StageRun.log_text)."""
    import csv

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header or (list(rows[0]) if rows else []), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


@contextmanager
def staged_dir(target: str | Path) -> Iterator[Path]:
    """A folder filled in a staging copy beside `target`, swapped in whole only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    staging = Path(tempfile.mkdtemp(prefix=_temporary_prefix(target), dir=target.parent))
    aside = target.parent / f"{_temporary_prefix(target)}previous"
    try:
        with _full_disk_named(target):
            yield staging
            _public(staging, 0o777)
            for folder, _, names in os.walk(staging):
                for name in names:
                    _fsync(Path(folder) / name)
                _fsync(Path(folder))
            failpoint("folder-written")
            if target.exists() and _exchange(staging, target):
                failpoint("folder-swapped")  # target is new; staging holds the old folder, removed below
            else:
                if target.exists():  # no atomic exchange here: the old folder is renamed aside first
                    os.replace(target, aside)
                    failpoint("folder-swapped")  # no target now: the next write moves `aside` back
                os.replace(staging, target)
            _fsync(target.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not target.exists() and aside.exists():  # failed between the two renames: undo
            os.replace(aside, target)
        shutil.rmtree(aside, ignore_errors=True)


_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step; False where the system cannot (not Linux, old kernel,
    a file system without RENAME_EXCHANGE)."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_cwd = -100
    if renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def replace_dir(target: str | Path, files: dict[str, list[dict]]) -> None:
    """Write a folder of CSV files (name -> rows) that replaces `target` whole, only on success."""
    with staged_dir(target) as staging:
        for name, rows in files.items():
            write_csv(staging / name, rows)


def read_output(path: Path) -> dict:
    """A JSON output of an earlier stage; missing or corrupt: a DataError naming it."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path} not found: run `dvc repro` (stage train) first") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is corrupt ({exc})") from None
