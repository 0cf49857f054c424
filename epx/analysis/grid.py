"""The expected grid of a multirun: every job Hydra's basic sweeper launches, in job-number order.

Contract
--------
- ``expand_overrides(arguments) -> list[list[str]]``: the override list of each job that
  Hydra's basic sweeper makes from ``arguments`` (``hydra.sweeper.params`` as ``key=value``
  first, then ``hydra.overrides.task``), index = ``hydra.job.num``. Same rule as the
  sweeper: every override is parsed with Hydra's public override parser; a sweep
  (``a,b``, ``choice(..)``, ``range(..)``) contributes one ``key=value`` per element, any
  other override one ``key=value``; a later override of the same key replaces the earlier
  one in the earlier one's place; jobs are the cartesian product in that key order (the
  first key varies slowest). Interval sweeps raise ``ValueError`` (the basic sweeper
  refuses them too).
- ``sweep_arguments(hydra_node) -> list[str] | None``: those arguments from a plain ``hydra``
  config node; None when the sweeper is not the basic one (others pick jobs at run time).
- ``write_grid(sweep_dir, jobs)`` writes ``<SWEEP>/grid.json`` atomically:
  ``{"schema_version": 1, "jobs": [[override, ...], ...]}``. ``SummaryCallback`` writes it
  in ``on_multirun_start``, i.e. before the first job runs.
- ``claim_grid(sweep_dir, jobs) -> bool``: writes ``grid.json`` only if the dir has none, in
  one atomic step (the complete file is hard-linked into place, which fails when the name
  exists), True when this call made it. Of two launches that start at the same moment exactly
  one claims a named sweep's dir; the other finds the winner's grid and is checked against it.
- ``expected_grid(sweep_dir) -> list[list[str]]``: ``grid.json`` when readable, else the
  expansion of ``<SWEEP>/multirun.yaml`` (sweeps made before grid.json existed), else ``[]``.
  Never raises for a broken or foreign sweep dir: it logs and returns ``[]``.

Named sweeps (``sweep=<name>``, issue 12): ``conf/hydra/default.yaml`` makes the sweep dir
``outputs/sweeps/<name>`` and each job's subdir its overrides, through the resolvers of
``epx.config`` (``${epx.if_named:…}``, ``${epx.job_name:…}``: Hydra's
``hydra.job.override_dirname`` without the run keys, made one folder name).
``job_subdir(overrides, exclude_keys)`` computes the same name from an override list
(Hydra's rule: every override whose key is not excluded, as written, sorted, joined), for
the callback's checks before any job runs.

``grid_identity(jobs, exclude_keys)``: the set of job subdir names of a grid, what decides
whether two launches are the same grid (or one a part of the other); ``merge_grid(stored,
jobs, exclude_keys)`` is the ``grid.json`` job list after launching ``jobs`` into a sweep dir
that recorded ``stored``: the stored order, each job spelled as this launch spells it (so
``.hydra/overrides.yaml`` and ``grid.json`` agree), new jobs appended.

Hydra is imported inside the functions that parse overrides: ``import hydra`` itself loads
``hydra._internal`` (its ``__init__`` imports ``hydra.main``), and reading a ``grid.json``
needs no parser, so importing this module or the summary loads no Hydra at all.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from epx.config import job_name
from epx.errors import InputError
from epx.io.atomic import temp_name, write_json

log = logging.getLogger(__name__)

GRID_NAME = "grid.json"
GRID_SCHEMA_VERSION = 1
# The basic sweeper is recognised by its class name in the saved config (its module path
# is private to Hydra and may move); other sweepers choose their jobs at run time.
BASIC_SWEEPER = "BasicSweeper"


def expand_overrides(arguments: Sequence[str]) -> list[list[str]]:
    """Jobs (override lists) of a basic-sweeper multirun over ``arguments``; see the module doc."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([str(argument) for argument in arguments])
    # dict keeps the first insertion's position when a later override of a key replaces it.
    choices: dict[str, list[str]] = {}
    for override in parsed:
        key = override.get_key_element()
        if not override.is_sweep_override():
            choices[key] = [f"{key}={override.get_value_element_as_str()}"]
        elif override.is_discrete_sweep():
            choices[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            raise ValueError(f"{override.input_line}: Hydra's basic sweeper runs only discrete sweeps (a,b / choice / range)")
    return [list(job) for job in itertools.product(*choices.values())]


def sweep_arguments(hydra_node: Any) -> list[str] | None:
    """``hydra.sweeper.params`` (as ``key=value``) then ``hydra.overrides.task``, from a plain
    ``hydra`` node; None when the sweeper is not Hydra's basic one."""
    hydra_node = hydra_node if isinstance(hydra_node, dict) else {}
    sweeper = hydra_node.get("sweeper") or {}
    if str(sweeper.get("_target_", BASIC_SWEEPER)).rsplit(".", 1)[-1] != BASIC_SWEEPER:
        return None
    arguments = [f"{key}={value}" for key, value in (sweeper.get("params") or {}).items()]
    arguments += [str(item) for item in (hydra_node.get("overrides") or {}).get("task") or []]
    return arguments


def write_grid(sweep_dir: str | os.PathLike, jobs: Sequence[Sequence[str]]) -> Path:
    """``<SWEEP>/grid.json`` with ``jobs`` (index = job num), written atomically."""
    data = {"schema_version": GRID_SCHEMA_VERSION, "jobs": [[str(item) for item in job] for job in jobs]}
    return write_json(Path(sweep_dir) / GRID_NAME, data)


def claim_grid(sweep_dir: str | os.PathLike, jobs: Sequence[Sequence[str]]) -> bool:
    """``<SWEEP>/grid.json`` with ``jobs`` if there is none yet, atomically; True when written here."""
    path = Path(sweep_dir) / GRID_NAME
    data = {"schema_version": GRID_SCHEMA_VERSION, "jobs": [[str(item) for item in job] for job in jobs]}
    tmp = write_json(temp_name(path), data)
    try:
        os.link(tmp, path)  # exclusive: fails if another launch's grid.json is there
        return True
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: an exclusive create, then the content
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as handle:
            handle.write(tmp.read_text())
        return True
    finally:
        tmp.unlink(missing_ok=True)


def read_grid(sweep_dir: str | os.PathLike) -> list[list[str]] | None:
    """The jobs in ``<SWEEP>/grid.json``; None when it is absent or unusable (logged)."""
    path = Path(sweep_dir) / GRID_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        jobs = data["jobs"]
        if not isinstance(jobs, list) or not all(isinstance(job, list) for job in jobs):
            raise ValueError("'jobs' is not a list of override lists")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        log.warning("summary: ignoring unreadable %s (%s: %s)", path, type(exc).__name__, exc)
        return None
    return [[str(item) for item in job] for job in jobs]


def _yaml_loader() -> type:
    """PyYAML's C safe loader with OmegaConf's scalar rules (``1e-3`` is a float, no
    timestamps), so a file reads as ``OmegaConf.load`` reads it, about 20 times faster: a
    summary reads three YAML files per job, after every job of a grid."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc, valid-type]
        pass

    Loader.yaml_implicit_resolvers = {
        key: [(tag, regexp) for tag, regexp in resolvers if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:float")]
        for key, resolvers in base.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", _OMEGACONF_FLOAT, list("-+0123456789."))
    return Loader


_OMEGACONF_FLOAT = re.compile(
    r"""^(?:
     [-+]?[0-9]+(?:_[0-9]+)*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9]+(?:_[0-9]+)*(?:[eE][-+]?[0-9]+)
    |\.[0-9]+(?:_[0-9]+)*(?:[eE][-+][0-9]+)?
    |[-+]?[0-9]+(?:_[0-9]+)*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_LOADER: type | None = None


def read_yaml_checked(path: Path) -> tuple[Any, str | None]:
    """``(plain container, None)`` of a job dir's or sweep dir's YAML file, ``(None, None)``
    when absent, ``(None, why)`` when it cannot be used: larger than a job config may be, an
    alias bomb, or not YAML (``epx.io.safe_yaml``: size- and alias-bounded, so a hostile file
    costs microseconds, never memory). Never raises: a half-written or hostile file must not
    stop a summary."""
    global _LOADER
    if not path.is_file():
        return None, None
    from epx.io.safe_yaml import load_yaml

    _LOADER = _LOADER or _yaml_loader()
    try:
        return load_yaml(path, loader=_LOADER), None
    except InputError as exc:
        log.warning("summary: ignoring unreadable %s", exc)
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 (a constructor error on odd tags and the like)
        log.warning("summary: ignoring unreadable %s (%s)", path, exc)
        return None, f"{path}: unreadable ({type(exc).__name__}: {exc})"


def read_yaml(path: Path) -> Any:
    """Plain container of a YAML file, or None when absent/corrupt/refused (never raises;
    ``read_yaml_checked`` says why)."""
    return read_yaml_checked(path)[0]


def grid_from_multirun(sweep_dir: str | os.PathLike) -> list[list[str]]:
    """The jobs ``<SWEEP>/multirun.yaml`` describes; ``[]`` when it is absent, unreadable,
    or from another sweeper."""
    multirun = read_yaml(Path(sweep_dir) / "multirun.yaml")
    if not isinstance(multirun, dict):
        return []
    arguments = sweep_arguments(multirun.get("hydra"))
    if arguments is None:
        return []
    try:
        return expand_overrides(arguments)
    except Exception as exc:  # the parser raises its own error types for bad grammar
        log.warning("summary: cannot expand the sweep in %s/multirun.yaml (%s)", sweep_dir, exc)
        return []


def expected_grid(sweep_dir: str | os.PathLike) -> list[list[str]]:
    """The sweep's jobs, index = job num: grid.json, else multirun.yaml, else ``[]``."""
    jobs = read_grid(sweep_dir)
    return jobs if jobs is not None else grid_from_multirun(sweep_dir)


# ---------------------------------------------------------------- named sweeps


def job_subdir(overrides: Sequence[str], exclude_keys: Iterable[str], item_sep: str = ",", kv_sep: str = "=") -> str:
    """``job_name`` of the ``override_dirname`` Hydra makes from ``overrides`` (its rule: every
    override whose key is not excluded, as written, sorted, joined)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    excluded = set(exclude_keys)
    parsed = OverridesParser.create().parse_overrides([str(item) for item in overrides])
    lines = sorted(o.input_line for o in parsed if o.key_or_group not in excluded)
    return job_name(re.sub("[=]", kv_sep, item_sep.join(lines)))


def grid_identity(jobs: Sequence[Sequence[str]], exclude_keys: Iterable[str]) -> set[str]:
    """The job subdir names of a grid: equal sets = the same grid, launched again."""
    exclude_keys = list(exclude_keys)
    return {job_subdir(job, exclude_keys) for job in jobs}


def merge_grid(stored: Sequence[Sequence[str]], jobs: Sequence[Sequence[str]], exclude_keys: Iterable[str]) -> list[list[str]]:
    """``grid.json``'s jobs after launching ``jobs`` where ``stored`` was recorded (module doc)."""
    exclude_keys = list(exclude_keys)
    by_name = {job_subdir(job, exclude_keys): [str(item) for item in job] for job in jobs}
    merged: list[list[str]] = []
    for job in stored:
        name = job_subdir(job, exclude_keys)
        merged.append(by_name.pop(name, [str(item) for item in job]))
    return merged + list(by_name.values())
