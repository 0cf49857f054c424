"""A finished job opened from its own files: its saved config, record and checkpoint.

Contract: ``open_job(job_dir, overrides=(), *, cfg=None) -> TrainedJob`` reads the job's
record (``metrics.json``), its checkpoint (the one that made its predictions:
``record.checkpoint``, else ``checkpoints/best.ckpt`` / ``final.ckpt`` / ``last.ckpt`` in the
job dir) and its own saved config (``.hydra/config.yaml``, which Hydra writes for a launched
job and ``epx.run`` for one run in-process) — never today's ``conf/`` re-composed from the
job's overrides. ``overrides`` (``cell=E114``, ``fold=2``, ``dataset=folder dataset.root=…``,
``paths.cache_dir=…``) change that config: each overridden key or group takes its node from
``conf/`` composed with those overrides. The net and its input builder are rebuilt from the
checkpoint's provenance alone, so the weights meet exactly the inputs they were trained on;
``TrainedJob.net()`` is a fresh net with the checkpoint's weights (train mode, on the CPU)
and ``TrainedJob.dm`` the DataModule (built, cells checked; not yet prepared or set up).
``cfg``: the job's own live config, when the caller holds it (a job explaining itself at its
end); it is used as given.

A job dir is data, never code:

- the checkpoint is read with ``torch.load(weights_only=True)`` (tensors and plain types), and
  it is the job dir's own (``checkpoints/<name>``; the record's absolute path is only a name);
- the saved config is read by ``epx.io.safe_yaml.load_yaml`` (size- and alias-bounded);
- a ``_target_`` of the saved config or of the provenance must be one that ``conf/`` itself
  names (``epx.config.registry_targets``); any other is refused;
- an interpolation through a resolver that reads the environment or the process
  (``${oc.env:…}``, ``${hydra:…}``; anything outside ``epx.config.SAFE_RESOLVERS``) is never
  resolved from the saved config: the key takes its value from ``conf/`` composed with the
  overrides (``paths.data_dir``'s ``${oc.env:EPX_DATA_DIR,data}`` is then conf/'s own), and
  ``paths.output_dir`` is the job dir.

Every refusal — not a job dir, a job that did not finish, no checkpoint, a checkpoint that is
not plain weights or carries no provenance, a missing or unreadable saved config, a foreign
``_target_``, an override that changes the model or its inputs or is no key of the config, an
unknown cell — is one ``InputError`` naming the file (and key), raised before any cache is
built or output dir written.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from epx.config import compose, registry_targets, unsafe_interpolation
from epx.data.datamodule import EpxDataModule
from epx.errors import InputError
from epx.io.safe_yaml import load_yaml
from epx.preflight import validate
from epx.record import JobRecord, RecordError
from epx.selection import mark_label

CHECKPOINT_NAMES = ("best.ckpt", "final.ckpt", "last.ckpt")
SAVED_CONFIG = Path(".hydra") / "config.yaml"
UNPICKLER = re.compile(r"(Trying to load unsupported .+?\.|Unsupported global: .+?)(?= |$)")
ABSENT = object()


@dataclass
class TrainedJob:
    dir: Path
    record: JobRecord
    checkpoint: Path
    provenance: dict
    state: dict
    cfg: DictConfig
    marks: tuple[str, ...]
    fold: int
    objective: object
    dm: EpxDataModule

    def net(self) -> torch.nn.Module:
        net = instantiate(self.provenance["net"])
        net.load_state_dict(self.state)
        return net


# ---------------------------------------------------------------- the checkpoint


def find_checkpoint(job_dir: Path, record: JobRecord) -> Path:
    """The job dir's own checkpoint: the record's file name looked up inside ``job_dir``, never
    the record's absolute path, so a moved or copied job dir scores its own weights (a copy
    whose weights were edited must not silently use the original's)."""
    names = ([Path(record.checkpoint).name] if record.checkpoint else []) + list(CHECKPOINT_NAMES)
    for name in dict.fromkeys(names):
        if (job_dir / "checkpoints" / name).is_file():
            return job_dir / "checkpoints" / name
    raise InputError(
        f"{job_dir}: no checkpoint found (record says {record.checkpoint!r}; looked for "
        f"checkpoints/{{{','.join(CHECKPOINT_NAMES)}}}); was the job dir copied without checkpoints/?"
    )


def read_weights(path: str | Path) -> dict:
    """A checkpoint's contents, read as plain weights (``weights_only=True``: a pickle that would
    build any other object, e.g. run ``os.system``, is refused unexecuted): one ``InputError``."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # a truncated or foreign file, or one holding objects: one clear message
        text = " ".join(str(err).split())
        why = UNPICKLER.search(text)  # torch's message is long; its reason is one clause of it
        raise InputError(
            f"{path}: not a readable checkpoint of plain weights ({type(err).__name__}: {why.group(1) if why else text[:300]}); "
            "epx never unpickles code from a job dir: retrain the job or restore the file"
        ) from err
    if not isinstance(ckpt, dict):
        raise InputError(f"{path}: not a checkpoint (a {type(ckpt).__name__}, not a mapping of weights); retrain the job or restore the file")
    return ckpt


def load_checkpoint(path: Path) -> tuple[dict, dict]:
    """(provenance, state_dict of the net) from a Lightning checkpoint written by epx."""
    ckpt = read_weights(path)
    provenance = (ckpt.get("hyper_parameters") or {}).get("provenance")
    if not provenance:
        raise InputError(
            f"{path} carries no provenance (written by an epx before checkpoints were reloadable); "
            "retrain the job to score it elsewhere"
        )
    check_targets(provenance, f"{path} (provenance)")
    state = {k[len("net."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    return provenance, state


# ---------------------------------------------------------------- the saved config


def _walk(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every node, parents first."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        path = f"{prefix}.{key}" if prefix else str(key)
        yield path, value
        yield from _walk(value, path)


def check_targets(node: Any, where: str) -> None:
    known = registry_targets()
    for key, value in _walk(node):
        if key.rsplit(".", 1)[-1] == "_target_" and value not in known:
            raise InputError(
                f"{where}: {key} names {value!r}, which no config of conf/ names; epx builds only the classes and "
                "functions of its own registry from a job dir (a job dir is data, not code). Retrain the job with a "
                "config of conf/"
            )


def _leaves(node: dict, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every value of a mapping that is not itself a mapping."""
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            yield from _leaves(value, path)
        else:
            yield path, value


