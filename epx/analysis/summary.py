"""Grid summary of a Hydra multirun sweep dir: ``summary.csv`` and ``summary.png``.

Contract
--------
``summarize(sweep_dir) -> (csv_path, png_path)`` collects the sweep (``epx.analysis.collect``:
expected grid from ``grid.json``, else ``multirun.yaml``; each job's ``JobRecord`` of any
schema version) and writes, both replaced atomically:

- ``<SWEEP>/summary.csv``: one row per job of (expected grid ∪ job dirs found), columns
  ``job, cell, mark, fold, model, task, seed, test_cell, status, n_params, n_train, n_val,
  n_test, genes_used, genes_dropped, primary_metric, test_<metric>…, [undefined,] wall_seconds,
  wandb_id, error, overrides``. ``status`` is the job's own (``running`` / ``ok`` /
  ``degenerate`` / ``failed`` / ``interrupted``; a degenerate job's undefined metrics are empty
  cells, their reasons in ``undefined``),
  ``killed`` (a ``running`` record on this host whose process is gone), ``missing`` (never
  started) or ``unreadable`` (record corrupt; ``error`` says why). ``genes_dropped`` counts
  the job's ``genes_dropped.tsv`` rows (every reason). ``primary_metric`` is the job record's (empty without one).
- ``<SWEEP>/summary.png``: one heatmap panel per (model, task, primary metric), mark × cell,
  of the mean over folds of each job's primary test metric (``epx.analysis.plot``).

Raises ``FileNotFoundError``/``ValueError`` only when ``sweep_dir`` is not a sweep dir; a
broken job dir never stops it. ``summarize_quietly`` never raises (for end-of-job hooks).
``summary_table(rows)`` is the grid as console text (job × primary metric, the failed and
missing jobs named), printed by ``epx summarize`` and at the end of a multirun.
``main`` is ``epx summarize SWEEP_DIR [--wandb | --no-wandb] [--include-smoke]``. Importing this module loads no
Hydra module (nor W&B).

The summary as a W&B run
------------------------
``log_summary_run(sweep_dir, rows, png_path) -> dict`` logs the table (``summary/table``, a
``wandb.Table`` with the ``summary.csv`` columns) and the heatmap (``summary/heatmap``, a
``wandb.Image``) as ONE W&B run, ``job_type="summary"``, in the sweep's group, with the job
counts per status in its summary (``jobs``, ``jobs/ok``, ``jobs/reused``, ``jobs/failed``, …),
and returns ``{id, dir, mode, url, group, project}``. The run's files go to
``<SWEEP>/wandb/``. Its id is a function of (entity, project, group) and it is started with
``resume="allow"``: summarizing a sweep again continues the same run (its latest step is the
current table) instead of adding runs to the group.

- group: the one the jobs logged to — a record's ``wandb.group`` if it has one, else the
  group in a job's own run file (``run-<id>.wandb`` under the record's ``wandb.dir`` or the job
  dir's ``wandb/``), else what ``epx.run.identity`` makes for a multirun of that sweep dir,
  ``<parent dir name>_<sweep dir name>``;
- project / entity: a job's run file, else its record's W&B url, else ``WANDB_PROJECT`` (``epx``)
  / ``WANDB_ENTITY``;
- mode: ``WANDB_MODE`` if set, else online with a login and offline without one
  (``epx.train.loggers.resolve_mode``); online falls back to offline, with one warning, when
  the W&B host cannot be reached.

``main`` logs it when ``--wandb`` is given, or — unless ``--no-wandb`` — automatically when
the sweep's jobs logged to W&B (a job record has a ``wandb`` run id whose mode is not
``disabled``); never when ``WANDB_MODE=disabled``. A W&B failure is one warning: the summary
files are written first and stay; the exit code is 1 only when ``--wandb`` was asked for.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
import os
import re
import struct
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from epx.analysis.collect import collect_rows, summary_columns, write_csv
from epx.record import FILE_NAME as RECORD_NAME
from epx.record import JobRecord, RecordError

log = logging.getLogger(__name__)

CSV_NAME = "summary.csv"
PNG_NAME = "summary.png"


def summarize(sweep_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``<SWEEP>/summary.csv`` and ``<SWEEP>/summary.png``; return their paths.

    Raises FileNotFoundError/ValueError only when ``sweep_dir`` is not a sweep dir.
    """
    sweep_dir = Path(sweep_dir)
    return write_summary(sweep_dir, collect_rows(sweep_dir))


