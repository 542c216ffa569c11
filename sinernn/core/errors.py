"""Errors that speak to the user: the CLI prints their message on one line and exits non-zero."""

EXIT_UNEXPECTED = 70  # EX_SOFTWARE: any other exception (a bug), never a known outcome
EXIT_NO_SPACE = 74  # EX_IOERR: the disk (or a quota) is full; the outputs before it are unchanged


class SinernnError(Exception):
    """Base of every error whose message is meant for the person running the command."""

    exit_code = 2


class DataError(SinernnError):
    """A data file is missing, corrupt or unsuitable."""


class TrainingDiverged(SinernnError):
    """The loss or a gradient became NaN or infinite; no model is written."""

    exit_code = 3


class TrackingError(SinernnError):
    """The MLflow tracking store cannot be reached or written."""

    exit_code = 4


class TuneError(SinernnError):
    """A search cannot run or produced nothing usable."""
