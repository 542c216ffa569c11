"""Job of the `evaluate` stage: every model of one dataset scored (one step, rollouts, backtests)."""

from __future__ import annotations

from pathlib import Path

from sinernn.core import data
from sinernn.core.config import Params
from sinernn.core.files import read_output, replace_dir, write_csv, write_json
from sinernn.track.tracking import stage_run


def evaluate_job(
    params: Params, dataset_name: str, data_path: Path, models_dir: Path,
    metrics_path: Path, predictions_dir: Path, rollouts_dir: Path, backtest_path: Path | None = None,
) -> dict:
    """Score every architecture of `run.architectures` trained on one dataset.

    backtest_path: a CSV of the backtest MAE per step ahead, one column per architecture, for
    `dvc plots`.
    """
    from sinernn.core.checkpoint import load_checkpoint
    from sinernn.core.evaluation import evaluate
    from sinernn.track.plots import lines, truth_vs_prediction

    dataset, manifest = data.load(data_path)
    season = params.datasets[dataset_name].season
    results, predictions, rollouts, backtests = {}, {}, {}, {}
    for arch_name in params.run.architectures:
        model, config = load_checkpoint(models_dir / arch_name / "model.pt")
        summary = read_output(models_dir / arch_name / "train.json")
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
            run.log_dict(metrics, "metrics.json")
            run.log_figure(truth_vs_prediction(evaluation.predictions, f"{run_name}: one step"), "plots/predictions.png")
            if evaluation.rollout:
                run.log_figure(truth_vs_prediction(evaluation.rollout, f"{run_name}: free-running"), "plots/rollout.png")
            if evaluation.backtest:
                curves = {arch_name: [row["mae"] for row in evaluation.backtest],
                          f"seasonal naive (season {season})": [row["seasonal_naive_mae"] for row in evaluation.backtest]}
                figure = lines(curves, f"{run_name}: backtest", "steps ahead", "MAE",
                               x=[row["horizon"] for row in evaluation.backtest])
                run.log_figure(figure, "plots/backtest.png")
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
