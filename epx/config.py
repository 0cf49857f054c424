"""Config composition, every OmegaConf resolver of ``conf/``, and the key policies.

Contract
--------
- ``compose(overrides) -> DictConfig``: the job config of ``conf/config.yaml`` for an override
  list, without running Hydra's app (the ``epx`` commands, tests, benchmarks). ``CONF_DIR``
  is the registry it composes (and the Hydra app's ``config_path``): the repository's
  ``conf/`` in a checkout, the wheel's packaged copy otherwise (``conf_dir()``).
- ``register_resolvers()`` (run on import) registers every resolver the YAML files use:
  ``${n_marks:MARK}`` and ``${div:A,B}`` (``epx.selection``), ``${epx.cpus_per_job:N}`` and
  ``${epx.launcher_threads:LAUNCHER}`` (``epx.threads``), ``${epx.if_named:NAME,A,B}`` and
  ``${epx.job_name:OVERRIDE_DIRNAME}`` (named sweeps: the sweep dir and each job's subdir),
  and ``${epx.run_override_keys:}`` (below). ``launch.py`` imports this module before Hydra
  resolves anything; so does everything that composes ``conf/``.
- ``RUN_KEYS``: THE list of the keys that say how or where a job runs, not what it computes.
  A key stands for its node and everything under it (``compute`` is ``compute.compile``
  too). Each says why it is there and its ``kind``: ``where`` (a machine path or a run
  control) or ``how`` (how fast the job computes, how it is logged, what is done with it
  afterwards). Everything derives from it:

  - the config digest of a job (``epx.job.config_digest``) leaves every run key out;
  - a named sweep's job-dir name (Hydra's ``hydra.job.override_dirname`` without
    ``exclude_keys``, which ``conf/hydra/default.yaml`` fills with
    ``${epx.run_override_keys:}``) leaves out every override of a run key;
  - ``epx diff`` never tells two jobs apart by a run key: ``where`` keys are named in a
    note (``--with-paths`` compares them), ``how`` keys are shown apart from the config
    difference; in two sweeps, no run key matches jobs.

  ``is_run_key(key)`` and ``run_key(key)`` (the entry a dotted key falls under, or None) are
  the one test every consumer uses.
- ``registry_targets() -> frozenset[str]``: every ``_target_`` written in ``conf/``: the only
  classes and functions a job dir may name (``epx.trained`` refuses any other).
- ``SAFE_RESOLVERS``: the resolvers whose value depends on the config alone (no environment,
  no process state): what may be resolved from a saved config as written.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from epx.selection import n_marks
from epx.threads import cpus_per_job, launcher_threads



def conf_dir() -> Path:
    """The config registry: the repository's top-level ``conf/`` when epx runs from a checkout
    (an editable install too, so an edited YAML file counts at once), else the copy the wheel
    carries as package data (``epx/conf``, mapped from ``conf/`` by ``setup.py``)."""
    package = Path(__file__).resolve().parent
    checkout = package.parent
    if (checkout / "conf" / "config.yaml").is_file() and (checkout / "pyproject.toml").is_file():
        return checkout / "conf"
    return package / "conf"


CONF_DIR = conf_dir()


def compose(overrides: Sequence[str]) -> DictConfig:
    """The job config for ``overrides`` without running Hydra's app (for CLI tools and tests)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides))


# ---------------------------------------------------------------- the key policy


@dataclass(frozen=True)
class RunKey:
    key: str
    kind: str  # "where": a machine path or run control | "how": speed, logging, what follows training
    why: str


RUN_KEYS: tuple[RunKey, ...] = (
    RunKey("hydra", "where", "Hydra's own settings: output dirs, launcher, sweeper"),
    RunKey("paths", "where", "this machine's data, cache and output dirs"),
    RunKey("dataset.root", "where", "where the dataset folder is; other data under another root takes another sweep name"),
    RunKey("data.cache_dir", "where", "where the signal cache is"),
    RunKey("sweep", "where", "the named sweep's dir"),
    RunKey("rerun", "where", "whether a finished job is trained again"),
    RunKey("threads", "where", "the CPU threads the launcher gives a job"),
    RunKey("num_workers", "where", "DataLoader worker processes (batches come from memory)"),
    RunKey("data.num_workers", "where", "the same, as the DataModule takes it"),
    RunKey("compute", "how", "TF32, torch.compile and glibc malloc tuning: how fast the net computes, not what"),
    RunKey("data.pin_memory", "how", "pinned host batches: how fast they reach the device"),
    RunKey("trainer.accelerator", "how", "the device the same float32 computation runs on (precision and devices stay in)"),
    RunKey("trainer.enable_progress_bar", "how", "console output"),
    RunKey("trainer.enable_model_summary", "how", "console output"),
    RunKey("trainer.log_every_n_steps", "how", "how often the logger is written"),
    RunKey("logger", "how", "where and how the job is logged (W&B, CSV, none)"),
    RunKey("tags", "how", "the W&B run's tags"),
    RunKey("analysis", "how", "what is done with the trained model afterwards (epx explain)"),
)
KINDS = ("where", "how")


