"""What the runner reads in a stage's log (.dvc/tmp/sinernn/logs/<stage>.log): the stage's own
last line, without DVC's lines and the libraries' log records around it, and the end of the log."""

from __future__ import annotations

import re
from pathlib import Path

# What DVC and the libraries' loggers print around a stage's own output
NOT_THE_STAGE = re.compile(r"^(Running stage|> |Updating lock file|Generating lock file|Use `dvc push`|To track the "
                           r"changes|\s*git add|To enable auto staging|Verifying data sources|Stage '.*' (didn't change|"
                           r"is cached)|ERROR: failed to reproduce|\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (INFO|WARNING) )")


def summary(text: str, failed: bool = False) -> str:
    """The stage's own last line (a failing stage's error), without DVC's lines around it."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not NOT_THE_STAGE.match(line)]
    if failed:
        lines = [line for line in lines if "error" in line.lower()] or lines or [
            line.strip() for line in text.splitlines() if line.startswith("ERROR")]
    return lines[-1][:160] if lines else ""


def tail(log: Path, lines: int = 15) -> str:
    text = log.read_text(errors="replace").rstrip().splitlines()[-lines:]
    return "\n".join(f"    | {line}" for line in text) + f"\n    (whole log: {log})"
