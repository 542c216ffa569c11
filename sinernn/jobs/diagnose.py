"""Job of the `diagnose` stage: the diagnose measurements gathered into the report's summary and figures;
and `sinernn diagnose` by hand: a published example, or a setup of params.yaml, diagnosed."""

from __future__ import annotations

import re
from pathlib import Path

from sinernn.core import data
from sinernn.core.config import Params
from sinernn.core.files import staged_dir, write_csv, write_json
from sinernn.track.tracking import stage_run


def diagnose_job(params: Params, parts_dir: Path, out_dir: Path, figures_dir: Path) -> dict:
    """Gather the diagnose measurements (each a stage of its own: sinernn/answer/measurements.py)
    into the summary the report is generated from, its curves and figures, and MLflow runs.

    out_dir/summary.json    every figure (the report is generated from it)
    out_dir/*.csv           curves: published losses and gradient versus lag (for `dvc plots`), the delay task's runs
    figures_dir/*.png       the curves as images, linked from reports/REPORT.md
    Both folders are replaced whole, and only when everything succeeded.
    """
    from sinernn.answer import delay
    from sinernn.answer.measurements import DIAGNOSE, EXAMPLES, gather

    cfg = params.diagnose
    parts = gather(params, DIAGNOSE, parts_dir)
    published = [parts["published"][number] for number in EXAMPLES]
    gradients = parts["gradients"]
    delay_rows = [row for kind in cfg.delay_architectures for row in parts["delay"][kind]] + parts["delay_forget_bias"]
    summary = {
        "published": [example["result"] for example in published],
        "framing_only": [parts["framing_only"][number] for number in EXAMPLES],
        "corrected": parts["corrected"],
        "gradients": [{k: v for k, v in g.items() if k not in ("init", "trained")} for g in gradients],
        "stability": parts["stability"],
        "extrapolation": parts["extrapolation"],
        "memory": parts["memory"],
        "delay": delay.order_rows(delay_rows, cfg),
        "delay_settings": delay.settings(cfg),
        "trend": parts["trend"],
    }
    summary["delay_limits"] = delay.lag_limits(summary["delay"])
    with staged_dir(out_dir) as scratch, staged_dir(figures_dir) as figures:
        for example in published:
            _log_published(params, example["result"], example["losses"])
        losses = {f"example {e['result']['example']}": e["losses"] for e in published if e["losses"]}
        _write_curves(cfg, losses, gradients, summary, scratch, figures)
        write_json(scratch / "summary.json", summary)

        tags = {"stage": "diagnose", "dataset": "all", "architecture": "all"}
        with stage_run(params.mlflow.experiment, "diagnose-all-measurements", tags) as mlrun:
            mlrun.log_metrics(_headline_metrics(gradients, summary))
            mlrun.log_artifact(scratch / "summary.json")
            for plot in sorted(figures.iterdir()):
                mlrun.log_artifact(plot, "plots")
    return summary


def _log_published(params: Params, result: dict, losses: list[float]) -> None:
    """One MLflow run per published example: its loss curve, how it ended, PyTorch's warnings."""
    tags = {"stage": "diagnose", "dataset": "published", "architecture": f"example{result['example']}",
            "setup": result["setup"], "outcome": "crashed" if result["exception"] else "trained"}
    with stage_run(params.mlflow.experiment, f"diagnose-published-example{result['example']}", tags) as mlrun:
        mlrun.log_series("train_loss", losses)
        mlrun.log_metrics({"final_loss": result["final_loss"], "target_variance": result["target_variance"]})
        mlrun.client.set_tag(mlrun.run_id, "exception", result["exception"] or "")
        mlrun.client.set_tag(mlrun.run_id, "warnings", " | ".join(result["warnings"])[:5000])
        mlrun.log_dict(result, f"example{result['example']}.json")  # MLflow only: summary.json holds it


