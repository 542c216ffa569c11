"""Job of the `evaluate` stage: every model of one dataset scored (one step, rollouts, backtests)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from sinernn.core import data
from sinernn.core.config import Params
from sinernn.core.files import read_output, replace_dir, write_csv, write_json
from sinernn.core.scores import with_log10
from sinernn.track.datasets import mlflow_dataset
from sinernn.track.tracking import stage_run


def evaluate_job(
    params: Params, dataset_name: str, data_path: Path, models_dir: Path,
    metrics_path: Path, predictions_dir: Path, rollouts_dir: Path, backtest_path: Path | None = None,
) -> dict:
    """Score every architecture of `run.architectures` trained on one dataset.

    Each model's scores go where its params, curves and exported model already are: its training
    run (and its logged model, for the experiment's Models tab), with log10 companions. This
    stage's own run, evaluate-<dataset>, holds what compares the models: every score and the
    charts by architecture and by horizon.
    backtest_path: a CSV of the backtest MAE per step ahead, one column per architecture, for
    `dvc plots`.
    """
    import torch

    from sinernn.track.plots import bars, lines

    # As many torch threads as every other stage (train.threads): a stage beside it under
    # `sinernn repro -j N` then does not slow it down with threads waiting on a shared core
    # (twice as long as alone with 2 threads, as long with 1: benchmarks/results/evaluate-threads.json),
    # and the scores do not depend on -j.
    torch.set_num_threads(params.train.threads)
    dataset, manifest = data.load(data_path)
    tracked_data = mlflow_dataset(dataset_name, data_path, manifest)
    tags = {"stage": "evaluate", "dataset": dataset_name, "dataset_hash": manifest["sha256"]}
    run_name = f"evaluate-{dataset_name}"
    results, predictions, rollouts, backtests = {}, {}, {}, {}
    with stage_run(params.mlflow.experiment, run_name, tags) as run:
        run.log_input(tracked_data, "test")
        for arch_name in params.run.architectures:
            metrics, evaluation = _evaluate_model(params, run, dataset, tracked_data, models_dir / arch_name,
                                                  dataset_name, arch_name)
            results[arch_name] = metrics
            predictions[f"{arch_name}.csv"] = evaluation.predictions
            if evaluation.rollout:  # the naive framing has nothing to roll forward
                rollouts[f"{arch_name}.csv"] = evaluation.rollout
            if evaluation.backtest:
                backtests[arch_name] = evaluation.backtest
        run.log_dict(results, "metrics.json")
        run.log_figure(bars({arch: m["test_mse"] for arch, m in results.items()},
                            f"{dataset_name}: one-step test MSE", "MSE (log scale)"), "plots/test_mse_by_architecture.png")
        if backtests:
            run.log_figure(lines({arch: [row["mae"] for row in rows] for arch, rows in backtests.items()},
                                 f"{dataset_name}: backtest error against horizon", "steps ahead", "MAE"),
                           "plots/backtest_by_horizon.png")
    if backtest_path is not None:  # (no backtest at all, e.g. under time_to_value: a header only)
        write_csv(backtest_path, backtest_table(backtests), header=["horizon", *backtests])
    write_json(metrics_path, results)
    replace_dir(predictions_dir, predictions)
    replace_dir(rollouts_dir, rollouts)
    return results


def _evaluate_model(params: Params, run, dataset, tracked_data, model_dir: Path, dataset_name: str, arch_name: str):
    """One model scored, its scores and charts logged into its training run; returns its metrics
    (what reports/eval/<dataset>.json holds) and the evaluation."""
    from sinernn.core.checkpoint import load_checkpoint
    from sinernn.core.evaluation import evaluate
    from sinernn.track.plots import lines, truth_vs_prediction

    model, _ = load_checkpoint(model_dir / "model.pt")
    summary = read_output(model_dir / "train.json")
    season = params.datasets[dataset_name].season
    name = f"{dataset_name}-{arch_name}"
    evaluation = evaluate(model, dataset, summary["framing"], summary["window"], params.evaluate.horizons,
                          season, params.evaluate.backtest_stride)
    metrics = {**evaluation.metrics, "train_seconds": summary["train_seconds"]}
    with _model_run(params, run, summary, dataset_name, arch_name, tracked_data) as (model_run, model_id):
        model_run.log_metrics(with_log10(evaluation.metrics), model_id=model_id, dataset=tracked_data)
        model_run.client.set_tag(model_run.run_id, "evaluate_run_id", run.run_id)
        if evaluation.skipped:  # never silently: in the metrics file, the run and the log
            metrics["skipped"] = "; ".join(evaluation.skipped)
            model_run.client.set_tag(model_run.run_id, "skipped", metrics["skipped"])
            print(f"sinernn: evaluate {name}: skipped {metrics['skipped']}", flush=True)
        model_run.log_figure(truth_vs_prediction(evaluation.predictions, f"{name}: one step"),
                             "evaluation/predictions.png")
        if evaluation.rollout:
            model_run.log_figure(truth_vs_prediction(evaluation.rollout, f"{name}: free-running"),
                                 "evaluation/rollout.png")
        if evaluation.backtest:  # the MLflow chart of error against horizon: one step per step ahead
            model_run.log_series("backtest_mae_by_horizon", [row["mae"] for row in evaluation.backtest])
            curves = {arch_name: [row["mae"] for row in evaluation.backtest],
                      f"seasonal naive (season {season})": [row["seasonal_naive_mae"] for row in evaluation.backtest]}
            model_run.log_figure(lines(curves, f"{name}: backtest", "steps ahead", "MAE",
                                       x=[row["horizon"] for row in evaluation.backtest]), "evaluation/backtest.png")
        model_run.flush()
    return metrics, evaluation


@contextmanager
def _model_run(params: Params, run, summary: dict, dataset_name: str, arch_name: str, tracked_data):
    """(run, logged-model id) to log a model's scores into: its training run and model; or, when
    that run cannot take them (not in this store, or another DVC experiment's), a run of their own
    under this stage's run, with no model (the store may not hold it): no score is lost."""
    found = run.attach(summary["mlflow_run_id"])
    if found is not None:
        yield found, summary.get("mlflow_model_id")
        return
    name = f"{dataset_name}-{arch_name}"
    print(f"sinernn: evaluate {name}: training run {summary['mlflow_run_id']} is not in this MLflow store or "
          "is another DVC experiment's; the scores go to a run of their own", flush=True)
    tags = {"stage": "evaluate", "dataset": dataset_name, "architecture": arch_name,
            "train_run_id": summary["mlflow_run_id"], "train_run_missing": "yes"}
    with stage_run(params.mlflow.experiment, f"evaluate-{name}", tags, parent_run_id=run.run_id) as own:
        own.log_input(tracked_data, "test")
        yield own, None


def backtest_table(backtests: dict[str, list[dict]]) -> list[dict]:
    """{arch: backtest rows} -> one row per step ahead with every architecture's MAE (empty where
    an architecture's longer window leaves it fewer steps)."""
    longest = max(map(len, backtests.values()), default=0)
    return [{"horizon": step, **{arch: rows[step - 1]["mae"] if step <= len(rows) else None
                                 for arch, rows in backtests.items()}}
            for step in range(1, longest + 1)]