def run_key(key: str) -> RunKey | None:
    """The ``RUN_KEYS`` entry that dotted ``key`` is or lies under (``compute.compile`` → ``compute``)."""
    key = key.lstrip("+~")
    return next((entry for entry in RUN_KEYS if key == entry.key or key.startswith(entry.key + ".")), None)


def is_run_key(key: str) -> bool:
    return run_key(key) is not None


def _keys_under(node: Any, prefix: str) -> list[str]:
    if not isinstance(node, dict):
        return []
    keys = []
    for name, value in node.items():
        keys.append(f"{prefix}.{name}")
        keys += _keys_under(value, f"{prefix}.{name}")
    return keys


def _node_at(plain: dict, key: str) -> Any:
    node: Any = plain
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def run_override_keys(_root_: DictConfig) -> list[str]:
    """``hydra.job.config.override_dirname.exclude_keys``: Hydra drops an override from a job's
    dir name only when its key is in this list exactly, so each run key is listed with every
    key under it in this config (``compute``, ``compute.compile``, ...). Hydra's own keys
    (``hydra.*``) are never task overrides."""
    plain = OmegaConf.to_container(_root_, resolve=False)
    keys = []
    for entry in RUN_KEYS:
        if entry.key != "hydra":
            keys += [entry.key, *_keys_under(_node_at(plain, entry.key), entry.key)]
    return sorted(dict.fromkeys(keys))


# ---------------------------------------------------------------- the registry


@functools.cache
def registry_targets() -> frozenset[str]:
    """Every ``_target_`` value written in a YAML file of ``conf/``."""
    import yaml

    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "_target_" and isinstance(value, str):
                    found.add(value)
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in sorted(CONF_DIR.rglob("*.yaml")):
        walk(yaml.safe_load(path.read_text()))
    return frozenset(found)


# ---------------------------------------------------------------- resolvers

# the resolvers whose value follows from the config alone: safe to resolve from a saved config
SAFE_RESOLVERS = frozenset({"n_marks", "div", "oc.select", "oc.dict.keys", "oc.dict.values"})
_RESOLVER_CALL = re.compile(r"\$\{\s*([A-Za-z_][\w.]*)\s*:")


def unsafe_interpolation(value: Any) -> bool:
    """A string (or list holding one) interpolating through a resolver outside ``SAFE_RESOLVERS``
    (``${oc.env:…}``, ``${hydra:…}``, ...): never resolved from a job dir's files."""
    if isinstance(value, list | tuple):
        return any(unsafe_interpolation(item) for item in value)
    return isinstance(value, str) and any(name not in SAFE_RESOLVERS for name in _RESOLVER_CALL.findall(value))


def _div(a, b) -> int:
    return int(a) // int(b)


MAX_NAME_BYTES = 200
_SWEEP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=@-]*$")


def check_sweep_name(name: Any) -> str:
    """``name`` as a sweep folder name, or ``ValueError`` saying what a name may hold."""
    text = str(name)
    if isinstance(name, bool) or not _SWEEP_NAME.match(text) or len(text.encode()) > MAX_NAME_BYTES:
        raise ValueError(
            f"sweep={text!r} is not a sweep name: it names one folder under outputs/sweeps/, so use letters, "
            f"digits and . _ - + = @ (starting with a letter or digit), e.g. sweep=my_study"
        )
    return text


def is_named(name: Any) -> bool:
    return name is not None and name != ""


def if_named(name: Any, named: Any, default: Any) -> Any:
    """Resolver ``${epx.if_named:${sweep},A,B}``: ``A`` for a named sweep, else ``B``."""
    if not is_named(name):
        return default
    check_sweep_name(name)
    return named


def job_name(override_dirname: Any) -> str:
    """One folder name for a job from its ``override_dirname``: ``/`` → ``%2F`` and ``%`` →
    ``%25`` (distinct overrides stay distinct names), ``default`` for none, and a name over
    ``MAX_NAME_BYTES`` cut with a hash of the whole appended."""
    text = "" if override_dirname is None else str(override_dirname)
    if not text:
        return "default"
    name = text.replace("%", "%25").replace("/", "%2F")
    if name in (".", ".."):
        name = name.replace(".", "%2E")
    if len(name.encode()) > MAX_NAME_BYTES:
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        cut = name.encode()[: MAX_NAME_BYTES - 18].decode(errors="ignore")
        name = f"{cut}~{digest}"
    return name


RESOLVERS = {
    "n_marks": n_marks,
    "div": _div,
    "epx.cpus_per_job": cpus_per_job,
    "epx.launcher_threads": launcher_threads,
    "epx.if_named": if_named,
    "epx.job_name": job_name,
    "epx.run_override_keys": run_override_keys,
}


def register_resolvers() -> None:
    for name, function in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)


register_resolvers()
