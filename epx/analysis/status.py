"""``epx status SWEEP``: where a grid stands — counts, one line per job, and an ETA.

Contract
--------
``job_states(sweep_dir) -> list[dict]``: the rows of ``epx.analysis.collect.collect_rows``
(expected grid ∪ job dirs, grid order), each with ``state`` added: the row's ``status``
(``ok``, ``degenerate``, ``running``, ``interrupted``, ``killed``, ``failed``, ``unreadable``,
``missing``; collect's own semantics, unchanged) except that an ``ok`` job whose record says ``reused: true`` (the
latest launch found it finished with the same config and skipped it) is ``reused``, and a
finished smoke run (``record.smoke``: trainer=debug) is ``smoke`` (summaries leave it out).

``eta(rows, parallel) -> Eta``: ``remaining`` = jobs not ``ok``/``reused``/``degenerate``
(a degenerate job finished: its data leave a metric undefined, a rerun gives the same; running,
interrupted, killed, failed, unreadable, missing — a rerun of the grid runs each of them again; a
running job counts as a whole job, so the ETA is an upper bound); ``per_job`` = the mean
``wall_seconds`` of the finished jobs (``ok`` and ``reused``: a reused job's record keeps the
wall time of the launch that trained it); ``seconds`` = ``per_job × remaining / parallel`` (``None`` when no finished job has a wall
time yet, ``0`` when nothing remains).

``main(argv)`` is ``epx status SWEEP [--parallel N] [--only STATE,…]``: one line of counts
(in ``STATES`` order; ``degenerate`` and ``interrupted`` only when some job is), the ETA line, then a table ``job | state | cell | mark | fold | model
| <primary metric> | wall | error``. A path that is not a sweep dir is one line on stderr and
exit code 2.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from epx.analysis.collect import collect_rows
from epx.record import FILE_NAME as RECORD_NAME
from epx.record import JobRecord, RecordError

STATES = ("ok", "reused", "degenerate", "smoke", "running", "interrupted", "killed", "failed", "unreadable", "missing")
# counted on the summary line even at 0; the rarer states only when a job is in them
ALWAYS_COUNTED = ("ok", "reused", "running", "killed", "failed", "unreadable", "missing")
DONE = ("ok", "reused", "degenerate", "smoke")
_ERROR_CHARS = 80


def _reused(job_dir: Path) -> bool:
    if not (job_dir / RECORD_NAME).is_file():
        return False
    try:
        return bool(JobRecord.read(job_dir).reused)
    except RecordError:
        return False


def job_states(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """collect_rows of the sweep, each with ``state`` (module doc)."""
    sweep_dir = Path(sweep_dir)
    rows = collect_rows(sweep_dir, include_smoke=True)
    for row in rows:
        status = str(row.get("status"))
        row["state"] = "reused" if status == "ok" and _reused(sweep_dir / str(row["job"])) else status
        if row.get("smoke") and status in ("ok", "degenerate"):
            row["state"] = "smoke"  # finished, but a debug run: no result (left out of summaries)
    return rows


def counts(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Jobs per state, in ``STATES`` order (states outside it after, alphabetically)."""
    states = [str(row["state"]) for row in rows]
    order = [*STATES, *sorted(set(states) - set(STATES))]
    return {state: states.count(state) for state in order}


def _wall(row: dict[str, Any]) -> float | None:
    value = row.get("wall_seconds")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        return None
    return float(value)


@dataclass(frozen=True)
class Eta:
    remaining: int
    finished_timed: int  # finished jobs behind per_job
    per_job: float | None  # mean wall seconds of a finished job
    parallel: int
    seconds: float | None  # None: unknown (nothing finished yet); 0: done


def eta(rows: Sequence[dict[str, Any]], parallel: int = 1) -> Eta:
    if parallel < 1:
        raise ValueError(f"parallel must be at least 1, got {parallel}")
    remaining = sum(row["state"] not in DONE for row in rows)
    walls = [wall for row in rows if row["state"] in DONE and (wall := _wall(row)) is not None]
    per_job = sum(walls) / len(walls) if walls else None
    if remaining == 0:
        seconds = 0.0
    else:
        seconds = per_job * remaining / parallel if per_job is not None else None
    return Eta(remaining, len(walls), per_job, parallel, seconds)


