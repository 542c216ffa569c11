"""The published answer's other claims: each verdict flips when its measurement does, and the
measurements behind them are right where a formula says what they must be.

    sinernn measure NAME                one measurement (a stage each: sinernn/answer/measurements.py)
    sinernn claims                      the stage: the measurements gathered, summary.json and the plots
    reports/REPORT.md's claims table    one row per claim (sinernn/answer/claims_verdicts.py)
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import claims_measured, write_params

from sinernn.answer import claims, claims_memory, claims_verdicts
from sinernn.cli import main
from sinernn.core.config import parse_params
from sinernn.core.data import generate
from sinernn.core.errors import DataError
from sinernn.core.evaluation import evaluate
from sinernn.core.models import build_model
from sinernn.answer.measurements import CLAIMS, Inputs, expected

REFUTED, CONFIRMED, OPEN = "**refuted**", "**confirmed**", "not settled by this run"


def _delay(cell: str, learned: dict[int, bool]) -> list[dict]:
    return [{"lag": lag, "architecture": cell, "grad_clip": 0.0, "diverged": False, "test_mse": 0.001 if ok else 0.3,
             "learned": ok} for lag, ok in learned.items()]


def _diagnosis() -> dict:
    """The diagnose stage's delay rows without clipping: every one-layer cell learns 8, fails at 16."""
    # (a clipped lstm that learns 16 is not a row of the comparison: it ran under another setting)
    return {"delay": [row for cell in ("rnn", "gru", "lstm") for row in _delay(cell, {8: True, 16: False})]
            + [{**r, "grad_clip": 1.0} for r in _delay("lstm", {8: True, 16: True})]}


def _verdicts(measured: dict, metrics: dict | None = None, diagnosis: dict | None = None) -> list[str]:
    return [row["verdict"] for row in claims_verdicts.claim_rows(measured, diagnosis or _diagnosis(), metrics or {})]


def _set(rows: list[dict], where: dict, **values) -> None:
    for row in rows:
        if all(row[k] == v for k, v in where.items()):
            row.update(values)


def _only(measured: dict, cell: str, learned: dict[int, bool]) -> None:
    """The delay-task rows of one model replaced: the others, which other claims read, kept."""
    measured["delay_variants"] = [r for r in measured["delay_variants"] if r["architecture"] != cell] + _delay(cell, learned)


FLIPS = {  # claim row (5 to 12 in the report) -> the change of its own measurement that confirms it
    1: lambda m: _set(m["linear_memory"], {"dataset": "clean"}, relative_mse=1e-3) or
    _set(m["linear_memory"], {"dataset": "clean", "k": 32}, relative_mse=1e-5),  # the past beyond 3 values matters
    2: lambda m: _set(m["derivatives"], {"inputs": "scaled", "period": 8.0}, median_grad_norm=5.0),  # grows with w
    3: lambda m: _set(m["window_ratio"], {"architecture": "lstm", "period": 320.0}, relative_test_mse=0.02),  # 100x worse
    4: lambda m: _only(m, "lstm 32x2", {8: True, 16: True}),  # the stacked lstm reaches past the one-layer one
    5: lambda m: [s["importances"].update(lr=0.3, batch_size=0.25, dropout=0.25, hidden_size=0.1, grad_clip=0.1)
                  for s in m["tuning"][:2]],  # all three above an equal share in two studies of three
    6: lambda m: _set(m["overfitting"], {"hidden_size": 128}, test_mse=0.02),  # test twice train at 128 units
    7: lambda m: _only(m, "rnn relu", {8: True, 16: True}),  # relu reaches past tanh
    8: lambda m: _only(m, "transformer", {8: True, 16: True, 32: True}),  # attention past every recurrent model
}


@pytest.mark.parametrize("claim", sorted(FLIPS))
def test_each_verdict_flips_with_its_own_measurement_and_no_other(claim):
    measured = claims_measured()
    assert _verdicts(measured) == [REFUTED] * 8
    FLIPS[claim](measured)
    assert _verdicts(measured) == [CONFIRMED if i == claim else REFUTED for i in range(1, 9)]


def test_the_derivative_claim_holds_only_where_the_fast_sine_diverges():
    measured = claims_measured()
    rows = measured["derivatives"]
    _set(rows, {"inputs": "scaled", "period": 320.0, "amplitude": 1.0}, diverged=True, median_grad_norm=None)
    assert claims_verdicts.derivatives(rows)["verdict"] == OPEN  # the slow sine diverging is not the claim
    measured = claims_measured()
    _set(measured["derivatives"], {"inputs": "scaled", "period": 8.0, "amplitude": 100.0}, diverged=True, median_grad_norm=None)
    row = claims_verdicts.derivatives(measured["derivatives"])
    assert row["verdict"] == CONFIRMED and "A 100 P 8: diverged" in row["evidence"]