def write_summary(sweep_dir: Path, rows: list[dict[str, Any]]) -> tuple[Path, Path]:
    """``rows`` (``collect_rows``) as ``<SWEEP>/summary.csv`` and ``<SWEEP>/summary.png``."""
    csv_path, png_path = Path(sweep_dir) / CSV_NAME, Path(sweep_dir) / PNG_NAME
    from epx.analysis.plot import write_png  # matplotlib: only when a figure is drawn (fast --help)

    write_csv(rows, csv_path)
    write_png(rows, png_path)
    return csv_path, png_path


def summary_table(rows: list[dict[str, Any]]) -> str:
    """The grid at a glance, for the console: one line per job (job, model, cell, mark, fold,
    status, its primary test metric), then the failed, killed, missing... jobs named with why."""
    header = ("job", "model", "cell", "mark", "fold", "status", "primary")
    lines = []
    for row in rows:
        metric = row.get("primary_metric")
        value = row.get(f"test_{metric}") if metric else None
        shown = f"{metric} {value:.4f}" if isinstance(value, float) and math.isfinite(value) else (f"{metric} n/a" if metric else "")
        lines.append(tuple("" if row.get(k) is None else str(row.get(k)) for k in header[:-1]) + (shown,))
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]
    text = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    text += ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]
    bad = [row for row in rows if row.get("status") not in ("ok", "degenerate")]
    counts: dict[str, int] = {}
    for row in rows:
        counts[str(row.get("status"))] = counts.get(str(row.get("status")), 0) + 1
    text.append(f"{len(rows)} jobs: " + ", ".join(f"{n} {state}" for state, n in counts.items()))
    for row in bad:
        why = f": {row['error']}" if row.get("error") else ""
        text.append(f"  {row.get('status')} job {row.get('job')} ({row.get('overrides') or 'no overrides'}){why}")
    return "\n".join(text) + "\n"


def summarize_quietly(sweep_dir: str | os.PathLike) -> tuple[Path, Path] | None:
    """``summarize`` for end-of-job hooks: a failure is logged as a warning, never raised,
    so the summary can never turn a finished job into a failed one."""
    try:
        return summarize(sweep_dir)
    except Exception as exc:
        log.warning("summary of %s not written: %s: %s", sweep_dir, type(exc).__name__, exc)
        return None


# ---------------------------------------------------------------- the summary as one W&B run

SUMMARY_JOB_TYPE = "summary"
_RUN_FILE_BLOCK, _RUN_FILE_HEADER = 32 * 1024, 7


def job_records(sweep_dir: Path, rows: list[dict[str, Any]]) -> list[tuple[Path, JobRecord]]:
    """(job dir, record) of every row whose job dir holds a readable record."""
    out = []
    for row in rows:
        job_dir = Path(sweep_dir) / str(row["job"])
        if (job_dir / RECORD_NAME).is_file():
            try:
                out.append((job_dir, JobRecord.read(job_dir)))
            except RecordError:
                continue
    return out


def _wandb_info(record: JobRecord) -> dict[str, Any]:
    return record.wandb if isinstance(record.wandb, dict) else {}


def jobs_logged_to_wandb(records: list[tuple[Path, JobRecord]]) -> bool:
    """True when a job of the sweep logged a W&B run (an id, mode not ``disabled``)."""
    return any(_wandb_info(r).get("id") and _wandb_info(r).get("mode") != "disabled" for _, r in records)


def _run_files(job_dir: Path, record: JobRecord) -> list[Path]:
    files: list[Path] = []
    run_dir = _wandb_info(record).get("dir")
    if isinstance(run_dir, str) and run_dir:
        for base in (Path(run_dir), job_dir / run_dir):
            if base.is_dir():
                files += sorted(base.glob("run-*.wandb"))
                break
    return files + sorted(job_dir.glob("wandb/*run-*/run-*.wandb"))


