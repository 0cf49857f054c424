"""What a finished (or partly finished) sweep holds, gathered once for the report's sections.

Contract: ``load_study(sweep_dir) -> Study``. ``Study.rows`` are ``epx.analysis.collect``'s rows
(expected grid ∪ job dirs) with ``value`` (the job's primary test metric, NaN when undefined or
not finished), ``group`` (the cell's group in ``epx/resources/cells.tsv``) and ``job_dir``;
smoke runs (a record with ``smoke: true``: the debug trainer's quick checks) are left out and
counted in ``Study.smoke``. ``Study.finished`` is the rows whose status is ``ok`` or
``degenerate`` (``epx.record.FINISHED``). ``Study.records`` maps a job dir to its ``JobRecord``.
``Study.tables(name, file)`` concatenates a per-job explain table (``JOB/explain/<name>/<file>``)
over the finished jobs, with ``model``, ``cell``, ``cell_group``, ``mark_set``, ``fold`` and ``job`` added
(empty DataFrame when no job has it).

A sweep dir with no finished job is one ``InputError`` naming it and pointing at ``epx status``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from epx.analysis.collect import collect_rows
from epx.constants import CELLS
from epx.errors import InputError
from epx.record import FILE_NAME as RECORD_NAME
from epx.record import FINISHED, JobRecord, RecordError


@dataclass
class Study:
    sweep_dir: Path
    rows: list[dict[str, Any]]
    records: dict[Path, JobRecord] = field(default_factory=dict)
    smoke: int = 0

    @property
    def finished(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r.get("status") in FINISHED]

    def frame(self) -> pd.DataFrame:
        """The finished rows as a DataFrame (model, task, metric, cell, group, mark, fold, value)."""
        rows = [{k: r.get(k) for k in ("job", "model", "task", "primary_metric", "cell", "group", "mark", "fold", "value")}
                for r in self.finished]
        return pd.DataFrame(rows, columns=["job", "model", "task", "primary_metric", "cell", "group", "mark", "fold", "value"])

    def tables(self, name: str, file: str) -> pd.DataFrame:
        frames = []
        for row in self.finished:
            job_dir = row.get("job_dir")
            path = job_dir / "explain" / name / file if job_dir else None
            if path is not None and path.is_file():
                table = pd.read_csv(path, sep="\t")
                frames.append(table.assign(model=row.get("model"), cell=row.get("cell"), cell_group=row.get("group"),
                                           mark_set=row.get("mark"), fold=row.get("fold"), job=row.get("job")))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _value(row: dict[str, Any]) -> float:
    metric = row.get("primary_metric")
    value = row.get(f"test_{metric}") if metric else None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return value if row.get("status") in FINISHED else math.nan


def load_study(sweep_dir: str | Path) -> Study:
    sweep_dir = Path(sweep_dir)
    try:  # smoke rows too, so the page can count them (collect leaves them out by default)
        rows = collect_rows(sweep_dir, include_smoke=True)
    except TypeError:  # a collect without smoke runs: the records below still say which are
        rows = collect_rows(sweep_dir)
    study = Study(sweep_dir=sweep_dir, rows=[])
    for row in rows:
        job_dir = sweep_dir / str(row.get("job")) if row.get("job") is not None else None
        record = None
        if job_dir is not None and (job_dir / RECORD_NAME).is_file():
            try:
                record = JobRecord.read(job_dir)
            except RecordError:
                record = None
        if row.get("smoke") or (record is not None and (getattr(record, "smoke", False) or record.extra.get("smoke"))):
            study.smoke += 1
            continue
        if record is not None:
            study.records[job_dir] = record
        cell = row.get("cell")
        study.rows.append({**row, "job_dir": job_dir if job_dir is not None and job_dir.is_dir() else None,
                           "value": _value(row), "group": CELLS.get(str(cell), {}).get("group") or "other"})
    if not study.finished:
        raise InputError(
            f"{sweep_dir}: no finished job to report on ({len(study.rows)} jobs, none ok or degenerate"
            + (f"; {study.smoke} smoke runs left out" if study.smoke else "")
            + f"); `epx status {sweep_dir}` shows why"
        )
    return study