def test_a_search_that_never_beats_its_first_trial_refutes_that_tuning_is_crucial():
    measured = claims_measured()
    FLIPS[5](measured)
    assert claims_verdicts.tuning(measured["tuning"])["verdict"] == CONFIRMED
    for study in measured["tuning"][:2]:
        study["best_trial"] = 0  # params.yaml's own values stayed best
    row = claims_verdicts.tuning(measured["tuning"])
    assert row["verdict"] == REFUTED and "trial 0, params.yaml's own values, in 2 of 3" in row["evidence"]


def test_mixed_evidence_leaves_tuning_and_attention_open():
    measured = claims_measured()
    for study in measured["tuning"]:  # the search never beats params.yaml, but a bad choice costs 100x
        study.update(best_trial=0, objective_spread={"best": 1e-6, "median": 1e-4})
    assert claims_verdicts.tuning(measured["tuning"])["verdict"] == OPEN
    FLIPS[8](measured)
    _set(measured["long_window"], {"architecture": "transformer"}, noise_floor_ratio=1.46)  # worse from long windows
    row = claims_verdicts.claim_rows(measured, _diagnosis(), {})[7]
    assert row["verdict"] == OPEN and "predicts the noisy series less well from long windows" in row["evidence"]


def test_missing_and_diverged_figures_leave_a_verdict_open_without_a_crash():
    measured = claims_measured()
    _set(measured["window_ratio"], {"architecture": "lstm", "period": 320.0}, diverged=True, test_mse=None,
         rollout_mse=None, relative_test_mse=None, relative_rollout_mse=None, vs_persistence=None)
    _set(measured["overfitting"], {}, diverged=True, train_mse=None, val_mse=None, test_mse=None)
    for study in measured["tuning"]:
        study["n_complete"] = 3  # too few complete trials for fANOVA to mean anything
    verdicts = _verdicts(measured, metrics={"noisy": {"lstm": {"train_mse": 0.01, "test_mse": None}}})
    assert [verdicts[i] for i in (2, 4, 5)] == [OPEN] * 3


def test_a_verdict_is_open_where_its_measurement_cannot_decide():
    measured = claims_measured()
    measured["tuning"] = [{**s, "importances": None} for s in measured["tuning"]]  # importances not computed
    measured["window_ratio"] = [r for r in measured["window_ratio"] if r["ratio"] < 1]  # no window spans a period
    everything = {"delay": [row for cell in ("rnn", "gru", "lstm") for row in _delay(cell, {8: True, 16: True})]}
    measured["delay_variants"] = [r for r in measured["delay_variants"] if r["architecture"] in ("lstm 32x2", "lstm 64x1")]
    verdicts = _verdicts(measured, diagnosis=everything)
    # 3 and 5: nothing to compare; 4: the one-layer lstm learns every lag, so no room to do better;
    # 7, 8: no relu, no transformer run
    assert [verdicts[i] for i in (2, 3, 4, 6, 7)] == [OPEN] * 5


def test_two_past_values_predict_a_pure_sine_to_round_off_and_more_help_only_with_noise(params):
    clean = generate("clean", params.datasets["clean"], 0, 16)
    noisy = generate("noisy", params.datasets["noisy"], 0, 16)
    pure = {r["k"]: r for r in claims.linear_memory(clean, [1, 2, 32], pure_sine=True)}
    # x(t) = 2 cos(w) x(t-1) - x(t-2): exact, so only float64 round-off is left
    assert pure[1]["relative_mse"] > 1e-4 and pure[2]["relative_mse"] < 1e-20
    noise = {r["k"]: r for r in claims.linear_memory(noisy, [2, 32], pure_sine=False)}
    sigma2 = params.datasets["noisy"].noise_std ** 2
    assert sigma2 < noise[32]["test_mse"] < noise[2]["test_mse"]  # averaging the noise helps, above the floor


def test_standardised_inputs_make_every_amplitude_the_same_problem(raw_params):
    raw_params["claims"].update(derivative_amplitudes=[1.0, 100.0], derivative_periods=[37.7], derivative_epochs=1)
    rows = claims.derivatives(parse_params(raw_params))
    scaled = [r for r in rows if r["inputs"] == "scaled"]
    raw = {r["amplitude"]: r for r in rows if r["inputs"] == "raw"}
    # the same sine divided by its own deviation is the same data: the same gradient, to the bit
    assert scaled[0]["median_grad_norm"] == scaled[1]["median_grad_norm"]
    assert raw[100.0]["diverged"] or raw[100.0]["median_grad_norm"] > 10 * raw[1.0]["median_grad_norm"]


