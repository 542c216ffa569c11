"""Measure the forecasting targets on real series, under each way a window reaches the network.

    make bench-real           (or: .venv/bin/python benchmarks/real_series.py [--scalings global window diff]
                               [--datasets co2 sunspots trend_sine clean noisy] [--archs rnn gru lstm ...]
                               [--epochs N] [--out benchmarks/results/real_series.json])

Datasets, each trained with params.yaml's `train` section as it is (untuned; --epochs only
shortens a trial run) and its own window:
  co2         statsmodels' weekly CO2 at Mauna Loa (2,284 values, 59 gaps filled by interpolation):
              rising trend, yearly season of 52 weeks; window 64
  sunspots    statsmodels' yearly sunspot numbers (309 values): an irregular ~11-year cycle; window 16
  trend_sine  a sine of period 25 plus a trend steep enough that the whole test split lies above
              every train value, plus a little noise; the params' window
  clean, noisy, long_period, random_freq   the pipeline's own sines from params.yaml
The real series are written as CSVs (co2 with ISO dates, sunspots with its years as numbers, as
statsmodels gives them; gaps left empty) under a temporary project's data/external/ and read by
the pipeline's CSV source; everything is trained in this process by the pipeline's own
fit_architecture and evaluate. Nothing goes to MLflow or DVC.

For each dataset x scaling x architecture: the one-step test MSE over the train variance, its
ratio to persistence and to the best linear AR (the best ridge over the scalings on that
dataset), the backtest MASE and the backtest MAE over seasonal naive's at every horizon of
evaluate.horizons that the test split holds, and the training time. Targets:
  a. on every benchmark series (co2, sunspots, trend_sine), rnn, gru and lstm: one-step test MSE
     <= persistence's and <= 1.1x the best AR's
  b. on every benchmark series, the best neural model (the lowest validation loss): backtest MASE
     < 1 at every horizon the split holds
  c. clean: one-step test MSE <= 1e-6 for rnn, gru and lstm
  d. noisy: one-step test MSE <= 1.1x the noise floor (noise_std^2) for rnn, gru and lstm
They are judged under each scaling alone, then with each model at the scaling its validation loss
picks; the verdict that counts is the one under params.yaml's scalings as the pipeline runs them
(`train.scaling`, or a dataset's own `datasets.<name>.train.scaling`: the benchmark series set none,
so they run the default), printed last and recorded as "params". A missed target is a finding, not a failure: the exit
code is 0 whenever the benchmark ran. Prints a table per scaling and the summary, and writes every
figure to --out.
"""

from __future__ import annotations

import argparse
import csv
import math
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import statsmodels
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sinernn.core import data  # noqa: E402
from sinernn.core.config import parse_params  # noqa: E402
from sinernn.core.config_data import BASELINE_KINDS  # noqa: E402
from sinernn.core.errors import TrainingDiverged  # noqa: E402
from sinernn.core.evaluation import evaluate  # noqa: E402
from sinernn.core.files import write_json  # noqa: E402
from sinernn.core.training import fit_architecture  # noqa: E402

SCALINGS = ("global", "window", "diff")
RECURRENT = ("rnn", "gru", "lstm")
REFERENCES = ("persistence", "ridge")  # every ratio needs them: always run
MAX_VS_AR = 1.1
MAX_CLEAN_MSE = 1e-6
MAX_NOISE_FLOOR_RATIO = 1.1

CSV_SPLITS = {"missing": "interpolate", "val_fraction": 0.15, "test_fraction": 0.2}
BENCH_DATASETS = {
    "co2": {"source": "csv", "path": "data/external/co2.csv", "column": "co2", "time_column": "date",
            **CSV_SPLITS, "season": 52, "train": {"window": 64}},  # the window must hold a season
    "sunspots": {"source": "csv", "path": "data/external/sunspots.csv", "column": "sunactivity",
                 "time_column": "year", **CSV_SPLITS, "season": 11, "train": {"window": 16}},  # ~200 train values
    # across the val split the trend adds 0.01 x 300 = 3 > 2 (the sine's peak to trough): every test
    # value lies above every train value (checked when it is built)
    "trend_sine": {"source": "sine", "period": 25.0, "trend": 0.01, "noise_std": 0.05,
                   "n_train": 1500, "n_val": 300, "n_test": 1100, "season": 25},
}


