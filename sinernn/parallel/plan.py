"""`sinernn plan`: what the pipeline would take on more cores, from the last measured stage times.

Reads the graph from DVC and each stage's time from the runner's record (record.py), then prints
the critical path, the total work and the wall clock a list schedule gives on 1, 2, 4, 8 and 16
cores, beside the runs this machine measured. Each stage counts as using one core, which is what
`train.threads: 1` gives; DVC's own work under its lock is inside each stage's time.
"""

from __future__ import annotations

from pathlib import Path

from sinernn.parallel import graph, record
from sinernn.parallel.schedule import critical_path, list_schedule

CORES = (1, 2, 4, 8, 16)


def plan(root: Path, targets: list[str] | None = None, cores: tuple[int, ...] = CORES) -> dict:
    pipeline, names = graph.load(root, targets, status=False)
    scope = pipeline.closure(names) if names else set(pipeline.upstream)
    upstream = {stage: pipeline.upstream[stage] & scope for stage in scope}
    known = record.read(root)
    seconds = {stage: entry["seconds"] for stage, entry in known["stages"].items() if stage in scope}
    length, path = critical_path(upstream, seconds)
    total = sum(seconds.values())
    simulated = {n: round(list_schedule(upstream, seconds, n).wall_seconds, 1) for n in cores}
    return {
        "stages": len(scope),
        "unmeasured": sorted(scope - set(seconds)),
        "total_work_seconds": round(total, 1),
        "critical_path_seconds": round(length, 1),
        "critical_path": [{"stage": stage, "seconds": seconds.get(stage, 0.0)} for stage in path],
        "simulated_wall_seconds": simulated,
        "measured_runs": [run for run in known["runs"] if run.get("stages", {}).get("ran")],
        "speedup_bound": round(total / length, 2) if length else None,
    }


def describe(result: dict) -> str:
    bound = (f" (no number of cores beats it: at most {result['speedup_bound']}x faster than one core)"
             if result["speedup_bound"] else "")
    lines = [f"{result['stages']} stages; total work {result['total_work_seconds']:.1f} s; critical path "
             f"{result['critical_path_seconds']:.1f} s{bound}"]
    if result["unmeasured"]:
        lines.append(f"not measured yet (counted as 0 s; run them once with `sinernn repro`): "
                     f"{', '.join(result['unmeasured'])}")
    lines.append("critical path: " + " -> ".join(f"{s['stage']} ({s['seconds']:.1f} s)" for s in result["critical_path"]))
    lines.append("cores  simulated wall clock")
    one = result["simulated_wall_seconds"].get(1)
    for cores, wall in result["simulated_wall_seconds"].items():
        ratio = f"  ({one / wall:.2f}x one core)" if one and wall else ""
        lines.append(f"{cores:>5}  {wall:8.1f} s{ratio}")
    measured = result["measured_runs"][-5:]
    if measured:
        lines.append("measured here (last runs that ran stages): "
                     + "; ".join(f"-j {run['jobs']}: {run['wall_seconds']:.1f} s, {run['stages'].get('ran', 0)} ran"
                                 for run in measured))
    return "\n".join(lines)
