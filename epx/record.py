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
the job is (``kind``: ``train``, ``predict`` or ``imported`` (``epx import``); ``source_job``: the trained job a prediction
came from), ``primary_metric`` (the objective's headline test metric), ``n_params``,
``n_genes`` per split, ``test`` metrics (``{name: float | None}``), ``undefined_metrics``
(``{name: reason}``, below), ``status`` (``STATUSES``, below), ``error``, ``wall_seconds``, ``wandb`` (id, dir, mode, url), ``overrides`` (Hydra's task
overrides), ``checkpoint`` (the weights that produced the predictions), ``host`` and ``pid``
(the machine and process that run the job, so a reader can tell a live ``running`` job from
one whose process was killed), ``genes`` and ``interactions`` (what the job's inputs held
and what it used, below), ``config_digest`` (a digest of the job's resolved config without
machine paths: what decides whether a rerun of a grid may reuse this job) and ``reused``
(True when the latest launch found this job finished with the same digest and skipped it). All of these are optional on read: an older record (or one of a
job that stopped before its data were read) lacks them and reads as ``None`` / ``{}``.

``genes`` (gene accounting; ``{}`` until the data are read): ``tss`` (genes in the TSS
file), ``expression`` (genes in the expression table), ``used`` (int, genes in the
splits), ``split`` (``{train, val, test: int}``), ``dropped`` (``{reason: int}``, one count
per named reason a gene was left out) and ``dropped_total`` (int).

``interactions`` (for models that read an interactions file; ``{}`` otherwise): ``read``
(rows read), ``kept`` (rows the score threshold kept), ``matched`` (kept rows linked to a
gene) and ``genes_linked`` (genes with at least one link).

Statuses (``STATUSES``): ``running`` (the job's process is at work, or was killed: see below),
``ok`` (finished, every test metric defined), ``degenerate`` (finished, but at least one test
metric is undefined on the data), ``failed`` (an error; ``error`` says which), ``interrupted``
(SIGTERM or SIGINT; resumes from ``checkpoints/last.ckpt`` when launched again). ``FINISHED``
(``ok``, ``degenerate``; ``record.finished``) are the jobs with weights and predictions that a
named sweep reuses and ``epx predict`` scores; the summaries add ``killed``, ``missing`` and
``unreadable`` for jobs whose record says nothing (more) itself.

Undefined metrics (issue 23): a test metric that has no meaning on the data — a correlation
over constant targets or constant predictions, AUROC/AUPRC over one class, a metric that saw
no value (``epx.train.undefined``) — is ``null`` in ``test`` and its reason is in
``undefined_metrics`` (e.g. ``{"pearson": "targets are constant (all 3.2) over 40 values"}``);
``record.set_test(values, undefined)`` fills both and ``record.finish()`` then sets ``ok`` or
``degenerate``: ``degenerate`` when the undefined metrics include the primary metric or a
per-gene metric (``GENE_METRICS``, the ones every model reports on the same test genes); a
model's own per-bin diagnostics (GraphReg's ``bin_*_{subset}``, e.g. a window without an
expressed bin that has a contact) are null with their reason and leave the job ``ok``. Never 0
or 1 in its place: every reader (summary, plots, W&B) treats it as missing.

Smoke runs (issue 24): ``smoke`` is True for a job trained with a smoke trainer
(``is_smoke(trainer_cfg)``: ``fast_dev_run``, e.g. ``trainer=debug``: one batch per stage, a
test of the plumbing whose metrics mean nothing). Such a record keeps its status (``ok``: the
job ran to the end) but ``epx status`` shows it as ``smoke``, and summaries, heatmaps and
reports leave it out unless asked (``epx summarize --include-smoke``).

``record.ended_without_finishing(written_at)`` tells a killed job from a live one: True when
the record says ``running``, names this machine as its host, and its ``pid`` is no longer a
live process — gone, a zombie, or (Linux, from ``/proc``) a process that started after the
record was last written (``written_at``, the file's mtime), i.e. the pid was reused. A record
from another host, or without host/pid (older records), is never judged: False.
``KILLED_ERROR`` is the error a summary reports for such a job.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from epx.io.atomic import write_json

SCHEMA_VERSION = 2
FILE_NAME = "metrics.json"
STATUSES = ("running", "ok", "degenerate", "failed", "interrupted")
FINISHED = ("ok", "degenerate")
# per-gene test metrics, the same for every model (DESIGN §5): undefined, they make a job degenerate
GENE_METRICS = ("pearson", "spearman", "mse", "auroc", "auprc", "accuracy")
# Version 1 records carry no primary metric; these were the only tasks then.
V1_PRIMARY_METRIC = {"regression": "pearson", "classification": "auroc"}


KILLED_ERROR = (
    "process {pid} on {host} ended without finishing the job (killed, out of memory or time limit); rerun it"
)
# /proc gives a process's start time in clock ticks after boot; boot time is whole seconds,
# so a start time is known to about a second: a pid is only judged reused beyond that.
_START_SLACK_S = 2.0


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
    test: dict[str, float | None] = field(default_factory=dict)
    undefined_metrics: dict[str, str] = field(default_factory=dict)
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
    config_digest: str | None = None
    reused: bool = False
    smoke: bool = False
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

    @property
    def finished(self) -> bool:
        """Trained and evaluated to the end (``ok`` or ``degenerate``): weights and predictions exist."""
        return self.status in FINISHED

    def set_test(self, values: dict[str, float], undefined: dict[str, str]) -> None:
        """The test metrics: defined ``values``, and ``None`` with its reason for each undefined one."""
        self.test = {**values, **{name: None for name in undefined}}
        self.undefined_metrics = dict(undefined)

    def finish(self) -> None:
        """The end of a job that ran to completion: ``degenerate`` when its primary or a per-gene
        test metric is undefined (module doc)."""
        decisive = {self.primary_metric, *GENE_METRICS}
        self.status = "degenerate" if decisive & set(self.undefined_metrics) else "ok"

    def ended_without_finishing(self, written_at: float | None = None) -> bool:
        """True when this ``running`` record's process, on this machine, is gone (see module doc)."""
        if self.status != "running" or not self.host or not isinstance(self.pid, int) or isinstance(self.pid, bool):
            return False
        if self.host != socket.gethostname():
            return False
        return not _process_alive(self.pid, written_at)

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


def is_smoke(trainer_cfg: Any) -> bool:
    """A trainer config that runs a smoke test (``fast_dev_run``: a few batches, no real training)."""
    get = getattr(trainer_cfg, "get", None)
    return bool(get("fast_dev_run", False)) if get else False


def _process_alive(pid: int, written_at: float | None) -> bool:
    """Is ``pid`` a live process that could have written a record at ``written_at``?"""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    except OSError:
        return True  # cannot tell: never call a job killed on a guess
    stat = _proc_stat(pid)
    if stat is None:  # no /proc (macOS): liveness of the pid is all we know
        return True
    state, start = stat
    if state in ("Z", "X"):  # a zombie: dead, its parent has not reaped it yet
        return False
    return written_at is None or start is None or start <= written_at + _START_SLACK_S


def _proc_stat(pid: int) -> tuple[str, float | None] | None:
    """(state, start time as a Unix time) of ``pid`` from /proc, or None without /proc."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return ("X", None) if Path("/proc/self/stat").exists() else None
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its last ")"
    fields = raw[raw.rindex(")") + 2 :].split()
    state = fields[0]
    try:
        ticks = int(fields[19])  # field 22 of the whole line: starttime
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime"))
        return state, boot + ticks / os.sysconf("SC_CLK_TCK")
    except (IndexError, ValueError, StopIteration, OSError):
        return state, None