def write_real_csvs(external: Path) -> None:
    """The statsmodels series as the CSVs a user would add: a time column, empty cells for gaps."""
    from statsmodels.datasets import co2, sunspots  # bundled with the package: nothing is downloaded

    def write(path: Path, header: tuple[str, str], rows) -> None:
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows((stamp, "" if math.isnan(value) else repr(float(value))) for stamp, value in rows)

    weekly = co2.load_pandas().data["co2"]
    write(external / "co2.csv", ("date", "co2"), ((d.date().isoformat(), v) for d, v in weekly.items()))
    yearly = sunspots.load_pandas().data
    write(external / "sunspots.csv", ("year", "sunactivity"),
          ((str(int(year)), v) for year, v in zip(yearly["YEAR"], yearly["SUNACTIVITY"])))


def finite(value):
    """JSON has no inf or NaN: a diverged figure is written as the string 'inf' or 'nan'."""
    return value if value is None or math.isfinite(value) else str(value)


def run_one(params, name: str, dataset, scaling: str, arch: str, epochs: int | None) -> dict:
    update = {"scaling": scaling, **({"max_epochs": epochs} if epochs else {})}
    cfg = params.train_for(name).model_copy(update=update)
    season, ev_cfg = params.datasets[name].season, params.evaluate
    row = {"dataset": name, "scaling": scaling, "arch": arch, "window": cfg.window, "season": season}
    try:
        fitted = fit_architecture(params.architectures[arch], cfg, dataset, params.seed,
                                  description=f"{name}/{scaling}/{arch}", season=season)
    except TrainingDiverged as exc:  # a finding of the benchmark, not a crash of it
        print(f"  {name} {scaling} {arch}: {exc}", flush=True)
        return {**row, "error": str(exc)}
    ev = evaluate(fitted.model, dataset, cfg.framing, cfg.window, ev_cfg.horizons, season, ev_cfg.backtest_stride)
    by_step = {r["horizon"]: r for r in ev.backtest}
    backtest = {str(h): {"mase": finite(step["mase"]), "vs_seasonal_naive":
                         finite(step["mae"] / step["seasonal_naive_mae"]) if step["seasonal_naive_mae"] > 0 else None}
                for h, step in ((h, by_step[h]) for h in ev_cfg.horizons if h in by_step)}
    return {**row, "test_mse": finite(ev.metrics["test_mse"]),
            "test_mse_std": finite(ev.metrics["test_mse"] / dataset.scale_std**2),
            "noise_floor_ratio": finite(ev.metrics["noise_floor_ratio"]), "backtest": backtest,
            "val_loss": finite(fitted.result.best_val_loss), "epochs": len(fitted.result.history),
            "best_epoch": fitted.result.best_epoch, "train_seconds": round(fitted.result.seconds, 2),
            "metrics": {k: finite(v) for k, v in ev.metrics.items()}, "skipped": ev.skipped}


def add_ratios(rows: list[dict]) -> None:
    """Each row's one-step MSE over persistence's and over the best ridge's (over the scalings)."""
    for name in {r["dataset"] for r in rows}:
        ok = [r for r in rows if r["dataset"] == name and isinstance(r.get("test_mse"), float)]
        persistence = min(r["test_mse"] for r in ok if r["arch"] == "persistence")
        best_ar = min((r["test_mse"] for r in ok if r["arch"] == "ridge"), default=math.nan)
        for r in ok:
            r["vs_persistence"] = r["test_mse"] / persistence if persistence > 0 else None
            r["vs_best_ar"] = finite(r["test_mse"] / best_ar) if best_ar > 0 else None


def number(row: dict | None, key: str) -> float:
    """A row's figure, or inf where it has none (a diverged or skipped one): it then misses every target."""
    value = row.get(key) if row else None
    return value if isinstance(value, float) else math.inf


def fmt(value, spec: str = ".3g") -> str:
    return "-" if value is None else value if isinstance(value, str) else format(value, spec)


def print_table(rows: list[dict], scaling: str, horizons: list[int]) -> None:
    hs = [str(h) for h in horizons]
    print(f"\nscaling: {scaling}   (mse/var: one-step test MSE over the train variance; mase@h, /sn@h: backtest "
          f"MASE and MAE over seasonal naive's, h steps ahead)")
    print(f"{'dataset':<11}{'arch':<15}{'mse/var':>9}{'/persist':>9}{'/bestAR':>9}"
          + "".join(f"{'mase@' + h:>10}" for h in hs) + "".join(f"{'/sn@' + h:>9}" for h in hs)
          + f"{'epochs':>7}{'train s':>8}")
    for r in (r for r in rows if r["scaling"] == scaling):
        if "error" in r:
            print(f"{r['dataset']:<11}{r['arch']:<15}  {r['error'][:100]}")
            continue
        bt = r["backtest"]
        print(f"{r['dataset']:<11}{r['arch']:<15}{fmt(r['test_mse_std'], '.2e'):>9}{fmt(r.get('vs_persistence')):>9}"
              f"{fmt(r.get('vs_best_ar')):>9}" + "".join(f"{fmt(bt.get(h, {}).get('mase')):>10}" for h in hs)
              + "".join(f"{fmt(bt.get(h, {}).get('vs_seasonal_naive')):>9}" for h in hs)
              + f"{r['epochs']:>7}{r['train_seconds']:>8.1f}")


