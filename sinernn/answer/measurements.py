"""Every measurement of the research answer, each a DVC stage of its own (one per item of a list).

The `diagnose` and `claims` stages only gather these parts into their summaries, figures and
MLflow runs, so the measurements run at once under `sinernn repro -j N`, and a change of one
setting re-runs the measurement it shapes, not the others:

    stage diagnose_delay@gru   sinernn measure delay --item gru   reports/measurements/diagnose/delay-gru.json
    stage diagnose             sinernn diagnose --all            reports/diagnosis/, reports/figures/

A part is `function(params, inputs, item)` in the answer module named here. Only its own stage
imports that module (by name, below), so each stage's code deps in dvc.yaml are its module's, and
tests/test_stage_deps.py follows the same table.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sinernn.core.config import Params
from sinernn.core.data import Dataset, load

DIAGNOSE, CLAIMS = "diagnose", "claims"
EXAMPLES = ["1", "2", "3"]  # the published examples (published.EXAMPLES), one stage each
DELAY_VARIANTS = ["stacked", "wide", "relu", "transformer"]  # claims_memory.variants, by role


@dataclass(frozen=True)
class Inputs:
    """What a measurement reads besides params.yaml: the generated datasets, the searches' results."""

    data_dir: Path
    tuned_dir: Path

    def dataset(self, name: str) -> Dataset:
        return load(self.data_dir / f"{name}.npz")[0]


@dataclass(frozen=True)
class Part:
    family: str  # the summary it joins: diagnose or claims
    module: str  # where it is measured
    function: str  # function(params, inputs, item) -> JSON-ready value
    items: Callable[[Params], list[str]] | None = None  # one stage per item (a dvc.yaml matrix)


PARTS: dict[str, Part] = {
    # diagnose: the published examples, and the measurements behind the report's findings
    "published": Part(DIAGNOSE, "sinernn.answer.experiments", "published_part", lambda p: EXAMPLES),
    "framing_only": Part(DIAGNOSE, "sinernn.answer.experiments", "framing_only_part", lambda p: EXAMPLES),
    "corrected": Part(DIAGNOSE, "sinernn.answer.experiments", "corrected_part"),
    "gradients": Part(DIAGNOSE, "sinernn.answer.experiments", "gradients_part"),
    "stability": Part(DIAGNOSE, "sinernn.answer.experiments", "stability_part"),
    "extrapolation": Part(DIAGNOSE, "sinernn.answer.experiments", "extrapolation_part"),
    "memory": Part(DIAGNOSE, "sinernn.answer.experiments", "memory_part"),
    "delay": Part(DIAGNOSE, "sinernn.answer.delay", "delay_part", lambda p: list(p.diagnose.delay_architectures)),
    "delay_forget_bias": Part(DIAGNOSE, "sinernn.answer.delay", "delay_forget_bias_part"),
    "trend": Part(DIAGNOSE, "sinernn.answer.trend", "trend_part"),
    # claims: one measurement for each claim the diagnosis does not settle
    "linear_memory": Part(CLAIMS, "sinernn.answer.claims", "linear_memory_part"),
    "tuning": Part(CLAIMS, "sinernn.answer.claims", "tuning_part"),
    "derivatives": Part(CLAIMS, "sinernn.answer.claims", "derivatives_part"),
    "window_ratio": Part(CLAIMS, "sinernn.answer.claims", "window_ratio_part"),
    "overfitting": Part(CLAIMS, "sinernn.answer.claims", "overfitting_part"),
    "delay_variants": Part(CLAIMS, "sinernn.answer.claims_memory", "delay_variants_part", lambda p: DELAY_VARIANTS),
    "on_sine": Part(CLAIMS, "sinernn.answer.claims_memory", "on_sine_part"),
    "activation": Part(CLAIMS, "sinernn.answer.claims_memory", "activation_part"),
    "long_window": Part(CLAIMS, "sinernn.answer.claims_memory", "long_window_part"),
}


def file_name(name: str, item: str | None) -> str:
    """A part's file in its family's folder: delay-gru.json, corrected.json."""
    return f"{name}-{item}.json" if item is not None else f"{name}.json"


def expected(params: Params, family: str) -> list[tuple[str, str | None]]:
    """Every (part, item) of a family that the current params ask for, in the table's order."""
    return [(name, item) for name, part in PARTS.items() if part.family == family
            for item in (part.items(params) if part.items else [None])]


def measure(params: Params, name: str, item: str | None, inputs: Inputs):
    """Run one part: the value its stage writes."""
    part = PARTS[name]
    function = getattr(importlib.import_module(part.module), part.function)
    return function(params, inputs, item)


def gather(params: Params, family: str, folder: Path) -> dict:
    """The family's parts that the current params ask for, read from `folder`: name -> value, or
    name -> {item: value} for a part run once per item. A missing part is named with its stage."""
    from sinernn.core.errors import DataError
    from sinernn.core.files import read_output

    found: dict = {}
    missing = []
    for name, item in expected(params, family):
        path = folder / file_name(name, item)
        if not path.exists():
            missing.append(f"{path} (stage {family}_{name}{'@' + item if item else ''})")
            continue
        stored = read_output(path)
        if (stored.get("part"), stored.get("item")) != (name, item):
            raise DataError(f"{path} holds part {stored.get('part')!r} item {stored.get('item')!r}, not {name} {item}")
        if item is None:
            found[name] = stored["value"]
        else:
            found.setdefault(name, {})[item] = stored["value"]
    if missing:
        raise DataError(f"measurements missing: {'; '.join(missing)}: run `sinernn repro {family}`")
    return found
