"""The real pipeline: `sinernn repro -j 2` (make run) on tiny params in a temporary copy of the project.

Checks what a user sees: the declared outputs, a DVC metrics file shaped
{dataset: {arch: {metric: value}}}, rendered plots, one MLflow run per stage job in the embedded
store at the project root, a no-op second repro (`dvc repro` and `sinernn repro`), and
`dvc exp run --temp` logging to the same store.
"""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, tiny_raw_params
from mlflow import MlflowClient

pytestmark = pytest.mark.e2e

PROJECT_FILES = ["dvc.yaml", "stages", "sinernn", ".dvc/config", ".dvcignore", ".gitignore",
                 "data/external/sample.csv", "data/external/sample.csv.dvc", "data/external/.gitignore"]


def _run(args, cwd, check=True, env_update=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # the stages' `python`
    env.update(env_update or {})
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    for name in PROJECT_FILES:
        source, target = ROOT / name, root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target)
    raw = tiny_raw_params()
    raw["run"] = {"datasets": ["clean", "noisy", "sample_csv"], "train_datasets": ["clean"],
                  "architectures": ["lstm", "persistence"]}
    # The diagnosis uses another dataset than the trained one, so that a retrain (new data for
    # `clean`) re-runs what it must and no more.
    raw["diagnose"].update({f"{use}_dataset": "noisy" for use in ("gradient", "stability", "extrapolation", "memory")})
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    _run(["git", "init", "-q"], root)
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"], root)
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny project"], root)
    first = _run([sys.executable, "-m", "sinernn.cli", "repro", "-j", "2"], root)  # as make run does
    # Commit the results, as a user would: `dvc exp run --temp` starts from the last commit.
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"], root)
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first repro"], root)
    return root, first


def _runs(root, name=None):
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("sinernn")
    query = f"attributes.run_name = '{name}'" if name else ""
    return client.search_runs([experiment.experiment_id], query)


def test_repro_writes_every_declared_output(project):
    root, _ = project
    for path in ["data/processed/clean.npz", "data/processed/clean.json", "data/processed/sample_csv.npz",
                 "models/clean/lstm/model.pt", "models/clean/persistence/model.pt", "models/clean/lstm/train.json",
                 "reports/history/clean/lstm.csv", "reports/eval/clean.json", "reports/predictions/clean/lstm.csv",
                 "reports/rollouts/clean/persistence.csv", "reports/metrics.json", "dvc.lock",
                 "tuned/clean/lstm.json", "tuned/clean/persistence.json", "optuna/studies.db",
                 "reports/diagnosis/summary.json", "reports/figures/published_losses.png", "reports/REPORT.md",
                 "reports/claims/summary.json", "reports/claim_figures/claims_linear.png",
                 "reports/measurements/diagnose/delay-rnn.json", "reports/measurements/diagnose/published-3.json",
                 "reports/measurements/claims/delay_variants-relu.json", "reports/registry/clean.json"]:
        assert (root / path).is_file(), path


def test_metrics_file_shape_and_dvc_metrics_show(project):
    root, _ = project
    metrics = json.loads((root / "reports/metrics.json").read_text())
    assert set(metrics) == {"clean"} and set(metrics["clean"]) == {"lstm", "persistence"}
    for values in metrics["clean"].values():
        assert {"test_mse", "test_mae", "rollout_mse_100", "rollout_mse_1000", "train_seconds"} <= set(values)
    # `dvc metrics show`: one row (file) per dataset x architecture, errors as log10 (docs/tracking.md)
    shown = json.loads(_run(["dvc", "metrics", "show", "--json"], root).stdout)[""]["data"]
    assert set(shown) == {"reports/scores/clean/lstm.json", "reports/scores/clean/persistence.json"}
    row = shown["reports/scores/clean/lstm.json"]["data"]
    # (noise_floor_ratio is null on the clean sine: DVC leaves a null out)
    assert set(row) == {"log10_test_mse", "log10_rollout_mse_1000", "backtest_mase_1000", "train_seconds"}
    assert row["log10_test_mse"] == pytest.approx(math.log10(metrics["clean"]["lstm"]["test_mse"]))
    table = _run(["dvc", "metrics", "show"], root).stdout.splitlines()
    assert table[0].split() == ["Path", "backtest_mase_1000", "log10_rollout_mse_1000", "log10_test_mse", "train_seconds"]
    assert [line.split()[0] for line in table[1:]] == sorted(shown)


