"""The verdicts on the published answer's other claims, from the `claims` stage's measurements
(reports/claims/summary.json) and the pipeline's metrics: one row each for the report's claims
table. The rule behind each verdict is written beside it; each returns "not settled" when the
measurement does not decide, and never a verdict fixed in advance.
"""

from __future__ import annotations

from sinernn.answer.delay import lag_limits
from sinernn.answer.report import _g, _verdict

MACHINE_PRECISION = 1e-12  # relative MSE below this is round-off: such errors count as equal
FACTOR = 10.0  # "grows with", "worse than": by at least this factor
SAME, HALVED = 1.1, 2.0  # claim 1: "as well as" (within 10%), "halves the error"
GAP = 1.2  # test MSE 20% above train MSE: overfitting (the sampling noise of an MSE over ~1000 values is ~5%)
TUNED = ("lr", "batch_size", "dropout")  # the parameters the claim calls crucial
SPREAD = 2.0  # claim 9: a median trial within 2x of the best: the choices hardly mattered
MIN_COMPLETE = 5  # complete trials a study needs before its importances are read (fANOVA on fewer is noise)
FIGURES = "claim_figures"  # the claims stage's plots, relative to reports/ where REPORT.md lives


def _row(claim: str, refuted: bool, confirmed: bool, evidence: str, plot: str | None = None) -> dict:
    link = f" [plot]({FIGURES}/{plot})" if plot else ""
    return {"claim": claim, "verdict": _verdict(refuted, confirmed=confirmed), "evidence": evidence + "." + link}


def claim_rows(claims: dict, diagnosis: dict, metrics: dict) -> list[dict]:
    """The rows, in the order the published answer makes the claims."""
    reach = _reach(diagnosis, claims)
    return [linear_memory(claims["linear_memory"]), derivatives(claims["derivatives"]),
            window_ratio(claims["window_ratio"]), capacity(reach, claims["on_sine"]), tuning(claims["tuning"]),
            overfitting(claims["overfitting"], metrics), activation(reach, claims["activation"]),
            attention(reach, claims["long_window"])]


def linear_memory(rows: list[dict]) -> dict:
    # Rule, on the pure sine (a sine and nothing else, as params.yaml says): refuted if the last two
    # values predict within 10% of the longest past (errors below round-off equal); confirmed if the
    # values beyond the last three halve the error; otherwise not settled. A noisy sine's gain from
    # a longer past is shown, not judged: there the past averages the noise, which is not the sine
    # depending on it.
    claim = "The current value of a sine is significantly influenced by values many steps in the past."
    by_dataset: dict[str, dict[int, dict]] = {}
    for row in rows:
        by_dataset.setdefault(row["dataset"], {})[row["k"]] = row
    evidence = "test MSE of the best linear predictor from the last k values, " + "; ".join(
        f"`{name}` (noise floor {_g(next(iter(r.values()))['noise_variance'])}): "
        + ", ".join(f"k={k} {_g(x['test_mse'])}" for k, x in sorted(r.items())) for name, r in by_dataset.items())
    pure = next((name for name, r in by_dataset.items() if all(x["pure_sine"] for x in r.values())), None)
    if pure is None or len(by_dataset[pure]) < 2:
        return _row(claim, False, False, evidence + "; no pure sine was measured", "claims_linear.png")
    rel = {k: max(x["relative_mse"], MACHINE_PRECISION) for k, x in by_dataset[pure].items()}
    longest, two = max(rel), min((k for k in rel if k >= 2), default=None)
    short = max((k for k in rel if k <= 3), default=None)
    refuted = two is not None and two < longest and rel[two] <= SAME * rel[longest]
    confirmed = short is not None and short < longest and rel[short] > HALVED * rel[longest]
    if refuted:
        evidence += f". On `{pure}` the last {two} values predict as well as the last {longest}"
    return _row(claim, refuted, confirmed, evidence, "claims_linear.png")


