"""One job's bookkeeping around its steps: the job dir, the record, failure handling.

Contract: ``Job(dir, record)``; the steps of a job run inside ``with job.running():``. On
the way out, whatever happened, the record gets its wall time and is written atomically to
``dir/metrics.json``, and the experiment logger (``job.logger``, set once a step made one) is
finished with the job's status. An exception inside marks the record ``failed`` with the
error (``"TypeName: message"``) and is re-raised, so Hydra and the CLI still see it; a stop
from outside — ``Interrupted`` (SIGTERM, SIGINT), Lightning's ``SIGTERMException``, any other
``SystemExit``/``KeyboardInterrupt`` such as submitit's requeue on a timeout/preemption signal —
marks it ``interrupted``, the error followed by ``INTERRUPTED`` (the job resumes from its last
checkpoint when launched again). A job therefore never leaves a ``running`` record behind
unless the process itself was killed.

Signals (issue 23). ``interruptible()`` is the span in which SIGTERM (what ``kill`` and SLURM
send) and SIGINT (Ctrl-C) raise ``Interrupted``, a ``SystemExit`` whose code is 128 + the
signal — 143 and 130, what a shell reports for a process those signals ended — so no ``finally``
is skipped, the record says ``interrupted``, and the process exits non-zero (Hydra and Lightning
let a ``SystemExit`` through). It is installed only over the default handlers: a handler some
other code installed first (submitit's SIGTERM bypass in a SLURM job, whose USR2 handler
requeues the job) is left in place, so the requeue path is unchanged. The first signal raises;
later ones are logged and ignored, so a second Ctrl-C does not cut the record's write short.
``epx.run.train`` runs each job inside it and ``epx.analysis.callback.SummaryCallback`` a whole
multirun (so a signal between two jobs stops the grid the same way).
``job.save()`` writes the record mid-job (e.g. once the W&B run id is known). Only the
process of global rank 0 writes (``RANK`` / ``LOCAL_RANK`` / ``SLURM_PROCID``, as Lightning
reads them): the other ranks of a DDP job run the same steps into the same job dir.

On the way in, the record gets ``host`` (``socket.gethostname()``) and ``pid``
(``os.getpid()``) of the process running the job and is written (status ``running``): a
record still ``running`` whose process is gone is a killed job — even one killed during its
first minutes, e.g. while the cache is built — and ``epx summarize`` reports it as ``killed``
(``epx.analysis.collect``).

Resumable, idempotent jobs (issue 12). ``config_digest(cfg)`` is the sha256 of the job's
resolved config without the keys that say how or where it runs rather than what it computes:
``epx.config.RUN_KEYS``, the one list that also keeps them out of a named sweep's job-dir
names and out of ``epx diff``'s comparison. They are left out, and values that interpolate
them are resolved against placeholders (the checkpoint dir ``${paths.output_dir}/checkpoints``
becomes ``<paths.output_dir>/checkpoints``), so no machine path leaks into the digest either:
the same study moved to another disk or mount point (a cluster) keeps its digest; another
dataset under another root does not change it (use another sweep name for other data).

``plan(cfg, job_dir)`` decides, before anything in the job dir is touched, from the record
already there (``metrics.json``):

- ``reuse``: a named sweep (``sweep=<name>``), the record says it finished (``ok``, or
  ``degenerate``: its data leave a metric undefined, and training again gives the same) with this digest and
  ``rerun`` is false: the job is not trained again; its record gets ``reused: true`` (test
  metrics, wall time and W&B id kept; rewritten atomically) and is returned;
- ``resume``: the record (any status but a finished one: killed, failed, interrupted by a
  signal or a requeue)
  has this digest and ``checkpoints/last.ckpt`` is a complete checkpoint: training resumes
  from it (``Trainer.fit(ckpt_path=...)``: weights, optimizer, schedulers, loops, callbacks
  and, through ``RngState``, the random generators, so the result equals an uninterrupted
  run's on CPU) and continues the first attempt's W&B run;
- ``fresh``: anything else; with ``rerun=true`` the old ``checkpoints/`` are removed first and
  the W&B run is a new one.

A named sweep refuses (``InputError``, nothing written) a job dir whose record has another
digest or none (a job of another grid, or made before digests): the message names the dir
and the fixes (another ``sweep=`` name, or ``rerun=true`` to overwrite it); so does a job
whose record says ``running`` in a live process on this machine. Without a sweep name
(timestamped dirs) nothing is reused or refused, but a job that finds its own unfinished
attempt — submitit's requeue after a timeout or preemption runs the job again in the same
dir — resumes the same way.

W&B run id: a job's first attempt derives it from the job's identity, ``wandb_run_id(job_dir,
salt)``: a hash of the job dir's absolute path (sweep dir + job subdir) and the time the
attempt started, and writes it into its record before training; every later attempt that
resumes (a kill and rerun, a SLURM requeue) takes it from the record and continues that run
(``resume="allow"``). The start time keeps a job dir that was deleted and run again, or
``rerun=true``, from writing over the history of the old run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from epx.config import RUN_KEYS
from epx.errors import InputError
from epx.record import FILE_NAME as RECORD_NAME
from epx.record import JobRecord, RecordError
from epx.train.loggers import finish_run

log = logging.getLogger(__name__)


@dataclass
class Job:
    dir: Path
    record: JobRecord
    logger: Any = False

    def save(self) -> Path:
        path = self.dir / RECORD_NAME
        if global_rank() != 0:
            return path
        self.dir.mkdir(parents=True, exist_ok=True)
        return self.record.write(self.dir)

    @contextlib.contextmanager
    def running(self) -> Iterator["Job"]:
        start = time.time()
        self.record.host, self.record.pid = socket.gethostname(), os.getpid()
        self.save()
        try:
            yield self
        except BaseException as err:
            signum = None if isinstance(err, SystemExit | KeyboardInterrupt) else _take_pending()
            if signum is not None:
                # the signal's Interrupted was turned into another error on its way out (a library
                # re-raising it wrapped): the job was still stopped by the signal, not failed
                stop = Interrupted(signum)
                self.record.status = "interrupted"
                self.record.error = f"Interrupted: {stop} ({INTERRUPTED}; it surfaced as {type(err).__name__}: {err})"
                raise stop from err
            stopped = isinstance(err, SystemExit | KeyboardInterrupt)
            if isinstance(err, Interrupted):
                _pending.clear()  # it arrived
            self.record.status = "interrupted" if stopped else "failed"
            self.record.error = f"{type(err).__name__}: {err}" + (f" ({INTERRUPTED})" if stopped else "")
            raise
        finally:
            self.record.wall_seconds = round(time.time() - start, 2)
            try:
                self.save()
            finally:  # a record that cannot be written (disk full) still closes the W&B run
                finish_run(self.logger, self.record.status)
                log.info("job dir: %s", self.dir)
                if self.record.wandb:
                    wandb = self.record.wandb
                    log.info("W&B run %s (%s): %s", wandb.get("id"), wandb.get("mode"), wandb.get("dir"))


def global_rank() -> int:
    """This process's rank in a multi-process (DDP) job; 0 outside one."""
    try:
        from lightning.fabric.utilities.rank_zero import rank_zero_only

        return int(getattr(rank_zero_only, "rank", 0) or 0)
    except ImportError:  # pragma: no cover - lightning is a dependency
        return 0


