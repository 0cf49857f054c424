"""The trained ``seq_cnn_base`` job a separate-mode Seq-GraphReg job reads its bottlenecks from.

Contract: ``open_base(base, *, fold) -> BaseModel``. ``base`` names a finished
``model=seq_cnn_base`` job: its dir (the checkpoint its record names, else
``checkpoints/{best,final,last}.ckpt``) or one of its checkpoints. The checkpoint is read as
every job dir is (``epx.trained.load_checkpoint``: ``torch.load(weights_only=True)``, the
provenance's ``_target_``s checked against ``conf/``), the net rebuilt from its provenance
and put in eval mode. Refused, each with one ``InputError`` naming the path and the fix,
before any cache is built:

- no base named, a path that does not exist, a dir that is not a finished job, a checkpoint
  that is not plain weights (``epx.trained``'s own errors);
- a checkpoint of another model than ``seq_cnn_base``;
- a base trained on another fold than the job's: its training chromosomes would include the
  job's test chromosomes, so test sequence would leak into the features of training.

``BaseModel.test_chroms``: the base's held-out chromosomes from its ``folds.json`` when the
job dir has one (None otherwise); the builder checks the job's own test chromosomes against
them (a second guard, for fold schemes that number folds alike but split otherwise).
``digest``: sha256 of the checkpoint file, what keys the bottleneck cache.

This module sits in the data layer and reads jobs (a layer above): the imports of
``epx.trained`` and the net are inside ``open_base``, the one place that needs them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from epx.errors import InputError

BASE_MODEL = "seq_cnn_base"


@dataclass
class BaseModel:
    path: Path  # what the config named
    job_dir: Path  # the base job's dir (where the bottleneck cache lives by default)
    checkpoint: Path
    provenance: dict
    net: torch.nn.Module  # SeqCNNBase, eval mode, CPU
    digest: str
    test_chroms: tuple[str, ...] | None

    @property
    def chunk_bp(self) -> int:
        """The chunk length the base was trained on (its receptive field's context at the edges)."""
        return int(self.provenance["inputs"]["chunk_bp"])


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _test_chroms(job_dir: Path) -> tuple[str, ...] | None:
    path = job_dir / "folds.json"
    if not path.is_file():
        return None
    try:
        return tuple(json.loads(path.read_text())["chromosomes"]["test"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(f"{path}: unreadable fold record of the base job ({type(err).__name__}: {err}); restore the file") from err


def open_base(base: str | Path | None, *, fold: int) -> BaseModel:
    """The base job's net and identity (module docstring); every refusal is one InputError."""
    from hydra.utils import instantiate

    from epx.models.seq_cnn import SeqCNNBase
    from epx.record import JobRecord, RecordError
    from epx.trained import find_checkpoint, load_checkpoint

    if base is None or not str(base).strip():
        raise InputError(
            "model.inputs.base is not set: a separate-mode Seq-GraphReg job reads the bottlenecks of a trained "
            f"{BASE_MODEL} job; train one on the same fold (python launch.py model={BASE_MODEL} fold=N ...) and pass "
            "model.inputs.base=<its job dir or checkpoint>"
        )
    path = Path(str(base)).expanduser()
    if not path.exists():
        raise InputError(f"model.inputs.base={path}: no such job dir or checkpoint; name a finished {BASE_MODEL} job's dir or checkpoint")
    if path.is_dir():
        try:
            record = JobRecord.read(path)
        except RecordError as err:
            raise InputError(f"model.inputs.base={path}: {err}") from err
        if not record.finished:
            raise InputError(f"model.inputs.base={path}: the base job's status is {record.status!r}: it did not finish, so it has no weights; finish (or rerun) it first")
        job_dir, checkpoint = path, find_checkpoint(path, record)
    else:
        job_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        checkpoint = path
    provenance, state = load_checkpoint(checkpoint)
    if provenance.get("model") != BASE_MODEL:
        raise InputError(
            f"model.inputs.base={path}: {checkpoint} is a {provenance.get('model')!r} job, not a {BASE_MODEL} one; "
            f"Seq-GraphReg reads the bottleneck of model={BASE_MODEL}"
        )
    if int(provenance["fold"]) != int(fold):
        raise InputError(
            f"model.inputs.base={path}: the base was trained on fold {provenance['fold']}, this job is fold {fold}: its "
            "training chromosomes include this job's test chromosomes, whose sequence would leak into training. Use a "
            f"base trained with fold={fold}"
        )
    net = instantiate(provenance["net"])
    if not isinstance(net, SeqCNNBase):
        raise InputError(f"model.inputs.base={path}: its net is {type(net).__name__}, not SeqCNNBase")
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise InputError(f"{checkpoint}: its weights do not fit its own net ({' '.join(str(err).split())[:300]}); retrain the base") from err
    return BaseModel(path, job_dir, checkpoint, provenance, net.eval(), _file_digest(checkpoint), _test_chroms(job_dir))
