"""One function per pipeline job: validated params and paths in, outputs and one MLflow run out.

The CLI (`sinernn generate|train|evaluate|summarize`) and the DVC stage scripts both call these,
so a job behaves the same inside and outside DVC. Outputs are written last and atomically: a job
that fails leaves no half-written file and the previous outputs untouched.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from sinernn import data
from sinernn.config import Params
from sinernn.errors import DataError
from sinernn.files import replace_dir, staged_dir, write_csv, write_json
from sinernn.files import write_text as write_text_file
from sinernn.tracking import project_root, stage_run


def _flat(prefix: str, values: dict) -> dict:
    return {f"{prefix}.{key}": value for key, value in values.items()}


def generate_job(params: Params, name: str, npz_path: Path) -> dict:
    """Build dataset `name` and write it as .npz plus its .json manifest beside it."""
    cfg = params.datasets[name]
    tags = {"stage": "generate", "dataset": name, "source": cfg.source}
    with stage_run(params.mlflow.experiment, f"generate-{name}", tags) as run:
        dataset = data.generate(name, cfg, params.seed, params.train_for(name).window, project_root())
        manifest = data.save(dataset, cfg, params.seed, npz_path, npz_path.with_suffix(".json"))
        run.client.set_tag(run.run_id, "dataset_hash", manifest["sha256"])
        run.log_params({"seed": params.seed, **_flat("data", cfg.model_dump())})
        filled = {"n_filled": dataset.source_info["n_filled"]} if "n_filled" in dataset.source_info else {}
        run.log_metrics({**{f"n_{split}": part.observed.size for split, part in dataset.splits.items()}, **filled})
        run.log_artifact(npz_path.with_suffix(".json"))
    return manifest


def train_job(
    params: Params, dataset_name: str, arch_name: str, data_path: Path, model_dir: Path, history_path: Path,
    tuned_path: Path | None = None,
) -> dict:
    """Train one architecture on one dataset; writes model.pt and train.json to model_dir.

    tuned_path: the `tune` stage's best values for this architecture, applied over params.yaml.
    """
    import torch

    from sinernn.checkpoint import save_checkpoint
    from sinernn.training import fit_architecture
    from sinernn.tuning import apply_tuned, read_tuned

    dataset, manifest = data.load(data_path)
    tuned = read_tuned(tuned_path) if tuned_path else {}
    # params.yaml's train, then the dataset's own settings, then the tuned values; on a dataset the
    # search did not run on, its own settings win again (a window tuned on another series is not its)
    arch, cfg = apply_tuned(params.architectures[arch_name], params.train_for(dataset_name), tuned)
    own = params.datasets[dataset_name].train.model_dump(exclude_none=True) if dataset_name != params.tune.dataset else {}
    cfg = cfg.model_copy(update=own)
    torch.set_num_threads(cfg.threads)

    tags = {
        "stage": "train", "dataset": dataset_name, "architecture": arch_name, "kind": arch.kind,
        "framing": cfg.framing, "dataset_hash": manifest["sha256"],
    }
    run_name = f"train-{dataset_name}-{arch_name}"
    with stage_run(params.mlflow.experiment, run_name, tags) as run:
        run.log_params({"seed": params.seed, **_flat("arch", arch.model_dump()), **_flat("train", cfg.model_dump())})
        run.client.set_tag(run.run_id, "tuned", "yes" if tuned.get("best_value") is not None else "no")
        fitted = fit_architecture(arch, cfg, dataset, params.seed, [run.log_epoch], run_name,
                                  season=params.datasets[dataset_name].season)
        model, result = fitted.model, fitted.result
        # What a forecast needs besides the weights: how the inputs were framed and scaled.
        model_config = {**fitted.model_config, "framing": cfg.framing, "window": cfg.window,
                        "scale_mean": dataset.scale_mean, "scale_std": dataset.scale_std}
        summary = {
            "train_seconds": result.seconds,
            "epochs": len(result.history),
            "best_epoch": result.best_epoch,
            "best_val_loss": result.best_val_loss,
            "framing": cfg.framing,
            "window": cfg.window,
            "scaling": cfg.scaling,
            "dataset_hash": manifest["sha256"],
            "mlflow_run_id": run.run_id,
            "tuned": {"arch": tuned.get("arch", {}),  # the tuned values used (not those the dataset's own replaced)
                      "train": {k: v for k, v in tuned.get("train", {}).items() if k not in own}},
        }
        run.log_metrics({"train_seconds": result.seconds, "best_val_loss": result.best_val_loss})
        with tempfile.TemporaryDirectory() as scratch:
            from sinernn.plots import loss_curves

            loss_curves(result.history_rows(), run_name, Path(scratch) / "loss_curves.png")
            run.log_artifact(Path(scratch) / "loss_curves.png", "plots")
        if params.mlflow.log_models and cfg.framing == "window":  # only a window model forecasts a series
            from sinernn.serving import Forecaster, example_windows

            summary["mlflow_model_id"] = run.log_forecaster(
                Forecaster(model, dataset.scale_mean, dataset.scale_std), example_windows(dataset, cfg.window),
                {"window": cfg.window, "dataset": dataset_name, "architecture": arch_name})
        # DVC outputs last: a failure above leaves the previous ones as they were.
        save_checkpoint(model_dir / "model.pt", model, model_config)
        write_json(model_dir / "train.json", summary)
        write_csv(history_path, result.history_rows())
    return summary


def tune_job(
    params: Params, arch_name: str, data_path: Path, out_path: Path,
    workers: int | None = None, storage: str | None = None,
) -> dict:
    """Search one architecture's hyperparameters; write the best values to out_path.

    Baselines (nothing to tune) and tune.enabled: false write {"arch": {}, "train": {}}, so the
    train stage always finds a file and uses params.yaml's values unchanged.
    """
    import optuna

    from sinernn import tuning

    arch = params.architectures[arch_name]
    if not params.tune.enabled or not tuning.tunable(arch):
        # The baselines' note does not depend on tune.enabled, so toggling it leaves them alone.
        reason = f"{arch.kind}: nothing to tune" if not tuning.tunable(arch) else "tune.enabled is false"
        payload = {"arch": {}, "train": {}, "best_value": None, "note": reason}
        write_json(out_path, payload)
        return payload

    _, manifest = data.load(data_path)  # a missing or corrupt file stops here, before any trial
    url = tuning.storage_url(params, storage, project_root())
    name = tuning.study_name(params, arch_name, manifest["sha256"])
    opened = tuning.open_storage(url, params.tune.heartbeat_interval, params.tune.max_retry, params.tune.sqlite_lock_wait)
    study, created = tuning.open_study(opened, name, params)
    # A resumed study, or one another machine created: log under its existing MLflow run.
    # (A study with no trials yet was created by another coordinator an instant ago: give it time
    # to record its run, or each machine would open its own.)
    parent_id = None if created else tuning.wait_for_user_attr(
        study, "mlflow_parent_run_id", 30 if not study.trials else 0)
    tags = {"stage": "tune", "dataset": params.tune.dataset, "architecture": arch_name, "kind": arch.kind,
            "dataset_hash": manifest["sha256"], "optuna_study": name}
    with stage_run(params.mlflow.experiment, f"tune-{params.tune.dataset}-{arch_name}", tags,
                   resume_run_id=parent_id) as run:
        if parent_id is None:
            study.set_user_attr("mlflow_parent_run_id", run.run_id)
            run.log_params({"storage": tuning._redact(url), **_flat("tune", params.tune.model_dump(exclude={"space", "storage"})),
                            **_flat("space", params.tune.space_for(arch_name).model_dump())})
        tuning.run_study(params, arch_name, data_path, url, name, run.run_id, workers or params.tune.workers)

        study = optuna.load_study(study_name=name, storage=opened)
        counts = tuning.count_states(study)
        if counts["COMPLETE"] == 0:
            raise tuning.TuneError(f"study {name}: no trial completed ({counts}); see the trials' fail_reason")
        best = study.best_trial
        overrides = tuning.best_overrides(study, params, arch_name)
        rows = tuning.trial_rows(study)
        epochs = sum(row["epochs"] or 0 for row in rows)
        # Tags, not params: a resumed study may find a better trial, and MLflow params are immutable.
        for key, value in best.params.items():
            run.client.set_tag(run.run_id, f"best.{key}", str(value))
        run.client.set_tag(run.run_id, "best_trial", str(best.number))
        run.log_metrics({"best_value": best.value, "n_complete": counts["COMPLETE"], "n_pruned": counts["PRUNED"],
                         "n_failed": counts["FAIL"], "epochs_trained": epochs}, step=len(rows))
        with tempfile.TemporaryDirectory() as scratch:
            scratch = Path(scratch)
            write_csv(scratch / "trials.csv", rows)
            run.log_artifact(scratch / "trials.csv")
            for plot in tuning.study_plots(study, scratch):
                run.log_artifact(plot, "plots")
        payload = {**overrides, "best_value": best.value, "best_trial": best.number, "study": name}
        write_json(out_path, payload)
    return payload


def evaluate_job(
    params: Params, dataset_name: str, data_path: Path, models_dir: Path,
    metrics_path: Path, predictions_dir: Path, rollouts_dir: Path, backtest_path: Path | None = None,
) -> dict:
    """Score every architecture of `run.architectures` trained on one dataset.

    backtest_path: a CSV of the backtest MAE per step ahead, one column per architecture, for
    `dvc plots`.
    """
    from sinernn.checkpoint import load_checkpoint
    from sinernn.evaluation import evaluate
    from sinernn.plots import lines, truth_vs_prediction

    dataset, manifest = data.load(data_path)
    season = params.datasets[dataset_name].season
    results, predictions, rollouts, backtests = {}, {}, {}, {}
    for arch_name in params.run.architectures:
        model, config = load_checkpoint(models_dir / arch_name / "model.pt")
        summary = _read_summary(models_dir / arch_name / "train.json")
        tags = {
            "stage": "evaluate", "dataset": dataset_name, "architecture": arch_name, "kind": config["kind"],
            "framing": summary["framing"], "dataset_hash": manifest["sha256"],
            "train_run_id": summary["mlflow_run_id"],
        }
        run_name = f"evaluate-{dataset_name}-{arch_name}"
        with stage_run(params.mlflow.experiment, run_name, tags) as run:
            evaluation = evaluate(model, dataset, summary["framing"], summary["window"], params.evaluate.horizons,
                                  season, params.evaluate.backtest_stride)
            metrics = {**evaluation.metrics, "train_seconds": summary["train_seconds"]}
            run.log_metrics(metrics)
            if evaluation.skipped:  # never silently: in the metrics file, the run and the log
                metrics["skipped"] = "; ".join(evaluation.skipped)
                run.client.set_tag(run.run_id, "skipped", metrics["skipped"])
                print(f"sinernn: {run_name}: skipped {metrics['skipped']}", flush=True)
            if evaluation.backtest:  # the MLflow chart of error against horizon: one step per step ahead
                run.log_series("backtest_mae_by_horizon", [row["mae"] for row in evaluation.backtest])
                backtests[arch_name] = evaluation.backtest
            with tempfile.TemporaryDirectory() as scratch:
                scratch = Path(scratch)
                write_json(scratch / "metrics.json", metrics)
                run.log_artifact(scratch / "metrics.json")
                truth_vs_prediction(evaluation.predictions, f"{run_name}: one step", scratch / "predictions.png")
                run.log_artifact(scratch / "predictions.png", "plots")
                if evaluation.rollout:
                    truth_vs_prediction(evaluation.rollout, f"{run_name}: free-running", scratch / "rollout.png")
                    run.log_artifact(scratch / "rollout.png", "plots")
                if evaluation.backtest:
                    steps = [row["horizon"] for row in evaluation.backtest]
                    lines({arch_name: [row["mae"] for row in evaluation.backtest],
                           f"seasonal naive (season {season})": [row["seasonal_naive_mae"] for row in evaluation.backtest]},
                          f"{run_name}: backtest", "steps ahead", "MAE", scratch / "backtest.png", x=steps)
                    run.log_artifact(scratch / "backtest.png", "plots")
        results[arch_name] = metrics
        predictions[f"{arch_name}.csv"] = evaluation.predictions
        if evaluation.rollout:  # the naive framing has nothing to roll forward
            rollouts[f"{arch_name}.csv"] = evaluation.rollout
    if backtest_path is not None:  # (no backtest at all, e.g. under time_to_value: a header only)
        write_csv(backtest_path, backtest_table(backtests), header=["horizon", *backtests])
    write_json(metrics_path, results)
    replace_dir(predictions_dir, predictions)
    replace_dir(rollouts_dir, rollouts)
    return results


def backtest_table(backtests: dict[str, list[dict]]) -> list[dict]:
    """{arch: backtest rows} -> one row per step ahead with every architecture's MAE (empty where
    an architecture's longer window leaves it fewer steps)."""
    longest = max(map(len, backtests.values()), default=0)
    return [{"horizon": step, **{arch: rows[step - 1]["mae"] if step <= len(rows) else None
                                 for arch, rows in backtests.items()}}
            for step in range(1, longest + 1)]