def duration(seconds: float) -> str:
    """``45s``, ``4m 10s``, ``2h 05m``, ``3d 04h``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def eta_line(estimate: Eta) -> str:
    if estimate.seconds == 0:
        return "ETA: done (every job finished)"
    if estimate.seconds is None:
        return f"ETA: unknown ({estimate.remaining} jobs to run; no finished job has a wall time yet)"
    at_once = "one at a time" if estimate.parallel == 1 else f"{estimate.parallel} at a time"
    return (
        f"ETA: {duration(estimate.seconds)} for {estimate.remaining} remaining jobs "
        f"({duration(estimate.per_job)} per job, the mean of {estimate.finished_timed} finished, {at_once})"
    )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def table(rows: Sequence[dict[str, Any]]) -> list[str]:
    metrics = {row.get("primary_metric") for row in rows if row.get("primary_metric")}
    metric_header = metrics.pop() if len(metrics) == 1 else "primary"
    header = ["job", "state", "cell", "mark", "fold", "model", metric_header, "wall", "error"]
    lines = []
    for row in rows:
        metric = row.get("primary_metric")
        value = row.get(f"test_{metric}") if metric and row["state"] in DONE else None
        shown = _cell(value) if metric_header != "primary" or value is None else f"{metric} {_cell(value)}"
        wall = _wall(row)
        error = " ".join(str(row.get("error") or "").split())
        error = error if len(error) <= _ERROR_CHARS else error[: _ERROR_CHARS - 1] + "…"
        lines.append([
            str(row["job"]), str(row["state"]), _cell(row.get("cell")), _cell(row.get("mark")), _cell(row.get("fold")),
            _cell(row.get("model")), shown, duration(wall) if wall is not None else "", error,
        ])  # fmt: skip
    widths = [max(len(header[i]), *(len(line[i]) for line in lines)) if lines else len(header[i]) for i in range(len(header))]
    render = lambda cells: "  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()  # noqa: E731
    return [render(header), *(render(line) for line in lines)]


def status_text(sweep_dir: str | Path, *, parallel: int = 1, only: Sequence[str] | None = None) -> str:
    rows = job_states(sweep_dir)
    counted = counts(rows)
    summary = ", ".join(f"{n} {state}" for state, n in counted.items() if n or state in ALWAYS_COUNTED)
    lines = [f"{sweep_dir}: {len(rows)} jobs: {summary}", eta_line(eta(rows, parallel))]
    shown = [row for row in rows if not only or row["state"] in only]
    if shown:
        lines += ["", *table(shown)]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="epx status",
        description="Jobs of a sweep dir by state (ok, reused, running, killed, failed, unreadable, missing) "
        "and an ETA from the finished jobs' wall times.",
    )
    parser.add_argument("sweep_dir", type=Path, help="the sweep dir of a grid (hydra.sweep.dir)")
    parser.add_argument("--parallel", type=int, default=1, metavar="N", help="jobs that run at once (default 1), for the ETA")
    parser.add_argument("--only", default=None, metavar="STATE[,STATE]", help="list only jobs in these states, e.g. failed,killed,missing")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.parallel < 1:
        print(f"epx status: error: --parallel must be at least 1, got {args.parallel}", file=sys.stderr)
        return 2
    only = [state.strip() for state in args.only.split(",") if state.strip()] if args.only else None
    unknown = sorted(set(only or []) - set(STATES))
    if unknown:
        print(f"epx status: error: unknown state {', '.join(unknown)}; states: {', '.join(STATES)}", file=sys.stderr)
        return 2
    try:
        text = status_text(args.sweep_dir, parallel=args.parallel, only=only)
    except (FileNotFoundError, ValueError) as err:
        print(f"epx status: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
