"""The job record: what one job did, as ``metrics.json`` in its job dir (DESIGN §5).

Contract: ``JobRecord`` is a dataclass with ``schema_version`` (``SCHEMA_VERSION``, 2 now).
``epx.run`` writes it (``record.write(job_dir)``, atomically, at the start, after setup and at
the end); ``epx summarize``, the distal report, ``epx predict`` and every later tool read it
with ``JobRecord.read(job_dir_or_file)``. Reading accepts every earlier version: a file
without ``schema_version`` is version 1 (before this module), whose fields are the same
minus ``primary_metric``/``kind``/``source_job``; ``primary_metric`` is then taken from the
task (``pearson`` for regression, ``auroc`` for classification), as version 1 tools did.
Keys this version does not know are kept in ``extra`` and written back unchanged, so a newer
record read by an older epx loses nothing. A file that is not a JSON object (or whose
``schema_version`` is not a number) raises ``RecordError`` naming the file.

Fields: identity (``cell, mark, marks, fold, model, task, seed, test_cell, dataset``), what
the job is (``kind``: ``train`` or ``predict``; ``source_job``: the trained job a prediction
came from), ``primary_metric`` (the objective's headline test metric), ``n_params``,
``n_genes`` per split, ``test`` metrics, ``status`` (``running`` | ``ok`` | ``failed``),
``error``, ``wall_seconds``, ``wandb`` (id, dir, mode, url), ``overrides`` (Hydra's task
overrides), ``checkpoint`` (the weights that produced the predictions), ``host`` and ``pid``
(the machine and process that run the job, so a reader can tell a live ``running`` job from
one whose process was killed), ``genes`` and ``interactions`` (what the job's inputs held
and what it used, below). All of these are optional on read: an older record (or one of a
job that stopped before its data were read) lacks them and reads as ``None`` / ``{}``.

``genes`` (gene accounting; ``{}`` until the data are read): ``tss`` (genes in the TSS
file), ``expression`` (genes in the expression table), ``used`` (int, genes in the
splits), ``split`` (``{train, val, test: int}``), ``dropped`` (``{reason: int}``, one count
per named reason a gene was left out) and ``dropped_total`` (int).

``interactions`` (for models that read an interactions file; ``{}`` otherwise): ``read``
(rows read), ``kept`` (rows the score threshold kept), ``matched`` (kept rows linked to a
gene) and ``genes_linked`` (genes with at least one link).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from epx.io.atomic import write_json

SCHEMA_VERSION = 2
FILE_NAME = "metrics.json"
# Version 1 records carry no primary metric; these were the only tasks then.
V1_PRIMARY_METRIC = {"regression": "pearson", "classification": "auroc"}


class RecordError(ValueError):
    """A metrics.json that cannot be read as a job record."""


@dataclass
class JobRecord:
    cell: str | None = None
    mark: str | None = None
    marks: list[str] = field(default_factory=list)
    fold: int | None = None
    model: str | None = None
    task: str | None = None
    seed: int | None = None
    test_cell: str | None = None
    dataset: str | None = None
    kind: str = "train"
    source_job: str | None = None
    primary_metric: str | None = None
    n_params: int | None = None
    n_genes: dict[str, int] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    status: str = "running"
    error: str | None = None
    wall_seconds: float | None = None
    wandb: dict[str, Any] | None = None
    overrides: list[str] = field(default_factory=list)
    checkpoint: str | None = None
    host: str | None = None
    pid: int | None = None
    genes: dict[str, Any] = field(default_factory=dict)
    interactions: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    # -- derived -------------------------------------------------------------------------
    @property
    def primary_value(self) -> float | None:
        """The primary test metric's value, or None when the job has none (yet)."""
        return self.test.get(self.primary_metric) if self.primary_metric else None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    # -- (de)serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**self.extra, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "JobRecord":
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {k: v for k, v in data.items() if k in known}
        values["schema_version"] = int(data.get("schema_version", 1))
        record = cls(**values, extra={k: v for k, v in data.items() if k not in known})
        if record.primary_metric is None and record.schema_version < 2:
            record.primary_metric = V1_PRIMARY_METRIC.get(str(record.task))
        return record

    def write(self, path: str | os.PathLike) -> Path:
        """Write atomically to ``path`` (a job dir, or a file name)."""
        path = Path(path)
        target = path / FILE_NAME if path.is_dir() else path
        return write_json(target, self.to_dict())

    @classmethod
    def read(cls, path: str | os.PathLike) -> "JobRecord":
        path = Path(path)
        target = path / FILE_NAME if path.is_dir() else path
        try:
            data = json.loads(target.read_text())
        except FileNotFoundError as err:
            raise RecordError(f"{target}: no job record (the job never started, or this is not a job dir)") from err
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise RecordError(f"{target}: unreadable job record ({type(err).__name__}: {err})") from err
        if not isinstance(data, dict):
            raise RecordError(f"{target}: expected a JSON object, got {type(data).__name__}")
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as err:  # e.g. a schema_version that is not a number
            raise RecordError(f"{target}: unreadable job record ({type(err).__name__}: {err})") from err