def _read_summary(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path} not found: run `dvc repro` (stage train) first") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is corrupt ({exc})") from None


def summarize_job(params: Params, eval_dir: Path, metrics_path: Path) -> dict:
    """Merge the per-dataset evaluation files into {dataset: {arch: {metric: value}}}."""
    merged = {}
    for name in params.run.train_datasets:
        merged[name] = _read_summary(eval_dir / f"{name}.json")
    write_json(metrics_path, merged)
    return merged


def diagnose_job(params: Params, data_dir: Path, out_dir: Path, figures_dir: Path) -> dict:
    """Run the published examples and every measurement of the report.

    out_dir/summary.json    every figure (the report is generated from it)
    out_dir/*.csv           curves for `dvc plots`: published losses, gradient versus lag
    figures_dir/*.png       the curves as images, linked from reports/REPORT.md
    Both folders are replaced whole, and only when everything succeeded.
    """
    import torch

    from sinernn import experiments
    from sinernn.plots import lines

    torch.set_num_threads(params.train.threads)
    cfg = params.diagnose
    # Each dataset read once, even when several measurements use the same one.
    names = {cfg.stability_dataset, cfg.extrapolation_dataset, cfg.memory_dataset}
    loaded = {name: data.load(data_dir / f"{name}.npz")[0] for name in names}

    summary: dict = {}
    with staged_dir(out_dir) as scratch, staged_dir(figures_dir) as figures, tempfile.TemporaryDirectory() as logged:
        published, runs = experiments.published_examples(cfg, params.seed)
        for result, run in zip(published, runs):
            tags = {"stage": "diagnose", "dataset": "published", "architecture": f"example{run.number}",
                    "setup": run.description, "outcome": "crashed" if run.exception else "trained"}
            with stage_run(params.mlflow.experiment, f"diagnose-published-example{run.number}", tags) as mlrun:
                mlrun.log_series("train_loss", run.losses)
                mlrun.log_metrics({"final_loss": result["final_loss"], "target_variance": result["target_variance"]})
                mlrun.client.set_tag(mlrun.run_id, "exception", result["exception"] or "")
                mlrun.client.set_tag(mlrun.run_id, "warnings", " | ".join(result["warnings"])[:5000])
                write_json(Path(logged) / f"example{run.number}.json", result)  # MLflow only: summary.json holds it
                mlrun.log_artifact(Path(logged) / f"example{run.number}.json")
        summary["published"] = published
        summary["corrected"] = experiments.corrected_examples(cfg, params.train, params.seed)
        gradients = experiments.gradient_lags(params)
        summary["gradients"] = [{k: v for k, v in g.items() if k not in ("init", "trained")} for g in gradients]
        summary["stability"] = experiments.stability(params, loaded[cfg.stability_dataset])
        summary["extrapolation"] = experiments.extrapolation(params, loaded[cfg.extrapolation_dataset])
        summary["memory"] = experiments.memory(params, loaded[cfg.memory_dataset])

        losses = {f"example {r.number}": r.losses for r in runs if r.losses}
        rows = [{"epoch": e, **{name: (v[e - 1] if e <= len(v) else None) for name, v in losses.items()}}
                for e in range(1, max(map(len, losses.values()), default=0) + 1)]
        write_csv(scratch / "published_losses.csv", rows)
        variance = published[0]["target_variance"]
        lines(losses, "The published examples: training loss", "epoch", "MSE", figures / "published_losses.png",
              reference=("variance of the target", variance))
        for window in cfg.gradient_windows:
            curves = {f"{g['architecture']} {when}": g[when] for g in gradients if g["window"] == window
                      for when in ("init", "trained")}
            write_csv(scratch / f"gradient_lag_{window}.csv",
                      [{"lag": k, **{name: v[k - 1] for name, v in curves.items()}} for k in range(1, window + 1)])
            lines(curves, f"Gradient norm versus lag, window {window}", "lag k (steps back)", "||dL/dx(t-k)||",
                  figures / f"gradient_lag_{window}.png")
        lines({cfg.memory_arch: [m["test_mse"] for m in summary["memory"]]}, f"One-step test MSE against window ({cfg.memory_dataset})",
              "window", "test MSE", figures / "memory.png", x=[m["window"] for m in summary["memory"]],
              reference=("noise floor sigma^2", summary["memory"][0]["noise_variance"]))
        write_json(scratch / "summary.json", summary)

        tags = {"stage": "diagnose", "dataset": "all", "architecture": "all"}
        with stage_run(params.mlflow.experiment, "diagnose-all-measurements", tags) as mlrun:
            metrics = {f"gradient_ratio_W_to_1.{g['architecture']}.W{g['window']}.{when}": g[f"{when}_summary"]["ratio_W_to_1"]
                       for g in gradients for when in ("init", "trained")}
            mlrun.log_metrics(metrics)
            mlrun.log_artifact(scratch / "summary.json")
            for plot in sorted(figures.iterdir()):
                mlrun.log_artifact(plot, "plots")
    return summary


