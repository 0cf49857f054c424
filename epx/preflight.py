"""The checks a job passes before any work: the selection (cell, marks, fold, task) and the device.

Contract: ``validate(cfg) -> (marks, fold)`` raises one ``InputError`` listing the valid values
for an unknown cell (or ``test_cell``), mark, fold or a task the model does not support, and
``check_device(cfg)`` one for ``trainer.accelerator=gpu`` where torch sees no CUDA device —
before a cache is built or a job dir written. A training job (``epx.run``) and an opened
finished job (``epx.trained``: ``epx predict``, ``epx explain``) run the same checks.
"""

from __future__ import annotations

from omegaconf import DictConfig

from epx.errors import InputError
from epx.selection import check_cell, check_fold, parse_marks


def validate(cfg: DictConfig) -> tuple[tuple[str, ...], int]:
    """Cheap checks of the selection; raise ``InputError`` before any work."""
    marks = parse_marks(cfg.mark)
    fold = check_fold(cfg.fold, int(cfg.dataset.folds.get("n_folds", 4)))
    cells = cfg.dataset.get("cells")
    if cells:
        check_cell(str(cfg.cell), cells, f"dataset={cfg.dataset.name}")
        if cfg.get("test_cell"):
            check_cell(str(cfg.test_cell), cells, f"dataset={cfg.dataset.name} (test_cell)")
    check_device(cfg)
    supported = cfg.model.get("tasks")
    if supported and cfg.task.name not in supported:
        raise InputError(f"model={cfg.model.name} does not support task={cfg.task.name}; it supports: {', '.join(supported)}")
    return marks, fold


def check_device(cfg: DictConfig) -> None:
    """``trainer=gpu|ddp`` on a machine where torch sees no CUDA device: one error now, not
    Lightning's after the cache is built."""
    import torch

    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        build = f"torch {torch.__version__}, " + (f"CUDA {torch.version.cuda} build" if torch.version.cuda else "a CPU-only build")
        raise InputError(
            f"trainer.accelerator={accelerator} needs a CUDA GPU, and torch sees none ({build}). Use trainer=cpu here; "
            "on a GPU machine install a CUDA build of torch (pip's default torch wheel on Linux) and check nvidia-smi"
        )
