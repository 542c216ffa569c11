"""Figures for MLflow (`StageRun.log_figure`) and for the diagnosis's PNG outputs (`save`).

DVC renders its own plots from the CSV outputs.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

DPI = 80


def truth_vs_prediction(rows: list[dict], title: str) -> Figure:
    figure, axis = plt.subplots(figsize=(8, 3))
    steps = [row["step"] for row in rows]
    axis.plot(steps, [row["truth"] for row in rows], label="truth", linewidth=1.5)
    axis.plot(steps, [row["prediction"] for row in rows], label="prediction", linewidth=1, linestyle="--")
    axis.set(title=title, xlabel="step")
    axis.legend(loc="upper right")
    figure.tight_layout()
    return figure


def lines(series: dict[str, list[float]], title: str, xlabel: str, ylabel: str,
          x: list[float] | None = None, log_y: bool = True, reference: tuple[str, float] | None = None,
          marker: str | None = None) -> Figure:
    """Several named curves on one axis (log y by default); an optional horizontal reference line;
    a marker shows the points (a curve of one point draws no line)."""
    figure, axis = plt.subplots(figsize=(7, 3.5))
    for name, values in series.items():
        xs = x if x is not None else list(range(1, len(values) + 1))
        (axis.semilogy if log_y else axis.plot)(xs[: len(values)], values, label=name, linewidth=1.2, marker=marker)
    if reference and (reference[1] > 0 or not log_y):
        axis.axhline(reference[1], color="grey", linestyle=":", label=reference[0])
    axis.set(title=title, xlabel=xlabel, ylabel=ylabel)
    axis.legend(loc="best", fontsize=8)
    figure.tight_layout()
    return figure


def save(figure: Figure, path: Path) -> None:
    """A figure as a PNG file (a DVC output), closed afterwards."""
    figure.savefig(path, dpi=DPI)
    plt.close(figure)


def bars(values: dict[str, float | None], title: str, xlabel: str) -> Figure:
    """One horizontal bar per name (on a log axis: errors span many decades); a missing value
    shows as an empty row."""
    figure, axis = plt.subplots(figsize=(7, 0.4 * len(values) + 1.2))
    names = list(values)
    axis.barh(names, [values[name] or 0 for name in names])
    axis.set_xscale("log")
    axis.invert_yaxis()  # the first name on top
    axis.set(title=title, xlabel=xlabel)
    figure.tight_layout()
    return figure