def judge(selected: dict[tuple[str, str], dict], datasets: list[str], neural: list[str]) -> list[dict]:
    """The targets on one selection of rows, (dataset, arch) -> row; a failed row misses them all."""
    checks = []

    def check(target: str, subject: str, value: str, met: bool) -> None:
        checks.append({"target": target, "subject": subject, "value": value, "met": bool(met)})

    recurrent = [a for a in RECURRENT if a in neural]
    for name in datasets:
        for arch in recurrent if name in BENCH_DATASETS else ():
            row = selected.get((name, arch))
            persist, ar = number(row, "vs_persistence"), number(row, "vs_best_ar")
            check("a", f"{name}/{arch}", f"x{persist:.3g} persistence, x{ar:.3g} best AR",
                  persist <= 1 and ar <= MAX_VS_AR)
        candidates = [selected[(name, a)] for a in neural if (name, a) in selected and "error" not in selected[(name, a)]]
        if neural and name in BENCH_DATASETS:
            best = min(candidates, key=lambda r: number(r, "val_loss"), default=None)
            mases = best["backtest"] if best else {}
            worst = max((number(m, "mase") for m in mases.values()), default=math.inf)
            check("b", f"{name}/{best['arch'] + ' ' + best['scaling'] if best else 'none'}",
                  "MASE " + ", ".join(f"@{h} {fmt(m['mase'])}" for h, m in mases.items()), worst < 1)
        for arch in recurrent:
            row = selected.get((name, arch))
            if name == "clean":
                check("c", f"clean/{arch}", f"MSE {number(row, 'test_mse'):.2e}", number(row, "test_mse") <= MAX_CLEAN_MSE)
            if name == "noisy":
                ratio = number(row, "noise_floor_ratio")
                check("d", f"noisy/{arch}", f"x{ratio:.3g} noise floor", ratio <= MAX_NOISE_FLOOR_RATIO)
    return checks


