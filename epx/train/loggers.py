"""Experiment loggers selected by ``conf/logger/*.yaml`` (wandb, csv, none).

Contract: each factory takes the job's identity — ``save_dir``, ``name`` (the overrides),
``group`` (the sweep), ``job_type`` (the model), ``tags``, ``run_config`` (resolved, plain
dict) — and returns a Lightning logger or ``False``. W&B ``mode: auto`` is online when a login
(``WANDB_API_KEY`` or a netrc entry) is present and offline otherwise, so a fresh machine
never blocks on a login prompt; run files go inside the job dir.
"""

from __future__ import annotations

import netrc
import os
from pathlib import Path


def wandb_logged_in() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
        return path.exists() and netrc.netrc(str(path)).authenticators("api.wandb.ai") is not None
    except (netrc.NetrcParseError, OSError):
        return False


def resolve_mode(mode: str | None) -> str:
    mode = (mode or "auto").lower()
    if mode == "auto":
        return "online" if wandb_logged_in() else "offline"
    return mode


def wandb_logger(*, save_dir, name, group, job_type, tags, run_config, project="epx", entity=None, mode="auto", **_):
    from lightning.pytorch.loggers import WandbLogger

    mode = resolve_mode(mode)
    os.environ.setdefault("WANDB_SILENT", "true")
    return WandbLogger(
        project=project,
        entity=entity,
        name=name,
        group=group,
        job_type=job_type,
        tags=list(tags),
        config=run_config,
        save_dir=str(save_dir),
        dir=str(save_dir),
        mode=mode,
        reinit="finish_previous",
    )


def csv_logger(*, save_dir, name, **_):
    from lightning.pytorch.loggers import CSVLogger

    return CSVLogger(save_dir=str(save_dir), name="csv", version="")


def no_logger(**_):
    return False
