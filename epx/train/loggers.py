"""Experiment loggers selected by ``conf/logger/*.yaml`` (wandb, csv, none).

Contract: each factory takes the job's identity — ``save_dir``, ``name`` (the overrides),
``group`` (the sweep), ``job_type`` (the model), ``tags``, ``run_config`` (resolved, plain
dict) — and returns a Lightning logger or ``False``. W&B ``mode: auto`` is online when a login
(``WANDB_API_KEY`` or a netrc entry) is present and offline otherwise, so a fresh machine
never blocks on a login prompt; run files go inside the job dir.

Run helpers for the job (no-ops without W&B): ``run_info(logger)`` (id, dir, mode, url, for
the job record), ``log_record(logger, record)`` (test metrics into the run summary) and
``finish_run(logger, status)``.
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


# -- what a job tells its logger beyond the metrics Lightning logs --------------------------
# Only W&B has a run identity and a summary; the CSV logger and no logger have neither, so
# each helper is a no-op for them.


def _wandb_run(logger):
    from lightning.pytorch.loggers import WandbLogger

    return logger.experiment if isinstance(logger, WandbLogger) else None


def run_info(logger) -> dict | None:
    """The W&B run's id, dir (what ``wandb sync`` takes), mode and url; None without W&B."""
    run = _wandb_run(logger)
    if run is None or not hasattr(run, "id"):
        return None
    settings = getattr(run, "settings", None)
    return {
        "id": run.id,
        # run.dir is the run's files/ folder; its parent is the offline-run-* folder
        "dir": str(Path(run.dir).parent) if getattr(run, "dir", None) else None,
        "mode": getattr(settings, "mode", None),
        "url": getattr(run, "url", None),
    }


def log_record(logger, record) -> None:
    """Test metrics, parameter count and genes per split into the W&B run summary."""
    run = _wandb_run(logger)
    if run is None or not hasattr(run, "summary"):
        return
    for key, value in record.test.items():
        run.summary[f"test/{key}"] = value
    run.summary["n_params"] = record.n_params
    for split, n in record.n_genes.items():
        run.summary[f"n_genes/{split}"] = n


def finish_run(logger, status: str) -> None:
    """Close the W&B run with the job's status (exit code 1 marks a failed job in the UI)."""
    run = _wandb_run(logger)
    if run is None or not hasattr(run, "finish"):
        return
    run.summary["status"] = status
    run.finish(exit_code=0 if status == "ok" else 1)
