"""reports/REPORT.md, generated from the measurements: every figure is computed, and every
sentence that states a result is written only when the numbers make it true.

build_report(summary, metrics, names) takes the `diagnose` stage's summary.json, the pipeline's
metrics.json and the names params.yaml gives (report_names), computes the verdicts, the facts and
the advice here, and renders them with the Jinja2 template in report_template.py. The rule behind
each verdict is written next to it below; nothing is decided in advance.
"""

from __future__ import annotations

from dataclasses import dataclass

FIGURES = "figures"  # relative to reports/, where REPORT.md lives
LEARNED = 0.01  # a run learned when its loss (or test MSE) is below 1% of the target's variance
VANISHED = 1e-6  # g(W)/g(1) at initialisation: below it the gradient has vanished
GRADIENT_CLAIM = "Vanishing gradients stop a plain RNN from learning long lags that a GRU or LSTM learns."


def _g(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def _verdict(refuted: bool, confirmed: bool = False) -> str:
    if refuted:
        return "**refuted**"
    return "**confirmed**" if confirmed else "not settled by this run"


@dataclass(frozen=True)
class ReportNames:
    """What params.yaml calls the things the report speaks of."""

    reference: str | None = None  # the noise-free sine the short answer quotes
    recurrent: tuple[str, ...] = ()  # the one-layer rnn, gru and lstm architectures
    linear: str | None = None  # the linear autoregression baseline
    persistence: str | None = None
    others: tuple[str, ...] = ()  # the other train datasets
    untrained: tuple[str, ...] = ()  # generated, not trained
    memory_dataset: str = "noisy"
    trend_dataset: str = "clean"  # the sine the trend case adds a trend to


def report_names(params) -> ReportNames:
    run, archs, datasets = params.run, params.architectures, params.datasets
    kinds = {name: archs[name].kind for name in run.architectures}

    def pure_sine(name: str) -> bool:
        d = datasets[name]
        return d.source == "sine" and d.noise_std == 0 and d.trend == 0

    reference = next((name for name in run.train_datasets if pure_sine(name)), None)
    return ReportNames(
        reference=reference,
        recurrent=tuple(n for n in run.architectures if kinds[n] in ("rnn", "gru", "lstm") and archs[n].num_layers == 1),
        linear=next((n for n, k in kinds.items() if k == "ridge"), None),
        persistence=next((n for n, k in kinds.items() if k == "persistence"), None),
        others=tuple(d for d in run.train_datasets if d != reference),
        untrained=tuple(d for d in run.datasets if d not in run.train_datasets),
        memory_dataset=params.diagnose.memory_dataset, trend_dataset=params.diagnose.trend_dataset)


def _outcome(example: dict) -> str:
    """crashed, constant (the loss settled at the target's variance), learned or other."""
    if example["exception"]:
        return "crashed"
    if any(f["check"] == "constant" for f in example["findings"]):
        return "constant"
    final = example["final_loss"]
    return "learned" if final is not None and final < LEARNED * example["target_variance"] else "other"


def _broadcast(example: dict) -> bool:
    return any(f["check"] == "shapes" for f in example["findings"])


def _learned(corrected: dict) -> bool:
    return corrected["test_mse"] < LEARNED * corrected["target_variance"]


def _examples(numbers: list[int]) -> str:
    return ("example " if len(numbers) == 1 else "examples ") + " and ".join(map(str, numbers))


def claims(summary: dict, metrics: dict, names: ReportNames, measured: dict | None = None) -> list[dict]:
    """The published answer's claims, each with a verdict and the measurement behind it: the four
    the diagnose stage settles, then (with the claims stage's measurements) the eight others."""
    published = {p["example"]: p for p in summary["published"]}
    framed = {f["example"]: f for f in summary["framing_only"]}
    corrected = {c["example"]: c for c in summary["corrected"]}
    one = published[1]
    # Rule: refuted if the published RNN's failure has a non-gradient cause the diagnosis names
    # (broadcast shapes) AND the same layers learn once only the framing is changed; never
    # "confirmed": a plateau is not a gradient measurement.
    shape = (f"its prediction has shape (1,) against a target of shape {tuple(one['target_shape'])}" if _broadcast(one)
             else "its prediction has the target's shape")
    learns = "it learns" if _learned(framed[1]) else "it does not learn either"
    rows = [{"claim": "Example 1's RNN fails to learn sin(x) because of vanishing gradients.",
             "verdict": _verdict(_broadcast(one) and _learned(framed[1])),
             "evidence": f"{shape}; it {_as_run(one)}. With only the framing changed (windows of {framed[1]['window']} "
                         f"past values, trained on the first 70% of the series; optimiser, learning rate, epochs "
                         f"and full batches as published) the same layers reach test MSE "
                         f"{_g(framed[1]['test_mse'])} (target variance {_g(framed[1]['target_variance'])}): {learns}; "
                         f"with the pipeline's loop, {_g(corrected[1]['test_mse'])}."}]
    for number, claim in ((2, "Replacing the RNN by an LSTM (example 2) makes it learn."),
                          (3, "A 3-layer LSTM with batch_first=True and a smaller learning rate (example 3) makes it learn.")):
        example = published[number]
        outcome = _outcome(example)
        evidence = f"example {number} {_as_run(example)}"
        if outcome == "constant" and _outcome(one) == "constant":
            evidence += ": the same constant prediction as example 1"
        if outcome == "constant" and _broadcast(example):
            evidence += ". The cell type does not matter when the loss compares one output with every target"
        rows.append({"claim": claim, "verdict": _verdict(outcome in ("crashed", "constant"), confirmed=outcome == "learned"),
                     "evidence": evidence + "."})
    rows.append(_gradient_claim(summary, metrics, names))
    if measured is not None:
        from sinernn.answer.claims_verdicts import claim_rows

        rows += claim_rows(measured, summary, metrics)
    return rows


def _as_run(example: dict) -> str:
    """How a published example ended, in words."""
    if example["exception"]:
        return f"crashes as written: {example['exception']}"
    outcome = _outcome(example)
    ending = (f"ends at loss {_g(example['final_loss'])} against a target variance of {_g(example['target_variance'])}")
    return ending + {"constant": " (it settled at the variance)", "learned": ", below 1% of it: it learns",
                     "other": ", neither the variance nor below 1% of it"}[outcome]


def _gradient_claim(summary: dict, metrics: dict, names: ReportNames) -> dict:
    # Rule, on the delay task (the target is the input k steps back): confirmed if the plain rnn
    # stops learning (without diverging) at a lag where a gated cell (gru, lstm) still learns;
    # refuted if the rnn learns every lag tried, up to a lag where a gated cell failed; otherwise
    # not settled. The sine's next value needs no memory, so it cannot settle this claim (the
    # evidence says so, with the figures).
    from sinernn.answer.report_cases import best_limits

    claim = GRADIENT_CLAIM
    if not summary.get("delay_limits"):
        return {"claim": claim, "verdict": _verdict(False), "evidence": "the delay task did not run."}
    limits = best_limits(summary["delay_limits"])
    rnn, gated = limits.get("rnn"), {k: v for k, v in limits.items() if k != "rnn"}  # gru, lstm (any init)
    if rnn is None or not gated:
        return {"claim": claim, "verdict": _verdict(False),
                "evidence": "the delay task ran without a plain rnn or without a gated cell (`diagnose.delay_architectures`)."}
    reach = {kind: limit["longest_learned"] or 0 for kind, limit in limits.items()}
    further = [kind for kind in gated if reach[kind] > reach["rnn"]]
    gated_failed = [kind for kind, limit in gated.items() if limit["first_failed"] is not None]
    evidence = ("on the delay task (the target is the input k steps back) the longest lag learned, from the shortest "
                "on without a break, is " + ", ".join(f"{kind} {_lag(limit)}" for kind, limit in limits.items()))
    if rnn["first_failed"] is None:
        evidence += f": the plain rnn learns every lag tried, up to {rnn['longest_tried']}"
        evidence += (f", beyond the lag where {' and '.join(gated_failed)} failed" if gated_failed
                     else ", and so does every gated cell: these lags do not tell the cells apart")
    elif rnn["failed_by_diverging"]:
        evidence += f": the rnn diverged at lag {rnn['first_failed']}, an exploding gradient, not a vanishing one"
    elif further:
        evidence += f": the rnn fails at lag {rnn['first_failed']}, where {' and '.join(further)} still learn{'s' if len(further) == 1 else ''}"
    else:
        evidence += f": the rnn fails at lag {rnn['first_failed']}, and no gated cell learns a longer lag in this budget"
    longest = max((g["window"] for g in summary["gradients"]), default=None)
    at_init = next((g for g in summary["gradients"] if g["architecture"] == "rnn" and g["window"] == longest), None)
    if at_init is not None:
        evidence += (f". At initialisation the rnn's gradient {longest} steps back is "
                     f"{_g(at_init['init_summary']['ratio_W_to_1'])} times its lag-1 gradient")
    linear = _linear_on_reference(metrics, names)
    if linear is not None:
        evidence += (f". For a sine's next value it does not matter: that value is a linear function of the last two, "
                     f"and the linear AR baseline (`{names.linear}`) reaches test MSE {_g(linear)} on `{names.reference}`")
    confirmed = bool(further) and rnn["first_failed"] is not None and not rnn["failed_by_diverging"]
    return {"claim": claim, "verdict": _verdict(rnn["first_failed"] is None and bool(gated_failed), confirmed=confirmed),
            "evidence": evidence + "."}


def _lag(limit: dict) -> str:
    return str(limit["longest_learned"]) if limit["longest_learned"] else f"none (fails at {limit['first_failed']})"


def _linear_on_reference(metrics: dict, names: ReportNames) -> float | None:
    return metrics.get(names.reference or "", {}).get(names.linear or "", {}).get("test_mse")


def build_report(summary: dict, metrics: dict, names: ReportNames, measured: dict | None = None) -> str:
    """REPORT.md: the template of report_template.py filled with the facts computed below."""
    import jinja2

    from sinernn.answer.report_facts import facts
    from sinernn.answer.report_template import TEMPLATE

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True, autoescape=False)
    env.filters["g"] = _g
    env.filters["and_list"] = lambda items: " and ".join([", ".join(items[:-1]), items[-1]] if len(items) > 1 else items)
    env.filters["examples"] = lambda numbers: ("example " if " and " not in numbers else "examples ") + numbers
    verdicts = claims(summary, metrics, names, measured)
    return env.from_string(TEMPLATE).render(figures=FIGURES, names=names, claims=verdicts,
                                            **facts(summary, metrics, names, verdicts))
