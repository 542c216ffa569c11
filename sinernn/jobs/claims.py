"""Job of the `claims` stage: the measurement of each claim of the published answer that the
`diagnose` stage does not already settle, gathered (each is a stage of its own: sinernn/answer/
measurements.py; the verdicts: sinernn/answer/claims_verdicts.py)."""

from __future__ import annotations

from pathlib import Path

from sinernn.core.config import Params
from sinernn.core.files import staged_dir, write_csv, write_json
from sinernn.track.tracking import stage_run


def claims_job(params: Params, parts_dir: Path, out_dir: Path, figures_dir: Path) -> dict:
    """Gather every claim's measurement; out_dir/summary.json holds them all, out_dir/*.csv the
    curves for `dvc plots`, figures_dir/*.png the plots the report links. Both folders are replaced
    whole, and only when everything succeeded."""
    from sinernn.answer.claims_memory import order_variant_rows
    from sinernn.answer.measurements import CLAIMS, DELAY_VARIANTS, gather

    parts = gather(params, CLAIMS, parts_dir)
    variant_rows = [row for variant in DELAY_VARIANTS for row in parts["delay_variants"][variant]]
    summary = {name: parts[name] for name in ("linear_memory", "tuning", "derivatives", "window_ratio", "overfitting",
                                              "on_sine", "activation", "long_window")}
    summary["delay_variants"] = order_variant_rows(variant_rows, params)
    with staged_dir(out_dir) as scratch, staged_dir(figures_dir) as figures:
        _write_curves(summary, scratch, figures)
        write_json(scratch / "summary.json", summary)
        tags = {"stage": "claims", "dataset": "all", "architecture": "all"}
        with stage_run(params.mlflow.experiment, "claims-all-measurements", tags) as mlrun:
            mlrun.log_metrics(_headline_metrics(summary))
            mlrun.log_artifact(scratch / "summary.json")
            for plot in sorted(figures.iterdir()):
                mlrun.log_artifact(plot, "plots")
    return summary


def _write_curves(summary: dict, scratch: Path, figures: Path) -> None:
    from sinernn.track.plots import lines, save

    linear = summary["linear_memory"]
    write_csv(scratch / "linear_memory.csv", linear)
    lags = sorted({r["k"] for r in linear})
    save(lines({name: [_nan(r["relative_mse"]) for r in linear if r["dataset"] == name] for name in dict.fromkeys(r["dataset"] for r in linear)},
               "Best linear predictor from the last k values", "k (values used)", "test MSE / variance", x=lags, marker="o"),
         figures / "claims_linear.png")
    derivatives = summary["derivatives"]
    write_csv(scratch / "derivatives.csv", derivatives)
    runs = {inputs: sorted((r for r in derivatives if r["inputs"] == inputs), key=lambda r: r["model_bound"])
            for inputs in ("scaled", "raw")}
    figure = lines({"scaled inputs": [_nan(r["median_grad_norm"]) for r in runs["scaled"]]},
                   "Gradient norm against the derivative bound, in the units the network reads",
                   "A w / (input scale)", "median gradient norm", x=[r["model_bound"] for r in runs["scaled"]], marker="o")
    axis = figure.axes[0]
    axis.plot([r["model_bound"] for r in runs["raw"]], [_nan(r["median_grad_norm"]) for r in runs["raw"]],
              marker="o", linewidth=1.2, label="raw inputs")
    axis.set_xscale("log")
    axis.legend(loc="best", fontsize=8)
    save(figure, figures / "claims_derivatives.png")
    ratio = summary["window_ratio"]
    write_csv(scratch / "window_ratio.csv", ratio)
    ratios = sorted({r["ratio"] for r in ratio})
    figure = lines({kind: [_nan(next(r["relative_test_mse"] for r in ratio if r["architecture"] == kind and r["ratio"] == x))
                           for x in ratios] for kind in dict.fromkeys(r["architecture"] for r in ratio)},
                   "One-step error against window / period", "window / period", "test MSE / variance", x=ratios, marker="o")
    figure.axes[0].set_xscale("log")
    save(figure, figures / "claims_window_ratio.png")
    sweep = summary["overfitting"]
    write_csv(scratch / "overfitting.csv", sweep)
    save(lines({split: [_nan(r[f"{split}_mse"]) for r in sweep] for split in ("train", "val", "test")},
               "Error against hidden size", "hidden size", "MSE", x=[r["hidden_size"] for r in sweep], marker="o",
               reference=("noise floor sigma^2", sweep[0]["noise_variance"]) if sweep else None), figures / "claims_overfitting.png")
    _delay_plot(summary["delay_variants"], scratch, figures)
    gradients = summary["activation"]["gradients"]
    save(lines({f"{g['architecture']} {when}": [_nan(v) for v in g[when]] for g in gradients for when in ("init", "trained") if g[when]},
               "Gradient norm versus lag: tanh and relu", "lag k (steps back)", "||dL/dx(t-k)||"),
         figures / "claims_activation.png")


def _nan(value: float | None) -> float:
    """A missing figure as a gap in a curve."""
    return float("nan") if value is None else value


def _delay_plot(rows: list[dict], scratch: Path, figures: Path) -> None:
    from sinernn.track.plots import lines, save

    write_csv(scratch / "delay_variants.csv", [{k: r.get(k) for k in ("lag", "architecture", "test_mse", "learned", "diverged")}
                                                for r in rows])
    lags = sorted({r["lag"] for r in rows})
    curves = {name: [next((r["test_mse"] for r in rows if r["architecture"] == name and r["lag"] == lag), None) or float("nan")
                     for lag in lags] for name in dict.fromkeys(r["architecture"] for r in rows)}
    figure = lines(curves, "Delay task: the other models (diagnose trains rnn, gru, lstm)", "lag k", "test MSE",
                   x=lags, marker="o")
    figure.axes[0].set_xscale("log", base=2)
    save(figure, figures / "claims_delay.png")


def _headline_metrics(summary: dict) -> dict:
    """What MLflow can chart across runs of the stage."""
    metrics = {f"linear_mse.{r['dataset']}.k{r['k']}": r["test_mse"] for r in summary["linear_memory"]}
    metrics |= {f"window_ratio_relative_mse.{r['architecture']}.P{r['period']:g}": r["relative_test_mse"]
                for r in summary["window_ratio"] if r["relative_test_mse"] is not None}
    metrics |= {f"overfit_test_over_train.h{r['hidden_size']}": r["test_mse"] / r["train_mse"]
                for r in summary["overfitting"] if r["train_mse"] and r["test_mse"] is not None}
    metrics |= {f"median_grad_norm.{r['inputs']}.A{r['amplitude']:g}.P{r['period']:g}": r["median_grad_norm"]
                for r in summary["derivatives"] if r["median_grad_norm"] is not None}
    metrics |= {f"delay_test_mse.{r['architecture']}.k{r['lag']}": r["test_mse"]
                for r in summary["delay_variants"] if r["test_mse"] is not None}
    metrics |= {f"long_window_noise_floor_ratio.{r['architecture']}": r["noise_floor_ratio"]
                for r in summary["long_window"] if r["noise_floor_ratio"] is not None}
    return {key.replace(" ", "_"): value for key, value in metrics.items()}
