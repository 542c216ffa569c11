"""What a stage graph costs on N cores: its critical path, its total work, and a list schedule.

Pure functions over `upstream` (stage -> the stages it reads from) and `seconds` (stage -> how
long it ran). The runner starts ready stages in the same order the simulation does, longest path
to the end first (Graham's list scheduling with critical-path priority), so the simulated wall
clock of N cores is what `sinernn repro -j N` aims at, less DVC's own work under its lock.

            a (10)           critical path: a -> c -> d = 10 + 30 + 5 = 45 s
           /      \\          total work:    10 + 20 + 30 + 5 = 65 s
     b (20)        c (30)    2 cores: a, b at 0; c at 10; d at 40 -> 45 s
           \\      /          1 core: 65 s
            d (5)
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Mapping


@dataclass(frozen=True)
class Plan:
    cores: int
    wall_seconds: float


def downstream_of(upstream: Mapping[str, set[str] | frozenset[str]]) -> dict[str, set[str]]:
    below: dict[str, set[str]] = {stage: set() for stage in upstream}
    for stage, sources in upstream.items():
        for source in sources:
            below.setdefault(source, set()).add(stage)
    return below


def topological(upstream: Mapping[str, set[str] | frozenset[str]]) -> list[str]:
    """Every stage after the stages it reads from; ties in name order, so the order is stable."""
    waiting = {stage: set(sources) & set(upstream) for stage, sources in upstream.items()}
    below = downstream_of(upstream)
    ready = sorted(stage for stage, sources in waiting.items() if not sources)
    order: list[str] = []
    while ready:
        stage = ready.pop(0)
        order.append(stage)
        for child in sorted(below.get(stage, ())):
            if child in waiting:
                waiting[child].discard(stage)
                if not waiting[child]:
                    ready.append(child)
        ready.sort()
    if len(order) != len(waiting):
        raise ValueError(f"the stage graph has a cycle through {sorted(set(waiting) - set(order))}")
    return order


def remaining_path(upstream: Mapping[str, set[str] | frozenset[str]], seconds: Mapping[str, float]) -> dict[str, float]:
    """stage -> its own time plus the longest chain of stages after it (its "bottom level")."""
    below = downstream_of(upstream)
    level: dict[str, float] = {}
    for stage in reversed(topological(upstream)):
        level[stage] = seconds.get(stage, 0.0) + max((level[child] for child in below[stage] if child in level),
                                                     default=0.0)
    return level


def critical_path(upstream: Mapping[str, set[str] | frozenset[str]], seconds: Mapping[str, float]) -> tuple[float, list[str]]:
    """The longest chain through the graph: its length in seconds and its stages, first to last."""
    level = remaining_path(upstream, seconds)
    if not level:
        return 0.0, []
    below = downstream_of(upstream)
    stage = max((s for s in level if not set(upstream[s]) & set(level)), key=lambda s: (level[s], s))
    path = [stage]
    while below[stage]:
        stage = max(below[stage], key=lambda s: (level[s], s))
        path.append(stage)
    return level[path[0]], path


def list_schedule(upstream: Mapping[str, set[str] | frozenset[str]], seconds: Mapping[str, float], cores: int) -> Plan:
    """The wall clock of the graph on `cores` cores, one stage per core, a free core always taking
    the ready stage with the longest remaining path (as the runner does)."""
    if cores < 1:
        raise ValueError("cores must be at least 1")
    level = remaining_path(upstream, seconds)
    waiting = {stage: set(upstream[stage]) & set(level) for stage in level}
    below = downstream_of(upstream)
    ready = [(-level[s], s) for s, sources in waiting.items() if not sources]
    heapq.heapify(ready)
    running: list[tuple[float, str]] = []  # (finish time, stage)
    now = 0.0
    while ready or running:
        while ready and len(running) < cores:
            _, stage = heapq.heappop(ready)
            heapq.heappush(running, (now + seconds.get(stage, 0.0), stage))
        now, done = heapq.heappop(running)
        for child in below[done]:
            waiting[child].discard(done)
            if not waiting[child]:
                heapq.heappush(ready, (-level[child], child))
    return Plan(cores, now)
