"""What data a run used: a DVC-tracked data file as an MLflow dataset (the runs table's Dataset column)."""

from __future__ import annotations

import json
from pathlib import Path

from sinernn.track.tracking import project_root


def mlflow_dataset(name: str, path: Path, manifest: dict):
    """A DVC-tracked data file as an MLflow dataset: the file (relative to the project) as source,
    its content sha256 as digest, cut to 16 hex digits (MLflow's column holds 36; the source has it whole)."""
    from mlflow.entities import Dataset

    path = Path(path).resolve()
    shown = path.relative_to(project_root()) if path.is_relative_to(project_root()) else path
    source = {"uri": str(shown), "tracked_by": "dvc", "sha256": manifest["sha256"]}
    profile = {f"{split}_shape": shape for split, shape in manifest.get("shapes", {}).items()}
    return Dataset(name, manifest["sha256"][:16], "local", json.dumps(source), profile=json.dumps(profile))
