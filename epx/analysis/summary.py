"""Grid summary of a Hydra multirun sweep dir: ``summary.csv`` and ``summary.png``.

Contract
--------
Input: a sweep dir ``<SWEEP>`` written by Hydra's basic sweeper —
``<SWEEP>/multirun.yaml`` (its ``hydra.sweeper.params`` + ``hydra.overrides.task`` define
the expected grid, expanded exactly as ``BasicSweeper`` does, so job ``i`` of the grid is
``<SWEEP>/i`` under ``hydra.sweep.subdir=${hydra.job.num}``) and one dir per job holding
``.hydra/{config,hydra,overrides}.yaml`` and, once the job got far enough,
``metrics.json`` (DESIGN §5).

Output, both replaced atomically (temp file in ``<SWEEP>`` + ``os.replace``):

- ``<SWEEP>/summary.csv``: one row per job of (expected grid ∪ job dirs found), columns
  ``job, cell, mark, fold, model, task, seed, test_cell, status, n_params, n_train, n_val,
  n_test, test_<metric>…, wall_seconds, wandb_id, error, overrides``. ``status`` is the
  job's own (``ok`` / ``failed``), ``missing`` (never started, still running, or died
  before writing metrics.json) or ``unreadable`` (metrics.json corrupt; ``error`` says why).
- ``<SWEEP>/summary.png``: one heatmap panel per (model, task), mark × cell, of the mean
  over folds of the primary test metric (``pearson`` for regression, ``auroc`` for
  classification), annotated with the value and ``folds used / folds in grid``; cells with
  no finished job are grey.

A broken job dir never stops the summary; only a path that is not a sweep dir raises.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from matplotlib import colormaps
from matplotlib.axes import Axes
# The object-oriented API with the Agg canvas never touches pyplot's global backend.
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from epx.constants import CELLS, MARKS

log = logging.getLogger(__name__)

CSV_NAME = "summary.csv"
PNG_NAME = "summary.png"

IDENTITY_COLUMNS: tuple[str, ...] = ("cell", "mark", "fold", "model", "task", "seed", "test_cell")
_LEADING_COLUMNS = ("job", *IDENTITY_COLUMNS, "status", "n_params", "n_train", "n_val", "n_test")
_TRAILING_COLUMNS = ("wall_seconds", "wandb_id", "error", "overrides")

PRIMARY_METRIC: dict[str, str] = {"regression": "pearson", "classification": "auroc"}
# Fixed colour ranges keep panels of one metric comparable across models and sweeps.
_METRIC_RANGE: dict[str, tuple[float, float]] = {
    "pearson": (0.0, 1.0),
    "spearman": (0.0, 1.0),
    "auroc": (0.5, 1.0),
    "auprc": (0.0, 1.0),
    "accuracy": (0.5, 1.0),
}
_METRIC_ORDER = ("pearson", "spearman", "mse", "auroc", "auprc", "accuracy")
_BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
_MAX_ERROR_CHARS = 500


# ---------------------------------------------------------------- reading a sweep dir


def _read_yaml(path: Path) -> Any:
    """Plain container of a YAML file, or None when absent/corrupt (never raises)."""
    if not path.is_file():
        return None
    try:
        return OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as exc:  # a half-written YAML must not stop the summary
        log.warning("summary: ignoring unreadable %s (%s)", path, exc)
        return None


def expected_grid(sweep_dir: str | os.PathLike) -> list[list[str]]:
    """Override lists of every job the sweep in ``multirun.yaml`` launches; index = job num.

    Empty when there is no readable ``multirun.yaml`` or the sweeper is not Hydra's basic
    one (other sweepers choose their jobs at run time, so only the job dirs tell).
    """
    multirun = _read_yaml(Path(sweep_dir) / "multirun.yaml")
    if not isinstance(multirun, dict):
        return []
    hydra_cfg = multirun.get("hydra") or {}
    sweeper = hydra_cfg.get("sweeper") or {}
    if sweeper.get("_target_", _BASIC_SWEEPER) != _BASIC_SWEEPER:
        return []
    arguments = [f"{key}={value}" for key, value in (sweeper.get("params") or {}).items()]
    arguments += list((hydra_cfg.get("overrides") or {}).get("task") or [])
    try:
        overrides = OverridesParser.create().parse_overrides(arguments)
        # The sweeper's own expansion, so the job order (= job num) is Hydra's.
        (jobs,) = BasicSweeper.split_arguments(overrides, max_batch_size=None)
    except Exception as exc:
        log.warning("summary: cannot expand the sweep in %s/multirun.yaml (%s)", sweep_dir, exc)
        return []
    return [list(job) for job in jobs]


def _job_dirs(sweep_dir: Path) -> list[Path]:
    """Immediate subdirs that Hydra made for a job (``.hydra/``) or that hold metrics."""
    return [
        child
        for child in sweep_dir.iterdir()
        if child.is_dir() and ((child / ".hydra").is_dir() or (child / "metrics.json").is_file())
    ]


def _known(value: Any) -> Any:
    """None for values that cannot be known outside a Hydra run (interpolations)."""
    if isinstance(value, str) and "${" in value:
        return None
    return value


def _identity_from_config(config: Any, hydra_cfg: Any) -> dict[str, Any]:
    """cell/mark/fold/… from a (job or sweep) config; ``model`` is the group choice."""
    config = config if isinstance(config, dict) else {}
    identity = {key: _known(config.get(key)) for key in IDENTITY_COLUMNS if key != "model"}
    if isinstance(hydra_cfg, dict) and "hydra" in hydra_cfg:
        hydra_cfg = hydra_cfg["hydra"]
    choices = ((hydra_cfg or {}).get("runtime") or {}).get("choices") or {}
    # model and task are config groups: their name is the group choice (else the node's name)
    for group in ("model", "task"):
        node = config.get(group)
        identity[group] = _known(choices.get(group) or (node.get("name") if isinstance(node, dict) else node))
    return identity


def _identity_from_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception:
        return {}
    return {
        override.key_or_group: override.value()
        for override in parsed
        if override.key_or_group in IDENTITY_COLUMNS and override.package is None
    }


def canonical_mark(value: Any) -> str | None:
    """One label per mark set: ``H3K27ac+H3K4me3`` and ``[H3K4me3, H3K27ac]`` both give
    ``H3K4me3+H3K27ac`` (DESIGN order); unknown names and ``all`` are kept as given."""
    if value is None:
        return None
    parts = [str(part) for part in value] if isinstance(value, list | tuple) else str(value).split("+")
    if all(part in MARKS for part in parts):
        parts = sorted(set(parts), key=MARKS.index)
    return "+".join(parts)


def _as_int(value: Any) -> Any:
    """Folds/seeds/counts as ints where they are integral (``"0"`` from an override too)."""
    if isinstance(value, bool) or value is None:
        return value
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        return value
    return int(as_float) if as_float.is_integer() else value


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _one_line(text: Any) -> str | None:
    if text is None:
        return None
    flat = " ".join(str(text).split())
    return flat if len(flat) <= _MAX_ERROR_CHARS else flat[: _MAX_ERROR_CHARS - 1] + "…"


def _read_metrics(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(metrics, None) or (None, why it is unreadable)."""
    try:
        metrics = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return None, f"{path}: {type(exc).__name__}: {exc}"
    if not isinstance(metrics, dict):
        return None, f"{path}: expected a JSON object, got {type(metrics).__name__}"
    return metrics, None


