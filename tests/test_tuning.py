"""Optuna searches on a real local SQLite study and a real MLflow store, on tiny params."""

import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import write_params
from mlflow import MlflowClient

import optuna
from sinernn.core.config import parse_params
from sinernn.core.config_data import ParamsError
from sinernn.core.errors import TuneError
from sinernn.core.secrets import redact_url
from sinernn.core.tuned import apply_tuned
from sinernn.jobs.generate import generate_job
from sinernn.jobs.train import train_job
from sinernn.jobs.tune import tune_job
from sinernn.tune.space import suggest
from sinernn.tune.storage import STORAGE_ENV, open_storage, storage_url
from sinernn.tune.study import count_states, make_study, sampler_seed, study_name, study_summary
from sinernn.tune.workers import StallWatch, WorkerSpec, run_worker


@pytest.fixture
def clean_npz(tracked, tmp_path, params):
    npz = tmp_path / "data/processed/clean.npz"
    generate_job(params, "clean", npz)
    return npz


def _experiment_runs(store, experiment):
    client = MlflowClient(store)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id], max_results=1000)


def _study(tmp_path, name):
    storage = open_storage(f"sqlite:///{tmp_path / 'optuna/studies.db'}", 1, 1)
    return optuna.load_study(study_name=name, storage=storage)


