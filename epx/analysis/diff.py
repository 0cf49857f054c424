"""``epx diff A B``: how two jobs, two sweeps or two compositions differ in resolved config.

Contract
--------
Each of ``A`` and ``B`` is, in this order:

- a **job dir** (it holds ``.hydra/config.yaml``): its saved config;
- a **sweep dir** (``epx.analysis.collect.collect_rows`` accepts it: ``grid.json``,
  ``multirun.yaml`` or job dirs);
- otherwise a **composition**: a space-separated override list (shell quoting allowed)
  composed with ``epx.config.compose``, e.g. ``"experiment=chromoformer_paper"``; ``""`` is the
  default config. A word without ``=`` (not a ``~key`` deletion) is taken for a path, and a
  path that does not exist, or exists but is neither a job nor a sweep dir, or overrides that
  do not compose, is one line on stderr and exit code 2 (``DiffError``). A sweep is compared
  only with a sweep.

A config is compared **resolved** and **flattened**: one ``dotted.key: value`` line per leaf
(lists and empty dicts are one flow-style value), sorted by key. Interpolations are resolved
(``${n_marks:${mark}}`` → ``7``), except a value that only repeats another key
(``data.inputs: ${model.inputs}``, ``model.net.out_dim: ${task.out_dim}``), which is kept as
that reference so a difference is shown once, at the key it repeats; a value that cannot be
resolved outside its job (``${hydra:…}``) is kept as written. A resolver that reads the
environment or the process (``${oc.env:SECRET}``: anything outside
``epx.config.SAFE_RESOLVERS``) is never resolved, on any side: its value is shown as written,
and so is every value that interpolates it, so a secret in a job's ``.hydra/config.yaml`` never
reaches a review comment. A job dir's config is read by ``epx.io.safe_yaml.load_yaml``
(size- and alias-bounded: an alias bomb is one ``DiffError``).

**Run keys** (``epx.config.RUN_KEYS``: how or where a job runs, not what it computes — the
keys a job's config digest and its named-sweep dir name leave out too) never count as a
difference between two jobs:

- ``where`` keys — machine paths and run controls (the ``paths`` and ``hydra`` subtrees,
  ``dataset.root``, ``data.cache_dir``, ``sweep``, ``rerun``, ``threads``, workers), every
  value that interpolates one (``${paths.…}``, ``${hydra:…}``, ``${dataset.root}``:
  ``dataset.spec.root``, ``callbacks.checkpoint.dirpath``), and every string that is an
  absolute path at or under one of that config's own machine dirs (its ``where`` values, and
  for a job dir the dir that holds it) — are left out of the comparison; those that differ
  are named in one note at the end; ``--with-paths`` compares them too;
- ``how`` keys (``compute``, ``data.pin_memory``, ``trainer.accelerator``, console and
  logging settings, ``logger``, ``tags``, ``analysis``) that differ are shown after the
  config difference, under their own heading, as ``-key: A`` / ``+key: B`` lines (a markdown
  table with ``--markdown``).

The same rule decides which overrides may differ between matched sweep jobs without making
them different jobs.

Output: a unified diff (``difflib``) of the two flat YAML dumps, labelled ``A: …`` / ``B: …``;
or, with ``--markdown``, a table ``key | A | B`` for a review comment. When both sides are
finished jobs (records with ``status: ok`` or ``degenerate``; an undefined metric, null, shows as missing), their test metrics follow side by side with
``B − A``.

Two sweeps: jobs are matched by the overrides that vary within either sweep (``cell``,
``mark``, ``fold`` for a usual grid; a job without such an override takes its value from its
identity in the summary — ``cell``, ``mark``, ``fold``, ``seed``, ``model``, … — so a sweep
over folds of the default cell matches a sweep over cells and folds; overrides every job of a
sweep shares are what the sweep changes, and are compared as config; machine paths and run
controls never tell jobs apart); jobs only in one sweep are listed (the grid
difference); matched pairs with the same config difference are reported once, naming their
jobs; a table gives each matched pair's status and primary test metric, and the mean over
pairs finished in both. Job dirs without a config (never started) are named as such.

``main(argv)`` is the command; ``diff_text(a, b, …) -> str`` its output for two arguments.
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import re
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from epx.analysis.collect import IDENTITY_COLUMNS, METRIC_ORDER, canonical_mark, collect_rows
from epx.analysis.grid import expected_grid, read_yaml
from epx.config import RUN_KEYS, compose, is_run_key, run_key, unsafe_interpolation
from epx.errors import InputError
from epx.io.safe_yaml import load_yaml
from epx.record import FILE_NAME as RECORD_NAME
from epx.record import FINISHED, JobRecord, RecordError

WHERE_KEYS = tuple(entry.key for entry in RUN_KEYS if entry.kind == "where")
# a value built from a machine path or run control is one too: ${paths.…}, ${hydra:…}, ${dataset.root}
MACHINE_REFERENCE = re.compile(r"\$\{\s*(hydra:|" + "|".join(re.escape(key) + r"[.}\s]" for key in WHERE_KEYS) + ")")
# ${a.b.c}: a value that only repeats another key of the config
ALIAS = re.compile(r"^\$\{([A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*)\}$")
ABSENT = object()
USAGE_HINT = "pass two job dirs, two sweep dirs, or two override lists such as \"experiment=chromoformer_paper\""


class DiffError(ValueError):
    """Bad input to ``epx diff``: the one line printed before exit code 2."""


# ---------------------------------------------------------------- one config, flattened


def _has_interpolation(value: Any) -> bool:
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, list):
        return any(_has_interpolation(item) for item in value)
    if isinstance(value, dict):
        return any(_has_interpolation(item) for item in value.values())
    return False


def _leaves(raw: Any, prefix: str = ""):
    if isinstance(raw, dict) and raw:
        for key, value in raw.items():
            yield from _leaves(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], raw


def _escape_unsafe(raw: Any) -> Any:
    """``raw`` with every string that calls an unsafe resolver escaped (``\\${``), so it reads as its own text."""
    if isinstance(raw, dict):
        return {key: _escape_unsafe(value) for key, value in raw.items()}
    if isinstance(raw, list):
        return [_escape_unsafe(value) for value in raw]
    if isinstance(raw, str) and unsafe_interpolation(raw):
        return raw.replace("${", "\\${")
    return raw


def _resolve_leaf(cfg, key: str, raw: Any) -> Any:
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if not _has_interpolation(raw) or (isinstance(raw, str) and ALIAS.match(raw)) or unsafe_interpolation(raw):
        return raw
    try:
        value = OmegaConf.select(cfg, key, throw_on_resolution_failure=True, throw_on_missing=True)
        if isinstance(value, DictConfig | ListConfig):
            value = OmegaConf.to_container(value, resolve=True)
    except Exception:  # noqa: BLE001 — ${hydra:…}, an env var or resolver this process lacks
        return raw
    return value


def _absolute(value: Any) -> Path | None:
    if not isinstance(value, str) or not value.startswith(("/", "~")):
        return None
    return Path(os.path.normpath(os.path.expanduser(value)))


def _under(value: Any, roots: Sequence[Path]) -> bool:
    path = _absolute(value)
    return path is not None and any(path == root or root in path.parents for root in roots)


def _kind(key: str) -> str | None:
    entry = run_key(key)
    return entry.kind if entry is not None else None


@dataclass
class FlatConfig:
    """A config as ``{dotted key: resolved value}``: what is compared (``values``), the machine
    paths and run controls (``machine``: the ``where`` run keys) and how the job runs (``how``)."""

    values: dict[str, Any]
    machine: dict[str, Any]
    how: dict[str, Any] = field(default_factory=dict)


def flatten(cfg, extra_roots: Sequence[Path] = ()) -> FlatConfig:
    """``cfg`` (a DictConfig) resolved and flattened, machine paths apart (module doc)."""
    from omegaconf import OmegaConf

    raw = OmegaConf.to_container(cfg, resolve=False)
    inert = OmegaConf.create(_escape_unsafe(raw))  # what interpolates ${oc.env:…} gets its text, never its value
    leaves = {key: (value, _resolve_leaf(inert, key, value)) for key, value in _leaves(raw)}
    roots = [*extra_roots]
    for key, (_, value) in leaves.items():
        if _kind(key) == "where":
            path = _absolute(value)
            if path is not None and path != Path("/"):
                roots.append(path)
    flat = FlatConfig({}, {}, {})
    for key, (raw_value, value) in leaves.items():
        is_machine = (
            _kind(key) == "where"
            or (isinstance(raw_value, str) and MACHINE_REFERENCE.search(raw_value) is not None)
            or _under(value, roots)
        )
        bucket = flat.machine if is_machine else flat.how if _kind(key) == "how" else flat.values
        bucket[key] = value
    return flat


def fmt(value: Any) -> str:
    """One value as flow-style YAML on one line (``0.001``, ``[2000, 500, 100]``, ``null``)."""
    try:
        text = yaml.safe_dump([value], default_flow_style=True, width=10**9, allow_unicode=True, sort_keys=True)
    except yaml.YAMLError:
        text = yaml.safe_dump([str(value)], default_flow_style=True, width=10**9, allow_unicode=True)
    return text.strip()[1:-1]


def dump_lines(values: dict[str, Any]) -> list[str]:
    return [f"{key}: {fmt(value)}" for key, value in sorted(values.items())]


def changes(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, A's value, B's value) for every key whose value differs (``ABSENT`` where missing)."""
    keys = sorted(set(a) | set(b))
    out = []
    for key in keys:
        left, right = a.get(key, ABSENT), b.get(key, ABSENT)
        if left is ABSENT or right is ABSENT or fmt(left) != fmt(right):
            out.append((key, left, right))
    return out


# ---------------------------------------------------------------- what A and B are


@dataclass
class Side:
    """One argument of ``epx diff``: a job dir, a sweep dir or a composition."""

    label: str
    kind: str  # "job" | "sweep" | "composition"
    path: Path | None = None
    config: FlatConfig | None = None
    record: JobRecord | None = None

    @property
    def what(self) -> str:
        return {"job": "a job dir", "sweep": "a sweep dir", "composition": "a composition"}[self.kind]


def is_job_dir(path: Path) -> bool:
    return (path / ".hydra" / "config.yaml").is_file()


def load_job_config(job_dir: Path) -> FlatConfig:
    from omegaconf import OmegaConf

    path = job_dir / ".hydra" / "config.yaml"
    try:
        plain = load_yaml(path)
        if not isinstance(plain, dict):
            raise InputError(f"{path}: not a job config (a YAML mapping)")
        cfg = OmegaConf.create(plain)
    except InputError as err:
        raise DiffError(str(err)) from err
    except Exception as err:  # noqa: BLE001 — a truncated or foreign YAML
        raise DiffError(f"{path}: unreadable config ({type(err).__name__}: {' '.join(str(err).split())[:200]})") from err
    return flatten(cfg, extra_roots=[Path(os.path.abspath(job_dir)).parent])


def read_record(job_dir: Path) -> JobRecord | None:
    if not (job_dir / RECORD_NAME).is_file():
        return None
    try:
        return JobRecord.read(job_dir)
    except RecordError:
        return None


def _looks_like_path(argument: str) -> bool:
    try:
        words = shlex.split(argument)
    except ValueError:  # unbalanced quotes: compose_side says so
        return False
    return any("=" not in word and not word.startswith("~") for word in words)


def compose_side(argument: str) -> Side:
    try:
        overrides = shlex.split(argument)
    except ValueError as err:
        raise DiffError(f"{argument!r}: not an override list ({err})") from err
    try:
        cfg = compose(overrides)
    except Exception as err:  # noqa: BLE001 — Hydra's parse / composition errors
        first = " ".join(str(err).split())[:300]
        raise DiffError(f"{argument!r} is not an existing job or sweep dir, and as overrides it does not compose: {first}") from err
    return Side(argument or "(defaults)", "composition", config=flatten(cfg))


def side(argument: str) -> Side:
    """What ``argument`` is (module doc); ``DiffError`` when it is none of them."""
    path = None
    if argument.strip():
        # "~/x" is a home path; "~key" is a deletion override (and "~user" may not exist)
        path = Path(argument).expanduser() if argument == "~" or argument.startswith("~/") else Path(argument)
    try:
        exists = path is not None and path.exists()
    except OSError:  # e.g. a name too long to be a path: an override list
        exists = False
    if exists:
        if path.is_dir() and is_job_dir(path):
            return Side(argument, "job", path=path, config=load_job_config(path), record=read_record(path))
        if path.is_dir():
            try:
                collect_rows(path)
                return Side(argument, "sweep", path=path)
            except (FileNotFoundError, ValueError):
                pass
        raise DiffError(
            f"{argument} is neither a job dir (no .hydra/config.yaml) nor a sweep dir (no grid.json, "
            f"multirun.yaml or job dirs); {USAGE_HINT}"
        )
    if _looks_like_path(argument):
        raise DiffError(f"{argument}: no such job or sweep dir (and not an override list: overrides are key=value); {USAGE_HINT}")
    return compose_side(argument)


# ---------------------------------------------------------------- rendering helpers


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _metric_names(*tests: dict) -> list[str]:
    names = set().union(*(set(test) for test in tests))
    return [name for name in METRIC_ORDER if name in names] + sorted(names - set(METRIC_ORDER))


def _num(value: Any, signed: bool = False) -> str:
    number = _number(value)
    if number is None:
        return "—"
    return f"{number:+.4f}" if signed else f"{number:.4f}"


def _md(text: str) -> str:
    """A table cell: code-formatted, pipes escaped."""
    text = text.replace("|", "\\|")
    return f"`{text}`" if text else ""


def _md_value(value: Any) -> str:
    return "*(absent)*" if value is ABSENT else _md(fmt(value))


def _both_finished(a: JobRecord | None, b: JobRecord | None) -> bool:
    return a is not None and b is not None and a.finished and b.finished and bool(a.test or b.test)


def _metric_lines(a: JobRecord, b: JobRecord, markdown: bool) -> list[str]:
    names = _metric_names(a.test, b.test)
    primary = a.primary_metric or b.primary_metric
    label = lambda name: f"{name} (primary)" if name == primary else name  # noqa: E731
    rows = [(label(name), a.test.get(name), b.test.get(name)) for name in names]
    delta = lambda x, y: (y - x) if _number(x) is not None and _number(y) is not None else None  # noqa: E731
    if markdown:
        lines = ["", "| test metric | A | B | B − A |", "|---|---|---|---|"]
        lines += [f"| {name} | {_num(x)} | {_num(y)} | {_num(delta(x, y), True)} |" for name, x, y in rows]
        return lines
    width = max([len("test metric"), *(len(name) for name, _, _ in rows)])
    lines = ["", f"{'test metric':<{width}}  {'A':>10}  {'B':>10}  {'B - A':>10}"]
    lines += [f"{name:<{width}}  {_num(x):>10}  {_num(y):>10}  {_num(delta(x, y), True):>10}" for name, x, y in rows]
    return lines


def _machine_note(a: FlatConfig, b: FlatConfig, markdown: bool) -> list[str]:
    differing = [key for key, _, _ in changes(a.machine, b.machine)]
    if not differing:
        return []
    shown = ", ".join(differing[:8]) + (f" and {len(differing) - 8} more" if len(differing) > 8 else "")
    text = f"not compared (machine paths, run controls): {shown} differ (--with-paths compares them)"
    return ["", f"*{text}*"] if markdown else [f"# {text}"]


HOW_HEADING = "how the jobs run (not part of their config digest or job-dir name)"


def _how_lines(a: FlatConfig, b: FlatConfig, markdown: bool) -> list[str]:
    """The ``how`` run keys that differ, apart from the config difference (module doc)."""
    rows = changes(a.how, b.how)
    if not rows:
        return []
    if markdown:
        table = [f"| {_md(key)} | {_md_value(x)} | {_md_value(y)} |" for key, x, y in rows]
        return ["", f"*{HOW_HEADING}:*", "", "| key | A | B |", "|---|---|---|", *table]
    lines = ["", f"# {HOW_HEADING}:"]
    for key, x, y in rows:
        lines += [f"-{key}: {fmt(x)}"] if x is not ABSENT else []
        lines += [f"+{key}: {fmt(y)}"] if y is not ABSENT else []
    return lines


def _how_note(a: FlatConfig, b: FlatConfig, markdown: bool) -> list[str]:
    differing = [key for key, _, _ in changes(a.how, b.how)]
    if not differing:
        return []
    text = f"{HOW_HEADING}: {', '.join(differing[:8])}{f' and {len(differing) - 8} more' if len(differing) > 8 else ''} differ"
    return [f"*{text}*"] if markdown else [f"# {text}"]


def _compared(config: FlatConfig, with_paths: bool) -> dict[str, Any]:
    return {**config.values, **config.machine} if with_paths else config.values


def config_diff_lines(
    a: FlatConfig, b: FlatConfig, label_a: str, label_b: str, *, markdown: bool, with_paths: bool
) -> list[str]:
    """The unified diff (or the markdown table) of two flat configs; [] when equal."""
    left, right = _compared(a, with_paths), _compared(b, with_paths)
    if markdown:
        rows = changes(left, right)
        if not rows:
            return []
        lines = ["| key | A | B |", "|---|---|---|"]
        return lines + [f"| {_md(key)} | {_md_value(x)} | {_md_value(y)} |" for key, x, y in rows]
    return list(
        difflib.unified_diff(dump_lines(left), dump_lines(right), fromfile=f"A: {label_a}", tofile=f"B: {label_b}", lineterm="")
    )


# ---------------------------------------------------------------- two configs


def diff_configs(a: Side, b: Side, *, markdown: bool, with_paths: bool) -> list[str]:
    scope = "resolved configs" + ("" if with_paths else "; machine paths ignored")
    body = config_diff_lines(a.config, b.config, a.label, b.label, markdown=markdown, with_paths=with_paths)
    lines: list[str] = []
    if markdown:
        lines += [f"**epx diff** ({scope}): A = {_md(a.label)} ({a.what}), B = {_md(b.label)} ({b.what})", ""]
        lines += body or ["No differences."]
    else:
        scope_note = "" if with_paths else " (machine paths ignored)"
        lines += body or [f"no differences between the resolved configs of A: {a.label} and B: {b.label}{scope_note}"]
    lines += _how_lines(a.config, b.config, markdown)
    if _both_finished(a.record, b.record):
        lines += _metric_lines(a.record, b.record, markdown)
    lines += _machine_note(a.config, b.config, markdown)
    return lines


# ---------------------------------------------------------------- two sweeps


@dataclass
class SweepJob:
    name: str
    overrides: list[str]
    status: str
    dir: Path | None
    key_values: dict[str, str] = field(default_factory=dict)
    record: JobRecord | None = None
    identity: dict[str, str] = field(default_factory=dict)  # cell, mark, fold, … as the summary knows them

    def value(self, key: str) -> str | None:
        """The job's value of ``key``: its override, else its identity (a sweep default)."""
        return self.key_values.get(key, self.identity.get(key))


def _override_values(overrides: Sequence[str]) -> dict[str, str]:
    """``{key: value as written}`` of an override list (marks as one label per mark set)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    values: dict[str, str] = {}
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
        pairs = [
            (override.key_or_group, "~" if override.is_delete() else override.get_value_element_as_str())
            for override in parsed
        ]
    except Exception:  # noqa: BLE001 — keep going on a hand-edited overrides.yaml
        pairs = [tuple(item.lstrip("+~").split("=", 1)) if "=" in item else (item.lstrip("+~"), "~") for item in overrides]
    for key, value in pairs:
        values[key] = canonical_mark(value) if key == "mark" else value
    return values


def sweep_jobs(sweep: Path) -> list[SweepJob]:
    rows = collect_rows(sweep)
    grid = expected_grid(sweep)
    jobs = []
    for row in rows:
        name = str(row["job"])
        job_dir = sweep / name
        overrides: Any = read_yaml(job_dir / ".hydra" / "overrides.yaml") if job_dir.is_dir() else None
        record = read_record(job_dir) if job_dir.is_dir() else None
        if not isinstance(overrides, list):
            if record is not None and isinstance(record.overrides, list) and record.overrides:
                overrides = record.overrides
            elif not job_dir.is_dir() and name.isdigit() and int(name) < len(grid):
                overrides = grid[int(name)]
            else:
                overrides = str(row.get("overrides") or "").split()
        overrides = [str(item) for item in overrides]
        identity = {key: str(row[key]) for key in IDENTITY_COLUMNS if row.get(key) is not None}
        jobs.append(
            SweepJob(
                name, overrides, str(row.get("status")), job_dir if is_job_dir(job_dir) else None,
                _override_values(overrides), record, identity,
            )
        )  # fmt: skip
    return jobs


def _machine_override(key: str) -> bool:
    """An override that says where or how a job runs: never what tells sweep jobs apart."""
    return is_run_key(key)


def _varying(jobs: list[SweepJob]) -> set[str]:
    keys = {key for job in jobs for key in job.key_values}
    return {key for key in keys if len({job.key_values.get(key) for job in jobs}) > 1}


def _describe(job: SweepJob, keys: Sequence[str]) -> str:
    shown = [f"{key}={job.value(key)}" for key in keys if job.value(key) is not None]
    return " ".join(shown) or " ".join(job.overrides) or "(no overrides)"


def match_jobs(a: list[SweepJob], b: list[SweepJob]) -> tuple[list[str], list[tuple[SweepJob, SweepJob]], list[SweepJob], list[SweepJob]]:
    """(match keys, matched pairs, only in A, only in B) — see the module doc."""
    keys = sorted(key for key in _varying(a) | _varying(b) if not _machine_override(key))
    ident = lambda job: tuple(job.value(key) for key in keys)  # noqa: E731
    pending: dict[tuple, list[SweepJob]] = {}
    for job in b:
        pending.setdefault(ident(job), []).append(job)
    pairs, only_a = [], []
    for job in a:
        candidates = pending.get(ident(job))
        if candidates:
            pairs.append((job, candidates.pop(0)))
        else:
            only_a.append(job)
    matched_b = {id(job_b) for _, job_b in pairs}
    only_b = [job for job in b if id(job) not in matched_b]
    return keys, pairs, only_a, only_b


def _change_key(found: list[tuple[str, Any, Any]]) -> tuple:
    """A hashable form of ``changes`` output (pairs with equal keys differ the same way)."""
    shown = lambda value: None if value is ABSENT else fmt(value)  # noqa: E731
    return tuple((key, value is ABSENT, shown(value), other is ABSENT, shown(other)) for key, value, other in found)


def _jobs(n: int) -> str:
    return f"{n} job" if n == 1 else f"{n} jobs"


def _counts(jobs: list[SweepJob]) -> str:
    order = ["ok", "degenerate", "running", "interrupted", "killed", "failed", "unreadable", "missing"]
    statuses = [job.status for job in jobs]
    order += sorted(set(statuses) - set(order))
    return ", ".join(f"{statuses.count(status)} {status}" for status in order if status in statuses)


def _names(pairs: list[tuple[SweepJob, SweepJob]], keys: Sequence[str], limit: int = 6) -> str:
    shown = [_describe(job_a, keys) or job_a.name for job_a, _ in pairs[:limit]]
    rest = len(pairs) - limit
    return "; ".join(shown) + (f"; and {rest} more" if rest > 0 else "")


def diff_sweeps(a: Side, b: Side, *, markdown: bool, with_paths: bool) -> list[str]:
    jobs_a, jobs_b = sweep_jobs(a.path), sweep_jobs(b.path)
    keys, pairs, only_a, only_b = match_jobs(jobs_a, jobs_b)
    scope = "resolved configs" + ("" if with_paths else "; machine paths ignored")
    matched_by = ", ".join(keys) if keys else "position (no override varies within either sweep)"
    lines: list[str] = []
    if markdown:
        lines += [
            f"**epx diff** of two sweeps ({scope}): A = {_md(a.label)} ({_jobs(len(jobs_a))}: {_counts(jobs_a)}), "
            f"B = {_md(b.label)} ({_jobs(len(jobs_b))}: {_counts(jobs_b)}); jobs matched by {matched_by}.",
        ]
    else:
        lines += [
            f"# A: {a.label} ({_jobs(len(jobs_a))}: {_counts(jobs_a)})",
            f"# B: {b.label} ({_jobs(len(jobs_b))}: {_counts(jobs_b)})",
            f"# {_jobs(len(pairs))} in both, matched by {matched_by}; {len(only_a)} only in A, {len(only_b)} only in B",
        ]

    # the grid difference
    for title, only in (("only in A", only_a), ("only in B", only_b)):
        if not only:
            continue
        if markdown:
            lines += ["", f"Jobs {title}:", ""] + [f"- job {job.name}: {_md(_describe(job, keys))} ({job.status})" for job in only]
        else:
            lines += [f"# {title}: job {job.name} ({_describe(job, keys)}; {job.status})" for job in only]

    # config differences of matched pairs, one block per distinct difference
    groups: dict[tuple, list[tuple[SweepJob, SweepJob]]] = {}
    no_config: list[str] = []
    configs: dict[int, FlatConfig] = {}
    machine_seen: list[tuple[FlatConfig, FlatConfig]] = []
    for job_a, job_b in pairs:
        missing = [side_name for side_name, job in (("A", job_a), ("B", job_b)) if job.dir is None]
        if missing:
            no_config.append(f"{_describe(job_a, keys)}: no config in {' and '.join(missing)} (the job never started)")
            continue
        config_a = configs.setdefault(id(job_a), load_job_config(job_a.dir))
        config_b = configs.setdefault(id(job_b), load_job_config(job_b.dir))
        machine_seen.append((config_a, config_b))
        found = changes(_compared(config_a, with_paths), _compared(config_b, with_paths))
        groups.setdefault(_change_key(found), []).append((job_a, job_b))
    compared = sum(len(group) for group in groups.values())
    if markdown:
        lines += ["", "### Config differences", ""]
    for found, group in groups.items():
        job_a, job_b = group[0]
        which = (
            (f"all {_jobs(compared)} compared" if compared > 1 else "the 1 job compared")
            if len(group) == compared
            else f"{len(group)} of {_jobs(compared)} compared ({_names(group, keys)})"
        )
        if not found:
            lines += [f"No differences in {which}." if markdown else f"# no differences in {which}"]
            continue
        config_a, config_b = configs[id(job_a)], configs[id(job_b)]
        body = config_diff_lines(
            config_a, config_b, f"{a.label}/{job_a.name}", f"{b.label}/{job_b.name}", markdown=markdown, with_paths=with_paths
        )
        lines += [f"In {which}:", "", *body, ""] if markdown else [f"# in {which}:", *body]
    for text in no_config:
        lines += [f"- {text}" if markdown else f"# {text}"]
    if not pairs:
        lines += ["No job is in both sweeps." if markdown else "# no job is in both sweeps"]

    lines += _pair_metrics(pairs, keys, markdown)
    notes = {
        line
        for config_a, config_b in machine_seen
        for line in [*_machine_note(config_a, config_b, markdown), *_how_note(config_a, config_b, markdown)]
        if line
    }
    lines += ["", *sorted(notes)] if notes else []
    return lines


def _pair_metrics(pairs: list[tuple[SweepJob, SweepJob]], keys: Sequence[str], markdown: bool) -> list[str]:
    """Each matched pair's status and primary test metric, and the mean over pairs finished in both."""
    if not pairs:
        return []
    metric = next(
        (job.record.primary_metric for pair in pairs for job in pair if job.record is not None and job.record.primary_metric),
        None,
    )
    if metric is None:
        return []
    value = lambda job: job.record.test.get(metric) if job.record is not None and job.status in FINISHED else None  # noqa: E731
    rows = []
    for job_a, job_b in pairs:
        x, y = _number(value(job_a)), _number(value(job_b))
        delta = (y - x) if x is not None and y is not None else None
        rows.append((_describe(job_a, keys) or job_a.name, job_a.status, x, job_b.status, y, delta))
    both = [(x, y) for *_, x, _, y, d in rows if d is not None]
    if markdown:
        lines = ["", f"### Test {metric}", "", f"| job | A status | A {metric} | B status | B {metric} | B − A |"]
        lines += ["|---|---|---|---|---|---|"]
        lines += [f"| {_md(name)} | {sa} | {_num(x)} | {sb} | {_num(y)} | {_num(d, True)} |" for name, sa, x, sb, y, d in rows]
    else:
        width = max(len("job"), *(len(row[0]) for row in rows))
        formats = (f"<{width}", "<10", ">12", "<10", ">12", ">10")
        line = lambda *cells: "  ".join(f"{cell:{spec}}" for cell, spec in zip(cells, formats))  # noqa: E731
        lines = ["", line("job", "A status", f"A {metric}", "B status", f"B {metric}", "B - A")]
        lines += [line(name, sa, _num(x), sb, _num(y), _num(d, True)) for name, sa, x, sb, y, d in rows]
    if both:
        mean_a = sum(x for x, _ in both) / len(both)
        mean_b = sum(y for _, y in both) / len(both)
        text = (
            f"mean test {metric} over the {_jobs(len(both))} finished in both: "
            f"A {mean_a:.4f}, B {mean_b:.4f} ({mean_b - mean_a:+.4f})"
        )
        lines += ["", f"*{text}*" if markdown else text]
    return lines


# ---------------------------------------------------------------- the command


def diff_text(argument_a: str, argument_b: str, *, markdown: bool = False, with_paths: bool = False) -> str:
    """``epx diff``'s output for two arguments; ``DiffError`` for bad input (module doc)."""
    a, b = side(argument_a), side(argument_b)
    if (a.kind == "sweep") != (b.kind == "sweep"):
        raise DiffError(f"cannot compare {a.what} ({a.label}) with {b.what} ({b.label}): a sweep is compared only with a sweep")
    if a.kind == "sweep":
        lines = diff_sweeps(a, b, markdown=markdown, with_paths=with_paths)
    else:
        lines = diff_configs(a, b, markdown=markdown, with_paths=with_paths)
    return "\n".join(lines).rstrip("\n") + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="epx diff",
        description="The resolved-config difference between two job dirs, two sweep dirs or two "
        "compositions (override lists such as \"experiment=chromoformer_paper\"); machine paths ignored.",
    )
    parser.add_argument("a", help="job dir, sweep dir, or a space-separated override list")
    parser.add_argument("b", help="job dir, sweep dir, or a space-separated override list")
    parser.add_argument("--markdown", action="store_true", help="a table key | A | B for a review comment")
    parser.add_argument("--with-paths", action="store_true", help="compare machine paths too (paths.*, dataset.root, …)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        text = diff_text(args.a, args.b, markdown=args.markdown, with_paths=args.with_paths)
    except DiffError as err:
        print(f"epx diff: error: {err}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