def _write_curves(cfg, losses: dict[str, list[float]], gradients: list[dict], summary: dict, scratch: Path,
                  figures: Path) -> None:
    """The curves as CSVs for `dvc plots` (scratch) and as PNGs for the report (figures)."""
    from sinernn.track.plots import lines, save

    published = summary["published"]
    rows = [{"epoch": e, **{name: (v[e - 1] if e <= len(v) else None) for name, v in losses.items()}}
            for e in range(1, max(map(len, losses.values()), default=0) + 1)]
    write_csv(scratch / "published_losses.csv", rows)
    variance = published[0]["target_variance"]
    save(lines(losses, "The published examples: training loss", "epoch", "MSE",
               reference=("variance of the target", variance)), figures / "published_losses.png")
    for window in cfg.gradient_windows:
        curves = {f"{g['architecture']} {when}": g[when] for g in gradients if g["window"] == window
                  for when in ("init", "trained")}
        write_csv(scratch / f"gradient_lag_{window}.csv",
                  [{"lag": k, **{name: v[k - 1] for name, v in curves.items()}} for k in range(1, window + 1)])
        save(lines(curves, f"Gradient norm versus lag, window {window}", "lag k (steps back)", "||dL/dx(t-k)||"),
             figures / f"gradient_lag_{window}.png")
    save(lines({cfg.memory_arch: [m["test_mse"] for m in summary["memory"]]},
               f"One-step test MSE against window ({cfg.memory_dataset})", "window", "test MSE",
               x=[m["window"] for m in summary["memory"]],
               reference=("noise floor sigma^2", summary["memory"][0]["noise_variance"])), figures / "memory.png")
    _write_delay(summary["delay"], summary["delay_settings"]["learned_below"], scratch, figures)


def _headline_metrics(gradients: list[dict], summary: dict) -> dict:
    """The measurements MLflow can chart and compare between runs of the stage."""
    metrics = {f"gradient_ratio_W_to_1.{g['architecture']}.W{g['window']}.{when}": g[f"{when}_summary"]["ratio_W_to_1"]
               for g in gradients for when in ("init", "trained")}
    metrics |= {f"delay_test_mse.{_slug(d['architecture'])}.clip{d['grad_clip']:g}.k{d['lag']}": d["test_mse"]
                for d in summary["delay"] if d["test_mse"] is not None}
    metrics |= {f"delay_longest_lag.{_slug(d['architecture'])}.clip{d['grad_clip']:g}": d["longest_learned"] or 0
                for d in summary["delay_limits"]}
    return metrics | {f"trend_{key}.{t['architecture']}.{t['scaling']}": t[key]
                      for t in summary["trend"] for key in ("test_mse", "rollout_mse") if t[key] is not None}


def _slug(name: str) -> str:
    """A cell's name as an MLflow metric key part: "lstm (forget bias 1)" -> "lstm_forget_bias_1"."""
    return re.sub(r"\W+", "_", name).strip("_")


def _write_delay(rows: list[dict], learned_below: float, scratch: Path, figures: Path) -> None:
    """The delay task: one CSV row per run (a cell is not trained beyond the first lag it fails, so
    those lags have no row), and test MSE against lag as a plot, one curve per cell and clipping."""
    from sinernn.track.plots import lines, save

    write_csv(scratch / "delay.csv", [{"lag": r["lag"], "cell": r["architecture"], "grad_clip": r["grad_clip"],
                                      "test_mse": r["test_mse"], "outcome": "diverged" if r["diverged"] else
                                      "learned" if r["learned"] else "not learned"} for r in rows])
    lags = sorted({r["lag"] for r in rows})
    by_cell: dict[str, dict[int, float | None]] = {}
    for row in rows:
        name = f"{row['architecture']} clip {row['grad_clip']:g}" if row["grad_clip"] else f"{row['architecture']} no clip"
        by_cell.setdefault(name, {})[row["lag"]] = row["test_mse"]
    curves = {name: [v[lag] if v.get(lag) is not None else float("nan") for lag in lags] for name, v in by_cell.items()}
    save(lines(curves, "Delay task: remember the value k steps back", "lag k", "test MSE", x=lags, marker="o",
               reference=("learned below this", learned_below)), figures / "delay.png")


def diagnose_example(params: Params, number: int, epochs: int | None) -> list:
    """One published example, run as written, and what the diagnosis finds."""
    from sinernn.answer.diagnosis import diagnose
    from sinernn.answer.published import run_example

    run = run_example(number, seed=params.seed, epochs=epochs or params.diagnose.published_epochs,
                      hidden=params.diagnose.example2_hidden)
    return diagnose(run.model, run.inputs, run.targets, run.losses, run.exception)


def diagnose_setup(params: Params, dataset_name: str, arch_name: str, framing: str, epochs: int, data_path: Path) -> list:
    """A user's setup from params.yaml: train it briefly with the pipeline's loop, then diagnose
    it on the validation split (a crash during training is itself a finding)."""
    from sinernn.answer.diagnosis import diagnose
    from sinernn.core.training import fit, prepare

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