def read_run_identity(path: Path) -> dict[str, str] | None:
    """{group, project, entity, job_type} from the run record at the start of a W&B run file
    (``run-<id>.wandb``: a 7-byte header, then 32 KiB blocks of chunks ``crc32 | length (LE)
    | type``, each record a ``wandb_internal_pb2.Record``); None when it has none."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()[: 4 * _RUN_FILE_BLOCK]
    if data[:4] != b":W&B":
        return None
    pos, pending = _RUN_FILE_HEADER, b""
    while pos + _RUN_FILE_HEADER <= len(data):
        left = _RUN_FILE_BLOCK - pos % _RUN_FILE_BLOCK
        if left < _RUN_FILE_HEADER:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + _RUN_FILE_HEADER])
        if kind == 0 and length == 0:
            return None
        pending += data[pos + _RUN_FILE_HEADER : pos + _RUN_FILE_HEADER + length]
        pos += _RUN_FILE_HEADER + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            if record.WhichOneof("record_type") == "run":
                run = record.run
                return {"group": run.run_group, "project": run.project, "entity": run.entity, "job_type": run.job_type}
    return None


def _url_project(url: Any) -> tuple[str, str] | None:
    """(entity, project) from a run url ``https://…/<entity>/<project>/runs/<id>``."""
    match = re.search(r"/([^/]+)/([^/]+)/runs/[^/]+/?$", url) if isinstance(url, str) else None
    return (match.group(1), match.group(2)) if match else None


def sweep_wandb_identity(sweep_dir: Path, records: list[tuple[Path, JobRecord]]) -> dict[str, str | None]:
    """{group, project, entity} of the sweep's jobs (see the module doc for the order)."""
    group = next((str(_wandb_info(r)["group"]) for _, r in records if _wandb_info(r).get("group")), None)
    project = entity = None
    for job_dir, record in records:
        for path in _run_files(job_dir, record):
            try:
                found = read_run_identity(path)
            except Exception:  # noqa: BLE001 — a damaged or foreign run file: try the next
                found = None
            if found:
                group = group or found["group"] or None
                project, entity = found["project"] or None, found["entity"] or None
                break
        if project:
            break
    if not project:
        found_url = next((_url_project(_wandb_info(r).get("url")) for _, r in records if _url_project(_wandb_info(r).get("url"))), None)
        if found_url:
            entity, project = found_url
    absolute = Path(os.path.abspath(sweep_dir))
    return {
        "group": group or f"{absolute.parent.name}_{absolute.name}",
        "project": project or os.environ.get("WANDB_PROJECT") or "epx",
        "entity": entity or os.environ.get("WANDB_ENTITY") or None,
    }


def _table_value(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list | tuple):
        return "+".join(str(item) for item in value)
    return value


def _summary_mode() -> str:
    from epx.train.loggers import resolve_mode, wandb_reachable

    mode = resolve_mode(os.environ.get("WANDB_MODE"))
    if mode == "online":
        problem = wandb_reachable()
        if problem is not None:
            log.warning("%s; logging the summary run offline", problem)
            return "offline"
    return mode