def diagnose_example(params: Params, number: int, epochs: int | None) -> list:
    """One published example, run as written, and what the diagnosis finds."""
    from sinernn.diagnosis import diagnose
    from sinernn.published import run_example

    run = run_example(number, seed=params.seed, epochs=epochs or params.diagnose.published_epochs,
                      hidden=params.diagnose.example2_hidden)
    return diagnose(run.model, run.inputs, run.targets, run.losses, run.exception)


def diagnose_setup(params: Params, dataset_name: str, arch_name: str, framing: str, epochs: int, data_path: Path) -> list:
    """A user's setup from params.yaml: train it briefly with the pipeline's loop, then diagnose
    it on the validation split (a crash during training is itself a finding)."""
    from sinernn.diagnosis import diagnose
    from sinernn.training import fit, prepare

    dataset, _ = data.load(data_path)
    arch = params.architectures[arch_name]
    cfg = params.train_for(dataset_name).model_copy(update={"framing": framing, "max_epochs": epochs})
    prepared = prepare(arch, cfg, dataset, params.seed, params.datasets[dataset_name].season)
    losses, failure = [], None
    try:
        result = fit(prepared, arch, cfg, params.seed, description=f"diagnose {arch_name}")
        losses = [stats.train_loss for stats in result.history]
    except Exception as exc:  # a crash is what the user asked about
        failure = exc
    val_set = prepared.val_set
    return diagnose(prepared.model, val_set.inputs, val_set.targets, losses, failure)