def _get(plain: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(plain, dict) or part not in plain:
            return ABSENT
        plain = plain[part]
    return plain


def _set(plain: dict, key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    for part in parents:
        plain = plain.setdefault(part, {})
    if value is ABSENT:
        plain.pop(leaf, None)
    else:
        plain[leaf] = value


def read_saved_config(job_dir: Path) -> dict:
    """The job's own ``.hydra/config.yaml`` as plain data, its ``_target_``s checked."""
    path = job_dir / SAVED_CONFIG
    if not path.is_file():
        raise InputError(
            f"{job_dir}: no saved config ({path} is missing); a job run by launch.py or epx.run.train saves its "
            "config there. Was the job dir copied without .hydra/?"
        )
    plain = load_yaml(path)  # size- and alias-bounded: one InputError naming the file
    if not isinstance(plain, dict):
        raise InputError(f"{path}: not a job config (a YAML mapping of cell, mark, dataset, model, ...)")
    check_targets(plain, str(path))
    return plain


def job_config(job_dir: Path, overrides: Sequence[str]) -> DictConfig:
    """The saved config with ``overrides`` applied and no environment read from it (module doc)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    plain = read_saved_config(job_dir)
    try:
        today = OmegaConf.to_container(compose(overrides), resolve=False)
    except Exception as err:  # Hydra's parse / composition errors
        raise InputError(f"cannot apply {' '.join(overrides)}: {' '.join(str(err).split())[:300]}") from err
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        value = ABSENT if override.is_delete() else _get(today, key)
        if value is ABSENT and not override.is_delete():
            raise InputError(
                f"{override.input_line}: no node {key} to change in the job's config (a _global_ group such as experiment= "
                "rewrites the recipe); a finished job changes its cell, fold, dataset, test_cell or where it runs"
            )
        _set(plain, key, value)
    for key, value in list(_leaves(plain)):
        if unsafe_interpolation(value):
            ours = _get(today, key)
            if ours is ABSENT:
                raise InputError(
                    f"{job_dir / SAVED_CONFIG}: {key} = {value!r} reads the environment or the process, which epx never "
                    "does from a job dir, and conf/ has no such key to take its value from; give it on the command line "
                    f"(+{key}=...)"
                )
            _set(plain, key, ours)
    _set(plain, "paths.output_dir", str(job_dir))
    check_targets(plain, f"{job_dir / SAVED_CONFIG} with {' '.join(overrides) or 'no overrides'}")
    return OmegaConf.create(plain)


# ---------------------------------------------------------------- the job


def _plain(node) -> dict:
    return OmegaConf.to_container(node, resolve=True)


def _differences(trained: dict, asked: dict, prefix: str) -> list[str]:
    keys = sorted(set(trained) | set(asked))
    return [f"{prefix}.{k}: trained {trained.get(k)!r}, asked {asked.get(k)!r}" for k in keys if trained.get(k) != asked.get(k)]


def check_compatible(provenance: dict, cfg, marks: tuple[str, ...], ckpt: Path) -> None:
    """The opened job must ask for what the weights were trained on."""
    problems = []
    if cfg.model.name != provenance["model"]:
        problems.append(f"model: trained {provenance['model']!r}, asked {cfg.model.name!r}")
    if list(marks) != list(provenance["marks"]):
        problems.append(
            f"mark: trained on {mark_label(provenance['marks'])}, asked {mark_label(marks)} (the net has one input channel per mark)"
        )
    problems += _differences(provenance["inputs"], _plain(cfg.model.inputs), "model.inputs")
    if not problems:  # with other marks the net's n_marks differs too; say it once
        problems += _differences(provenance["net"], _plain(cfg.model.net), "model.net")
    if problems:
        raise InputError(
            f"{ckpt} cannot score this job:\n  " + "\n  ".join(problems) + "\nDrop the override(s) that change the model or its inputs; "
            "only the cell, fold and dataset can change."
        )


def open_job(job_dir: str | Path, overrides: Sequence[str] = (), *, cfg: DictConfig | None = None) -> TrainedJob:
    """A finished job's record, checkpoint, config and data setup (no data work yet); module doc."""
    job_dir = Path(job_dir)
    try:
        record = JobRecord.read(job_dir)
    except RecordError as err:
        raise InputError(str(err)) from err
    if not record.finished:
        raise InputError(f"{job_dir}: the job's status is {record.status!r}, not 'ok'; only a finished job has weights to score")
    ckpt_path = find_checkpoint(job_dir, record)
    provenance, state = load_checkpoint(ckpt_path)

    cfg = cfg if cfg is not None else job_config(job_dir, list(overrides))
    marks, fold = validate(cfg)
    check_compatible(provenance, cfg, marks, ckpt_path)
    objective = instantiate(provenance["objective"])
    dm = instantiate(cfg.data, inputs=instantiate(provenance["inputs"]), target_column=objective.target_column)
    dm.check_cells()  # a cell the folder lacks is refused before an output dir exists
    return TrainedJob(job_dir, record, ckpt_path, provenance, state, cfg, tuple(marks), fold, objective, dm)
