"""The champion gate: score every candidate and the champion the same way, move @champion only if beaten.

Both are loaded from the registry and scored by one function (`score`) in original units on the same
targets of the newest test split; a non-finite score never wins; the alias moves in one call.
"""

from __future__ import annotations

import math

import numpy as np

from sinernn import serving
from sinernn.core.errors import DataError
from sinernn.core.faults import failpoint
from sinernn.track import registry


def score(step, window: int, dataset, metric: str, longest: int) -> float:
    """`metric` of a forecaster on the test split, in original units, for the targets that follow
    `longest` values of history (the same targets for every model scored with the same `longest`,
    whatever its window). On one long series the history is the values before the test split, so
    every test value is a target, as in `evaluation.evaluate`:

        history + test   ... x(s-W) ... x(s-1) | x(s) x(s+1) ...     (s: the first target)
        one step              [--- window ---]  ->  target
        rollout               [--- seed -----]  ->  c(s) ... c(s+H-1)   (c: clean signal)
    """
    from sinernn.core.evaluation import seeded_test
    from sinernn.core.framing import sliding_windows

    joined, first = seeded_test(dataset, longest)
    if metric in registry.ONE_STEP_METRICS:
        inputs, targets = sliding_windows(joined.observed[:, first - window :], window)
        predictions = np.concatenate([serving.forecast(step, inputs[i : i + 4096], 1)[:, 0]
                                      for i in range(0, len(inputs), 4096)])
        return registry.ONE_STEP_METRICS[metric](predictions - targets)
    horizon = int(metric.removeprefix("rollout_mse_"))
    if first + horizon > joined.observed.shape[1]:
        raise DataError(f"the test split has {dataset.splits['test'].observed.shape[1]} values: too short to "
                        f"score {metric}")
    rolled = serving.forecast(step, joined.observed[:, first - window : first], horizon)
    return float(np.mean((rolled - joined.clean[:, first : first + horizon]) ** 2))


def _finite(value) -> float | None:
    """JSON-safe: NaN and inf become None (and never win)."""
    return float(value) if value is not None and math.isfinite(value) else None


def register_and_decide(dataset_name: str, dataset, results: dict, summaries: dict, metric: str, margin: float) -> dict:
    """Register every candidate; move @champion to the best one only if it beats the current
    champion by `margin` on the same targets. Returns the record written to reports/registry/."""
    from sinernn.track.tracking import project_root

    with registry.exclusive_registry(project_root()):
        return _decide(registry.client(), dataset_name, dataset, results, summaries, metric, margin)


def _decide(mlflow_client, dataset_name: str, dataset, results: dict, summaries: dict, metric: str, margin: float) -> dict:
    versions = {arch: registry.register(mlflow_client, dataset_name, arch, summaries[arch], results[arch]) for arch in results}
    failpoint("registered")
    name = registry.model_name(dataset_name)
    champion = registry.current_champion(mlflow_client, dataset_name)
    loaded = {arch: registry.load(f"models:/{name}/{version.version}") for arch, version in versions.items()}
    if champion is not None and champion.version not in {v.version for v in versions.values()}:
        loaded[registry.CHAMPION] = registry.load(f"models:/{name}/{champion.version}")  # the version read above
    start = max(config["window"] for _, config in loaded.values())
    scores = {key: _finite(score(step, config["window"], dataset, metric, start)) for key, (step, config) in loaded.items()}

    ranked = sorted((s, arch) for arch, s in scores.items() if arch in versions and s is not None)
    record = {"dataset": dataset_name, "registered_model": name, "metric": metric, "margin": margin,
              "scored_from": start, "registered": {arch: int(v.version) for arch, v in versions.items()},
              "scores": {arch: scores[arch] for arch in versions}}
    if champion is not None:
        record["champion"] = {"version": int(champion.version), "architecture": champion.tags.get("architecture"),
                              "score": scores.get(registry.CHAMPION, scores.get(_arch_of(champion, versions)))}
    if not ranked:
        decision = "kept: no candidate has a finite score"
    else:
        best_score, best = ranked[0]
        record["challenger"] = {"version": int(versions[best].version), "architecture": best, "score": best_score}
        if champion is None:
            decision = "promoted: no champion yet"
        elif champion.version == versions[best].version:
            decision = "kept: the challenger is the champion already"
        elif record["champion"]["score"] is None:
            decision = "promoted: the champion's score is not finite on the newest data"
        elif best_score < record["champion"]["score"] * (1 - margin):
            decision = "promoted: better than the champion by more than the margin"
        else:
            decision = "kept: the challenger is not better by the margin"
    record["decision"] = decision
    record["promoted"] = decision.startswith("promoted")
    if record["promoted"]:
        # One call moves the alias: there is never a moment without a champion.
        mlflow_client.set_registered_model_alias(name, registry.CHAMPION, record["challenger"]["version"])
        failpoint("promoted")
    if "challenger" in record:
        version = str(record["challenger"]["version"])
        for key in ("decision", "metric"):
            mlflow_client.set_model_version_tag(name, version, f"champion_{key}", str(record[key]))
        mlflow_client.set_tag(summaries[record["challenger"]["architecture"]]["mlflow_run_id"], "champion_decision", decision)
    return record


def _arch_of(version, versions: dict) -> str | None:
    return next((arch for arch, v in versions.items() if v.version == version.version), None)
