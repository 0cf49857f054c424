"""Grid summary of a Hydra multirun sweep dir: ``summary.csv`` and ``summary.png``.

Contract
--------
``summarize(sweep_dir) -> (csv_path, png_path)`` collects the sweep (``epx.analysis.collect``:
expected grid from ``grid.json``, else ``multirun.yaml``; each job's ``JobRecord`` of any
schema version) and writes, both replaced atomically:

- ``<SWEEP>/summary.csv``: one row per job of (expected grid ∪ job dirs found), columns
  ``job, cell, mark, fold, model, task, seed, test_cell, status, n_params, n_train, n_val,
  n_test, genes_used, genes_dropped, primary_metric, test_<metric>…, wall_seconds, wandb_id,
  error, overrides``. ``status`` is the job's own (``running`` / ``ok`` / ``failed``),
  ``killed`` (a ``running`` record on this host whose process is gone), ``missing`` (never
  started) or ``unreadable`` (record corrupt; ``error`` says why). ``genes_dropped`` counts
  the job's ``genes_dropped.tsv`` rows (every reason). ``primary_metric`` is the job record's (empty without one).
- ``<SWEEP>/summary.png``: one heatmap panel per (model, task, primary metric), mark × cell,
  of the mean over folds of each job's primary test metric (``epx.analysis.plot``).

Raises ``FileNotFoundError``/``ValueError`` only when ``sweep_dir`` is not a sweep dir; a
broken job dir never stops it. ``summarize_quietly`` never raises (for end-of-job hooks).
``main`` is ``epx summarize SWEEP_DIR``. Importing this module loads no Hydra module.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from epx.analysis.collect import collect_rows, write_csv
from epx.analysis.plot import write_png

log = logging.getLogger(__name__)

CSV_NAME = "summary.csv"
PNG_NAME = "summary.png"


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
