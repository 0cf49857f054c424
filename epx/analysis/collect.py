"""Collect a sweep dir into table rows, one per job, and write them as ``summary.csv``.

Contract
--------
Input: a sweep dir ``<SWEEP>`` of a Hydra multirun — the expected grid
(``epx.analysis.grid.expected_grid``: ``grid.json``, else ``multirun.yaml``; job ``i`` of the
grid is ``<SWEEP>/i`` under ``hydra.sweep.subdir=${hydra.job.num}``) and one dir per job
holding ``.hydra/{config,hydra,overrides}.yaml`` and, once the job got far enough, its job
record ``metrics.json`` (``epx.record.JobRecord``, any schema version; DESIGN §5).

``collect_rows(sweep_dir) -> list[dict]``: one row per job of (expected grid ∪ job dirs
found), grid jobs first in job-number order. A job dir belongs to the grid job whose
overrides its ``.hydra/overrides.yaml`` records (by name only when it records none). Row
keys are the ``summary.csv`` columns ``job, cell, mark, fold, model, task, seed, test_cell,
status, n_params, n_train, n_val, n_test, genes_used, genes_dropped, primary_metric,
test_<metric>…, [undefined,] wall_seconds, wandb_id, error, overrides`` (``genes_used`` /
``genes_dropped``: the record's gene accounting, ``genes["used"]`` and
``genes["dropped_total"]``; empty for records without it). A test metric the record holds as
null (undefined on the data, ``epx.record``) is an empty cell, never 0; the ``undefined``
column (present when some job has one) gives ``name: reason; …``, and such a job's status is
``degenerate``. ``summary_columns(rows)`` is the column list:

- a job with a record: everything from the record (``primary_metric`` is the record's;
  version-1 records get it from their task, see ``epx.record``); identity the record lacks
  from the job's ``.hydra/config.yaml``, else the sweep's ``multirun.yaml``;
- a record still ``running`` whose process on this machine is gone (SIGKILL, out of memory,
  a scheduler's time limit; ``JobRecord.ended_without_finishing``): ``status`` ``killed``,
  ``error`` "process <pid> on <host> ended without finishing the job (…); rerun it" — a
  killed job's dir is never summarized ``ok`` nor left looking alive. A ``running`` record
  from another machine stays ``running`` (its process cannot be checked from here);
- a job without one: identity from its overrides, else its ``.hydra/config.yaml``, else the
  sweep's ``multirun.yaml``; ``status`` ``missing`` (never started, or died before writing
  a record) and no ``primary_metric``;
- a record that cannot be read: that identity, ``status`` ``unreadable``, ``error`` says why.
- a job whose ``.hydra/{config,hydra,overrides}.yaml`` cannot be used (larger than a job
  config may be, an alias bomb, not YAML: ``epx.analysis.grid.read_yaml_checked``, size- and
  alias-bounded): ``status`` ``unreadable``, ``error`` names the file and why, whatever its
  record says.

Only jobs without a readable record need their overrides parsed (Hydra's public override
parser, imported then): importing this module loads no Hydra module.

``mark`` is one label per mark set (``epx.selection.mark_label``), unknown names kept as
given. ``write_csv(rows, path)`` writes the table atomically. A broken job dir never stops
collection; only a path that is not a sweep dir raises (``FileNotFoundError``/``ValueError``).
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from epx.analysis.grid import expected_grid, read_yaml, read_yaml_checked
from epx.errors import InputError
from epx.io.atomic import atomic_write
from epx.record import FILE_NAME as RECORD_NAME
from epx.record import GENE_METRICS, KILLED_ERROR, JobRecord, RecordError
from epx.selection import mark_label, parse_marks

log = logging.getLogger(__name__)

IDENTITY_COLUMNS: tuple[str, ...] = ("cell", "mark", "fold", "model", "task", "seed", "test_cell")
LEADING_COLUMNS = (
    "job", *IDENTITY_COLUMNS, "status", "n_params", "n_train", "n_val", "n_test", "genes_used", "genes_dropped",
    "primary_metric",
)
TRAILING_COLUMNS = ("wall_seconds", "wandb_id", "error", "overrides")
# Known metrics first in this order (regression, then classification); others alphabetically.
METRIC_ORDER = GENE_METRICS
_MAX_ERROR_CHARS = 500


# ---------------------------------------------------------------- small value helpers


def _known(value: Any) -> Any:
    """None for values that cannot be known outside a Hydra run (interpolations)."""
    if isinstance(value, str) and "${" in value:
        return None
    return value


def canonical_mark(value: Any) -> str | None:
    """One label per mark set: ``H3K27ac+H3K4me3`` and ``[H3K4me3, H3K27ac]`` both give
    ``H3K4me3+H3K27ac`` (``epx.selection``'s order and label); a value that is not a valid
    mark selection (a folder's own mark name) is kept as given, never an error."""
    if value is None:
        return None
    try:
        return mark_label(parse_marks(value))
    except InputError:
        return "+".join(str(part) for part in value) if isinstance(value, list | tuple) else str(value)


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


def _dict(value: Any) -> dict:
    # A record's fields are not type-checked on read; a hand-edited one may hold anything.
    return value if isinstance(value, dict) else {}


# ---------------------------------------------------------------- identity of a job


def _identity_from_config(config: Any, hydra_cfg: Any) -> dict[str, Any]:
    """cell/mark/fold/… from a (job or sweep) config; ``model``/``task`` are group choices."""
    config = config if isinstance(config, dict) else {}
    identity = {key: _known(config.get(key)) for key in IDENTITY_COLUMNS if key not in ("model", "task")}
    if isinstance(hydra_cfg, dict) and "hydra" in hydra_cfg:
        hydra_cfg = hydra_cfg["hydra"]
    choices = _dict(_dict(hydra_cfg).get("runtime")).get("choices") or {}
    # model and task are config groups: their name is the group choice (else the node's name)
    for group in ("model", "task"):
        node = config.get(group)
        identity[group] = _known(choices.get(group) or (node.get("name") if isinstance(node, dict) else node))
    return identity


def _identity_from_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    if not overrides:
        return {}
    # Imported here: ``import hydra`` loads hydra._internal, which a summary whose jobs
    # all have records never needs.
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception:
        return {}
    return {
        override.key_or_group: override.value()
        for override in parsed
        if override.key_or_group in IDENTITY_COLUMNS and override.package is None
    }


def _fields_from_record(record: JobRecord) -> dict[str, Any]:
    fields = {key: getattr(record, key) for key in IDENTITY_COLUMNS if getattr(record, key) is not None}
    n_genes, test, genes = _dict(record.n_genes), _dict(record.test), _dict(record.genes)
    fields.update(
        status=str(record.status or "unknown"),
        n_params=_as_int(_number(record.n_params)),
        n_train=_as_int(_number(n_genes.get("train"))),
        n_val=_as_int(_number(n_genes.get("val"))),
        n_test=_as_int(_number(n_genes.get("test"))),
        genes_used=_as_int(_number(genes.get("used"))),
        genes_dropped=_as_int(_number(genes.get("dropped_total"))),
        primary_metric=record.primary_metric,
        wall_seconds=_number(record.wall_seconds),
        wandb_id=_dict(record.wandb).get("id"),
        error=_one_line(record.error),
    )
    if record.smoke:  # a debug/fast_dev_run job: its metrics mean nothing (epx.record, smoke runs)
        fields["smoke"] = True
    undefined = _dict(record.undefined_metrics)
    if undefined:
        fields["undefined"] = _one_line("; ".join(f"{name}: {why}" for name, why in undefined.items()))
    fields.update({f"test_{name}": _number(value) for name, value in test.items()})
    if isinstance(record.overrides, list) and record.overrides:
        fields["overrides"] = " ".join(str(item) for item in record.overrides)
    return fields


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _read_record(path: Path) -> tuple[JobRecord | None, str | None]:
    """(record, None) or (None, why it is unreadable)."""
    try:
        return JobRecord.read(path), None
    except RecordError as exc:
        return None, str(exc)


def _row(
    job: str, job_dir: Path | None, overrides: Sequence[str], base_identity: dict[str, Any], refused: str | None = None
) -> dict[str, Any]:
    """One row: the record's fields over (its overrides when it has no record) over the job's
    config over the sweep's. ``refused``: why the job's overrides.yaml could not be read."""
    record, error = None, None
    record_path = job_dir / RECORD_NAME if job_dir is not None else None
    if record_path is not None and record_path.is_file():
        record, error = _read_record(record_path)

    identity = dict(base_identity)
    if job_dir is not None:
        config, config_refused = read_yaml_checked(job_dir / ".hydra" / "config.yaml")
        hydra, hydra_refused = read_yaml_checked(job_dir / ".hydra" / "hydra.yaml")
        job_identity = _identity_from_config(config, hydra)
        identity.update({key: value for key, value in job_identity.items() if value is not None})
        refused = refused or config_refused or hydra_refused
    if record is None:
        # A record states its identity itself; only jobs without one need their overrides parsed.
        identity.update(_identity_from_overrides(overrides))
    row: dict[str, Any] = {"job": job, **identity, "status": "missing", "overrides": " ".join(overrides)}
    if record is not None:
        row.update(_fields_from_record(record))
        if record.ended_without_finishing(_mtime(record_path)):
            row.update(status="killed", error=KILLED_ERROR.format(pid=record.pid, host=record.host))
    elif error is not None:
        row.update(status="unreadable", error=error)
    if refused is not None:
        # A job dir with an oversized or alias-bomb YAML file is damaged or hostile: its
        # record is not taken at its word either.
        row.update(status="unreadable", error=refused)
    row["mark"] = canonical_mark(row.get("mark"))
    for key in ("fold", "seed"):
        row[key] = _as_int(row.get(key))
    return row


# ---------------------------------------------------------------- a sweep dir


def _job_dirs(sweep_dir: Path) -> list[Path]:
    """Immediate subdirs that Hydra made for a job (``.hydra/``) or that hold a record."""
    return [
        child
        for child in sweep_dir.iterdir()
        if child.is_dir() and ((child / ".hydra").is_dir() or (child / RECORD_NAME).is_file())
    ]


def _natural_key(name: str) -> tuple[int, int | str]:
    return (0, int(name)) if name.isdigit() else (1, name)


def collect_rows(sweep_dir: str | os.PathLike, *, include_smoke: bool = False) -> list[dict[str, Any]]:
    """Rows of ``summary.csv`` (dicts keyed by column), expected grid first in job order.
    Smoke runs (``record.smoke``: trainer=debug and the like) are left out unless
    ``include_smoke``: their metrics are no result (``epx status`` lists them)."""
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
            f"{sweep_dir} is not a Hydra sweep dir: it has no readable grid.json or multirun.yaml and no "
            f"job dirs (<job>/.hydra or <job>/{RECORD_NAME}); pass the hydra.sweep.dir of a multirun"
        )
    multirun = read_yaml(sweep_dir / "multirun.yaml")
    base_identity = _identity_from_config(multirun, _dict(multirun).get("hydra"))

    # A job dir belongs to the grid job whose overrides it records; by name (= job num)
    # only when it records none, e.g. its .hydra/ was lost.
    by_overrides = {tuple(overrides): index for index, overrides in enumerate(grid)}
    claimed: dict[int, Path] = {}
    extra: list[tuple[Path, list[str]]] = []
    refused: dict[Path, str] = {}
    for job_dir in sorted(found, key=lambda path: _natural_key(path.name)):
        recorded, why = read_yaml_checked(job_dir / ".hydra" / "overrides.yaml")
        if why is not None:
            refused[job_dir] = why
        overrides = [str(item) for item in recorded] if isinstance(recorded, list) else None
        index = by_overrides.get(tuple(overrides)) if overrides is not None else None
        if index is None and overrides is None and job_dir.name.isdigit() and int(job_dir.name) < len(grid):
            index = int(job_dir.name)
        if index is not None and index not in claimed:
            claimed[index] = job_dir
        else:
            extra.append((job_dir, overrides or []))

    rows = [
        _row(
            claimed[index].name if index in claimed else str(index),
            claimed.get(index),
            overrides,
            base_identity,
            refused.get(claimed[index]) if index in claimed else None,
        )
        for index, overrides in enumerate(grid)
    ]
    rows += [_row(job_dir.name, job_dir, overrides, base_identity, refused.get(job_dir)) for job_dir, overrides in extra]
    return rows if include_smoke else [row for row in rows if not row.get("smoke")]


# ---------------------------------------------------------------- summary.csv


def metric_columns(rows: Iterable[dict[str, Any]]) -> list[str]:
    """``test_<metric>`` columns present in ``rows``, known metrics first (``METRIC_ORDER``)."""
    names = {key[len("test_"):] for row in rows for key in row if key.startswith("test_") and key != "test_cell"}
    ordered = [name for name in METRIC_ORDER if name in names] + sorted(names - set(METRIC_ORDER))
    return [f"test_{name}" for name in ordered]


def _csv_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, list | tuple):
        return "+".join(str(item) for item in value)
    return value


def summary_columns(rows: list[dict[str, Any]]) -> list[str]:
    """The columns of ``rows`` (module doc): ``undefined`` only when some job has undefined metrics."""
    undefined = ["undefined"] if any(row.get("undefined") for row in rows) else []
    return [*LEADING_COLUMNS, *metric_columns(rows), *undefined, *TRAILING_COLUMNS]


def write_csv(rows: list[dict[str, Any]], path: str | os.PathLike) -> Path:
    """``rows`` as csv at ``path`` (replaced atomically); columns as in the module doc."""
    columns = summary_columns(rows)

    def write(handle: IO) -> None:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({column: _csv_value(row.get(column)) for column in columns})

    return atomic_write(path, write)