def test_the_relu_rnn_starts_from_the_tanh_rnns_weights(params):
    configs = claims_memory.variants(params)
    tanh, relu = (claims_memory.build(configs[name], 16, seed=0) for name in ("rnn tanh", "rnn relu"))
    assert relu.rnn.nonlinearity == "relu" and tanh.rnn.nonlinearity == "tanh"
    for (name, a), (_, b) in zip(tanh.state_dict().items(), relu.state_dict().items()):
        assert torch.equal(a, b), name
    x = torch.randn(4, 16, 1)
    assert not torch.allclose(tanh(x), relu(x))


def test_evaluate_scores_the_train_and_validation_splits_like_the_test_split(params):
    dataset = generate("noisy", params.datasets["noisy"], 0, 16)
    model = build_model({"kind": "persistence", "input_length": 16})
    metrics = evaluate(model, dataset, "window", 16).metrics
    train = dataset.splits["train"].observed[0]
    val = np.concatenate([train[-1:], dataset.splits["val"].observed[0]])  # its first target follows train's last value
    assert math.isclose(metrics["train_mse"], float(np.mean(np.diff(train[15:]) ** 2)), rel_tol=1e-6)  # framed in float32
    assert math.isclose(metrics["val_mse"], float(np.mean(np.diff(val) ** 2)), rel_tol=1e-6)  # framed in float32


def test_a_missing_tune_result_is_named(params, tmp_path):
    with pytest.raises(DataError, match="tuned/clean/rnn.json is missing"):
        claims.tuning_part(params, Inputs(tmp_path / "data", tmp_path / "tuned"), None)


def test_the_claims_command_measures_every_claim_and_the_report_rows_follow(tracked, tmp_path, raw_params, capsys):
    path = write_params(tmp_path / "params.yaml", raw_params)
    for dataset in ("clean", "noisy"):
        assert main(["generate", "--params", str(path), "--dataset", dataset]) == 0
    for arch in ("rnn", "gru", "lstm", "deep_lstm", "transformer"):  # what the tune stage leaves: importances
        out = tmp_path / f"tuned/clean/{arch}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"arch": {}, "train": {}, "importances": {"lr": 0.5, "hidden_size": 0.5}}))
    parts = expected(parse_params(raw_params), CLAIMS)
    assert main(["claims", "--params", str(path)]) == 2  # nothing measured yet: named, nothing written
    assert "measurements missing" in capsys.readouterr().err and not (tmp_path / "reports/claims").exists()
    for name, item in parts:  # what `sinernn repro claims` runs, one stage each
        assert main(["measure", name, "--params", str(path), *(["--item", item] if item else [])]) == 0
    assert len(parts) == 12 and len(list((tmp_path / "reports/measurements/claims").iterdir())) == 12
    assert main(["claims", "--params", str(path)]) == 0
    summary = json.loads((tmp_path / "reports/claims/summary.json").read_text())
    assert set(summary) == {"linear_memory", "tuning", "derivatives", "window_ratio", "overfitting", "delay_variants",
                            "on_sine", "activation", "long_window"}
    figures = {p.name for p in (tmp_path / "reports/claim_figures").iterdir()}
    assert figures == {"claims_linear.png", "claims_derivatives.png", "claims_window_ratio.png", "claims_overfitting.png",
                       "claims_delay.png", "claims_activation.png"}
    rows = claims_verdicts.claim_rows(summary, {"delay": []}, {})
    assert len(rows) == 8 and all(r["verdict"] in (REFUTED, CONFIRMED, OPEN) for r in rows)


@pytest.mark.parametrize("change, message", [
    ({"stacked_arch": "lstm"}, "claims.stacked_arch must name an lstm of `architectures` with num_layers >= 2"),
    ({"transformer_arch": "gru"}, "claims.transformer_arch must name a transformer"),
    ({"linear_datasets": ["clean", "nowhere"]}, "claims.linear_datasets: nowhere not in run.datasets"),
    ({"sine_dataset": "sample_csv"}, "claims.sine_dataset must be a sine source"),
    ({"overfit_hidden": [8, 8]}, "lists each setting once; repeated: 8"),
])
def test_claims_settings_that_cannot_run_are_refused_before_any_work(raw_params, change, message):
    from sinernn.core.config_data import ParamsError

    raw_params["claims"].update(change)
    with pytest.raises(ParamsError, match=message):
        parse_params(raw_params)
