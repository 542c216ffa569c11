"""The published examples, the automatic diagnosis, gradient versus lag, and the generated report."""

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
import torch
from conftest import claims_measured
from torch import nn

from sinernn.answer.diagnosis import diagnose
from sinernn.answer.gradients import decay_summary, gradient_by_lag
from sinernn.answer.published import run_example
from sinernn.answer.report import ReportNames, build_report, claims
from sinernn.cli import main
from sinernn.core.models import LinearAutoregression, build_model
from sinernn.jobs.diagnose import diagnose_setup
from sinernn.jobs.generate import generate_job
from sinernn.jobs.report import report_job


@pytest.fixture(scope="module")
def examples():
    return {n: run_example(n, seed=0, epochs=40) for n in (1, 2, 3)}


@pytest.mark.parametrize("number", [1, 2])
def test_examples_1_and_2_learn_only_the_mean(examples, number):
    run = examples[number]
    variance = float(run.targets.var(unbiased=False))
    assert run.exception is None and len(run.losses) == 40
    assert run.final_loss == pytest.approx(variance, rel=0.02)  # measured: the loss sits at var(y)
    assert any("broadcasting" in warning for warning in run.warnings)
    assert run.model(run.inputs).shape == (1,)


def test_example_3_crashes_on_its_own_indexing(examples):
    run = examples[3]
    assert isinstance(run.exception, IndexError) and run.losses == []


def test_the_diagnosis_names_what_is_wrong_with_each_example(examples):
    one = {f.check for f in diagnose(examples[1].model, examples[1].inputs, examples[1].targets, examples[1].losses)}
    assert one == {"shapes", "constant", "no_information", "beyond_range"}  # beyond_range: the input is the time
    three = diagnose(examples[3].model, examples[3].inputs, examples[3].targets, examples[3].losses, examples[3].exception)
    assert [f.check for f in three] == ["crash", "beyond_range"]
    assert "unbatched" in three[0].message and "batch_first=True does not apply" in three[0].message


def test_no_false_alarm_on_a_correct_setup(tracked, tmp_path, params):
    npz = tmp_path / "data/processed/clean.npz"
    generate_job(params, "clean", npz)
    assert diagnose_setup(params, "clean", "rnn", "window", 15, npz) == []
    assert diagnose_setup(params, "clean", "ridge", "window", 1, npz) == []


@pytest.mark.filterwarnings("ignore:Using a target size")  # the broadcast is what is being caught
def test_the_pipelines_naive_framing_is_caught(tracked, tmp_path, params):
    npz = tmp_path / "data/processed/clean.npz"
    generate_job(params, "clean", npz)
    checks = {f.check for f in diagnose_setup(params, "clean", "lstm", "naive", 5, npz)}
    assert {"shapes", "no_information"} <= checks


def test_an_input_unrelated_to_the_target_is_caught():
    generator = torch.Generator().manual_seed(0)
    inputs, targets = torch.randn(400, 8, 1, generator=generator), torch.randn(400, 1, generator=generator)
    model = build_model({"kind": "lstm", "hidden_size": 4, "num_layers": 1, "dropout": 0.0, "input_length": 8})
    assert [f.check for f in diagnose(model, inputs, targets)] == ["no_information"]


def test_a_diverging_loss_is_caught():
    x = torch.randn(1000, 1, generator=torch.Generator().manual_seed(0))  # not a time: no beyond_range finding
    model = nn.Linear(1, 1)
    findings = diagnose(model, x, torch.sin(x), losses=[0.5, 3.0, float("nan")])
    assert [f.check for f in findings] == ["diverged"] and "epoch 3" in findings[0].message


def test_gradient_by_lag_matches_a_linear_model_by_hand():
    window = 6
    model = LinearAutoregression(window)
    with torch.no_grad():
        model.linear.weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]))
    inputs, targets = torch.randn(32, window, 1), torch.randn(32, 1)
    gradients = gradient_by_lag(model, inputs, targets)
    # dL/dx_j = 2/B (prediction - target) w_j, so g(k) is proportional to the weight k steps back.
    assert [g / gradients[0] for g in gradients] == pytest.approx([6 / 6, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6])


