"""Readable scales: log10 companions of the error metrics and the files `dvc metrics show` and `dvc plots` read."""

import csv
import io
import json
import math

import pytest

from sinernn.core.scores import headline, is_error, log10_companions
from sinernn.jobs.summarize import summarize_job


def test_every_error_metric_gets_its_log10_and_nothing_else_does():
    metrics = {"test_mse": 5.4e-8, "backtest_mase_10": 0.0083, "best_val_loss": 1e-3, "noise_floor_ratio": 1.02,
               "train_seconds": 10.0, "epochs": 60, "rollout_mse_1000": None, "test_mae": 0.0}
    companions = log10_companions(metrics)
    assert set(companions) == {"log10_test_mse", "log10_backtest_mase_10", "log10_best_val_loss",
                               "log10_noise_floor_ratio"}
    for key, value in companions.items():
        assert 10 ** value == pytest.approx(metrics[key.removeprefix("log10_")], rel=1e-12)
    # 1e-7 and 1e-5 two units apart, where a linear axis puts both at 0 beside an error of 1
    assert log10_companions({"test_mse": 1e-5})["log10_test_mse"] - log10_companions({"test_mse": 1e-7})["log10_test_mse"] == pytest.approx(2)
    assert not is_error("train_seconds") and not is_error("mlflow_model_id") and is_error("rollout_mse_10")


def test_a_model_s_row_holds_its_headline_figures():
    metrics = {"test_mse": 1e-6, "rollout_mse_10": 1e-4, "rollout_mse_100": 1e-2, "backtest_mase_100": 0.5,
               "noise_floor_ratio": None, "train_seconds": 3.0}
    assert headline(metrics, [10, 100]) == {"log10_test_mse": pytest.approx(-6), "log10_rollout_mse_100": pytest.approx(-2),
                                            "backtest_mase_100": 0.5, "noise_floor_ratio": None, "train_seconds": 3.0}
    assert headline({"test_mse": 0.0}, [])["log10_test_mse"] is None  # an exact 0: no logarithm, no invented one


def test_summarize_writes_one_scores_file_per_model_and_one_comparison_table_per_dataset(tmp_path, params):
    evaluations = {"clean": {"gru": {"test_mse": 1e-7, "rollout_mse_1000": 1e-5, "backtest_mase_1000": 0.01,
                                     "noise_floor_ratio": None, "train_seconds": 9.0},
                             "persistence": {"test_mse": 0.02, "rollout_mse_1000": None, "backtest_mase_1000": 1.1,
                                             "noise_floor_ratio": None, "train_seconds": 0.1}}}
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval/clean.json").write_text(json.dumps(evaluations["clean"]))
    one = params.model_copy(update={"run": params.run.model_copy(update={"train_datasets": ["clean"]}),
                                    "evaluate": params.evaluate.model_copy(update={"horizons": [1, 1000]})})
    merged = summarize_job(one, tmp_path / "eval", tmp_path / "metrics.json", tmp_path / "scores", tmp_path / "comparison")
    assert merged == evaluations
    assert sorted(p.relative_to(tmp_path / "scores").as_posix() for p in (tmp_path / "scores").rglob("*.json")) == [
        "clean/gru.json", "clean/persistence.json"]
    gru = json.loads((tmp_path / "scores/clean/gru.json").read_text())
    assert gru["log10_test_mse"] == pytest.approx(-7) and gru["log10_rollout_mse_1000"] == pytest.approx(-5)
    assert json.loads((tmp_path / "scores/clean/persistence.json").read_text())["log10_rollout_mse_1000"] is None
    text = (tmp_path / "comparison/clean.csv").read_text()
    assert text.splitlines()[0] == "architecture,log10_test_mse,log10_rollout_mse_1000"
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["architecture"] for row in rows] == ["gru", "persistence"]
    assert float(rows[1]["log10_test_mse"]) == pytest.approx(math.log10(0.02)) and rows[1]["log10_rollout_mse_1000"] == ""
