"""The pipeline jobs against a real SQLite MLflow store: outputs, runs, and failures that lose nothing."""

import json
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import write_params
from mlflow import MlflowClient

from sinernn.core.config import parse_params
from sinernn.core.errors import TrackingError, TrainingDiverged
from sinernn.jobs.evaluate import evaluate_job
from sinernn.jobs.generate import generate_job
from sinernn.jobs.summarize import summarize_job
from sinernn.jobs.train import train_job
from sinernn.jobs.tune import tune_job
from sinernn.track.tracking import default_tracking_uri, project_root, stage_run
from sinernn.tune.study import study_name


def _runs(store, name):
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("sinernn")
    return client.search_runs([experiment.experiment_id], f"attributes.run_name = '{name}'", order_by=["start_time DESC"])


def test_generate_train_evaluate_summarize(tracked, tmp_path, params):
    npz = tmp_path / "data/processed/clean.npz"
    manifest = generate_job(params, "clean", npz)
    for arch in ("lstm", "ridge", "persistence"):
        train_job(params, "clean", arch, npz, tmp_path / f"models/clean/{arch}", tmp_path / f"reports/history/clean/{arch}.csv")
    tuned = params.model_copy(update={"run": params.run.model_copy(update={"architectures": ["lstm", "ridge", "persistence"]})})
    results = evaluate_job(tuned, "clean", npz, tmp_path / "models/clean", tmp_path / "reports/eval/clean.json",
                                tmp_path / "reports/predictions/clean", tmp_path / "reports/rollouts/clean")
    merged = summarize_job(tuned, tmp_path / "reports/eval", tmp_path / "reports/metrics.json")

    assert json.loads((tmp_path / "reports/metrics.json").read_text()) == merged
    assert set(merged["clean"]) == {"lstm", "ridge", "persistence"}
    for metrics in results.values():
        assert {"test_mse", "test_mae", "rollout_mse_100", "rollout_mse_1000", "train_seconds"} <= set(metrics)
    assert merged["clean"]["ridge"]["test_mse"] < merged["clean"]["persistence"]["test_mse"]
    assert (tmp_path / "reports/rollouts/clean/lstm.csv").read_text().startswith("step,truth,prediction")

    train_run = _runs(tracked, "train-clean-lstm")[0]
    assert train_run.info.status == "FINISHED"
    assert train_run.data.tags["stage"] == "train"
    assert train_run.data.tags["framing"] == "window"
    assert train_run.data.tags["dataset_hash"] == manifest["sha256"]
    assert train_run.data.params["train.lr"] == str(params.train.lr)
    history = MlflowClient(tracked).get_metric_history(train_run.info.run_id, "val_loss")
    assert [m.step for m in history] == list(range(1, params.train.max_epochs + 1))
    assert not MlflowClient(tracked).list_artifacts(train_run.info.run_id, "plots")  # the UI charts the curves
    models = MlflowClient(tracked).search_logged_models([train_run.info.experiment_id], filter_string=f"source_run_id = '{train_run.info.run_id}'")
    assert len(models) == 1
    # The logged forecaster reloads through MLflow's pyfunc (the pt2 program, nothing unpickled)
    # and forecasts in original units what the checkpoint forecasts after unscaling.
    import mlflow.pyfunc
    import numpy as np
    import torch

    from sinernn.core.checkpoint import load_checkpoint
    served = mlflow.pyfunc.load_model(f"models:/{models[0].model_id}")
    checkpoint, config = load_checkpoint(tmp_path / "models/clean/lstm/model.pt")
    windows = np.sin(np.linspace(0, 6, 5 * params.train.window)).reshape(5, params.train.window).astype(np.float32)
    with torch.no_grad():
        scaled = (torch.as_tensor(windows) - config["scale_mean"]) / config["scale_std"]
        expected = checkpoint(scaled[:, :, None]).numpy() * config["scale_std"] + config["scale_mean"]
    assert np.allclose(served.predict(windows), expected, atol=1e-5)
    assert served.predict(windows, params={"horizon": 7}).shape == (5, 7)



