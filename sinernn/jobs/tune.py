"""Job of the `tune` stage: one architecture's search, its best values written for `train`."""

from __future__ import annotations

from pathlib import Path

from sinernn.core.config import Params
from sinernn.core.files import write_json
from sinernn.tune.search import search
from sinernn.tune.space import tunable


def tune_job(
    params: Params, dataset_name: str, arch_name: str, data_path: Path, out_path: Path,
    workers: int | None = None, storage: str | None = None,
) -> dict:
    """Search one architecture's hyperparameters on one dataset; write the best values to out_path.

    Baselines (nothing to tune) and tune.enabled: false write {"arch": {}, "train": {}}, so the
    train stage always finds a file and uses params.yaml's values unchanged.
    """
    arch = params.architectures[arch_name]
    if not params.tune.enabled or not tunable(arch):
        # The baselines' note does not depend on tune.enabled, so toggling it leaves them alone.
        reason = f"{arch.kind}: nothing to tune" if not tunable(arch) else "tune.enabled is false"
        payload = {"arch": {}, "train": {}, "best_value": None, "note": reason, "dataset": dataset_name}
        write_json(out_path, payload)
        return payload

    return search(params, dataset_name, arch_name, data_path, storage, workers or params.tune.workers, out_path)