def test_dvc_exp_show_has_the_tuned_values_beside_the_scores(project):
    root, _ = project
    (workspace,) = [row for row in json.loads(_run(["dvc", "exp", "show", "--json"], root).stdout)
                    if row["rev"] == "workspace"]
    data = workspace["data"]
    tuned = json.loads((root / "tuned/clean/lstm.json").read_text())
    assert data["params"]["tuned/clean/lstm.json"]["data"]["train"]["lr"] == tuned["train"]["lr"]
    assert "log10_test_mse" in data["metrics"]["reports/scores/clean/lstm.json"]["data"]
    # as docs/tracking.md shows it: the tuned lr and the one-step errors, one line per experiment
    shown = _run(["dvc", "exp", "show", "--no-pager", "--csv", "--drop", ".*", "--keep",
                  r"Experiment|rev|.*clean/.*log10_test_mse|tuned/.*train.lr"], root).stdout.splitlines()
    assert shown[0].split(",") == ["Experiment", "rev", "reports/scores/clean/lstm.json:log10_test_mse",
                                   "reports/scores/clean/persistence.json:log10_test_mse", "tuned/clean/lstm.json:train.lr"]


def test_dvc_plots_render(project):
    root, _ = project
    _run(["dvc", "plots", "show", "-o", "plots_html"], root)
    page = (root / "plots_html/index.html").read_text()
    for plot in ("reports_history_clean_lstm_csv", "reports_predictions_clean_lstm_csv", "reports_rollouts_clean_lstm_csv",
                 "reports_comparison_clean_csv", "reports_backtests_clean_csv"):
        assert f"vegaEmbed('#{plot}'" in page


def test_every_stage_job_is_an_mlflow_run_in_the_root_store(project):
    root, _ = project
    names = {run.info.run_name for run in _runs(root)}
    assert {"generate-clean", "generate-sample_csv", "train-clean-lstm", "train-clean-persistence",
            "evaluate-clean"} <= names
    lstm = _runs(root, "train-clean-lstm")[0]
    # one entity per model: its params and its test scores together, on its dataset (an MLflow input)
    metrics = json.loads((root / "reports/metrics.json").read_text())["clean"]["lstm"]
    assert lstm.data.params["train.lr"] and lstm.data.metrics["test_mse"] == pytest.approx(metrics["test_mse"])
    assert lstm.data.metrics["log10_test_mse"] == pytest.approx(math.log10(metrics["test_mse"]))
    manifest = json.loads((root / "data/processed/clean.json").read_text())
    (used,) = lstm.inputs.dataset_inputs
    assert (used.dataset.name, used.dataset.digest) == ("clean", manifest["sha256"][:16])
    assert lstm.data.tags["mlflow.source.name"] == "stages/train.py"
    search = _runs(root, "tune-clean-lstm")[0]  # the search ran on the dataset it tunes for
    assert [(i.dataset.name, i.tags[0].value) for i in search.inputs.dataset_inputs] == [("clean", "validation")]
    assert lstm.data.tags["git_commit"] != "unknown"
    assert lstm.data.tags["architecture"] == "lstm"
    # Artifacts sit beside mlflow.db, not in a ./mlruns of whichever folder a stage ran in.
    assert lstm.info.artifact_uri.startswith((root / "mlartifacts").as_uri())
    assert not (root / "mlruns").exists()