def _row(
    job: str,
    job_dir: Path | None,
    overrides: Sequence[str],
    base_identity: dict[str, Any],
) -> dict[str, Any]:
    """One csv row; fields come from metrics.json, else the job's config, else the sweep's."""
    identity = dict(base_identity)
    if job_dir is not None:
        job_identity = _identity_from_config(
            _read_yaml(job_dir / ".hydra" / "config.yaml"), _read_yaml(job_dir / ".hydra" / "hydra.yaml")
        )
        identity.update({key: value for key, value in job_identity.items() if value is not None})
    identity.update(_identity_from_overrides(overrides))
    row: dict[str, Any] = {"job": job, **identity, "status": "missing", "overrides": " ".join(overrides)}

    metrics_path = job_dir / "metrics.json" if job_dir is not None else None
    if metrics_path is not None and metrics_path.is_file():
        metrics, error = _read_metrics(metrics_path)
        if metrics is None:
            row.update(status="unreadable", error=error)
        else:
            row.update(_fields_from_metrics(metrics))
    row["mark"] = canonical_mark(row.get("mark"))
    for key in ("fold", "seed"):
        row[key] = _as_int(row.get(key))
    return row


def _fields_from_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    fields = {key: metrics[key] for key in IDENTITY_COLUMNS if metrics.get(key) is not None}
    n_genes = metrics.get("n_genes") if isinstance(metrics.get("n_genes"), dict) else {}
    wandb = metrics.get("wandb") if isinstance(metrics.get("wandb"), dict) else {}
    test = metrics.get("test") if isinstance(metrics.get("test"), dict) else {}
    fields.update(
        status=str(metrics.get("status") or "unknown"),
        n_params=_as_int(_number(metrics.get("n_params"))),
        n_train=_as_int(_number(n_genes.get("train"))),
        n_val=_as_int(_number(n_genes.get("val"))),
        n_test=_as_int(_number(n_genes.get("test"))),
        wall_seconds=_number(metrics.get("wall_seconds")),
        wandb_id=wandb.get("id"),
        error=_one_line(metrics.get("error")),
    )
    fields.update({f"test_{name}": _number(value) for name, value in test.items()})
    if isinstance(metrics.get("overrides"), list):
        fields["overrides"] = " ".join(str(item) for item in metrics["overrides"])
    return fields


