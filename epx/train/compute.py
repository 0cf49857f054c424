"""How a job uses its device: TF32 matmuls, ``torch.compile``, pinned batches.

Contract: ``cfg.compute`` (``conf/config.yaml``) holds

- ``matmul_precision``: ``auto`` | ``highest`` | ``high`` | ``medium``. ``auto`` is ``high``
  (TF32 tensor-core matmuls and convolutions, ~10 mantissa bits) when the trainer runs on a
  CUDA device and torch's own default elsewhere; the mixed-precision trainers (``trainer=gpu``,
  ``trainer=ddp``: bf16 autocast) compute the matmuls of autocast regions in bf16 anyway, so
  this governs what autocast leaves in float32 (and every matmul of a ``32-true`` run);
- ``compile``: ``false`` | ``true``: ``nn.Module.compile()`` of the net (in place, so its
  ``state_dict`` keys and checkpoints are those of the uncompiled net); ``compile_mode``:
  torch.compile's ``mode`` (``default``, ``reduce-overhead``, ``max-autotune``). Gains are
  measured per model in ``benchmarks/bench_cost.py`` (README "On a GPU").

``apply_compute(compute, trainer, net) -> dict`` applies them once the trainer exists (its
root device decides ``auto``) and returns what was applied, which the job record keeps as
``extra["compute"]``. Pinned host memory for batches is the DataModule's ``pin_memory``
(``conf/data``; ``auto``: on when the trainer's device is CUDA); Lightning then copies
batches with ``non_blocking=True`` (``move_data_to_device`` does so for every CUDA tensor).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import lightning as L
import torch
from torch import nn

log = logging.getLogger(__name__)

MATMUL_PRECISIONS = ("highest", "high", "medium")


def device_type(trainer: L.Trainer) -> str:
    return trainer.strategy.root_device.type


def matmul_precision(setting: str, device: str) -> str:
    """The ``torch.set_float32_matmul_precision`` value ``setting`` means on ``device``."""
    setting = str(setting)
    if setting == "auto":
        return "high" if device == "cuda" else torch.get_float32_matmul_precision()
    if setting not in MATMUL_PRECISIONS:
        raise ValueError(f"compute.matmul_precision={setting!r}; choose auto, {', '.join(MATMUL_PRECISIONS)}")
    return setting


def apply_compute(compute: Mapping | None, trainer: L.Trainer, net: nn.Module) -> dict:
    compute = dict(compute or {})
    device = device_type(trainer)
    precision = matmul_precision(compute.get("matmul_precision", "auto"), device)
    torch.set_float32_matmul_precision(precision)
    # cuDNN convolutions follow their own flag, not set_float32_matmul_precision
    torch.backends.cudnn.allow_tf32 = precision != "highest"
    applied = {"device": device, "precision": str(trainer.precision), "matmul_precision": precision, "compile": False}
    if compute.get("compile"):
        mode = compute.get("compile_mode") or "default"
        net.compile(mode=None if mode == "default" else mode)
        applied.update(compile=True, compile_mode=mode)
        log.info("net compiled with torch.compile (mode=%s); the first steps include compilation", mode)
    return applied
