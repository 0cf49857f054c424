"""Experiment loggers selected by ``conf/logger/*.yaml`` (wandb, csv, none).

Contract: each factory takes the job's identity — ``save_dir``, ``name`` (the overrides),
``group`` (the sweep), ``job_type`` (the model), ``tags``, ``run_config`` (resolved, plain
dict), ``run_id`` (the job's W&B run id, ``epx.job.wandb_run_id``: every attempt of a job —
a killed and rerun job, a SLURM requeue — continues one run, W&B ``resume="allow"``) — and
returns a Lightning logger or ``False``. W&B ``mode: auto`` is online when a login
(``WANDB_API_KEY`` or a netrc entry) is present and offline otherwise, so a fresh machine
never blocks on a login prompt; run files go inside the job dir.

An online run never stalls or kills a job for lack of network: before starting it,
``wandb_logger`` checks that the W&B host (``WANDB_BASE_URL``, default
https://api.wandb.ai, or the HTTPS proxy that reaches it) accepts a TCP connection within
``REACH_TIMEOUT_S``; if not — or if starting the run itself fails with a W&B communication
error (``wandb.errors.CommError``, not a rejected API key) — the run is started offline and
ONE warning names its offline run dir and ``wandb sync <dir>`` to upload it later. The
online run is therefore started in the factory (``logger.experiment``), not lazily.

Run helpers for the job (no-ops without W&B): ``run_info(logger)`` (id, dir, mode, url, for
the job record), ``log_record(logger, record)`` (test metrics into the run summary; a metric
undefined on the data gets no number there, only its reason as ``undefined/test/<name>``) and
``finish_run(logger, status)`` (the status into the summary; exit code 0 for a finished job,
``ok`` or ``degenerate``, 1 otherwise).
"""

from __future__ import annotations

import logging
import netrc
import os
import socket
import threading
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.wandb.ai"
REACH_TIMEOUT_S = 3.0


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


def wandb_reachable() -> str | None:
    """None when the W&B host (or the proxy to it) accepts a TCP connection within
    ``REACH_TIMEOUT_S``, else why not (one phrase naming the host). Runs in a thread so a
    slow DNS lookup cannot stall the job either."""
    url = os.environ.get("WANDB_BASE_URL") or DEFAULT_BASE_URL
    parts = urlsplit(url if "://" in url else f"https://{url}")
    host, scheme = parts.hostname or "", parts.scheme or "https"
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        return f"WANDB_BASE_URL={url} has no valid port"
    target, via = (host, port), ""
    proxy = urllib.request.getproxies().get(scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        proxy_parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if proxy_parts.hostname:
            target, via = (proxy_parts.hostname, proxy_parts.port or 80), f" via proxy {proxy}"
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection(target, timeout=REACH_TIMEOUT_S).close()
            outcome.append(None)
        except OSError as err:
            outcome.append(f"{type(err).__name__}: {err}")

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(REACH_TIMEOUT_S + 0.5)
    if outcome and outcome[0] is None:
        return None
    why = outcome[0] if outcome else f"no answer within {REACH_TIMEOUT_S:g} s"
    return f"W&B host {host}:{port}{via} (WANDB_BASE_URL={url}) is not reachable ({why})"


def wandb_logger(*, save_dir, name, group, job_type, tags, run_config, project="epx", entity=None, mode="auto", run_id=None, **_):
    from lightning.pytorch.loggers import WandbLogger

    mode = resolve_mode(mode)
    os.environ.setdefault("WANDB_SILENT", "true")

    def make(run_mode: str) -> WandbLogger:
        logger = WandbLogger(
            project=project,
            entity=entity,
            name=name,
            group=group,
            job_type=job_type,
            tags=list(tags),
            config=run_config,
            save_dir=str(save_dir),
            dir=str(save_dir),
            mode=run_mode,
            reinit="finish_previous",
            **({"id": run_id, "resume": "allow"} if run_id else {}),
        )
        # Lightning always passes anonymous=None to wandb.init, which wandb >= 0.19 answers
        # with "The anonymous setting has no effect" on every job: epx never sets it, so drop it.
        if getattr(logger, "_wandb_init", {}).get("anonymous", "unset") is None:
            logger._wandb_init.pop("anonymous")
        return logger

    if mode != "online":
        return _with_summaries(make(mode))
    problem = wandb_reachable()
    if problem is None:
        logger = make("online")
        try:
            logger.experiment  # start the run now: a network failure here is recoverable
            return _with_summaries(logger)
        except Exception as err:  # noqa: BLE001 — only W&B's communication errors fall back
            if not _is_comm_error(err):
                raise
            problem = f"starting the W&B run failed ({type(err).__name__}: {' '.join(str(err).split())[:300]})"
    logger = make("offline")
    run = logger.experiment
    run_dir = Path(run.dir).parent if getattr(run, "dir", None) else Path(save_dir) / "wandb"
    log.warning("%s; logging this run offline in %s; upload it later with `wandb sync %s`", problem, run_dir, run_dir)
    return _with_summaries(logger)


def _with_summaries(logger):
    """The run summary keeps the best (lowest) validation loss, not the last: what a W&B sweep
    (``sweeps/chromoformer_bayes.yaml``) optimises and what early stopping kept."""
    run = logger.experiment
    if hasattr(run, "define_metric"):
        run.define_metric("val/loss", summary="min")
    return logger


def _is_comm_error(err: BaseException) -> bool:
    import wandb

    errors = wandb.errors
    return isinstance(err, errors.CommError) and not isinstance(err, getattr(errors, "AuthenticationError", ()))


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
    """The W&B run's id, dir (what ``wandb sync`` takes), mode, url and group; None without W&B."""
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
        "group": getattr(run, "group", None),
    }


def log_record(logger, record) -> None:
    """Test metrics, parameter count and genes per split into the W&B run summary."""
    run = _wandb_run(logger)
    if run is None or not hasattr(run, "summary"):
        return
    for key, value in record.test.items():
        if value is not None:  # undefined: no number, not even NaN; the reason instead
            run.summary[f"test/{key}"] = value
    for key, why in (record.undefined_metrics or {}).items():
        run.summary[f"undefined/test/{key}"] = why
    run.summary["n_params"] = record.n_params
    for split, n in record.n_genes.items():
        run.summary[f"n_genes/{split}"] = n


def finish_run(logger, status: str) -> None:
    """Close the W&B run with the job's status (exit code 1 marks a failed or interrupted job in the UI)."""
    from epx.record import FINISHED

    run = _wandb_run(logger)
    if run is None or not hasattr(run, "finish"):
        return
    run.summary["status"] = status
    run.finish(exit_code=0 if status in FINISHED else 1)