def _natural_key(name: str) -> tuple[int, int | str]:
    return (0, int(name)) if name.isdigit() else (1, name)


def collect_rows(sweep_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of ``summary.csv`` (dicts keyed by column), expected grid first in job order."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(
            f"sweep dir {sweep_dir} does not exist; pass the hydra.sweep.dir of a multirun "
            "(e.g. outputs/multirun/<date>/<time>)"
        )
    grid = expected_grid(sweep_dir)
    found = _job_dirs(sweep_dir)
    if not grid and not found:
        raise ValueError(
            f"{sweep_dir} is not a Hydra sweep dir: it has no readable multirun.yaml and no job "
            "dirs (<job>/.hydra or <job>/metrics.json); pass the hydra.sweep.dir of a multirun"
        )
    multirun = _read_yaml(sweep_dir / "multirun.yaml")
    base_identity = _identity_from_config(multirun, (multirun or {}).get("hydra"))

    # A job dir belongs to the grid job whose overrides it records; by name (= job num)
    # only when it records none, e.g. its .hydra/ was lost.
    by_overrides = {tuple(overrides): index for index, overrides in enumerate(grid)}
    claimed: dict[int, Path] = {}
    extra: list[tuple[Path, list[str]]] = []
    for job_dir in sorted(found, key=lambda path: _natural_key(path.name)):
        recorded = _read_yaml(job_dir / ".hydra" / "overrides.yaml")
        overrides = [str(item) for item in recorded] if isinstance(recorded, list) else None
        index = by_overrides.get(tuple(overrides)) if overrides is not None else None
        if index is None and overrides is None and job_dir.name.isdigit() and int(job_dir.name) < len(grid):
            index = int(job_dir.name)
        if index is not None and index not in claimed:
            claimed[index] = job_dir
        else:
            extra.append((job_dir, overrides or []))

    rows = [
        _row(claimed[index].name if index in claimed else str(index), claimed.get(index), overrides, base_identity)
        for index, overrides in enumerate(grid)
    ]
    rows += [_row(job_dir.name, job_dir, overrides, base_identity) for job_dir, overrides in extra]
    return rows


# ---------------------------------------------------------------- writing