def derivatives(rows: list[dict]) -> dict:
    # Rule, with the inputs scaled as the pipeline scales them (the amplitude then drops out, and the
    # bound A w in the network's units is sqrt(2) w): confirmed if a run at the largest bound
    # diverges while the smallest does not, or its gradient norm is 10x the smallest's; refuted if
    # no run diverges and the norms stay within 10x while that bound spans 10x or more.
    claim = "The unbounded nature of the sine's derivatives makes gradient updates unstable."
    evidence = ("the k-th derivative of A sin(wt) is at most A w^k: bounded. Median gradient norm in training "
                "(a plain rnn, no clipping) against that bound in the units the network reads")
    parts, verdict = [], (False, False)
    for inputs in ("scaled", "raw"):
        # (by the bound to 6 digits: one period's amplitudes differ only in the round-off of their scale)
        runs = sorted((r for r in rows if r["inputs"] == inputs), key=lambda r: (float(f"{r['model_bound']:.6g}"), r["amplitude"]))
        if not runs:
            continue
        failed = [r["diverged"] or r["median_grad_norm"] is None for r in runs]
        parts.append(f"{inputs} inputs: " + ", ".join(
            f"A {_g(r['amplitude'])} P {_g(r['period'])}: {'diverged' if bad else _g(r['median_grad_norm'])}"
            for r, bad in zip(runs, failed)))
        if inputs == "scaled":
            top = [i for i, r in enumerate(runs) if r["model_bound"] >= runs[-1]["model_bound"] * (1 - 1e-6)]
            low, high = 0, top[0]
            span = runs[high]["model_bound"] / runs[low]["model_bound"]
            norms = [r["median_grad_norm"] for r, bad in zip(runs, failed) if not bad]
            grows = (not failed[low] and not failed[high]
                     and runs[high]["median_grad_norm"] >= FACTOR * runs[low]["median_grad_norm"])
            unstable_top = any(failed[i] for i in top) and not failed[low]
            flat = not any(failed) and span >= FACTOR and max(norms) < FACTOR * min(norms)
            verdict = (flat, unstable_top or grows)
            evidence += f" (scaled: the bound spans {_g(span)}x over the periods)"
    return _row(claim, *verdict, evidence + ": " + "; ".join(parts), "claims_derivatives.png")


def window_ratio(rows: list[dict]) -> dict:
    # Rule, on the lstm (else the first cell measured), its one-step error relative to the variance
    # (the same for every period): confirmed if at the smallest window/period ratio (below 1) it is
    # 10x or more its worst where the window spans a period (ratio >= 1); refuted if it is no worse
    # there than that worst; otherwise (or without both kinds of ratio, or a run that diverged) not
    # settled. The one-period rollouts are shown, not judged: a period is 320 steps at one end and
    # 16 at the other, and a rollout's error grows with its length.
    claim = "An LSTM may underperform if the period is long relative to the sequence length."
    cells = [r["architecture"] for r in rows if r["architecture"] != "persistence"]
    cell = "lstm" if "lstm" in cells else (cells[0] if cells else None)
    runs = sorted((r for r in rows if r["architecture"] == cell), key=lambda r: r["ratio"])
    persistence = {r["period"]: r for r in rows if r["architecture"] == "persistence"}
    evidence = (f"{cell}, error / variance by window / period: " + "; ".join(
        f"{_g(r['ratio'])}: one step {_g(r['relative_test_mse'])} ({_g(r['vs_persistence'])}x persistence's), "
        f"one period of rollout {_g(r['relative_rollout_mse'])}" for r in runs)) if runs else "not measured"
    short, wide = (runs[0] if runs and runs[0]["ratio"] < 1 else None), [r for r in runs if r["ratio"] >= 1]
    if short is not None and persistence.get(short["period"]):
        evidence += f"; persistence's one-step error at {_g(short['ratio'])}: {_g(persistence[short['period']]['relative_test_mse'])}"
    keys = ("relative_test_mse",)
    if short is None or not wide or any(r[k] is None for r in [short, *wide] for k in keys):
        return _row(claim, False, False, evidence, "claims_window_ratio.png")
    worse = {k: short[k] / max(max(r[k] for r in wide), MACHINE_PRECISION) for k in keys}
    return _row(claim, all(v <= 1 for v in worse.values()), any(v >= FACTOR for v in worse.values()),
                evidence, "claims_window_ratio.png")


def _reach(diagnosis: dict, claims: dict) -> dict[str, dict]:
    """Each model's limits on the delay task without clipping: the diagnose stage's one-layer cells
    beside the claims stage's other models (same lags, same budget)."""
    baseline = [r for r in diagnosis.get("delay", []) if r["grad_clip"] == 0 and "forget bias" not in r["architecture"]]
    renamed = [{**r, "architecture": "rnn tanh" if r["architecture"] == "rnn" else r["architecture"]} for r in baseline]
    return {limit["architecture"]: limit for limit in lag_limits(renamed + claims["delay_variants"])}


def _lag(limit: dict | None) -> str:
    if limit is None:
        return "not run"
    if limit["longest_learned"]:
        return f"{limit['longest_learned']}" + (f" (fails at {limit['first_failed']})" if limit["first_failed"] else " (every lag)")
    return f"none ({'diverges' if limit['failed_by_diverging'] else 'fails'} at {limit['first_failed']})"