def test_each_model_s_training_run_holds_its_params_curves_and_test_scores(tracked, tmp_path, params):
    """One entity per model, as the MLflow UI compares them: the training run gets the evaluate
    stage's scores (and log10 companions), its logged model the same scores on the test dataset."""
    import math

    npz = tmp_path / "data/processed/clean.npz"
    manifest = generate_job(params, "clean", npz)
    archs = ["gru", "persistence"]
    for arch in archs:
        train_job(params, "clean", arch, npz, tmp_path / f"models/clean/{arch}", tmp_path / f"h/{arch}.csv")
    some = params.model_copy(update={"run": params.run.model_copy(update={"architectures": archs})})
    results = evaluate_job(some, "clean", npz, tmp_path / "models/clean", tmp_path / "eval.json",
                           tmp_path / "predictions", tmp_path / "rollouts", tmp_path / "backtests.csv")
    client = MlflowClient(tracked)
    run = _runs(tracked, "train-clean-gru")[0]
    assert run.data.params["train.lr"] == str(params.train.lr) and run.data.params["arch.hidden_size"] == "32"
    for key, value in results["gru"].items():
        if isinstance(value, float) and key != "train_seconds":
            assert run.data.metrics[key] == pytest.approx(value, rel=1e-12), key
    assert run.data.metrics["log10_test_mse"] == pytest.approx(math.log10(results["gru"]["test_mse"]), rel=1e-12)
    assert run.data.metrics["log10_rollout_mse_1000"] == pytest.approx(math.log10(results["gru"]["rollout_mse_1000"]))
    assert "log10_noise_floor_ratio" not in run.data.metrics  # clean: no noise, no ratio
    assert len(client.get_metric_history(run.info.run_id, "val_loss")) == params.train.max_epochs
    assert {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")} == {
        "evaluation/predictions.png", "evaluation/rollout.png", "evaluation/backtest.png"}
    # the dataset as an input: the DVC file as source, its content hash as digest
    (used,) = run.inputs.dataset_inputs
    assert (used.dataset.name, used.dataset.digest) == ("clean", manifest["sha256"][:16])
    assert json.loads(used.dataset.source)["uri"] == "data/processed/clean.npz"
    assert {tag.key: tag.value for tag in used.tags}["mlflow.data.context"] == "training"
    assert run.data.tags["mlflow.source.name"] and run.data.tags["mlflow.source.git.commit"]
    # MLflow 3's UI opens the experiment on its runs (model training), not on GenAI traces
    assert client.get_experiment(run.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    # the logged model: the same scores, on the test dataset, and the training params
    (model,) = client.search_logged_models([run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'")
    scores = {metric.key: metric for metric in model.metrics}
    assert scores["test_mse"].value == pytest.approx(results["gru"]["test_mse"], rel=1e-12)
    assert (scores["log10_test_mse"].dataset_name, scores["log10_test_mse"].dataset_digest) == ("clean", used.dataset.digest)
    assert model.params["train.lr"] == str(params.train.lr)
    # the stage's own run compares the models: every score and the charts, on the test context
    stage = _runs(tracked, "evaluate-clean")[0]
    assert {tag.key: tag.value for tag in stage.inputs.dataset_inputs[0].tags}["mlflow.data.context"] == "test"
    assert {a.path for a in client.list_artifacts(stage.info.run_id, "plots")} == {
        "plots/test_mse_by_architecture.png", "plots/backtest_by_horizon.png"}
    assert not _runs(tracked, "evaluate-clean-gru")  # no run per model beside the training run


def test_scores_of_a_model_whose_training_run_is_gone_get_a_run_of_their_own(tracked, tmp_path, params):
    npz = tmp_path / "clean.npz"
    generate_job(params, "clean", npz)
    train_job(params, "clean", "ridge", npz, tmp_path / "models/ridge", tmp_path / "h.csv")
    MlflowClient(tracked).delete_run(_runs(tracked, "train-clean-ridge")[0].info.run_id)
    some = params.model_copy(update={"run": params.run.model_copy(update={"architectures": ["ridge"]})})
    results = evaluate_job(some, "clean", npz, tmp_path / "models", tmp_path / "eval.json", tmp_path / "p", tmp_path / "r")
    (own,) = _runs(tracked, "evaluate-clean-ridge")
    assert own.data.metrics["test_mse"] == pytest.approx(results["ridge"]["test_mse"])
    assert own.data.tags["train_run_missing"] == "yes"
    assert own.data.tags["mlflow.parentRunId"] == _runs(tracked, "evaluate-clean")[0].info.run_id


def test_a_diverging_run_writes_nothing_and_is_marked_failed(tracked, tmp_path, raw_params):
    params = parse_params(raw_params)
    npz = tmp_path / "data/processed/clean.npz"
    generate_job(params, "clean", npz)
    model_dir = tmp_path / "models/clean/rnn"
    train_job(params, "clean", "rnn", npz, model_dir, tmp_path / "h.csv")
    before = (model_dir / "model.pt").read_bytes()

    raw_params["train"].update(lr=1.0e30, grad_clip=0.0)
    with pytest.raises(TrainingDiverged, match="lower train.lr"):
        train_job(parse_params(raw_params), "clean", "rnn", npz, model_dir, tmp_path / "h.csv")
    assert (model_dir / "model.pt").read_bytes() == before  # the earlier result is untouched
    assert not list(model_dir.glob(".*tmp"))
    failed = _runs(tracked, "train-clean-rnn")[0]
    assert failed.info.status == "FAILED"
    assert "diverged" in failed.data.tags["error"]


def test_the_cli_reports_divergence_with_exit_code_3(tracked, tmp_path, raw_params):
    raw_params["train"].update(lr=1.0e30, grad_clip=0.0)
    path = write_params(tmp_path / "params.yaml", raw_params)
    subprocess.run([sys.executable, "-m", "sinernn.cli", "generate", "--dataset", "clean", "--params", str(path)], check=True, capture_output=True)
    result = subprocess.run([sys.executable, "-m", "sinernn.cli", "train", "--dataset", "clean", "--arch", "rnn", "--params", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 3
    assert result.stderr.strip().splitlines()[-1].startswith("sinernn: error: training diverged")
    assert not (tmp_path / "models").exists()


def test_an_unreachable_tracking_server_fails_fast_and_clearly(monkeypatch, tmp_path, params):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.chdir(tmp_path)
    started = time.monotonic()
    with pytest.raises(TrackingError, match=f"127.0.0.1:{port}"):
        generate_job(params, "clean", tmp_path / "clean.npz")
    assert not (tmp_path / "clean.npz").exists()
    assert time.monotonic() - started < 60


def test_stage_run_marks_failures_and_records_the_error(tracked):
    with pytest.raises(RuntimeError):
        with stage_run("sinernn", "unit-failure", {"stage": "unit"}):
            raise RuntimeError("boom")
    run = _runs(tracked, "unit-failure")[0]
    assert run.info.status == "FAILED" and run.data.tags["error"] == "RuntimeError: boom"


def test_default_store_follows_dvc_root(monkeypatch, tmp_path):
    # `dvc exp run --temp` runs in .dvc/tmp/exps/...; DVC_ROOT still names the real repository.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "repo"))
    assert project_root() == tmp_path / "repo"
    assert default_tracking_uri(project_root()) == f"sqlite:///{tmp_path / 'repo' / 'mlflow.db'}"


def test_a_dataset_s_own_window_and_scaling_reach_training_evaluation_the_export_and_predict(tracked, tmp_path, raw_params):
    # values searched on clean (by hand: the pipeline tunes noisy itself): noisy's own window wins
    raw_params["train"]["scaling"] = "global"
    raw_params["datasets"]["noisy"].update(train={"window": 8, "scaling": "diff"}, season=5)
    raw_params["run"]["architectures"] = ["gru", "seasonal_naive"]
    raw_params["evaluate"]["horizons"] = [1, 10, 2000]  # 2000: longer than the 1040-value test split
    params = parse_params(raw_params)
    npz = tmp_path / "data/processed/noisy.npz"
    generate_job(params, "noisy", npz)
    tuned = tmp_path / "tuned.json"
    tuned.write_text(json.dumps({"arch": {}, "train": {"window": 12, "lr": 0.002}, "dataset": "clean"}))
    for arch in params.run.architectures:
        summary = train_job(params, "noisy", arch, npz, tmp_path / f"models/noisy/{arch}", tmp_path / f"h/{arch}.csv",
                                 tuned_path=tuned)
        assert (summary["window"], summary["scaling"]) == (8, "diff")  # train's: 16, global; tuned: 12
    from sinernn.core.checkpoint import load_checkpoint
    assert load_checkpoint(tmp_path / "models/noisy/seasonal_naive/model.pt")[1]["season"] == 5
    gru, config = load_checkpoint(tmp_path / "models/noisy/gru/model.pt")
    assert config["scaling"] == "diff" and config["diff_scale"] > 0

    results = evaluate_job(params, "noisy", npz, tmp_path / "models/noisy", tmp_path / "eval.json",
                                tmp_path / "predictions", tmp_path / "rollouts", tmp_path / "backtests.csv")
    assert all(metrics["backtest_mase_10"] is not None for metrics in results.values())
    assert results["gru"]["rollout_mse_2000"] is None and "rollout_mse_2000" in results["gru"]["skipped"]
    assert json.loads((tmp_path / "eval.json").read_text())["gru"]["skipped"] == results["gru"]["skipped"]
    assert (tmp_path / "backtests.csv").read_text().splitlines()[0] == "horizon,gru,seasonal_naive"  # dvc plots
    scored = _runs(tracked, "train-noisy-gru")[0]
    assert scored.data.tags["skipped"] == results["gru"]["skipped"]
    steps = MlflowClient(tracked).get_metric_history(scored.info.run_id, "backtest_mae_by_horizon")
    assert [m.step for m in steps][:3] == [1, 2, 3]

    # the exported forecaster (what the registry serves) differences its 8 values as the checkpoint does
    import mlflow.pyfunc
    import numpy as np
    import torch
    train_run = _runs(tracked, "train-noisy-gru")[0]
    model_id = MlflowClient(tracked).search_logged_models(
        [train_run.info.experiment_id], filter_string=f"source_run_id = '{train_run.info.run_id}'")[0].model_id
    windows = (np.linspace(0, 1, 8)[None, :] + np.arange(3)[:, None]).astype(np.float32)  # rising, level 0 to 3
    with torch.no_grad():
        scaled = (torch.as_tensor(windows) - config["scale_mean"]) / config["scale_std"]
        expected = gru(scaled[:, :, None]).numpy() * config["scale_std"] + config["scale_mean"]
    np.testing.assert_allclose(mlflow.pyfunc.load_model(f"models:/{model_id}").predict(windows), expected, atol=1e-5)

    # predict reads the window from the model: 8 values, not train.window's 16
    write_params(tmp_path / "params.yaml", raw_params)

    def predict(values):
        return subprocess.run([sys.executable, "-m", "sinernn.cli", "predict", "--model", "models/noisy/gru/model.pt",
                               "--horizon", "2"], input="value\n" + "\n".join(map(str, values)) + "\n",
                              capture_output=True, text=True, cwd=tmp_path)
    short = predict([1.0] * 7)
    assert short.returncode != 0 and "needs the last 8" in short.stderr
    assert predict([1.0] * 8).stdout.splitlines()[0] == "step,prediction"


def test_a_csv_with_gaps_records_how_many_were_filled_in_mlflow(tracked, tmp_path, raw_params):
    (tmp_path / "data/external/gaps.csv").write_text("value\n" + "".join(
        "\n" if i in (50, 51, 120) else f"{np.sin(i / 5)}\n" for i in range(300)))
    raw_params["datasets"]["gaps"] = {"source": "csv", "path": "data/external/gaps.csv", "column": "value",
                                      "missing": "interpolate"}
    raw_params["run"]["datasets"].append("gaps")
    params = parse_params(raw_params)
    manifest = generate_job(params, "gaps", tmp_path / "data/processed/gaps.npz")
    assert manifest["csv"]["n_filled"] == 3
    assert _runs(tracked, "generate-gaps")[0].data.metrics["n_filled"] == 3


def test_tuning_trains_with_the_tuned_dataset_s_own_settings(tracked, tmp_path, raw_params, monkeypatch):
    from sinernn.core import training

    raw_params["datasets"]["clean"]["train"] = {"window": 8, "scaling": "diff"}
    raw_params["tune"].update(n_trials=1)
    params = parse_params(raw_params)
    npz = tmp_path / "data/processed/clean.npz"
    generate_job(params, "clean", npz)
    seen = []
    real_fit = training.fit_architecture
    monkeypatch.setattr(training, "fit_architecture", lambda arch, cfg, *args, **kw: seen.append(cfg) or real_fit(arch, cfg, *args, **kw))
    tune_job(params, "clean", "rnn", npz, tmp_path / "tuned/clean/rnn.json")
    assert seen and all((cfg.window, cfg.scaling) == (8, "diff") for cfg in seen)
    raw_params["datasets"]["clean"]["train"] = {"window": 8, "scaling": "window"}
    assert study_name(parse_params(raw_params), "clean", "rnn", "hash") != study_name(params, "clean", "rnn", "hash")


def test_a_deleted_experiment_is_named_with_how_to_restore_it(tracked):
    client = MlflowClient(tracked)
    experiment_id = client.create_experiment("sinernn-deleted")
    client.delete_experiment(experiment_id)
    with pytest.raises(TrackingError, match=f"'sinernn-deleted' is deleted: restore it .*--experiment-id {experiment_id}"):
        with stage_run("sinernn-deleted", "never", {"stage": "unit"}):
            pass


def test_scores_never_land_in_a_training_run_of_another_dvc_experiment_or_on_a_model_of_another_store(
        tracked, tmp_path, params, monkeypatch):
    """`dvc exp run -S evaluate...` skips the training: its scores must not rewrite the workspace's
    run (and maybe the champion's logged model); a store that never held the model takes them too."""
    npz = tmp_path / "clean.npz"
    generate_job(params, "clean", npz)
    train_job(params, "clean", "gru", npz, tmp_path / "models/gru", tmp_path / "h.csv")
    trained = _runs(tracked, "train-clean-gru")[0]
    some = params.model_copy(update={"run": params.run.model_copy(update={"architectures": ["gru"]})})

    monkeypatch.setenv("DVC_EXP_NAME", "exp-1")
    results = evaluate_job(some, "clean", npz, tmp_path / "models", tmp_path / "e.json", tmp_path / "p", tmp_path / "r")
    assert "test_mse" not in MlflowClient(tracked).get_run(trained.info.run_id).data.metrics
    own = _runs(tracked, "evaluate-clean-gru")[0]
    assert own.data.metrics["test_mse"] == pytest.approx(results["gru"]["test_mse"])
    assert own.data.tags["dvc_experiment"] == "exp-1"

    monkeypatch.delenv("DVC_EXP_NAME")
    other = f"sqlite:///{tmp_path / 'other.db'}"  # MLflow refuses a logged model it does not hold
    monkeypatch.setenv("MLFLOW_TRACKING_URI", other)
    evaluate_job(some, "clean", npz, tmp_path / "models", tmp_path / "e.json", tmp_path / "p", tmp_path / "r")
    assert _runs(other, "evaluate-clean-gru")[0].data.metrics["test_mse"] == pytest.approx(results["gru"]["test_mse"])
