"""The facts and the advice of REPORT.md, computed from the measurements (report.py's verdicts
beside them): each returns the figures a section shows and the conditions its sentences need.
A recommendation is written only when a measurement of the report supports it, with that figure.
"""

from __future__ import annotations

from sinernn.answer.report import GRADIENT_CLAIM, VANISHED, ReportNames, _broadcast, _g, _learned, _linear_on_reference, _outcome
from sinernn.answer.report_cases import delay_facts, gated_advice, normalise_advice, trend_facts


def facts(summary: dict, metrics: dict, names: ReportNames, verdicts: list[dict]) -> dict:
    framing = _framing_rows(summary)
    stability = _stability(summary["stability"])
    delay, trend = delay_facts(summary), trend_facts(summary)
    return {
        "short": _short(summary, verdicts), "pipeline": _pipeline(metrics, names),
        "published": [{**p, "outcome_text": _outcome_text(p)} for p in summary["published"]],
        "framing": framing, "framed": _who_learns(framing, "framed_learned"),
        "pipeline_loop": _who_learns(framing, "loop_learned"), "vanished_threshold": VANISHED,
        # the full-batch epochs the examples ran (a crashed example ran none)
        "epochs": max([p["epochs_run"] for p in summary["published"]] + [f["epochs"] for f in summary["framing_only"]]),
        "framed_better": [str(r["example"]) for r in framing if r["framed_mse"] < r["loop_mse"]],
        "gradients": _gradients(summary["gradients"]), "linear_on_reference": _linear_on_reference(metrics, names),
        "memory": _memory(summary["memory"]), "hard": _hard(metrics, names),
        "extrapolation": _extrapolation(summary["extrapolation"]), "stability": stability,
        "delay": delay, "trend": trend, "gaps": _gaps(metrics),
        **_advice(summary, metrics, names, verdicts, stability, delay, trend),
    }


def _gaps(metrics: dict) -> list[dict]:
    """Every trained model's one-step MSE on the three splits (the evaluate stage scores all three)."""
    return [{"dataset": dataset, "architecture": arch, "train": m["train_mse"], "val": m.get("val_mse"),
             "test": m["test_mse"], "ratio": m["test_mse"] / m["train_mse"] if m["train_mse"] and m["test_mse"] is not None else None}
            for dataset, models in metrics.items() for arch, m in models.items() if m.get("train_mse") is not None]


def _framing_rows(summary: dict) -> list[dict]:
    """Each example's layers framed as windows: with only the framing changed, and with the pipeline's loop."""
    framed = {f["example"]: f for f in summary["framing_only"]}
    return [{"example": c["example"], "architecture": c["architecture"], "lr": c["lr"], "window": c["window"],
             "framed_mse": framed[c["example"]]["test_mse"], "framed_learned": _learned(framed[c["example"]]),
             "loop_epochs": c["epochs"], "loop_mse": c["test_mse"], "loop_learned": _learned(c),
             "target_variance": c["target_variance"],
             "diagnosis": "; ".join(f["check"] for f in c["findings"]) or "no problem found"}
            for c in summary["corrected"]]


def _who_learns(rows: list[dict], key: str) -> dict:
    learners = [str(r["example"]) for r in rows if r[key]]
    return {"all": len(learners) == len(rows), "learners": learners,
            "failures": [str(r["example"]) for r in rows if not r[key]]}


def _outcome_text(example: dict) -> str:
    if example["exception"]:
        return f"crashed: `{example['exception']}`"
    return f"trained {example['epochs_run']} epochs, loss {_g(example['first_loss'])} -> {_g(example['final_loss'])}"


def _short(summary: dict, verdicts: list[dict]) -> dict:
    """What became of each published example, grouped, and what the same layers reach framed as windows."""
    by_outcome: dict[str, list[dict]] = {}
    for example in summary["published"]:
        by_outcome.setdefault(_outcome(example), []).append(example)
    parts = []
    for outcome, examples in by_outcome.items():
        numbers = " and ".join(str(e["example"]) for e in examples)
        one = len(examples) == 1
        who = f"example {numbers}" if one else f"examples {numbers}"
        losses = " and ".join(_g(e["final_loss"]) for e in examples)
        if outcome == "constant":
            broadcast = all(_broadcast(e) for e in examples)
            what = (f"predict{'s' if one else ''} one number for all {examples[0]['target_shape'][0]} targets, so "
                    f"{'it learns' if one else 'they learn'} the mean" if broadcast
                    else f"settle{'s' if one else ''} at a constant prediction")
            parts.append(f"{who} {what} (final loss {losses}, target variance {_g(examples[0]['target_variance'])})")
        elif outcome == "crashed":
            parts.append(f"{who} crash{'es' if one else ''}")
        elif outcome == "learned":
            parts.append(f"{who} learn{'s' if one else ''} (final loss {losses})")
        else:
            parts.append(f"{who} end{'s' if one else ''} at loss {losses}, short of learning")
    # The framing is the cause when every published example failed, example 1's failure is refuted
    # as a gradient problem, and every example learns with only the framing changed.
    cause = (verdicts[0]["verdict"] == "**refuted**" and "learned" not in by_outcome
             and all(_learned(f) for f in summary["framing_only"]))
    return {"framing_is_the_cause": cause, "failures": "; ".join(parts),
            "framed": ", ".join(f"{_g(f['test_mse'])} (example {f['example']})" for f in summary["framing_only"]),
            "loop": ", ".join(f"{_g(c['test_mse'])} (example {c['example']})" for c in summary["corrected"])}