def test_a_second_repro_does_nothing(project):
    root, first = project
    assert "failed" not in first.stdout and "ran " in first.stdout  # the runner's lines, one per stage
    assert "did not start" not in first.stdout  # every stage was handed to the resident worker
    again = _run(["dvc", "repro"], root)
    assert "Running stage" not in again.stdout
    assert "Data and pipelines are up to date" in again.stdout
    assert "up to date" in _run([sys.executable, "-m", "sinernn.cli", "repro"], root).stdout


def test_a_stage_run_by_the_resident_worker_writes_what_it_writes_in_its_own_process(project, tmp_path):
    """The project was built by `sinernn repro`, every stage a fork of its worker; a training
    reproduced by plain DVC (the command in a process of its own) writes the same bytes."""
    root, _ = project
    copy = tmp_path / "alone"
    shutil.copytree(root, copy, symlinks=True)
    _run(["dvc", "repro", "--force", "--single-item", "train@clean-lstm"], copy)
    for output in ("models/clean/lstm/model.pt", "reports/history/clean/lstm.csv"):
        assert (copy / output).read_bytes() == (root / output).read_bytes(), output


def test_the_train_stage_uses_the_tuned_values(project):
    root, _ = project
    tuned = json.loads((root / "tuned/clean/lstm.json").read_text())
    trained = json.loads((root / "models/clean/lstm/train.json").read_text())
    assert tuned["best_value"] is not None
    assert trained["tuned"] == {"arch": tuned["arch"], "train": tuned["train"]}
    assert json.loads((root / "tuned/clean/persistence.json").read_text())["arch"] == {}


def test_a_new_search_space_invalidates_only_the_searches(project, tmp_path):
    """DVC sees the tune stages change and nothing upstream or beside them; what follows (the
    trainings whose tuned values change) re-runs because their tuned/*.json input changed."""
    root, _ = project
    copy = tmp_path / "space"
    shutil.copytree(root, copy, symlinks=True)
    params = yaml.safe_load((copy / "params.yaml").read_text())
    params["tune"]["space"]["lr"]["high"] = 0.02
    (copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = set(json.loads(_run(["dvc", "status", "--json"], copy).stdout))
    assert changed == {"tune@clean-lstm", "tune@clean-persistence"}


def test_the_report_answers_from_the_measurements_and_is_in_mlflow(project):
    root, _ = project
    report = (root / "reports/REPORT.md").read_text()
    summary = json.loads((root / "reports/diagnosis/summary.json").read_text())
    assert "## The published answer's claims" in report
    table = report.split("## The published answer's claims")[1].split("\n## ")[0]
    assert table.count("\n| ") == 12 + 1, table  # every claim a row, under the header
    assert "claim_figures/claims_linear.png" in report and _runs(root, "claims-all-measurements")
    assert summary["published"][2]["exception"].startswith("IndexError") and "IndexError" in report
    for figure in ("published_losses.png", "gradient_lag_24.png"):
        assert f"figures/{figure}" in report and (root / "reports/figures" / figure).is_file()
    run = _runs(root, "report-all-all")[0]
    assert [a.path for a in MlflowClient(f"sqlite:///{root / 'mlflow.db'}").list_artifacts(run.info.run_id)] == ["REPORT.md"]
    assert _runs(root, "diagnose-published-example3")[0].data.tags["outcome"] == "crashed"


def test_the_best_model_is_the_registered_champion(project):
    root, _ = project
    record = json.loads((root / "reports/registry/clean.json").read_text())
    metrics = json.loads((root / "reports/metrics.json").read_text())["clean"]
    best = min(metrics, key=lambda arch: metrics[arch]["test_mse"])
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("sinernn-clean", "champion")
    assert record["promoted"] and record["challenger"]["architecture"] == best
    assert int(champion.version) == record["registered"][best] and champion.tags["architecture"] == best


def test_an_invalid_param_stops_repro_with_one_clear_line(project, tmp_path):
    root, _ = project
    copy = tmp_path / "bad"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("mlflow.db", "mlartifacts"))
    params = yaml.safe_load((copy / "params.yaml").read_text())
    params["datasets"]["clean"]["period"] = -3.0
    (copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    earlier = {path: (copy / path).read_bytes() for path in ("data/processed/clean.npz", "reports/metrics.json", "dvc.lock")}
    result = _run(["dvc", "repro"], copy, check=False)
    assert result.returncode != 0
    assert "datasets.clean.period: Input should be greater than 0" in result.stdout + result.stderr
    assert {path: (copy / path).read_bytes() for path in earlier} == earlier


# ---- faults on the pipeline (make faults) -----------------------------------------------------


def _status(root) -> dict:
    return json.loads(_run(["dvc", "status", "--json"], root).stdout or "{}")


@pytest.mark.faults(scenario="a module a stage imports edited, then dvc status")
def test_an_edited_module_makes_every_stage_that_imports_it_stale(project, fault):
    """The modules the issue found missing from dvc.yaml: each edit must make its stages stale."""
    root, _ = project
    expect = {"sinernn/core/config.py": "evaluate@clean", "sinernn/core/checkpoint.py": "evaluate@clean",
              "sinernn/core/tuned.py": "train@clean-lstm", "sinernn/core/data.py": "train@clean-lstm",
              "sinernn/track/plots.py": "diagnose", "sinernn/cli.py": "summarize"}
    missed = []
    for module, stage in expect.items():
        path = root / module
        original = path.read_bytes()
        try:
            path.write_bytes(original + b"\n# edited\n")
            if stage not in _status(root):
                missed.append(f"{module} -> {stage}")
        finally:
            path.write_bytes(original)
    fault.record("stale stages reported up to date", len(missed))
    assert not missed
    assert _status(root) == {}  # the edits undone: up to date again


@pytest.mark.parametrize("module, stage", [("sinernn/jobs/train.py", "train"),  # one job
                                           ("sinernn/track/gate.py", "register"),  # the champion gate
                                           ("sinernn/tune/workers.py", "tune")])  # the Optuna worker loop
def test_editing_one_module_makes_only_the_stages_that_import_it_stale(project, module, stage):
    """An edit re-runs the instances of the stages that import the module, and nothing else (the
    rest re-runs only where their outputs change)."""
    root, _ = project
    path = root / module
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"\n# edited\n")
        stale = set(_status(root))
    finally:
        path.write_bytes(original)
    assert stale == set(_matrix_instances(root, stage)) and stale, stale