INTERRUPTED = (
    "interrupted: SIGTERM, Ctrl-C, or a timeout/preemption signal that submitit answers by requeueing the job; "
    "the requeued job, or a rerun of the grid, resumes it from checkpoints/last.ckpt"
)


# -- signals: SIGTERM / SIGINT end a job as interrupted, with a non-zero exit -----------------


class Interrupted(SystemExit):
    """SIGTERM or SIGINT received: exit code 128 + the signal number (143, 130)."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(128 + self.signum)

    def __str__(self) -> str:
        return f"{signal.Signals(self.signum).name} received; exit code {128 + self.signum}"


# the handler each signal has when nobody installed one (SIGINT: Python's KeyboardInterrupt)
_DEFAULT_HANDLERS = {signal.SIGTERM: (signal.SIG_DFL,), signal.SIGINT: (signal.default_int_handler, signal.SIG_DFL)}
_received: list[int] = []  # the signals received so far in this process
# a signal whose Interrupted has not reached a job's record yet: a handler can run inside a
# __del__ or a library's catch-all, where the raise is lost and training would go on forever
_pending: list[int] = []


def _interrupt(signum: int, frame) -> None:
    if _received:  # already stopping: let the record and the summary be written
        log.warning("%s received again while stopping; ignored", signal.Signals(signum).name)
        return
    _received.append(signum)
    _pending.append(signum)
    log.warning("%s received: stopping the job (the record says interrupted; launch it again to resume)", signal.Signals(signum).name)
    raise Interrupted(signum)


def _take_pending() -> int | None:
    """The latest signal whose ``Interrupted`` has not reached a job's record, now taken; or None."""
    signum = _pending[-1] if _pending else None
    _pending.clear()
    return signum