@pytest.mark.parametrize("change, message", [
    ({"lr": {"low": 0.1, "high": 0.01}}, "tune.space.lr: low (0.1) must not exceed high (0.01)"),
    ({"grad_clip": []}, "tune.space.grad_clip: List should have at least 1 item"),
    ({"droput": {"low": 0.1, "high": 0.2}}, "tune.space.droput: unknown key"),
    ({"dropout": {"low": -0.1, "high": 0.2}}, "tune.space.dropout.low: Input should be greater than or equal to 0"),
    ({"dropout": {"low": 0.1, "high": 1.0}}, "tune.space.dropout.high: Input should be less than 1"),
    ({"dropout": {"low": 0.3, "high": 0.2}}, "tune.space.dropout: low (0.3) must not exceed high (0.2)"),
    ({"dropout": {"low": 0.0, "high": 0.5, "log": True}}, "tune.space.dropout: log: true needs low > 0"),
    ({"hidden_size": {"low": 0, "high": 8}}, "tune.space.hidden_size.low: Input should be greater than 0"),
    ({"window": {"low": 16, "high": 4000}}, "the longest window"),
])
def test_an_invalid_search_space_is_one_clear_error(raw_params, change, message):
    raw_params["tune"]["space"].update(change)
    with pytest.raises(ParamsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_params(raw_params)


@pytest.mark.parametrize("arch_space, message", [
    ({"deep_lstm": {"num_layers": {"low": 3, "high": 2}}}, "tune.arch_space.deep_lstm.num_layers: low (3) must not exceed high (2)"),
    ({"deep_lstm": {"layers": {"low": 2, "high": 3}}}, "tune.arch_space.deep_lstm.layers: unknown key"),
    ({"deep": {"num_layers": {"low": 2, "high": 3}}}, "tune.arch_space names unknown architecture 'deep'"),
])
def test_an_invalid_arch_space_is_one_clear_error(raw_params, arch_space, message):
    raw_params["tune"]["arch_space"] = arch_space
    with pytest.raises(ParamsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_params(raw_params)


def test_an_arch_space_changes_only_its_architecture(raw_params):
    raw_params["tune"]["arch_space"] = {"deep_lstm": {"num_layers": {"low": 2, "high": 3}}}
    params = parse_params(raw_params)
    assert params.tune.space_for("deep_lstm").num_layers.low == 2
    assert params.tune.space_for("lstm").num_layers == params.tune.space.num_layers
    assert params.tune.space_for("deep_lstm").lr == params.tune.space.lr


def test_the_shared_tune_dataset_of_older_params_is_refused_with_what_replaced_it(raw_params):
    raw_params["tune"]["dataset"] = "clean"
    with pytest.raises(ParamsError, match=r"tune.dataset is gone: every train dataset now has its own studies"):
        parse_params(raw_params)


def test_the_studies_of_two_architectures_do_not_draw_the_same_points(tmp_path, params, clean_npz):
    """One sampler seed for all made rnn, gru and the stacked LSTM end on the very same trial. The
    workers draw the trials: each runs one of its study's, and their first points differ."""
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    storage = open_storage(url, 1, 1)
    drawn = {}
    for arch in ("rnn", "gru"):
        name = f"clean-{arch}"
        make_study(storage, name, params, "clean", 0)
        run_worker(WorkerSpec(params.model_copy(update={"tune": params.tune.model_copy(update={"n_trials": 1})}),
                              "clean", arch, str(clean_npz), url, name, None, 0, 1, None))
        drawn[arch] = optuna.load_study(study_name=name, storage=storage).trials[0].params["lr"]
    assert drawn["rnn"] != drawn["gru"], drawn
    seeds = {sampler_seed(params, d, a, w, n) for d in ("clean", "noisy") for a in ("rnn", "gru") for w, n in ((0, 0), (1, 0), (0, 5))}
    assert len(seeds) == 12 and all(0 <= seed < 2**32 for seed in seeds)


def test_a_study_judged_another_way_is_another_study(params, monkeypatch):
    """Trials judged by the one-step loss are never resumed by trials judged by the rollout."""
    from sinernn.tune import study

    name = study_name(params, "clean", "rnn", "hash")
    monkeypatch.setattr(study, "judged_by", lambda framing: "best_val_loss")
    assert study_name(params, "clean", "rnn", "hash") != name


def test_the_search_keeps_each_architecture_what_it_is(params):
    """The shipped space: lstm stays one layer, the stacked LSTM stays stacked."""
    depths = {}
    for arch_name in ("lstm", "deep_lstm", "gru"):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(20):
            trial = study.ask()
            values = suggest(trial, params.tune.space_for(arch_name), params.architectures[arch_name], params.train)
            depths.setdefault(arch_name, set()).add(apply_tuned(params.architectures[arch_name], params.train, values)[0].num_layers)
            study.tell(trial, 0.0)
    assert depths == {"lstm": {1}, "deep_lstm": {2, 3}, "gru": {1}}


def test_a_trial_is_judged_by_a_free_running_forecast_over_the_validation_split(params, clean_npz):
    """The objective rolls forward from the window before the validation split. Oracles: ridge is
    exact on a clean sine, and persistence repeats the last value before the split."""
    from sinernn.core import data
    from sinernn.core.training import fit_architecture
    from sinernn.tune.objective import validation_rollout_mse

    dataset, _ = data.load(clean_npz)
    cfg = params.train_for("clean")
    fitted = {name: fit_architecture(params.architectures[name], cfg, dataset, 0).model for name in ("ridge", "persistence")}
    assert validation_rollout_mse(fitted["ridge"], dataset, cfg.window) < 1e-10
    last = dataset.scale(dataset.splits["train"].observed)[0, -1]
    expected = float(np.mean((dataset.scale(dataset.splits["val"].observed)[0] - last) ** 2))
    assert validation_rollout_mse(fitted["persistence"], dataset, cfg.window) == pytest.approx(expected, rel=1e-5)


def test_separate_series_are_each_seeded_by_their_own_first_window(tracked, tmp_path, params):
    from sinernn.core import data
    from sinernn.core.models import build_model
    from sinernn.tune.objective import validation_rollout_mse

    npz = tmp_path / "random_freq.npz"
    generate_job(params, "random_freq", npz)
    dataset, _ = data.load(npz)
    window = params.train_for("random_freq").window
    values = dataset.scale(dataset.splits["val"].observed)  # (S, T): separate series, no history before them
    expected = float(np.mean((values[:, window:] - values[:, window - 1 : window]) ** 2))
    persistence = build_model({"kind": "persistence", "input_length": window})
    assert validation_rollout_mse(persistence, dataset, window) == pytest.approx(expected, rel=1e-5)


def test_a_transformer_gets_a_d_model_its_heads_divide(params):
    arch = params.architectures["transformer"]
    overrides = suggest(optuna.trial.FixedTrial({"hidden_size": 13, "num_layers": 1, "lr": 0.01, "grad_clip": 0.0,
                                                 "batch_size": 256, "dropout": 0.2}),
                               params.tune.space, arch, params.train)
    tuned_arch, tuned_train = apply_tuned(arch, params.train, overrides)
    assert tuned_arch.d_model % tuned_arch.nhead == 0 and tuned_arch.d_model >= 13
    assert tuned_train.lr == 0.01 and tuned_train.grad_clip == 0.0 and tuned_train.batch_size == 256
    assert tuned_arch.dropout == 0.2


@pytest.mark.parametrize("arch_name", ["lstm", "deep_lstm", "transformer"])
def test_dropout_is_searched_and_reaches_the_trained_architecture(params, arch_name):
    """The shipped space searches dropout; a trial's value lands in the arch it trains."""
    assert params.tune.space.dropout.low == 0.0 and params.tune.space.dropout.high == 0.5
    arch = params.architectures[arch_name]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    values = suggest(trial, params.tune.space_for(arch_name), arch, params.train)
    assert 0.0 <= trial.params["dropout"] <= 0.5
    assert values["arch"]["dropout"] == trial.params["dropout"]
    assert apply_tuned(arch, params.train, values)[0].dropout == trial.params["dropout"]


def test_the_first_trial_leaves_out_a_value_the_space_cannot_hold(params):
    from sinernn.tune.space import start_point

    space = params.tune.space.model_copy(update={"batch_size": [32, 256]})
    point = start_point(space, params.architectures["lstm"], params.train.model_copy(update={"lr": 0.5}))
    assert "lr" not in point and "batch_size" not in point  # 0.5 above the range, 64 not a choice
    assert point == {"grad_clip": params.train.grad_clip, "hidden_size": 32, "dropout": 0.0}


def test_a_changed_search_space_is_another_study(raw_params):
    """The study name hashes the architecture's whole search space: a study searched without
    dropout is never resumed by trials that search it."""
    names = set()
    for dropout in (None, {"low": 0.0, "high": 0.5}, {"low": 0.0, "high": 0.3}):
        raw_params["tune"]["space"]["dropout"] = dropout
        names.add(study_name(parse_params(raw_params), "clean", "lstm", "hash"))
    assert len(names) == 3


def test_a_study_writes_best_values_and_nests_every_trial_in_mlflow(tracked, tmp_path, params, clean_npz):
    # no pruning: every trial completes, so that fANOVA has trials to share the variance among
    params = params.model_copy(update={"tune": params.tune.model_copy(update={"pruner": "none"})})
    out = tmp_path / "tuned/gru.json"
    result = tune_job(params, "clean", "gru", clean_npz, out)

    assert json.loads(out.read_text()) == result
    study = _study(tmp_path, result["study"])
    # trial 0 is params.yaml's own configuration: the search starts from it, never below it
    gru, train = params.architectures["gru"], params.train_for("clean")
    assert study.trials[0].params == {"lr": train.lr, "grad_clip": train.grad_clip, "batch_size": train.batch_size,
                                      "hidden_size": gru.hidden_size, "dropout": gru.dropout}
    counts = count_states(study)
    assert counts["COMPLETE"] + counts["PRUNED"] == params.tune.n_trials
    assert result["best_value"] == study.best_value
    assert result["arch"]["hidden_size"] == study.best_params["hidden_size"]
    assert result["train"]["lr"] == study.best_params["lr"]

    runs = _experiment_runs(tracked, "sinernn")
    parent = next(r for r in runs if r.info.run_name == "tune-clean-gru")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(study.trials)
    assert {c.data.tags["optuna_state"] for c in children} <= {"complete", "pruned"}
    # every trial, a pruned one too, charts on a log scale: its best validation loss so far
    for child in children:
        trial = study.trials[int(child.data.tags["optuna_trial"])]
        best = min(trial.intermediate_values.values())
        assert child.data.metrics["log10_best_val_loss"] == pytest.approx(math.log10(best), rel=1e-6)
        if trial.state.name == "COMPLETE":  # Optuna's value: the validation rollout's error, not the one-step loss
            assert child.data.metrics["value"] == pytest.approx(trial.value, rel=1e-6)
            assert trial.value == trial.user_attrs["val_rollout_mse"] != best
    (used,) = parent.inputs.dataset_inputs
    assert (used.dataset.name, used.tags[0].value) == ("clean", "validation")
    assert parent.data.metrics["best_value"] == pytest.approx(study.best_value)
    assert parent.data.tags["best.lr"] == str(study.best_params["lr"])
    artifacts = {a.path for a in MlflowClient(tracked).list_artifacts(parent.info.run_id)}
    assert "trials.csv" in artifacts

    # What the search measured: each searched parameter's share of the objective's variance
    # (fANOVA over the complete trials, seeded: the same study gives the same file).
    complete = sorted(t.value for t in study.trials if t.state.name == "COMPLETE")
    assert result["n_complete"] == len(complete) >= 2
    assert result["objective_spread"] == {"best": complete[0], "median": float(np.median(complete))}
    assert set(result["importances"]) == set(study.best_params) >= {"lr", "batch_size", "dropout"}
    assert sum(result["importances"].values()) == pytest.approx(1.0)
    assert study_summary(study, sampler_seed(params, "clean", "gru")) == {
        key: result[key] for key in ("n_complete", "objective_spread", "importances")}
    assert {f"importance.{name}": value for name, value in result["importances"].items()} == {
        key: value for key, value in parent.data.metrics.items() if key.startswith("importance.")}

    # The train stage uses the tuned values over params.yaml.
    summary = train_job(params, "clean", "gru", clean_npz, tmp_path / "models/clean/gru",
                             tmp_path / "h.csv", tuned_path=out)
    assert summary["tuned"]["arch"] == result["arch"]
    trained = MlflowClient(tracked).get_run(summary["mlflow_run_id"])
    assert trained.data.params["arch.hidden_size"] == str(result["arch"]["hidden_size"])


def test_a_study_of_one_complete_trial_has_no_importances_and_says_why(tracked, tmp_path, raw_params, clean_npz):
    raw_params["tune"]["n_trials"] = 1
    result = tune_job(parse_params(raw_params), "clean", "lstm", clean_npz, tmp_path / "lstm.json")
    assert json.loads((tmp_path / "lstm.json").read_text()) == result
    assert result["importances"] is None and result["n_complete"] == 1
    assert result["importances_note"] == "1 complete trial(s): importances need at least 2"
    assert result["objective_spread"] == {"best": result["best_value"], "median": result["best_value"]}


def test_a_study_whose_trials_all_scored_the_same_has_no_importances():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda trial: 0.0 * trial.suggest_float("lr", 1e-3, 1e-2), n_trials=4)
    summary = study_summary(study, 0)
    assert summary["importances"] is None and "zero total variance" in summary["importances_note"]
    fixed = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    fixed.optimize(lambda trial: trial.suggest_categorical("batch_size", [64]) * trial.number, n_trials=4)
    assert study_summary(fixed, 0)["importances_note"] == "no searched parameter can take more than one value"


def test_baselines_and_disabled_tuning_write_empty_values(tracked, tmp_path, raw_params, clean_npz):
    params = parse_params(raw_params)
    assert tune_job(params, "clean", "ridge", clean_npz, tmp_path / "ridge.json")["arch"] == {}
    raw_params["tune"]["enabled"] = False
    disabled = tune_job(parse_params(raw_params), "clean", "lstm", clean_npz, tmp_path / "lstm.json")
    assert disabled == {"arch": {}, "train": {}, "best_value": None, "note": "tune.enabled is false", "dataset": "clean"}


def test_a_rerun_resumes_the_study_instead_of_restarting_it(tracked, tmp_path, raw_params, clean_npz):
    # The session's store holds other tests' runs of this very study (same params, same data, so
    # the same name and tag) in whatever order the tests ran: only the runs this test made count.
    client = MlflowClient(tracked)
    experiment = client.get_experiment_by_name("sinernn")
    earlier = {r.info.run_id for r in _experiment_runs(tracked, "sinernn")} if experiment else set()
    raw_params["tune"]["n_trials"] = 2
    first = tune_job(parse_params(raw_params), "clean", "rnn", clean_npz, tmp_path / "rnn.json")
    raw_params["tune"]["n_trials"] = 4
    second = tune_job(parse_params(raw_params), "clean", "rnn", clean_npz, tmp_path / "rnn.json")
    assert second["study"] == first["study"]
    study = _study(tmp_path, second["study"])
    assert [t.number for t in study.trials] == [0, 1, 2, 3]  # two old trials kept, two new ones
    parents = [r for r in _experiment_runs(tracked, "sinernn") if r.data.tags.get("optuna_study") == second["study"]
               and "mlflow.parentRunId" not in r.data.tags and r.info.run_id not in earlier]
    assert len(parents) == 1  # the resumed study logs under the same MLflow run


@pytest.mark.filterwarnings("ignore:Fixed parameter lr")  # the enqueued lr lies outside the space on purpose
def test_a_diverging_trial_fails_with_its_reason_and_the_study_goes_on(tracked, tmp_path, params, clean_npz):
    name = study_name(params, "clean", "rnn", json.loads(clean_npz.with_suffix(".json").read_text())["sha256"])
    storage = open_storage(f"sqlite:///{tmp_path / 'optuna/studies.db'}", 1, 1)
    study = make_study(storage, name, params, "clean", params.seed)
    study.enqueue_trial({"lr": 1.0e30, "grad_clip": 0.0, "hidden_size": 8, "num_layers": 1})

    tune_job(params, "clean", "rnn", clean_npz, tmp_path / "rnn.json")
    trials = _study(tmp_path, name).trials
    assert trials[0].state.name == "FAIL"
    assert "training diverged" in trials[0].user_attrs["fail_reason"]
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == params.tune.n_trials


def test_a_killed_stage_resumes_and_its_dead_trial_is_retried(tracked, tmp_path, raw_params, clean_npz):
    raw_params["tune"].update(n_trials=3, max_epochs=40, pruner="none")
    path = write_params(tmp_path / "params.yaml", raw_params)
    command = [sys.executable, "-m", "sinernn.cli", "tune", "--params", str(path), "--dataset", "clean", "--arch", "lstm",
               "--data", str(clean_npz), "--out", str(tmp_path / "lstm.json")]
    worker = subprocess.Popen(command, cwd=tmp_path, env=os.environ.copy(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    name = study_name(parse_params(raw_params), "clean", "lstm",
                             json.loads(clean_npz.with_suffix(".json").read_text())["sha256"])
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until a trial is mid-training, then kill without warning
        try:
            if any(t.state.name == "RUNNING" and t.intermediate_values for t in _study(tmp_path, name).trials):
                break
        except KeyError:
            pass  # the study is not created yet
        time.sleep(0.2)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert not (tmp_path / "lstm.json").exists()
    assert any(t.state.name == "RUNNING" for t in _study(tmp_path, name).trials)

    rerun = subprocess.run(command, cwd=tmp_path, env=os.environ.copy(), capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    trials = _study(tmp_path, name).trials
    assert sum(t.state.name == "COMPLETE" for t in trials) == 3
    dead = [t for t in trials if t.state.name == "FAIL"]
    assert len(dead) == 1
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == dead[0].number]
    assert len(retried) == 1 and retried[0].state.name == "COMPLETE"
    assert json.loads((tmp_path / "lstm.json").read_text())["study"] == name


def test_an_unreachable_study_storage_is_one_clear_error_and_writes_nothing(tracked, tmp_path, params, clean_npz):
    out = tmp_path / "tuned/lstm.json"
    with pytest.raises(TuneError, match="cannot open the Optuna storage postgresql://postgres@127.0.0.1:9/test"):
        tune_job(params, "clean", "lstm", clean_npz, out, storage="postgresql://postgres@127.0.0.1:9/test")
    assert not out.exists()


@pytest.mark.parametrize("storage", ["postgresql://sinernn:hunter2@db.example/optuna",
                                     "postgresql://sinernn@db.example/optuna?password=hunter2",
                                     "postgresql://sinernn:hunter2/x@db.example/optuna",  # as SQLAlchemy reads it
                                     "postgresql://sinernn:hunter2#x@db.example/optuna"])
def test_a_password_in_params_is_refused_because_params_go_to_dvc_lock(raw_params, storage):
    raw_params["tune"]["storage"] = storage
    with pytest.raises(ParamsError, match=r"tune: .*storage must not hold a password") as refused:
        parse_params(raw_params)
    assert "hunter2" not in str(refused.value)


@pytest.mark.parametrize("where", ["--storage", "$SINERNN_OPTUNA_STORAGE"])
def test_a_storage_from_the_command_line_or_environment_is_checked_too(params, tmp_path, monkeypatch, where):
    cli = None
    if where == "--storage":
        cli = "mysql://u:hunter2@h/db"
    else:
        monkeypatch.setenv(STORAGE_ENV, "mysql://u:hunter2@h/db")
    with pytest.raises(TuneError, match=rf"^{re.escape(where)}: storage must be null, sqlite") as refused:
        storage_url(params, cli, tmp_path)
    assert "hunter2" not in str(refused.value)


def test_a_relative_sqlite_path_is_kept_at_the_project_root(params, tmp_path):
    """`dvc exp run --temp` runs the stage in a copy; the study must not live (and die) there."""
    assert storage_url(params, "sqlite:///optuna/mine.db", tmp_path) == f"sqlite:///{tmp_path}/optuna/mine.db"
    assert storage_url(params, "sqlite:////abs/mine.db", tmp_path) == "sqlite:////abs/mine.db"


def test_a_password_in_the_environment_never_reaches_messages(tracked, tmp_path, params, clean_npz, monkeypatch):
    monkeypatch.setenv(STORAGE_ENV, "postgresql://postgres@127.0.0.1:9/test?password=hunter2")
    with pytest.raises(TuneError) as refused:
        tune_job(params, "clean", "lstm", clean_npz, tmp_path / "lstm.json")
    assert "hunter2" not in str(refused.value) and "password=***" in str(refused.value)


def test_a_worker_whose_live_trial_was_requeued_as_stalled_goes_on(tracked, tmp_path, raw_params, clean_npz, monkeypatch):
    """Through the gRPC proxy a slow live trial can be judged stalled (tune.stall_timeout) and
    re-queued by a coordinator: its worker must drop it and go on, not crash."""
    from sinernn.core import training

    # No pruner: this is about a trial taken over, and whether a later trial is pruned depends on
    # the data (it changed when validation windows began to reach back), not on the take-over.
    raw_params["tune"].update(n_trials=2, pruner="none")
    params = parse_params(raw_params)
    name = study_name(params, "clean", "rnn", json.loads(clean_npz.with_suffix(".json").read_text())["sha256"])
    url = f"sqlite:///{tmp_path / 'optuna/studies.db'}"
    storage = open_storage(url, 1, 1, 5)
    make_study(storage, name, params, "clean", params.seed)
    real_fit = training.fit_architecture
    taken = []

    class SeenThroughTheProxy(StallWatch):
        def _trials_with_heartbeat(self, study):
            return set()  # the gRPC proxy carries no heartbeats

    def fit_while_a_coordinator_takes_the_first_trial_over(arch, cfg, dataset, seed, on_epoch, description):
        if not taken:  # the first trial: a coordinator fails and re-queues it before its first epoch
            study = optuna.load_study(study_name=name, storage=storage)
            running = [t for t in study.get_trials(deepcopy=False) if t.state.name == "RUNNING"]
            taken.append(SeenThroughTheProxy(storage, 0, 1))
            taken[0].check(study)  # first sight
            assert taken[0].check(study) == [running[0].number]  # no epoch since: stalled
        return real_fit(arch, cfg, dataset, seed, on_epoch, description)

    monkeypatch.setattr(training, "fit_architecture", fit_while_a_coordinator_takes_the_first_trial_over)
    spec = WorkerSpec(params, "clean", "rnn", str(clean_npz), url, name, None, 0, 1, None)
    run_worker(spec)  # raised ValueError("Cannot tell a FAIL trial") before
    trials = optuna.load_study(study_name=name, storage=storage).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    assert trials[0].user_attrs["fail_reason"].startswith("stalled")
    assert trials[1].system_attrs["failed_trial"] == 0 and trials[1].user_attrs["fail_reason"] == ""


def test_one_worker_runs_every_waiting_trial_even_when_they_fill_the_budget(tracked, tmp_path, raw_params, clean_npz):
    """Re-queued trials count toward n_trials (MaxTrialsCallback stops optimize() after the first):
    the worker must still run every one of them before it returns, not leave them for another pass."""
    raw_params["tune"].update(n_trials=2, pruner="none")
    params = parse_params(raw_params)
    name = study_name(params, "clean", "rnn", json.loads(clean_npz.with_suffix(".json").read_text())["sha256"])
    url = f"sqlite:///{tmp_path / 'optuna/studies.db'}"
    study = make_study(open_storage(url, 1, 1, 5), name, params, "clean", params.seed)
    for lr in (0.01, 0.02):  # two WAITING trials: the budget is already full
        study.enqueue_trial({"lr": lr})
    run_worker(WorkerSpec(params, "clean", "rnn", str(clean_npz), url, name, None, 0, 1, None))
    assert [t.state.name for t in study.get_trials(deepcopy=False)] == ["COMPLETE", "COMPLETE"]


@pytest.mark.parametrize("url, shown", [
    ("postgresql://u:hunter%402@h/db", "postgresql://u:***@h/db"),
    ("postgresql://u:pa/ss@h/db", "postgresql://u:***@h/db"),
    ("postgresql://u:p?ss@h/db", "postgresql://u:***@h/db"),
    ("postgresql://u@h/db?password=a%2Bb%21&sslmode=require", "postgresql://u@h/db?password=***&sslmode=require"),
    ("postgresql://u@h/db?sslmode=require&password=x+y", "postgresql://u@h/db?sslmode=require&password=***"),
    ("https://user:pw@tracking.example:5000", "https://user:***@tracking.example:5000"),
    ("postgresql://u@h/db", "postgresql://u@h/db"),
])
def test_a_password_is_hidden_as_it_is_written_encoded_or_not(url, shown):
    assert redact_url(url) == shown


def test_the_progress_bar_counts_finished_trials_of_every_worker_and_shows_the_best(tmp_path):
    import io

    import optuna
    from sinernn.tune.workers import progress_bar

    url = f"sqlite:///{tmp_path / 'bar.db'}"
    study = optuna.create_study(study_name="bar", storage=url)
    shown = io.StringIO()
    with progress_bar(optuna.storages.RDBStorage(url), "bar", 3, enabled=True, every=0.05, file=shown):
        other = optuna.load_study(study_name="bar", storage=url)  # as another worker would
        for value in (0.5, 0.1):
            other.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=value))
        pruned = other.ask()
        other.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    assert "3/3" in shown.getvalue() and "best trial 1: 0.1" in shown.getvalue()
    quiet = io.StringIO()
    with progress_bar(optuna.storages.RDBStorage(url), "bar", 3, enabled=False, file=quiet):
        pass
    assert quiet.getvalue() == "" and len(study.trials) == 3