def log_summary_run(sweep_dir: str | os.PathLike, rows: list[dict[str, Any]], png_path: str | os.PathLike) -> dict[str, Any]:
    """The summary table and heatmap as one W&B run of job type ``summary`` (module doc)."""
    import wandb

    sweep_dir = Path(sweep_dir)
    records = job_records(sweep_dir, rows)
    who = sweep_wandb_identity(sweep_dir, records)
    mode = _summary_mode()
    os.environ.setdefault("WANDB_SILENT", "true")
    key = f"{who['entity'] or ''}/{who['project']}/{who['group']}"
    run = wandb.init(
        project=who["project"],
        entity=who["entity"],
        group=who["group"],
        job_type=SUMMARY_JOB_TYPE,
        name=f"summary {who['group']}",
        id="summary-" + hashlib.sha256(key.encode()).hexdigest()[:20],
        resume="allow",
        dir=str(sweep_dir),
        mode=mode,
        config={"sweep_dir": os.path.abspath(sweep_dir), "jobs": len(rows)},
        reinit="finish_previous",
    )
    try:
        columns = summary_columns(rows)
        data = [[_table_value(row.get(column)) for column in columns] for row in rows]
        table = wandb.Table(columns=columns, data=data, allow_mixed_types=True)
        run.log({"summary/table": table, "summary/heatmap": wandb.Image(str(png_path))})
        statuses = [str(row.get("status")) for row in rows]
        run.summary["jobs"] = len(rows)
        for status in sorted(set(statuses)):
            run.summary[f"jobs/{status}"] = statuses.count(status)
        run.summary["jobs/reused"] = sum(bool(record.reused) for _, record in records if record.finished)
        info = {
            "id": run.id,
            "dir": str(Path(run.dir).parent) if getattr(run, "dir", None) else None,
            "mode": mode,
            "url": getattr(run, "url", None),
            "group": who["group"],
            "project": who["project"],
        }
    except BaseException:
        run.finish(exit_code=1)
        raise
    run.finish()
    return info


def log_summary_if_jobs_did(sweep_dir: str | os.PathLike, png_path: str | os.PathLike) -> dict[str, Any] | None:
    """End of a multirun: the W&B summary run, when the sweep's jobs logged to W&B and logging
    is not disabled; a failure is a warning (the summary files are written already)."""
    if os.environ.get("WANDB_MODE", "").lower() == "disabled":
        return None
    rows = collect_rows(sweep_dir)
    if not jobs_logged_to_wandb(job_records(Path(sweep_dir), rows)):
        return None
    try:
        return log_summary_run(sweep_dir, rows, png_path)
    except Exception as exc:  # noqa: BLE001
        log.warning("W&B summary run of %s not logged: %s: %s", sweep_dir, type(exc).__name__, exc)
        return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="epx summarize",
        description="Rebuild summary.csv and summary.png for a Hydra multirun sweep dir "
        "(finished or partial); log them as one W&B run (job type 'summary', the sweep's group) "
        "when the sweep's jobs logged to W&B, or with --wandb.",
    )
    parser.add_argument("sweep_dir", type=Path, help="the hydra.sweep.dir of a multirun")
    parser.add_argument(
        "--wandb", action=argparse.BooleanOptionalAction, default=None,
        help="log to W&B (default: when the jobs did; never with WANDB_MODE=disabled)",
    )  # fmt: skip
    parser.add_argument("--include-smoke", action="store_true", help="keep smoke runs (trainer=debug) in the table and heatmap")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``epx summarize SWEEP_DIR [--wandb|--no-wandb] [--include-smoke]``: rebuild summary.csv and
    summary.png, print the summary table and their paths, and log them as one W&B run when
    logging is on (module doc)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rows = collect_rows(args.sweep_dir, include_smoke=args.include_smoke)
        paths = write_summary(args.sweep_dir, rows)
    except (FileNotFoundError, ValueError) as exc:
        parser.error(str(exc))
    sys.stdout.write(summary_table(rows))
    for path in paths:
        print(path)
    disabled = os.environ.get("WANDB_MODE", "").lower() == "disabled"
    wanted = args.wandb if args.wandb is not None else jobs_logged_to_wandb(job_records(args.sweep_dir, rows))
    if wanted and disabled:
        if args.wandb:
            print("epx summarize: W&B summary run not logged: WANDB_MODE=disabled", file=sys.stderr)
        return 0
    if not wanted:
        return 0
    try:
        info = log_summary_run(args.sweep_dir, rows, paths[1])
    except Exception as exc:  # noqa: BLE001 — the summary files are written; W&B is extra
        print(f"epx summarize: warning: W&B summary run not logged ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 1 if args.wandb else 0
    where = info["url"] or info["dir"]
    sync = f"; upload it with `wandb sync {info['dir']}`" if info["mode"] == "offline" else ""
    print(f"W&B summary run {info['id']} ({info['mode']}, group {info['group']}): {where}{sync}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