def report_job(params: Params, summary_path: Path, metrics_path: Path, out_path: Path) -> str:
    """reports/REPORT.md from the diagnose stage's summary and the pipeline's metrics; logged to MLflow."""
    from sinernn.report import build_report

    summary, metrics = _read_summary(summary_path), _read_summary(metrics_path)
    text = build_report(summary, metrics)
    tags = {"stage": "report", "dataset": "all", "architecture": "all"}
    with stage_run(params.mlflow.experiment, "report-all-all", tags) as run:
        with tempfile.TemporaryDirectory() as scratch:
            (Path(scratch) / "REPORT.md").write_text(text)
            run.log_artifact(Path(scratch) / "REPORT.md")
        write_text_file(out_path, text)
    return text


def register_job(params: Params, dataset_name: str, data_path: Path, models_dir: Path, eval_path: Path,
                 out_path: Path) -> dict:
    """Register this run's models of one dataset as versions of sinernn-<dataset>, decide on its
    champion and move it if beaten; write the decision."""
    from sinernn import registry

    if not params.registry.enabled:
        record = {"dataset": dataset_name, "decision": "registry.enabled is false", "promoted": False}
        write_json(out_path, record)
        return record
    dataset, _ = data.load(data_path)
    results = _read_summary(eval_path)
    summaries = {arch: _read_summary(models_dir / arch / "train.json") for arch in results}
    if any(summary["framing"] != "window" for summary in summaries.values()):
        record = {"dataset": dataset_name, "promoted": False,
                  "decision": f"not registered: only window-framed models forecast a series (train.framing is {params.train.framing})"}
        write_json(out_path, record)
        return record
    for arch, summary in summaries.items():
        if "mlflow_model_id" not in summary:
            raise DataError(f"{models_dir / arch}/train.json has no logged MLflow model: train with mlflow.log_models: true")
    from mlflow.exceptions import MlflowException

    try:
        record = registry.register_and_decide(dataset_name, dataset, results, summaries,
                                              params.registry.metric, params.registry.margin)
    except (MlflowException, OSError) as exc:
        from sinernn.errors import TrackingError

        raise TrackingError(f"the MLflow registry failed ({type(exc).__name__}: {str(exc)[:300]}); "
                            "check MLFLOW_TRACKING_URI or that the server is running") from None
    write_json(out_path, record)
    return record


def predict_job(model_uri: str, series, horizon: int):
    from sinernn import registry

    model, config = registry.load(model_uri)
    return registry.forecast(model, config, series, horizon)
