"""Where the pipeline keeps its files: the one list of default paths.

The CLI's defaults and help texts are built from these templates, and tests/test_cli.py checks that
every path `dvc.yaml` passes to a stage is the same template filled with the stage's names, so
`sinernn train --dataset clean --arch lstm` run by hand reads and writes what `dvc repro` does.
"""

from __future__ import annotations

from pathlib import Path

DATA_DIR = "data/processed"
DATA = "data/processed/{dataset}.npz"  # + its .json manifest beside it
TUNED_DIR = "tuned"
TUNED = "tuned/{dataset}/{arch}.json"
MODELS = "models/{dataset}"
MODEL_DIR = "models/{dataset}/{arch}"  # model.pt + train.json
HISTORY = "reports/history/{dataset}/{arch}.csv"
EVAL_DIR = "reports/eval"
EVAL = "reports/eval/{dataset}.json"
PREDICTIONS = "reports/predictions/{dataset}"
ROLLOUTS = "reports/rollouts/{dataset}"
BACKTESTS = "reports/backtests/{dataset}.csv"
METRICS = "reports/metrics.json"
SCORES_DIR = "reports/scores"  # {dataset}/{arch}.json: the rows of `dvc metrics show`
COMPARISON_DIR = "reports/comparison"  # {dataset}.csv: error by architecture, for `dvc plots`
DIAGNOSIS = "reports/diagnosis"
DIAGNOSIS_SUMMARY = "reports/diagnosis/summary.json"
FIGURES = "reports/figures"
MEASUREMENTS = "reports/measurements/{family}"  # one JSON per measurement (sinernn measure): diagnose/, claims/
CLAIMS = "reports/claims"
CLAIMS_SUMMARY = "reports/claims/summary.json"
CLAIM_FIGURES = "reports/claim_figures"
REPORT = "reports/REPORT.md"
REGISTRY = "reports/registry/{dataset}.json"
RETRAIN_HISTORY = "reports/retrain.json"  # every retrain's outcome (sinernn retrain)


def default(template: str, **names: str) -> Path:
    """The template with its names filled in: default(DATA, dataset="clean")."""
    return Path(template.format(**names))


def shown(template: str) -> str:
    """The template as a help text shows it: data/processed/DATASET.npz."""
    return template.replace("{dataset}", "DATASET").replace("{arch}", "ARCH").replace("{family}", "FAMILY")