def test_an_rnns_gradient_vanishes_over_a_long_window():
    model = build_model({"kind": "rnn", "hidden_size": 16, "num_layers": 1, "dropout": 0.0, "input_length": 64}, seed=0)
    inputs = torch.sin(torch.arange(64 * 16, dtype=torch.float32) / 6).reshape(16, 64, 1)
    summary = decay_summary(gradient_by_lag(model, inputs, torch.zeros(16, 1)))
    assert summary["ratio_W_to_1"] < 1e-4 < summary["ratio_8_to_1"]


NAMES = ReportNames(reference="clean", recurrent=("rnn", "gru", "lstm"), linear="ridge", persistence="persistence")


def _summary(example2_final=0.443, rnn_ratio=1e-12, rnn_limit=(8, 16)):
    finding = lambda check: {"check": check, "severity": "error", "message": check}  # noqa: E731
    published = [
        {"example": 1, "setup": "s1", "epochs_run": 10, "first_loss": 0.5, "final_loss": 0.443, "target_variance": 0.443,
         "target_shape": [1000, 1], "warnings": ["w"], "exception": None, "findings": [finding("shapes"), finding("constant")]},
        {"example": 2, "setup": "s2", "epochs_run": 10, "first_loss": 0.5, "final_loss": example2_final, "target_variance": 0.443,
         "target_shape": [1000, 1], "warnings": [], "exception": None,
         "findings": [finding("constant")] if example2_final > 0.4 else []},
        {"example": 3, "setup": "s3", "epochs_run": 0, "first_loss": None, "final_loss": None, "target_variance": 0.443,
         "target_shape": [1000, 1], "warnings": [], "exception": "IndexError: boom", "findings": [finding("crash")]},
    ]
    corrected = [{"example": n, "architecture": {"kind": "rnn", "hidden_size": 10, "num_layers": 1}, "lr": 0.01,
                  "window": 32, "epochs": 5, "test_mse": 1e-5, "target_variance": 0.1, "findings": []} for n in (1, 2, 3)]
    gradient = lambda arch, ratio: {"architecture": arch, "window": 512, "epochs": 5, "val_loss": 0.1,  # noqa: E731
                                    "init_summary": {"ratio_W_to_1": ratio, "ratio_8_to_1": 0.1, "ratio_32_to_1": 1e-3},
                                    "trained_summary": {"ratio_W_to_1": ratio * 10, "ratio_8_to_1": 0.2, "ratio_32_to_1": 1e-2}}
    framing_only = [{"example": n, "lr": 0.01, "window": 32, "epochs": 10, "final_loss": 1e-4, "test_mse": 2e-4,
                     "target_variance": 0.1} for n in (1, 2, 3)]
    return {
        "published": published, "corrected": corrected, "framing_only": framing_only,
        "gradients": [gradient("rnn", rnn_ratio), gradient("lstm", 1e-8)],
        "memory": [{"window": 2, "test_mse": 0.02, "noise_floor_ratio": 2.0, "noise_variance": 0.01},
                   {"window": 32, "test_mse": 0.011, "noise_floor_ratio": 1.1, "noise_variance": 0.01}],
        "extrapolation": [{"framing": "time_to_value", "test_mse": 0.5, "test_variance": 0.5},
                          {"framing": "window", "test_mse": 1e-5, "test_variance": 0.5}],
        "stability": [{"lr": 1.0, "grad_clip": 0.0, "diverged": True, "final_val_loss": None, "max_grad_norm": 1e9},
                      {"lr": 1.0, "grad_clip": 1.0, "diverged": False, "final_val_loss": 0.3, "max_grad_norm": 50.0}],
        "delay": [{"lag": lag, "architecture": cell, "grad_clip": 1.0, "diverged": False, "test_mse": 0.001 if ok else 0.3,
                   "learned": ok} for cell, limit in (("rnn", rnn_limit), ("gru", (32, 64)))
                  for lag, ok in ((8, True), (16, limit[0] >= 16), (32, limit[0] >= 32), (64, limit[0] >= 64))],
        "delay_limits": [{"architecture": "rnn", "grad_clip": 1.0, "longest_learned": rnn_limit[0], "first_failed": rnn_limit[1],
                          "failed_by_diverging": False, "longest_tried": 64},
                         {"architecture": "gru", "grad_clip": 1.0, "longest_learned": 32, "first_failed": 64,
                          "failed_by_diverging": False, "longest_tried": 64}],
        "delay_settings": {"target_variance": 1 / 3, "learned_below": 1 / 30, "learned_fraction": 0.1, "epochs": 5,
                           "samples": 256, "lr": 0.01, "hidden": 8, "forget_bias": None},
        "trend": [{"trend": 0.002, "train_range": [-1.0, 4.0], "test_outside_train": 0.75, "test_variance": 0.9, "architecture": arch,
                   "scaling": scaling, "test_mse": mse, "rollout_mse": mse, "horizon": 100}
                  for arch, scaling, mse in (("rnn", "global", 0.3), ("rnn", "window", 1e-5), ("persistence", "none", 0.01))],
    }