def raise_if_interrupted() -> None:
    """At a safe point (a batch start): a signal whose ``Interrupted`` was swallowed on the way
    (raised inside a finaliser or a catch-all) is raised again here, so the job still stops."""
    signum = _take_pending()
    if signum is not None:
        log.warning("%s was received but its stop was lost on the way; stopping now", signal.Signals(signum).name)
        raise Interrupted(signum)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM and SIGINT raise ``Interrupted`` inside (module doc); the handlers are restored after."""
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return
    installed = {}
    for signum, defaults in _DEFAULT_HANDLERS.items():
        current = signal.getsignal(signum)
        if any(current is default for default in defaults):
            installed[signum] = current
            signal.signal(signum, _interrupt)
    try:
        yield
    finally:
        for signum, previous in installed.items():
            signal.signal(signum, previous)


# -- the job's identity: config digest, W&B run id -------------------------------------------

CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"


def _placeholders(node: Any, prefix: str) -> Any:
    if isinstance(node, dict):
        return {key: _placeholders(value, f"{prefix}.{key}") for key, value in node.items()}
    if isinstance(node, list):
        return [_placeholders(value, f"{prefix}[{i}]") for i, value in enumerate(node)]
    return f"<{prefix}>"


def _drop(plain: dict, key: str, replace=None) -> None:
    """Replace (``replace`` given) or delete the node at dotted ``key`` of a plain config."""
    *parents, leaf = key.split(".")
    node = plain
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict) and leaf in node:
        if replace is None:
            del node[leaf]
        else:
            node[leaf] = replace(node[leaf])


def digest_config(cfg: DictConfig) -> dict:
    """The resolved job config that ``config_digest`` hashes: without the run keys, and
    whatever interpolated them resolved against placeholders (``<paths.cache_dir>``)."""
    plain = OmegaConf.to_container(cfg, resolve=False)
    for entry in RUN_KEYS:
        _drop(plain, entry.key, lambda node, key=entry.key: _placeholders(node, key))
    plain.pop("hydra", None)
    resolved = OmegaConf.to_container(OmegaConf.create(plain), resolve=True, throw_on_missing=False)
    for entry in RUN_KEYS:
        _drop(resolved, entry.key)
    return resolved


def config_digest(cfg: DictConfig) -> str:
    """sha256 (hex) of the job's resolved config without the run keys (``epx.config.RUN_KEYS``)."""
    text = json.dumps(digest_config(cfg), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def wandb_run_id(job_dir: Path, salt: str | None = None) -> str:
    """A W&B run id from the job dir (absolute path) and ``salt`` (default: now, in ns)."""
    salt = str(time.time_ns()) if salt is None else salt
    key = f"{Path(job_dir).resolve()}:{salt}"
    return "epx-" + hashlib.sha256(key.encode()).hexdigest()[:24]


# -- reuse / resume / refuse ----------------------------------------------------------------


def checkpoint_readable(path: Path) -> bool:
    """True when ``path`` is a complete torch checkpoint (a zip archive with its central
    directory): a file cut short by a kill during the write is not."""
    try:
        with zipfile.ZipFile(path) as archive:
            return bool(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


@dataclass
class Plan:
    """What a job does with what its dir already holds (see the module doc)."""

    action: str  # "reuse" | "resume" | "fresh"
    digest: str
    record: JobRecord | None = None  # reuse: the record to return
    checkpoint: str | None = None  # resume: the checkpoint to continue from
    wandb_id: str | None = None
    clear: bool = False  # fresh after rerun=true: remove the old checkpoints/ first
    note: str | None = None  # why (logged)

    def clear_checkpoints(self, job_dir: Path) -> None:
        """rerun=true: the old run's checkpoints go, so the new best/last take their names."""
        if self.clear and global_rank() == 0:
            shutil.rmtree(Path(job_dir) / CHECKPOINT_DIR, ignore_errors=True)


def refuse_other_grid(job_dir: Path, why: str) -> InputError:
    return InputError(
        f"{job_dir} already holds a job of another grid ({why}); a sweep dir never mixes two grids. "
        f"Use another sweep=<name> for this grid, or rerun=true to train this job again here "
        f"(its old results are overwritten)"
    )


def plan(cfg: DictConfig, job_dir: Path) -> Plan:
    """Decide reuse / resume / fresh for the job ``cfg`` in ``job_dir``; raise ``InputError``
    for a dir a named sweep must not touch. Nothing is written except a reused job's record."""
    job_dir = Path(job_dir)
    digest = config_digest(cfg)
    named = bool(cfg.get("sweep"))
    rerun = bool(cfg.get("rerun", False))
    record_path = job_dir / RECORD_NAME
    last = job_dir / CHECKPOINT_DIR / LAST_CHECKPOINT
    fresh_id = wandb_run_id(job_dir)
    if not record_path.is_file():
        return Plan("fresh", digest, wandb_id=fresh_id)
    try:
        prior = JobRecord.read(record_path)
    except RecordError as err:
        if named and not rerun:
            raise refuse_other_grid(job_dir, f"its record is unreadable: {err}") from err
        return Plan("fresh", digest, wandb_id=fresh_id, note=str(err))
    prior_id = (prior.wandb or {}).get("id") if isinstance(prior.wandb, dict) else None
    if (
        global_rank() == 0  # the other ranks of a DDP job find rank 0's record of this very attempt
        and prior.status == "running"
        and prior.host == socket.gethostname()
        and isinstance(prior.pid, int)
        and prior.pid != os.getpid()
        and not prior.ended_without_finishing(_mtime(record_path))
    ):
        raise InputError(
            f"{job_dir} is being trained right now by process {prior.pid} on {prior.host}; wait for it to "
            "finish (a rerun of the grid then reuses it) or stop that process first"
        )
    if rerun:
        return Plan("fresh", digest, wandb_id=fresh_id, clear=True, note="rerun=true")
    if prior.config_digest != digest:
        if named:
            why = (
                "its record has no config digest (made before resumable grids)"
                if not prior.config_digest
                else "same overrides, different resolved config: a changed conf/ default, experiment or code"
            )
            raise refuse_other_grid(job_dir, why)
        return Plan("fresh", digest, wandb_id=fresh_id)
    if prior.finished and named:
        prior.reused = True
        if global_rank() == 0:
            prior.write(job_dir)
        return Plan("reuse", digest, record=prior, note="finished with the same config")
    if prior.finished:
        return Plan("fresh", digest, wandb_id=fresh_id)
    resume_id = prior_id or fresh_id
    if last.is_file():
        if checkpoint_readable(last):
            return Plan("resume", digest, checkpoint=str(last), wandb_id=resume_id, note=f"previous attempt: {prior.status}")
        log.warning("%s is incomplete (the job was killed while writing it); training this job from the start", last)
    return Plan("fresh", digest, wandb_id=fresh_id)  # from step 0: a new run, not the old one's history


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


# -- Lightning: random generators in every checkpoint ----------------------------------------

try:
    from lightning.pytorch.callbacks import Callback as _Callback
except ImportError:  # pragma: no cover - lightning is a dependency
    _Callback = object


class RngState(_Callback):
    """Saves the Python, NumPy and torch (CPU, CUDA) random states in every checkpoint and
    restores them when training resumes, so a resumed job draws the same shuffles and dropout
    masks as an uninterrupted one (Lightning restores weights, optimizer and loops, not these)."""

    # Plain types and tensors only, so a checkpoint still loads with torch.load(weights_only=True).
    def state_dict(self) -> dict[str, Any]:
        import random

        import numpy as np
        import torch

        version, keys, pos, has_gauss, cached = np.random.get_state()
        python_version, python_state, python_gauss = random.getstate()
        state = {
            "python": [python_version, list(python_state), python_gauss],
            "numpy": [str(version), torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)],
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        import random

        import numpy as np
        import torch

        python_version, python_state, python_gauss = state_dict["python"]
        random.setstate((python_version, tuple(python_state), python_gauss))
        version, keys, pos, has_gauss, cached = state_dict["numpy"]
        np.random.set_state((version, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        torch.set_rng_state(state_dict["torch"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])


class InterruptCheck(_Callback):
    """Stops the job at the next batch when a SIGTERM/SIGINT's ``Interrupted`` was swallowed on
    its way out (``raise_if_interrupted``); a no-op otherwise."""

    def on_train_batch_start(self, *args, **kwargs) -> None:
        raise_if_interrupted()

    def on_validation_batch_start(self, *args, **kwargs) -> None:
        raise_if_interrupted()

    def on_train_epoch_end(self, *args, **kwargs) -> None:
        raise_if_interrupted()