def _pipeline(metrics: dict, names: ReportNames) -> str:
    on_reference = metrics.get(names.reference or "", {})
    return "; ".join(f"{a} one-step test MSE {_g(on_reference[a]['test_mse'])}, 1000-step free-running rollout MSE "
                     f"{_g(on_reference[a].get('rollout_mse_1000'))}" for a in names.recurrent if a in on_reference)


def _gradients(gradients: list[dict]) -> dict:
    rows = [{"architecture": g["architecture"], "window": g["window"],
             "moment": "initialisation" if when == "init" else f"after {g['epochs']} epochs",
             "r8": g[f"{when}_summary"].get("ratio_8_to_1"), "r32": g[f"{when}_summary"].get("ratio_32_to_1"),
             "rW": g[f"{when}_summary"]["ratio_W_to_1"]} for g in gradients for when in ("init", "trained")]
    windows = sorted({g["window"] for g in gradients})
    at_longest = {g["architecture"]: g["init_summary"]["ratio_W_to_1"] for g in gradients if g["window"] == windows[-1]}
    return {"rows": rows, "windows": windows, "longest": windows[-1],
            "ratios": ", ".join(f"{_g(r)} ({a})" for a, r in at_longest.items()),
            "smallest": min(at_longest, key=at_longest.get),
            "vanished": [a for a, r in at_longest.items() if r < VANISHED],
            "kept": [a for a, r in at_longest.items() if r >= VANISHED]}


def _memory(memory: list[dict]) -> dict:
    first, last = (memory[0], memory[-1]) if len(memory) > 1 else (None, None)
    return {"rows": memory, "noise_variance": memory[0]["noise_variance"], "first": first, "last": last,
            "falls": bool(first) and last["test_mse"] < first["test_mse"]}


def _hard(metrics: dict, names: ReportNames) -> dict:
    present = [d for d in names.others if d in metrics]
    columns = sorted(metrics[present[0]]) if present else []
    rows = [{"dataset": d, "cells": [f"{_g(metrics[d][a]['test_mse'])} / {_g(metrics[d][a].get('rollout_mse_1000'))}"
                                     if a in metrics[d] else "–" for a in columns]} for d in present]
    return {"columns": columns, "rows": rows}


def _extrapolation(extrapolation: list[dict]) -> dict:
    by_framing = {e["framing"]: e for e in extrapolation}
    ratio = None
    if {"time_to_value", "window"} <= set(by_framing):
        ratio = by_framing["time_to_value"]["test_mse"] / max(by_framing["window"]["test_mse"], 1e-30)
    return {"rows": extrapolation, "ratio": ratio}


def _stability(rows: list[dict]) -> dict:
    """Counts, and what clipping did: each clipped run beside the unclipped run at its learning rate."""
    unclipped = {s["lr"]: s for s in rows if s["grad_clip"] == 0}
    clipped = [s for s in rows if s["grad_clip"] > 0]
    effects, prevented, lowered, raised = [], [], [], []
    for on in clipped:
        off = unclipped.get(on["lr"])
        if off is None:
            continue
        at = f"at lr {on['lr']}" + (f", clip {on['grad_clip']}" if len({s['grad_clip'] for s in clipped}) > 1 else "")
        if off["diverged"] and not on["diverged"]:
            prevented.append(on["lr"])
            effects.append(f"{at} it kept the run from diverging (final val loss {_g(on['final_val_loss'])})")
        elif on["diverged"] and not off["diverged"]:
            effects.append(f"{at} the clipped run diverged and the unclipped one did not")
        elif on["diverged"]:
            effects.append(f"{at} both diverged")
        else:
            (lowered if on["final_val_loss"] < off["final_val_loss"] else raised).append(on["lr"])
            effects.append(f"{at} final val loss {_g(off['final_val_loss'])} -> {_g(on['final_val_loss'])}")
    return {"rows": rows, "unclipped": len(unclipped), "clipped": len(clipped), "effects": effects,
            "unclipped_diverged": sum(s["diverged"] for s in unclipped.values()),
            "clipped_diverged": sum(s["diverged"] for s in clipped),
            "prevented": prevented, "lowered": lowered, "raised": raised, "by_lr": unclipped}


def _advice(summary: dict, metrics: dict, names: ReportNames, verdicts: list[dict], stability: dict,
            delay: dict, trend: dict) -> dict:
    """One rule per recommendation: (the advice with its figure, or why these measurements do not give it)."""
    rules = [_framing(summary, verdicts), _baselines(metrics, names), _rollouts(metrics, names),
             normalise_advice(trend), _windows(summary["memory"], names), gated_advice(_gradient_row(verdicts), delay),
             _clipping(stability), _learning_rate(stability)]
    return {"advice": [given for given, _ in rules if given],
            "unsupported": [withheld for _, withheld in rules if withheld]}