def _write_atomically(path: Path, write: Callable[[IO], None], *, binary: bool) -> None:
    """Readers see the old file or the new one, never a half-written one."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"newline": ""})) as handle:
            write(handle)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _metric_columns(rows: Iterable[dict[str, Any]]) -> list[str]:
    names = {key[len("test_"):] for row in rows for key in row if key.startswith("test_") and key != "test_cell"}
    ordered = [name for name in _METRIC_ORDER if name in names] + sorted(names - set(_METRIC_ORDER))
    return [f"test_{name}" for name in ordered]


def _csv_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, list | tuple):
        return "+".join(str(item) for item in value)
    return value


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    columns = [*_LEADING_COLUMNS, *_metric_columns(rows), *_TRAILING_COLUMNS]

    def write(handle: IO) -> None:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({column: _csv_value(row.get(column)) for column in columns})

    _write_atomically(path, write, binary=False)


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
    return _number(value) is not None and math.isfinite(value)


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


def _panel_metric(task: str, rows: list[dict[str, Any]]) -> str | None:
    """The task's primary metric; for an unknown task the first metric its jobs report."""
    if task in PRIMARY_METRIC:
        return PRIMARY_METRIC[task]
    for column in _metric_columns(rows):
        if any(_finite(row.get(column)) for row in rows):
            return column[len("test_"):]
    return None


def heatmap_panels(rows: list[dict[str, Any]]) -> list[HeatmapPanel]:
    """One panel per (model, task) in the rows, every mark × cell of that part of the grid."""
    rows = [{**row, **{key: _label(row.get(key)) for key in ("model", "task", "mark", "cell")}} for row in rows]
    panels = []
    for model, task in sorted({(row["model"], row["task"]) for row in rows}):
        panel_rows = [row for row in rows if (row["model"], row["task"]) == (model, task)]
        metric = _panel_metric(task, panel_rows)
        marks = sorted({row["mark"] for row in panel_rows}, key=_mark_order)
        cells = sorted({row["cell"] for row in panel_rows}, key=_cell_order)
        values = np.full((len(marks), len(cells)), np.nan)
        used = np.zeros((len(marks), len(cells)), dtype=int)
        in_grid = np.zeros((len(marks), len(cells)), dtype=int)
        for i, mark in enumerate(marks):
            for j, cell in enumerate(cells):
                here = [row for row in panel_rows if row["mark"] == mark and row["cell"] == cell]
                finished = [row for row in here if row["status"] == "ok" and _finite(row.get(f"test_{metric}"))]
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
    low, high = _METRIC_RANGE.get(panel.metric or "", data_range)
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


def write_png(rows: list[dict[str, Any]], path: Path) -> None:
    if not any(row.get("status") == "ok" for row in rows):
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
    _write_atomically(path, lambda handle: fig.savefig(handle, format="png", dpi=120), binary=True)


# ---------------------------------------------------------------- entry points


def summarize(sweep_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``<SWEEP>/summary.csv`` and ``<SWEEP>/summary.png``; return their paths.

    Raises FileNotFoundError/ValueError only when ``sweep_dir`` is not a sweep dir.
    """
    sweep_dir = Path(sweep_dir)
    rows = collect_rows(sweep_dir)
    csv_path, png_path = sweep_dir / CSV_NAME, sweep_dir / PNG_NAME
    write_csv(rows, csv_path)
    write_png(rows, png_path)
    return csv_path, png_path


def summarize_quietly(sweep_dir: str | os.PathLike) -> tuple[Path, Path] | None:
    """``summarize`` for end-of-job hooks: a failure is logged as a warning, never raised,
    so the summary can never turn a finished job into a failed one."""
    try:
        return summarize(sweep_dir)
    except Exception as exc:
        log.warning("summary of %s not written: %s: %s", sweep_dir, type(exc).__name__, exc)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """``epx summarize SWEEP_DIR``: rebuild summary.csv and summary.png, print their paths."""
    parser = argparse.ArgumentParser(
        prog="epx summarize",
        description="Rebuild summary.csv and summary.png for a Hydra multirun sweep dir "
        "(finished or partial).",
    )
    parser.add_argument("sweep_dir", type=Path, help="the hydra.sweep.dir of a multirun")
    args = parser.parse_args(argv)
    try:
        paths = summarize(args.sweep_dir)
    except (FileNotFoundError, ValueError) as exc:
        parser.error(str(exc))
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