def test_the_report_is_built_from_the_numbers_it_is_given():
    metrics = {"clean": {"ridge": {"test_mse": 7e-14, "rollout_mse_1000": 1e-10},
                         "persistence": {"test_mse": 0.0138, "rollout_mse_1000": 0.66}}}
    text = build_report(_summary(), metrics, NAMES)
    assert "| Example 1's RNN fails to learn sin(x) because of vanishing gradients. | **refuted** |" in text
    assert "Without clipping 1 of 1 runs diverged; with clipping 0 of 1." in text
    assert "From window 2 to 32 the error falls: 0.02 -> 0.011" in text
    assert "7e-14" in text and "figures/gradient_lag_512.png" in text

    assert "| Vanishing gradients stop a plain RNN from learning long lags that a GRU or LSTM learns. | **confirmed** |" in text
    assert "rnn: global scaling 0.3, window normalisation 1e-05" in text

    # Other numbers, other verdicts: an LSTM that did learn confirms claim 2; an rnn that learns
    # every lag of the delay task refutes claim 4.
    verdicts = [row["verdict"] for row in claims(_summary(example2_final=1e-4, rnn_limit=(64, None)), metrics, NAMES)]
    assert verdicts[1] == "**confirmed**" and verdicts[3] == "**refuted**"


def test_an_rnn_that_diverges_on_the_delay_task_does_not_confirm_vanishing_gradients():
    summary = _summary(rnn_limit=(8, 16))
    assert claims(summary, {}, NAMES)[3]["verdict"] == "**confirmed**"
    summary["delay_limits"][0]["failed_by_diverging"] = True
    row = claims(summary, {}, NAMES)[3]
    assert row["verdict"] == "not settled by this run" and "an exploding gradient, not a vanishing one" in row["evidence"]


def test_an_rnn_that_learns_every_lag_refutes_only_where_a_gated_cell_failed():
    summary = _summary(rnn_limit=(64, None))
    assert claims(summary, {}, NAMES)[3]["verdict"] == "**refuted**"
    summary["delay_limits"][1].update(longest_learned=64, first_failed=None)  # the gru learns every lag too
    row = claims(summary, {}, NAMES)[3]
    assert row["verdict"] == "not settled by this run" and "these lags do not tell the cells apart" in row["evidence"]


def test_report_job_writes_the_file_and_logs_it(tracked, tmp_path, params):
    (tmp_path / "summary.json").write_text(json.dumps(_summary()))
    (tmp_path / "metrics.json").write_text("{}")
    (tmp_path / "claims.json").write_text(json.dumps(claims_measured()))
    text = report_job(params, tmp_path / "summary.json", tmp_path / "claims.json", tmp_path / "metrics.json",
                      tmp_path / "reports/REPORT.md")
    assert text.count("| **refuted** |") + text.count("| **confirmed** |") + text.count("| not settled by this run |") == 12
    assert (tmp_path / "reports/REPORT.md").read_text() == text

    client = MlflowClient(tracked)
    experiment = client.get_experiment_by_name(params.mlflow.experiment)
    [run] = client.search_runs([experiment.experiment_id], "attributes.run_name = 'report-all-all'",
                               order_by=["start_time DESC"], max_results=1)
    assert run.data.tags["stage"] == "report" and run.info.status == "FINISHED"
    logged = Path(client.download_artifacts(run.info.run_id, "REPORT.md", str(tmp_path / "download")))
    assert logged.read_text() == text


def test_the_cli_diagnoses_an_example_and_exits_1(tracked, tmp_path, raw_params, capsys):
    from conftest import write_params

    path = write_params(tmp_path / "params.yaml", raw_params)
    assert main(["diagnose", "--params", str(path), "--example", "3", "--epochs", "2"]) == 1
    assert "[error] crash: training crashed with IndexError" in capsys.readouterr().out
