"""The report's two memory-and-level cases, as facts and advice: the delay task (where gated cells
should matter) and the trend case (why a real series is harder than a sine). Like report_facts.py,
each function returns figures and the conditions its sentences need; nothing is fixed text.
"""

from __future__ import annotations

from sinernn.answer.report import _g


def best_limits(limits: list[dict]) -> dict[str, dict]:
    """Per cell, the clipping setting under which it learned the longest lag (rows of lag_limits)."""
    best: dict[str, dict] = {}
    for row in limits:
        kept = best.get(row["architecture"])
        if kept is None or (row["longest_learned"] or 0) > (kept["longest_learned"] or 0):
            best[row["architecture"]] = row
    return best


def delay_facts(summary: dict) -> dict:
    rows = summary.get("delay", [])
    columns = list(dict.fromkeys((r["architecture"], r["grad_clip"]) for r in rows))
    by_key = {(r["lag"], r["architecture"], r["grad_clip"]): r for r in rows}
    table = [{"lag": lag, "cells": [_cell(by_key.get((lag, *column))) for column in columns]}
             for lag in sorted({r["lag"] for r in rows})]
    clipped_differs = [f"{r['architecture']} at lag {r['lag']}" for r in rows if r["grad_clip"] == 0 and
                       _differs(r, by_key, [c for a, c in columns if a == r["architecture"] and c > 0])]
    # Clipping was compared only where a cell ran both unclipped and clipped at the same lag.
    compared = any(r["grad_clip"] == 0 and (r["lag"], r["architecture"], c) in by_key
                   for r in rows for a, c in columns if a == r["architecture"] and c > 0)
    return {"columns": [f"{a}, {'clip ' + format(c, 'g') if c else 'no clip'}" for a, c in columns], "rows": table,
            "settings": summary.get("delay_settings"), "clipping_compared": compared,
            "forget_bias": next((a for a, _ in columns if "forget bias" in a), None),
            "limits": summary.get("delay_limits", []), "clipping_changed": clipped_differs,
            "diverged": [f"{r['architecture']} at lag {r['lag']}" for r in rows if r["diverged"]]}


def _cell(row: dict | None) -> str:
    if row is None:  # not trained: it failed at a shorter lag
        return "-"
    if row["diverged"]:
        return "diverged"
    return f"{_g(row['test_mse'])}{' (learned)' if row['learned'] else ''}"


def _differs(unclipped: dict, by_key: dict, clips: list[float]) -> bool:
    """Did clipping change the outcome (learned or not, diverged or not) at this cell and lag?"""
    for clip in clips:
        clipped = by_key.get((unclipped["lag"], unclipped["architecture"], clip))
        if clipped and (clipped["learned"], clipped["diverged"]) != (unclipped["learned"], unclipped["diverged"]):
            return True
    return False


def trend_facts(summary: dict) -> dict:
    rows = summary.get("trend", [])
    if not rows:
        return {"rows": [], "pairs": [], "window_better": [], "persistence": None, "scalings": []}
    persistence = next((r for r in rows if r["architecture"] == "persistence"), None)
    by_cell: dict[str, dict[str, dict]] = {}
    for row in rows:
        if row["architecture"] != "persistence":
            by_cell.setdefault(row["architecture"], {})[row["scaling"]] = row
    pairs = [{"architecture": kind, "global": by_scaling["global"], "window": by_scaling["window"],
              "ratio": by_scaling["global"]["test_mse"] / max(by_scaling["window"]["test_mse"], 1e-30)}
             for kind, by_scaling in by_cell.items() if {"global", "window"} <= set(by_scaling)]
    beats = [p["architecture"] for p in pairs if persistence and p["window"]["test_mse"] < persistence["test_mse"]]
    loses_global = [p["architecture"] for p in pairs if persistence and p["global"]["test_mse"] > persistence["test_mse"]]
    return {"rows": rows, "pairs": pairs, "persistence": persistence, "trend": rows[0]["trend"],
            "outside": rows[0]["test_outside_train"], "train_range": rows[0]["train_range"],
            "scalings": list(dict.fromkeys(r["scaling"] for r in rows if r["architecture"] != "persistence")),
            "window_better": [p["architecture"] for p in pairs if p["ratio"] > 1],
            "window_beats_persistence": beats, "global_loses_to_persistence": loses_global}


def gated_advice(claim: dict, delay: dict) -> tuple[str | None, str | None]:
    """Recommend a gated cell for long memory only where the delay task showed it."""
    limits = best_limits(delay["limits"])
    if not limits:
        return None, None
    figures = ", ".join(f"{kind} {limit['longest_learned'] or 'none'}" for kind, limit in limits.items())
    if claim["verdict"] == "**confirmed**":
        return (f"Where the target depends on inputs far back, use a gated cell: on the delay task the longest lag "
                f"learned is {figures}."), None
    return None, f"a gated cell for long memory (the delay task's longest lags learned: {figures})"


def normalise_advice(trend: dict) -> tuple[str | None, str | None]:
    """Recommend window normalisation only where it beat global scaling for every cell measured."""
    if not trend["pairs"]:
        return None, None
    changes = ", ".join(f"{p['architecture']} {_g(p['global']['test_mse'])} -> {_g(p['window']['test_mse'])}"
                        for p in trend["pairs"])
    if len(trend["window_better"]) == len(trend["pairs"]):
        persistence = trend["persistence"]
        against = f" (persistence: {_g(persistence['test_mse'])})" if persistence else ""
        return (f"When the level drifts, normalise each window (`scaling: window`): on the sine plus a trend of "
                f"{_g(trend['trend'])} per sample the one-step test MSE goes {changes}{against}."), None
    return None, f"window normalisation for a trending series (global -> window: {changes})"