def _longest(limit: dict | None) -> int:
    return (limit or {}).get("longest_learned") or 0


def capacity(reach: dict[str, dict], sine: list[dict]) -> dict:
    # Rule, on the delay task: confirmed if the stacked or the wider lstm learns a longer lag than
    # the one-layer lstm; refuted if the one-layer lstm failed at a lag and neither learns further;
    # not settled when the one-layer lstm learns every lag (no room to do better).
    claim = "More layers and a larger hidden size give a better chance at long-term dependencies."
    bigger = [name for name in reach if name.startswith("lstm ") and "x" in name]
    base = reach.get("lstm")
    size = {r["architecture"]: r.get("parameters") for r in sine}
    evidence = ("longest delay-task lag learned, at the same epochs and learning rate (the parameters in brackets): "
                + ", ".join(f"{n} ({size.get(n) or '?'}) {_lag(reach.get(n))}" for n in ["lstm", *bigger]))
    evidence += "; on the sine (which needs no long memory), one step / rollout: " + ", ".join(
        f"{r['architecture']} {_g(r['test_mse'])} / {_g(r['rollout_mse'])}" for r in sine
        if r["architecture"] == "lstm" or r["architecture"] in bigger)
    if base is None or not bigger:
        return _row(claim, False, False, evidence, "claims_delay.png")
    further = any(_longest(reach[n]) > _longest(base) for n in bigger)
    return _row(claim, base["first_failed"] is not None and not further, further, evidence, "claims_delay.png")


def tuning(studies: list[dict]) -> dict:
    # Rule, on each study with importances over MIN_COMPLETE complete trials or more: a parameter
    # matters in a study when its importance is at least an equal share (1 / the parameters
    # searched), and a study's spread is its median complete trial over its best. Confirmed if
    # each of lr, batch_size and dropout (those searched) matters in more than half of the studies
    # and the search beat its first trial (params.yaml's own values) in more than half; refuted if,
    # besides, the trials hardly differ (spread below SPREAD in more than half: no choice costs
    # much) while one of the three matters in fewer than half or the first trial stayed best in
    # more than half; otherwise not settled: a large spread says a bad choice costs a lot even
    # when the search finds nothing better than the hand-set values.
    claim = "Tuning learning rate, batch size and dropout is crucial."
    judged = [s for s in studies if s.get("importances") and (s.get("n_complete") or 0) >= MIN_COMPLETE]
    named = [p for p in TUNED if any(p in s["importances"] for s in judged)]
    matters = {p: sum(s["importances"].get(p, 0) >= 1 / len(s["importances"]) for s in judged) for p in named}
    evidence = (f"Optuna (fANOVA) importances of {len(judged)} of {len(studies)} studies (those with {MIN_COMPLETE}+ "
                f"complete trials): at least an equal share in " + ", ".join(f"{p} {n} of {len(judged)}" for p, n in matters.items()))
    tops = [max(s["importances"], key=s["importances"].get) for s in judged]
    if tops:
        evidence += "; the most important: " + ", ".join(f"{p} in {tops.count(p)}" for p in dict.fromkeys(tops))
    spreads = [s["objective_spread"]["median"] / s["objective_spread"]["best"] for s in judged
               if s.get("objective_spread") and s["objective_spread"]["best"]]
    if spreads:
        evidence += f"; median trial / best trial from {_g(min(spreads))} to {_g(max(spreads))}"
    kept = sum(s.get("best_trial") == 0 for s in judged)  # the search found nothing better than its start
    if judged:
        evidence += f"; the best trial is trial 0, params.yaml's own values, in {kept} of {len(judged)}"
    if not judged or not named:
        return _row(claim, False, False, evidence)
    flat = 2 * sum(spread < SPREAD for spread in spreads) > len(judged)
    unimportant = any(2 * n < len(judged) for n in matters.values()) or 2 * kept > len(judged)
    return _row(claim, flat and unimportant,
                all(2 * n > len(judged) for n in matters.values()) and 2 * kept < len(judged), evidence)


