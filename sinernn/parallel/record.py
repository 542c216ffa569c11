"""What the runner remembers between runs: each stage's last measured time, and the last runs.

.dvc/tmp/sinernn/runs.json (DVC's own scratch folder, never committed):

    {"stages": {"train@clean-rnn": {"seconds": 11.2, "jobs": 2, "finished": "2026-12-08T10:00:00"}, ...},
     "runs": [{"jobs": 2, "wall_seconds": 251.0, "stages": {"ran": 25, "unchanged": 5, ...}, ...}, ...]}

A stage's time is the wall clock of its `dvc repro --single-item` when it actually ran (DVC's
checks, its lock and the command), kept until it runs again; a stage DVC found unchanged keeps its
last real time. `sinernn plan` reads it; the runner orders ready stages by it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

RECORD = Path(".dvc/tmp/sinernn/runs.json")
LOGS = Path(".dvc/tmp/sinernn/logs")
LOCK = Path(".dvc/tmp/sinernn/runner.lock")  # held by the one `sinernn repro` that runs the project
KEEP_RUNS = 20


def read(root: Path) -> dict:
    try:
        record = json.loads((root / RECORD).read_text())
    except (OSError, ValueError):
        return {"stages": {}, "runs": []}
    return {"stages": record.get("stages", {}), "runs": record.get("runs", [])}


def stage_seconds(root: Path) -> dict[str, float]:
    return {stage: entry["seconds"] for stage, entry in read(root)["stages"].items()}


def save(root: Path, stage_times: dict[str, dict], run: dict) -> None:
    record = read(root)
    record["stages"].update(stage_times)
    record["runs"] = [*record["runs"], run][-KEEP_RUNS:]
    path = root / RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}")  # (not core.files: no failpoints here)
    scratch.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    os.replace(scratch, path)
