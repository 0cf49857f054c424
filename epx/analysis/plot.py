"""The grid heatmap ``summary.png``, drawn from the rows ``epx.analysis.collect`` makes.

Contract: ``heatmap_panels(rows) -> list[HeatmapPanel]`` — one panel per (model, task,
primary metric), every mark × cell of that part of the grid; a value is the mean over the
finished (``status`` ``ok`` or ``degenerate``, ``epx.record.FINISHED``) jobs there whose
primary test metric is defined (an undefined one, null in the record, is missing: grey, never 0), and each panel counts
the distinct folds behind it and in the grid. A row's primary metric is its record's
(``primary_metric``); a row with none (a job that never wrote a record) takes the one the
recorded jobs of its (model, task) report, else its task's (``epx.record.V1_PRIMARY_METRIC``);
a panel with still none (an unknown task, no records) uses the first metric its jobs report.
``write_png(rows, path)`` draws the panels side by side (viridis, fixed colour range per
known metric, grey where no job finished, value and ``folds used / in grid`` in each cell)
and replaces ``path`` atomically; with no finished job it writes a one-line notice instead.
Uses the object-oriented Matplotlib API only, so it never touches pyplot's global backend.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from epx.analysis.collect import metric_columns
from epx.constants import CELLS, MARKS
from epx.io.figures import save_png
from epx.record import FINISHED, V1_PRIMARY_METRIC

# Fixed colour ranges keep panels of one metric comparable across models and sweeps.
METRIC_RANGE: dict[str, tuple[float, float]] = {
    "pearson": (0.0, 1.0),
    "spearman": (0.0, 1.0),
    "auroc": (0.5, 1.0),
    "auprc": (0.0, 1.0),
    "accuracy": (0.5, 1.0),
}


def _mark_order(mark: str) -> tuple:
    """Singles in DESIGN order, then combinations (by size, then DESIGN order), then the
    rest alphabetically, ``all`` last."""
    parts = mark.split("+")
    if mark == "all":
        return (3,)
    if all(part in MARKS for part in parts):
        return (0 if len(parts) == 1 else 1, len(parts), tuple(MARKS.index(part) for part in parts))
    return (2, mark)


def _cell_order(cell: str) -> tuple:
    roadmap = list(CELLS)
    return (0, roadmap.index(cell), "") if cell in CELLS else (1, 0, cell)


def _cell_label(cell: str) -> str:
    return f"{cell}\n{CELLS[cell]['short']}" if cell in CELLS else cell


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _label(value: Any) -> str:
    return "?" if value is None else str(value)


@dataclass(frozen=True)
class HeatmapPanel:
    """One panel of summary.png: ``values[i, j]`` is the mean primary test metric of mark
    ``marks[i]`` in cell ``cells[j]`` over its finished jobs (NaN: none finished);
    ``folds_used`` / ``folds_in_grid`` count the distinct folds behind it / in the grid."""

    model: str
    task: str
    metric: str | None
    marks: list[str]
    cells: list[str]
    values: np.ndarray  # (n_marks, n_cells)
    folds_used: np.ndarray  # (n_marks, n_cells) int
    folds_in_grid: np.ndarray  # (n_marks, n_cells) int


def _row_metrics(rows: list[dict[str, Any]]) -> list[str | None]:
    """The primary metric of each row (see the module doc for rows without a record)."""
    recorded: dict[tuple[str, str], Counter] = {}
    for row in rows:
        if row.get("primary_metric"):
            recorded.setdefault((row["model"], row["task"]), Counter())[row["primary_metric"]] += 1
    metrics = []
    for row in rows:
        if row.get("primary_metric"):
            metrics.append(row["primary_metric"])
        elif (row["model"], row["task"]) in recorded:
            # A job that has not written its record yet runs the objective its siblings ran.
            metrics.append(recorded[(row["model"], row["task"])].most_common(1)[0][0])
        else:
            metrics.append(V1_PRIMARY_METRIC.get(row["task"]))
    return metrics


def _first_reported(rows: list[dict[str, Any]]) -> str | None:
    for column in metric_columns(rows):
        if any(_finite(row.get(column)) for row in rows):
            return column[len("test_"):]
    return None


def heatmap_panels(rows: list[dict[str, Any]]) -> list[HeatmapPanel]:
    """One panel per (model, task, primary metric) in the rows, every mark × cell of that part of the grid."""
    rows = [{**row, **{key: _label(row.get(key)) for key in ("model", "task", "mark", "cell")}} for row in rows]
    groups: dict[tuple[str, str, str | None], list[dict[str, Any]]] = {}
    for row, metric in zip(rows, _row_metrics(rows)):
        groups.setdefault((row["model"], row["task"], metric), []).append(row)
    panels = []
    for (model, task, metric), panel_rows in sorted(groups.items(), key=lambda item: (*item[0][:2], item[0][2] or "")):
        metric = metric or _first_reported(panel_rows)
        marks = sorted({row["mark"] for row in panel_rows}, key=_mark_order)
        cells = sorted({row["cell"] for row in panel_rows}, key=_cell_order)
        values = np.full((len(marks), len(cells)), np.nan)
        used = np.zeros((len(marks), len(cells)), dtype=int)
        in_grid = np.zeros((len(marks), len(cells)), dtype=int)
        for i, mark in enumerate(marks):
            for j, cell in enumerate(cells):
                here = [row for row in panel_rows if row["mark"] == mark and row["cell"] == cell]
                finished = [row for row in here if row["status"] in FINISHED and _finite(row.get(f"test_{metric}"))]
                # Mean over every finished job (folds, and seeds if the grid repeats them).
                if finished:
                    values[i, j] = float(np.mean([row[f"test_{metric}"] for row in finished]))
                used[i, j] = len({row.get("fold") for row in finished})
                in_grid[i, j] = len({row.get("fold") for row in here})
        panels.append(HeatmapPanel(model, task, metric, marks, cells, values, used, in_grid))
    return panels


def _draw_panel(fig: Figure, ax: Axes, panel: HeatmapPanel) -> None:
    cmap = colormaps["viridis"].with_extremes(bad="lightgrey")  # grey: no finished job here
    finite = panel.values[np.isfinite(panel.values)]
    data_range = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    low, high = METRIC_RANGE.get(panel.metric or "", data_range)
    high = max(high, low + 1e-9)
    image = ax.imshow(np.ma.masked_invalid(panel.values), cmap=cmap, vmin=low, vmax=high, aspect="auto")
    for (i, j), value in np.ndenumerate(panel.values):
        folds = f"{panel.folds_used[i, j]}/{panel.folds_in_grid[i, j]}"
        dark = np.isfinite(value) and (value - low) / (high - low) < 0.5  # viridis is dark at the low end
        text = f"{value:.3f}\n{folds}" if np.isfinite(value) else f"—\n{folds}"
        ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if dark else "black")
    ax.set_xticks(range(len(panel.cells)), [_cell_label(cell) for cell in panel.cells], fontsize=8)
    ax.set_yticks(range(len(panel.marks)), panel.marks, fontsize=8)
    ax.set_xlabel("cell")
    ax.set_ylabel("mark")
    ax.set_title(
        f"{panel.model} · {panel.task}\nmean test {panel.metric} over folds (folds used / in grid)", fontsize=9
    )
    fig.colorbar(image, ax=ax, shrink=0.8, label=f"test {panel.metric}")


def write_png(rows: list[dict[str, Any]], path: str | os.PathLike) -> Path:
    """The heatmap of ``rows`` as a PNG at ``path`` (replaced atomically)."""
    if not any(row.get("status") in FINISHED for row in rows):
        fig = Figure(figsize=(6, 2))
        statuses = sorted({str(row.get("status")) for row in rows})
        counts = ", ".join(f"{sum(str(row.get('status')) == status for row in rows)} {status}" for status in statuses)
        fig.text(0.5, 0.5, f"no finished jobs in this sweep\n({counts})", ha="center", va="center")
    else:
        panels = heatmap_panels(rows)
        n_cells = max(len(panel.cells) for panel in panels)
        n_marks = max(len(panel.marks) for panel in panels)
        fig = Figure(figsize=(len(panels) * (2.5 + 1.1 * n_cells), 1.8 + 0.55 * n_marks), layout="constrained")
        for ax, panel in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
            _draw_panel(fig, ax, panel)
    FigureCanvasAgg(fig)
    return save_png(fig, path, dpi=120)