def overfitting(sweep: list[dict], metrics: dict) -> dict:
    # Rule, on the hidden-size sweep (a noisy series: train error cannot reach 0 without fitting
    # the noise): confirmed if a size's test MSE is 20% or more above its train MSE and the gap is
    # larger at the largest size than at the smallest; refuted if every size stays within 20%.
    claim = "Overfitting remains a concern."
    ratios = {r["hidden_size"]: r["test_mse"] / r["train_mse"] for r in sweep if r["train_mse"] and r["test_mse"] is not None}
    evidence = "test / train MSE of " + ", ".join(
        f"{r['architecture']} {r['hidden_size']}: {_g(ratios.get(r['hidden_size']))}" for r in sweep)
    dataset = sweep[0]["dataset"] if sweep else None
    gaps = [m["test_mse"] / m["train_mse"] for m in metrics.get(dataset, {}).values()
            if m.get("train_mse") and m.get("test_mse") is not None]
    if gaps:
        evidence += (f"; the pipeline's {len(gaps)} models (baselines included) on `{dataset}`: from {_g(min(gaps))} to "
                     f"{_g(max(gaps))} (every model's three errors: the table below)")
    if len(ratios) < 2:
        return _row(claim, False, False, evidence, "claims_overfitting.png")
    sizes = sorted(ratios)
    grows = ratios[sizes[-1]] > ratios[sizes[0]]
    return _row(claim, max(ratios.values()) < GAP, max(ratios.values()) >= GAP and grows, evidence, "claims_overfitting.png")


def activation(reach: dict[str, dict], measured: dict) -> dict:
    # Rule, on the delay task: confirmed if the rnn with relu learns a longer lag than with tanh;
    # refuted if tanh failed at a lag and relu learns no further; otherwise not settled. The
    # gradient versus lag and the learning rates that diverge are the evidence beside it.
    claim = "A different activation function helps against vanishing gradients."
    tanh, relu = reach.get("rnn tanh"), reach.get("rnn relu")
    evidence = f"longest delay-task lag learned: rnn tanh {_lag(tanh)}, rnn relu {_lag(relu)}"
    for g in measured["gradients"]:
        trained = "diverged in training" if g["diverged"] else _g(g["trained_summary"]["ratio_W_to_1"])
        evidence += (f"; {g['architecture']} g({g['window']})/g(1) at initialisation "
                     f"{_g(g['init_summary']['ratio_W_to_1'])}, trained {trained}")
    for name in ("rnn tanh", "rnn relu"):
        lrs = [s["lr"] for s in measured["stability"] if s["architecture"] == name and s["diverged"]]
        evidence += f"; {name} diverges at lr {', '.join(map(str, lrs))}" if lrs else f"; {name} trains at every lr tried"
    if tanh is None or relu is None:
        return _row(claim, False, False, evidence, "claims_activation.png")
    further = _longest(relu) > _longest(tanh)
    return _row(claim, tanh["first_failed"] is not None and not further, further, evidence, "claims_activation.png")


def attention(reach: dict[str, dict], long_window: list[dict]) -> dict:
    # Rule: confirmed if the transformer learns a longer delay-task lag than every recurrent model
    # AND on the noisy series with long windows its error is within 5% of the best recurrent
    # cell's or lower; refuted if it fails at a lag, the best recurrent model's longest lag is at
    # least its own, AND on the long windows it is not 5% better; otherwise not settled (mixed
    # evidence, or every model learning every lag: no room to tell them apart).
    claim = "Attention and Transformers address long-range dependencies."
    transformer = reach.get("transformer")
    recurrent = {name: limit for name, limit in reach.items() if name != "transformer"}
    evidence = "longest delay-task lag learned: " + ", ".join(f"{n} {_lag(l)}" for n, l in reach.items())
    ratios = {r["architecture"]: r["noise_floor_ratio"] for r in long_window}
    if long_window:
        evidence += (f"; one-step test MSE / noise floor with windows of {long_window[0]['window']}: "
                     + ", ".join(f"{n} {_g(v)}" for n, v in ratios.items()))
    if transformer is None or not recurrent:
        return _row(claim, False, False, evidence, "claims_delay.png")
    best_recurrent = max(_longest(limit) for limit in recurrent.values())
    recurrent_errors = [v for n, v in ratios.items() if n != "transformer" and v is not None]
    mine = ratios.get("transformer")
    no_better = mine is None or (bool(recurrent_errors) and mine > 0.95 * min(recurrent_errors))
    no_worse = mine is not None and (not recurrent_errors or mine <= 1.05 * min(recurrent_errors))
    refuted = transformer["first_failed"] is not None and best_recurrent >= _longest(transformer) and no_better
    further = _longest(transformer) > best_recurrent
    if further and not no_worse:
        evidence += ": it remembers further, but predicts the noisy series less well from long windows"
    return _row(claim, refuted, further and no_worse, evidence, "claims_delay.png")