def _gradient_row(verdicts: list[dict]) -> dict:
    """The vanishing-gradient claim's row: the advice on gated cells follows its verdict alone
    (not the last row's: the claims stage's rows come after it)."""
    return next(row for row in verdicts if row["claim"] == GRADIENT_CLAIM)


def _framing(summary: dict, verdicts: list[dict]) -> tuple[str | None, str | None]:
    one, fixed = summary["published"][0], summary["framing_only"][0]
    if verdicts[0]["verdict"] != "**refuted**":
        return None, "reframing the data (the framing did not explain example 1's failure here)"
    return (f"Frame the series as (window of past values -> next value) pairs, and check that the prediction has the "
            f"target's shape (`sinernn diagnose` does): example 1 ends at loss {_g(one['final_loss'])} as published (the "
            f"target's variance is {_g(one['target_variance'])}); with only the framing changed, the same layers reach test MSE "
            f"{_g(fixed['test_mse'])}."), None


def _baselines(metrics: dict, names: ReportNames) -> tuple[str | None, str | None]:
    linear = _linear_on_reference(metrics, names)
    networks = {a: m["test_mse"] for a, m in metrics.get(names.reference or "", {}).items() if a in names.recurrent}
    if linear is None or not networks:
        return None, None
    best = min(networks, key=networks.get)
    if linear > networks[best]:
        return None, f"preferring the linear baseline (`{names.linear}` is behind `{best}` on `{names.reference}`)"
    return (f"Compare with the baselines first: on `{names.reference}` the linear AR baseline (`{names.linear}`) "
            f"reaches test MSE {_g(linear)}, the best recurrent network (`{best}`) {_g(networks[best])}."), None


def _rollouts(metrics: dict, names: ReportNames) -> tuple[str | None, str | None]:
    """Supported where the rollouts of the recurrent cells spread much wider than their one-step errors."""
    for dataset in (names.reference, *names.others):
        by_arch = {a: m for a, m in metrics.get(dataset or "", {}).items()
                   if a in names.recurrent and m.get("rollout_mse_1000") is not None}
        if len(by_arch) < 2:
            continue
        one_step = [m["test_mse"] for m in by_arch.values()]
        rollout = [m["rollout_mse_1000"] for m in by_arch.values()]
        spread_one, spread_rollout = max(one_step) / min(one_step), max(rollout) / min(rollout)
        if spread_rollout > 2 * spread_one:
            return (f"Score free-running rollouts, not only the one-step error: on `{dataset}` the one-step errors of "
                    f"{', '.join(by_arch)} lie within {_g(spread_one)}x of each other, their 1000-step rollouts within "
                    f"{_g(spread_rollout)}x."), None
    return None, None


def _windows(memory: list[dict], names: ReportNames) -> tuple[str | None, str | None]:
    if len(memory) < 2:
        return None, None
    first, last = memory[0], memory[-1]
    if last["test_mse"] > 0.9 * first["test_mse"]:  # less than a tenth lower: no reason to pay for a longer window
        return None, (f"longer windows (on `{names.memory_dataset}` the error goes from {_g(first['test_mse'])} at "
                      f"window {first['window']} to {_g(last['test_mse'])} at window {last['window']})")
    return (f"Give the model a history long enough to average the noise: on `{names.memory_dataset}` the one-step "
            f"error falls from {_g(first['test_mse'])} (window {first['window']}) to {_g(last['test_mse'])} (window "
            f"{last['window']}), {_g(last['noise_floor_ratio'])} times the noise floor."), None


def _clipping(stability: dict) -> tuple[str | None, str | None]:
    if not stability["effects"]:  # no learning rate run both with and without clipping
        return None, None
    if stability["prevented"]:
        lr = stability["prevented"][0]
        return f"Clip the gradient norm: at lr {lr} the unclipped run diverged and the clipped one trained.", None
    changes = [f"{key} the final val loss at lr {', '.join(map(str, stability[key]))}"
               for key in ("lowered", "raised") if stability[key]]
    if len(changes) == 2:
        changes[1] = changes[1].replace("the final val loss", "it")
    return None, (f"gradient clipping ({stability['unclipped_diverged']} of {stability['unclipped']} unclipped runs "
                  f"diverged" + ("; clipping " + " and ".join(changes) if changes else "") + ")")


def _learning_rate(stability: dict) -> tuple[str | None, str | None]:
    unclipped = stability["by_lr"]
    if len(unclipped) < 2 or unclipped[min(unclipped)]["diverged"]:
        return None, None
    low, high = unclipped[min(unclipped)], unclipped[max(unclipped)]
    if high["diverged"]:
        ending = "diverged"
    elif high["final_val_loss"] > 10 * low["final_val_loss"]:
        ending = f"ends at {_g(high['final_val_loss'])}"
    else:
        return None, None
    return (f"Keep the learning rate moderate: unclipped, the run at lr {low['lr']} ends at validation loss "
            f"{_g(low['final_val_loss'])}, the run at lr {high['lr']} {ending}."), None
