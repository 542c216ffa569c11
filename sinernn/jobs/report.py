"""Job of the `report` stage: reports/REPORT.md from the diagnosis and the metrics."""

from __future__ import annotations

from pathlib import Path

from sinernn.core.config import Params
from sinernn.core.files import read_output, write_text
from sinernn.track.tracking import stage_run


def report_job(params: Params, summary_path: Path, claims_path: Path, metrics_path: Path, out_path: Path) -> str:
    """reports/REPORT.md from the diagnose and claims stages' summaries and the pipeline's metrics; logged to MLflow."""
    from sinernn.answer.report import build_report, report_names

    summary, metrics, measured = read_output(summary_path), read_output(metrics_path), read_output(claims_path)
    text = build_report(summary, metrics, report_names(params), measured)
    tags = {"stage": "report", "dataset": "all", "architecture": "all"}
    with stage_run(params.mlflow.experiment, "report-all-all", tags) as run:
        run.log_text(text, "REPORT.md")
        write_text(out_path, text)
    return text