def _matrix_instances(root, stage: str) -> list[str]:
    listed = _run(["dvc", "stage", "list", "--name-only"], root).stdout.split()
    return [name for name in listed if name == stage or name.startswith(f"{stage}@")]


@pytest.mark.faults(scenario="two dvc repro at once")
def test_two_repros_at_once_corrupt_nothing(project, tmp_path, fault):
    root, _ = project
    copy = tmp_path / "twice"
    shutil.copytree(root, copy, symlinks=True)
    outputs = {path: (copy / path).read_bytes() for path in ("reports/metrics.json", "reports/REPORT.md", "dvc.lock")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    both = [subprocess.Popen(["dvc", "repro", "-f", "-s", "summarize", "report"], cwd=copy, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    results = [(process.wait(timeout=300), process.stdout.read() + process.stderr.read()) for process in both]
    corrupted = {path for path, data in outputs.items() if (copy / path).read_bytes() != data}
    fault.record("outputs corrupted", len(corrupted))
    assert not corrupted
    assert any(code == 0 for code, _ in results), results
    for code, output in results:  # the other one ran after it, or was refused by DVC's locks
        assert code == 0 or "Unable to acquire lock" in output or "is busy, it is being blocked by" in output, output
    assert _status(copy) == {}


@pytest.mark.faults(scenario="dvc repro with the stage SIGKILLed while it swaps its outputs")
def test_a_stage_killed_mid_output_leaves_the_previous_outputs_and_nothing_to_commit(project, tmp_path, fault):
    root, _ = project
    copy = tmp_path / "killed"
    shutil.copytree(root, copy, symlinks=True)
    folder = copy / "reports/predictions/clean"
    before = {p.relative_to(copy): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    killed = _run(["dvc", "repro", "-f", "-s", "evaluate@clean"], copy, check=False,
                  env_update={"SINERNN_FAILPOINT": "folder-swapped"})
    # DVC names the signal as -9, or as the shell's 137 when it ran the command through a shell
    said = killed.stdout + killed.stderr
    assert killed.returncode != 0 and ("-9" in said or "137" in said), said
    after = {p.relative_to(copy): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    fault.record("outputs corrupted", int(after != before))
    assert after == before
    assert _status(copy) == {}  # DVC sees the recorded outputs, not the kill's leftovers
    untracked = _run(["git", "status", "--porcelain", "--untracked-files=all"], copy).stdout.split("\n")
    assert not [line for line in untracked if ".sinernn-" in line]  # the leftovers: ignored by git


# ---- retraining (in copies of the project, so the tests above see the first repro) -----------


@pytest.fixture
def copy(project, tmp_path):
    root, _ = project
    target = tmp_path / "copy"
    shutil.copytree(root, target, symlinks=True)  # the repository, its DVC cache and its stores
    return target


def _sinernn(args, cwd):
    return _run([sys.executable, "-m", "sinernn.cli", *args], cwd, check=False)


def _champion(root):
    return MlflowClient(f"sqlite:///{root / 'mlflow.db'}").get_model_version_by_alias("sinernn-clean", "champion")


def _make_worst_the_champion(root):
    """So that the next run's best must beat it by the margin."""
    record = json.loads((root / "reports/registry/clean.json").read_text())
    worst = max(record["scores"], key=lambda arch: record["scores"][arch])
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    client.set_registered_model_alias("sinernn-clean", "champion", str(record["registered"][worst]))
    return worst


def test_retrain_on_new_data_promotes_a_better_challenger_and_records_it(copy):
    worst = _make_worst_the_champion(copy)
    trained_before = len(_runs(copy, "train-clean-lstm"))
    result = _sinernn(["retrain"], copy)
    assert result.returncode == 0, result.stdout + result.stderr  # 0: a champion was promoted
    entry = json.loads((copy / "reports/retrain.json").read_text())[-1]
    assert entry["outcome"] == "promoted" and entry["overrides"] == {"datasets.clean.snapshot": 1}
    record = entry["decisions"]["clean"]
    assert record["champion"]["architecture"] == worst
    assert record["challenger"]["score"] < record["champion"]["score"] * (1 - record["margin"])
    champion = _champion(copy)
    trained = {arch: json.loads((copy / f"models/clean/{arch}/train.json").read_text())["mlflow_run_id"]
               for arch in record["registered"]}
    assert int(champion.version) == record["challenger"]["version"]
    assert champion.tags["run_id"] == trained[record["challenger"]["architecture"]]  # trained on snapshot 1
    assert yaml.safe_load((copy / "params.yaml").read_text())["datasets"]["clean"]["snapshot"] == 1  # applied
    assert "up to date" in _run(["dvc", "status"], copy).stdout  # params, dvc.lock and outputs agree
    # The experiment ran in a temporary copy (dvc exp run --temp) but logged to the project's store.
    assert not list((copy / ".dvc/tmp").rglob("mlflow.db")) and not list((copy / ".dvc/tmp").rglob("studies.db"))
    assert len(_runs(copy, "train-clean-lstm")) == trained_before + 1
    assert not (copy / ".sinernn-retrain.json").exists()


def test_a_retrain_on_corrupt_data_changes_nothing(copy):
    champion = _champion(copy).version
    before = {path: (copy / path).read_bytes() for path in ("params.yaml", "dvc.lock", "reports/metrics.json")}
    csv = copy / "data/external/sample.csv"
    csv.write_text(csv.read_text().replace("\n5,", "\n5,not-a-number,", 1))

    result = _sinernn(["retrain"], copy)
    assert result.returncode == 2
    assert "sample.csv, row" in result.stderr and "non-numeric" in result.stderr
    assert {path: (copy / path).read_bytes() for path in before} == before
    assert _champion(copy).version == champion
    last = json.loads((copy / "reports/retrain.json").read_text())[-1]
    assert last["outcome"] == "failed" and last["exit_code"] == 2


def test_an_unexpected_error_is_not_read_as_champion_kept(copy):
    """A broken machine (here: no `dvc` on PATH) is neither 1 (kept) nor a user error: 70, recorded."""
    champion = _champion(copy).version
    before = {path: (copy / path).read_bytes() for path in ("params.yaml", "dvc.lock")}
    result = _run([sys.executable, "-m", "sinernn.cli", "retrain"], copy, check=False,
                  env_update={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 70, result.stderr
    assert "sinernn: error: unexpected error: FileNotFoundError" in result.stderr
    last = json.loads((copy / "reports/retrain.json").read_text())[-1]
    assert last["outcome"] == "failed" and last["exit_code"] == 70
    assert {path: (copy / path).read_bytes() for path in before} == before and _champion(copy).version == champion
    assert not (copy / ".sinernn-retrain.json").exists()


def test_a_second_retrain_is_refused_while_one_runs(copy):
    import fcntl

    with open(copy / ".sinernn-retrain.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running retrain holds
        result = _sinernn(["retrain"], copy)
    assert result.returncode == 75
    assert "another retrain is running" in result.stderr


@pytest.mark.faults(scenario="truncated .dvc/tmp/rwlock, then a retrain")
def test_a_corrupt_dvc_lock_file_is_one_line_naming_it_and_the_fix(copy, fault):
    rwlock = copy / ".dvc/tmp/rwlock"
    rwlock.write_text('{"read": {')  # what a crash in the middle of DVC's write leaves
    champion = _champion(copy).version
    result = _sinernn(["retrain"], copy)
    fault.record("champions lost", int(_champion(copy).version != champion))
    assert result.returncode == 70
    assert result.stderr.strip().splitlines()[-1].endswith(
        "remove .dvc/tmp/rwlock (rm .dvc/tmp/rwlock) and run it again")
    assert "Unable to read RWLock-file '.dvc/tmp/rwlock'" in result.stderr


# ---- a retrain killed (SIGKILL) at every awkward moment ----------------------------------------


def _retrain_killed_at(root, failpoint, kill_group=False):
    """Start `sinernn retrain` in a session of its own, with SINERNN_FAILPOINT making it SIGKILL
    itself at `failpoint`; with kill_group, its whole process group is killed there too."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}", SINERNN_FAILPOINT=failpoint)
    process = subprocess.Popen([sys.executable, "-m", "sinernn.cli", "retrain"], cwd=root, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    assert process.wait(timeout=300) == -signal.SIGKILL
    if kill_group:
        os.killpg(process.pid, signal.SIGKILL)
    return process


def _wait_until_unlocked(root, timeout=300):
    """Orphans of a killed retrain hold its lock until they end."""
    import fcntl

    deadline = time.monotonic() + timeout
    with open(root / ".sinernn-retrain.lock", "a+") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(lock, fcntl.LOCK_UN)
                return
            except BlockingIOError:
                assert time.monotonic() < deadline, "the killed retrain's children never released the lock"
                time.sleep(0.5)


def _candidates(root):
    return {json.loads(path.read_text())["mlflow_run_id"] for path in root.glob("models/clean/*/train.json")}


@pytest.mark.faults(scenario="sinernn retrain SIGKILLed at 5 points, then re-run")
def test_a_retrain_killed_at_any_point_loses_no_champion_and_is_finished_by_the_next(copy, fault):
    """Kill points: the pipeline running (all processes killed), the apply (the retrain only: its
    dvc child lives on and holds the lock), after registering, after moving the alias, before
    the history. After each: exactly one champion, of the last applied state or the one before."""
    _make_worst_the_champion(copy)
    params_before = (copy / "params.yaml").read_bytes()
    champion_before = _champion(copy)
    outcome = []

    def check(point, expect_promotion):
        _wait_until_unlocked(copy)
        try:
            champion = _champion(copy)  # raises if there is none
        except Exception:
            fault.record("champions lost", 1)
            raise
        fault.record("champions lost", 0)
        assert champion.tags["run_id"] in _candidates(copy) | {champion_before.tags["run_id"]}
        assert (champion.version != champion_before.version) == expect_promotion, point
        outcome.append((point, champion.version))

    process = _retrain_killed_at(copy, "pipeline")
    assert _sinernn(["retrain"], copy).returncode == 75  # its `dvc exp run` child still runs, locked
    os.killpg(process.pid, signal.SIGKILL)  # and now every process of it
    check("pipeline", expect_promotion=False)

    # The next retrain puts back the params.yaml that `dvc exp run -S` had rewritten while it set
    # the experiment up (else it would draw snapshot 2), then starts anew; it is killed during
    # the apply, which its orphaned `dvc exp apply` finishes.
    _retrain_killed_at(copy, "apply")
    check("apply", expect_promotion=False)
    assert json.loads((copy / "reports/retrain.json").read_text())[-1]["outcome"] == "interrupted"
    applied = yaml.safe_load((copy / "params.yaml").read_text())
    assert applied["datasets"]["clean"]["snapshot"] == 1
    assert {**applied, "datasets": {**applied["datasets"], "clean": {
        k: v for k, v in applied["datasets"]["clean"].items() if k != "snapshot"}}} == yaml.safe_load(params_before)

    # The next retrains finish that one, killed again after registering and after promoting.
    _retrain_killed_at(copy, "registered")
    check("registered", expect_promotion=False)
    _retrain_killed_at(copy, "promoted")
    check("promoted", expect_promotion=True)
    _retrain_killed_at(copy, "recorded")
    check("recorded", expect_promotion=True)

    # The last one finishes the killed retrain, and reports what it did: it moved the champion.
    final = _sinernn(["retrain"], copy)
    assert final.returncode == 0, final.stderr
    assert "up to date" in _run(["dvc", "status"], copy).stdout  # params, dvc.lock and outputs agree
    assert not (copy / ".sinernn-retrain.json").exists()
    history = json.loads((copy / "reports/retrain.json").read_text())
    assert [entry["outcome"] for entry in history][-2:] == ["interrupted", "promoted"]
    assert history[-1]["recovered"] and history[-1]["overrides"] == {"datasets.clean.snapshot": 1}
    assert history[-1]["champions"]["clean"] == {"before": int(champion_before.version), "after": int(_champion(copy).version)}
    client = MlflowClient(f"sqlite:///{copy / 'mlflow.db'}")
    run_ids = [v.run_id for v in client.search_model_versions("name = 'sinernn-clean'")]
    assert len(run_ids) == len(set(run_ids))  # nothing registered twice
    print("kill point -> champion version:", outcome)


def test_the_screenshot_command_photographs_the_real_ui_of_the_run(project, tmp_path):
    """docs/screenshots.py against this project's store: mlflow ui, a headless Chromium, a PNG."""
    sys.path.insert(0, str(ROOT / "docs"))
    from screenshots import BROWSERS, find_browser

    if find_browser() is None:
        pytest.skip(f"no browser on PATH ({', '.join(BROWSERS)}; Debian: apt-get install chromium): "
                    "the screenshot command cannot run here")
    root, _ = project
    _run([sys.executable, str(ROOT / "docs/screenshots.py"), "--store", str(root / "mlflow.db"), "--artifacts",
          str(root / "mlartifacts"), "--out", str(tmp_path), "--shots", "runs"], root)
    image = (tmp_path / "mlflow-runs-clean.png").read_bytes()
    assert image[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(image) > 20_000  # a blank or error page is a few kB; the runs table with its rows is more