def print_verdict(label: str, checks: list[dict], every: bool) -> None:
    """Each target met or not, with the checks it missed (every: the met ones too; b always)."""
    print(f"\n{label}:")
    for target in sorted({c["target"] for c in checks}):
        mine = [c for c in checks if c["target"] == target]
        missed = [c for c in mine if not c["met"]]
        print(f"  {target}. {'yes' if not missed else 'NO '} ({len(mine) - len(missed)}/{len(mine)} met)")
        for c in mine:
            if not c["met"] or every or target == "b":
                print(f"       {'met   ' if c['met'] else 'missed'} {c['subject']}: {c['value']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scalings", nargs="+", choices=SCALINGS, default=list(SCALINGS))
    parser.add_argument("--datasets", nargs="+", default=[*BENCH_DATASETS, "clean", "noisy", "long_period", "random_freq"])
    parser.add_argument("--archs", nargs="+", help="architectures of params.yaml (default: all of them)")
    parser.add_argument("--epochs", type=int, help="override train.max_epochs (a quick trial run)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/real_series.json")
    args = parser.parse_args()

    started = time.perf_counter()
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = parse_params({**raw, "datasets": {**raw["datasets"], **BENCH_DATASETS}})
    unknown = [d for d in args.datasets if d not in params.datasets]
    archs = args.archs or list(params.architectures)
    unknown += [a for a in archs if a not in params.architectures]
    if unknown:
        parser.error(f"unknown {unknown}: datasets are {sorted(params.datasets)}, "
                     f"architectures {sorted(params.architectures)}")
    archs = [*archs, *(a for a in REFERENCES if a not in archs)]
    neural = [a for a in archs if params.architectures[a].kind not in BASELINE_KINDS]
    torch.set_num_threads(params.train.threads)

    rows, shapes, filled = [], {}, {}
    with tempfile.TemporaryDirectory(prefix="sinernn-real-bench-") as project:
        project = Path(project)
        (project / "data" / "external").mkdir(parents=True)
        write_real_csvs(project / "data" / "external")
        for name in args.datasets:
            window = params.train_for(name).window
            dataset = data.generate(name, params.datasets[name], params.seed, window, project)
            shapes[name] = {split: part.observed.shape[1] for split, part in dataset.splits.items()}
            filled[name] = dataset.source_info.get("n_filled")
            if name == "trend_sine" and dataset.splits["test"].observed.min() <= dataset.splits["train"].observed.max():
                sys.exit("trend_sine: the test split does not lie above every train value; steepen its trend")
            print(f"{name}: train/val/test {shapes[name]}, window {window}, season {params.datasets[name].season}"
                  + (f", {dataset.source_info['n_filled']} gaps filled" if dataset.source_info else ""), flush=True)
            for scaling in args.scalings:
                for arch in archs:
                    rows.append(run_one(params, name, dataset, scaling, arch, args.epochs))
                    r = rows[-1]
                    if "error" not in r:
                        print(f"  {scaling:<7} {arch:<12} mse/var {r['test_mse_std']:.3g}  "
                              f"{r['epochs']} epochs  {r['train_seconds']:.1f} s", flush=True)
    add_ratios(rows)

    horizons = params.evaluate.horizons
    for scaling in args.scalings:
        print_table(rows, scaling, horizons)

    recurrent = [a for a in RECURRENT if a in archs]
    best_scaling = {}
    print("\nbest scaling by one-step test MSE (mse/var per scaling; 'val picks': the lowest validation loss):")
    for name in args.datasets:
        for arch in recurrent:
            mine = [r for r in rows if r["dataset"] == name and r["arch"] == arch and "error" not in r]
            if not mine:
                continue
            best = min(mine, key=lambda r: number(r, "test_mse"))
            chosen = min(mine, key=lambda r: number(r, "val_loss"))
            best_scaling[f"{name}/{arch}"] = {"test": best["scaling"], "validation": chosen["scaling"]}
            print(f"  {name:<11}{arch:<6}{best['scaling']:<8} val picks {chosen['scaling']:<8}"
                  + "  ".join(f"{r['scaling']} {fmt(r['test_mse_std'], '.2e')}" for r in mine))

    verdicts = {}
    for scaling in args.scalings:
        selected = {(r["dataset"], r["arch"]): r for r in rows if r["scaling"] == scaling}
        verdicts[scaling] = judge(selected, args.datasets, neural)
        print_verdict(f"targets, every model under scaling {scaling}", verdicts[scaling], every=False)
    chosen = {}
    for r in rows:
        key = (r["dataset"], r["arch"])
        if "error" not in r and (key not in chosen or number(r, "val_loss") < number(chosen[key], "val_loss")):
            chosen[key] = r
    verdicts["validation"] = judge(chosen, args.datasets, neural)
    print_verdict("targets, each model at the scaling its validation loss picks", verdicts["validation"], every=True)
    default = {name: params.train_for(name).scaling for name in args.datasets}
    if set(default.values()) <= set(args.scalings):
        as_run = {(r["dataset"], r["arch"]): r for r in rows if r["scaling"] == default[r["dataset"]]}
        verdicts["params"] = judge(as_run, args.datasets, neural)
        print_verdict(f"targets under params.yaml's scalings, as the pipeline runs them ({default})",
                      verdicts["params"], every=True)

    seconds = time.perf_counter() - started
    print(f"\ntotal {seconds:.0f} s; figures in {args.out}")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    changed = subprocess.run(["git", "status", "--porcelain", "--", "sinernn", "benchmarks/real_series.py", "params.yaml"],
                             cwd=ROOT, capture_output=True, text=True).stdout.strip()
    results = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "seconds": round(seconds, 1),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
                     "statsmodels": statsmodels.__version__, "git_commit": commit or None,
                     "uncommitted_changes": bool(changed),
                     "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s)"},
        "settings": {"scalings": args.scalings, "archs": archs, "max_epochs": args.epochs or params.train.max_epochs,
                     "seed": params.seed, "horizons": horizons, "backtest_stride": params.evaluate.backtest_stride,
                     "datasets": {n: {"config": params.datasets[n].model_dump(), "lengths": shapes[n], "n_filled": filled[n],
                                      "window": params.train_for(n).window} for n in args.datasets}},
        "rows": rows, "best_scaling": best_scaling, "default_scaling": default,
        "targets": verdicts,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
