"""Text follows numbers: the results tables of the README and docs/forecasting.md are rendered
from the committed outputs, never typed:

    real-series     benchmarks/results/real_series.json   (make bench-real)
    pipeline        reports/metrics.json + models/<dataset>/<arch>/train.json   (dvc repro)

After either, `python tests/test_results_tables.py` writes them into the documents; the tests
fail while a document shows other figures than the outputs hold.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL_SERIES = ROOT / "benchmarks/results/real_series.json"
METRICS = ROOT / "reports/metrics.json"
README, FORECASTING = ROOT / "README.md", ROOT / "docs/forecasting.md"
TARGETS = {
    "a": "on co2, sunspots and trend_sine, rnn, gru and lstm at or below persistence's one-step MSE and within 1.1x of the best linear AR's",
    "b": "on co2, sunspots and trend_sine, the best neural model (lowest validation loss): backtest MASE < 1 at every horizon the test split holds",
    "c": "clean: one-step test MSE <= 1e-6 for rnn, gru and lstm",
    "d": "noisy: one-step test MSE within 1.1x of the noise floor for rnn, gru and lstm",
}


def _g(value) -> str:
    return "–" if value is None else value if isinstance(value, str) else f"{value:.3g}"


def _block(name: str, lines: list[str]) -> str:
    return f"<!-- {name} -->\n" + "\n".join(lines) + f"\n<!-- /{name} -->"


def real_series_table(results: dict, scaling: str | dict, name: str) -> str:
    """One scaling's rows, or {dataset: scaling}: each dataset's rows under its own."""
    horizons = results["settings"]["horizons"]
    lines = ["| dataset | arch | one-step MSE / train variance | / persistence | / best linear AR | "
             + " | ".join(f"MASE @{h}" for h in horizons) + " |",
             "|---|---|---:|---:|---:|" + "---:|" * len(horizons)]
    chosen = scaling if isinstance(scaling, dict) else {row["dataset"]: scaling for row in results["rows"]}
    for row in (r for r in results["rows"] if r["scaling"] == chosen[r["dataset"]] and "error" not in r):
        mase = [row["backtest"].get(str(h), {}).get("mase") for h in horizons]
        lines.append(f"| {row['dataset']} | {row['arch']} | {_g(row['test_mse_std'])} | {_g(row.get('vs_persistence'))} | "
                     f"{_g(row.get('vs_best_ar'))} | " + " | ".join(map(_g, mase)) + " |")
    return _block(name, lines)


def real_series_verdicts(results: dict, scaling: str, name: str) -> str:
    lines = []
    for target, text in TARGETS.items():
        checks = [c for c in results["targets"][scaling] if c["target"] == target]
        missed = [c for c in checks if not c["met"]]
        verdict = "**met**" if not missed else f"**missed** ({len(checks) - len(missed)} of {len(checks)} met)"
        detail = "; ".join(f"{c['subject']}: {c['value']}" for c in missed)
        lines.append(f"- {text}: {verdict}" + (f". Missed: {detail}" if detail else ""))
    return _block(name, lines)


def pipeline_table(metrics: dict, name: str) -> str:
    lines = ["| dataset | arch | test MSE | noise floor ratio | rollout MSE @1000 | backtest MASE @1 / @100 | train s |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for dataset, by_arch in metrics.items():
        for arch, m in by_arch.items():
            seconds = json.loads((ROOT / f"models/{dataset}/{arch}/train.json").read_text())["train_seconds"]
            lines.append(f"| {dataset} | {arch} | {_g(m['test_mse'])} | {_g(m.get('noise_floor_ratio'))} | "
                         f"{_g(m.get('rollout_mse_1000'))} | {_g(m.get('backtest_mase_1'))} / {_g(m.get('backtest_mase_100'))} | "
                         f"{seconds:.1f} |")
    return _block(name, lines)


def blocks() -> dict[Path, list[str]]:
    results = json.loads(REAL_SERIES.read_text())
    as_run = results["default_scaling"]  # {dataset: its scaling in params.yaml}
    real = real_series_table(results, as_run, "real-series-table")
    verdicts = real_series_verdicts(results, "params", "real-series-targets")
    others = [real_series_table(results, s, f"real-series-table-{s}") for s in results["settings"]["scalings"]]
    pipeline = pipeline_table(json.loads(METRICS.read_text()), "pipeline-table")
    return {README: [real, pipeline], FORECASTING: [real, verdicts, *others]}


def _pattern(block: str) -> re.Pattern:
    name = block.split(" ", 2)[1]
    return re.compile(rf"<!-- {re.escape(name)} -->\n.*?<!-- /{re.escape(name)} -->", re.S)


def test_the_documented_tables_are_the_measured_ones():
    for document, wanted in blocks().items():
        text = document.read_text()
        for block in wanted:
            found = _pattern(block).search(text)
            assert found, f"{document.name} has no {block.splitlines()[0]} block"
            assert found.group(0) == block, f"{document.name}: run `python tests/test_results_tables.py`"


if __name__ == "__main__":
    for document, wanted in blocks().items():
        text = document.read_text()
        for block in wanted:
            text = _pattern(block).sub(lambda _: block, text)
        document.write_text(text)
    sys.exit(0)
