"""Hydra callback that records a multirun's grid and keeps its summary current at the sweep root.

``on_multirun_start`` writes ``<SWEEP>/grid.json`` (every job's overrides in job-number
order, ``epx.analysis.grid``) before the first job runs, so the summary knows the jobs that
never started without re-expanding the sweep; ``on_job_end`` / ``on_multirun_end`` write
``summary.csv`` / ``summary.png``. Neither ``on_multirun_start`` nor ``on_job_end`` ever
fails the sweep: a grid that cannot be recorded is logged (the summary then expands
``multirun.yaml``), and so is a summary error after a job.

Enable it with::

    hydra:
      callbacks:
        summary:
          _target_: epx.analysis.callback.SummaryCallback

Named sweeps (``sweep=<name>``, issue 12) are checked before any job runs, so a refused
launch leaves the sweep dir as it was (Hydra rewrites a job's ``.hydra/`` before the job
itself could object): ``on_multirun_start`` refuses a launch whose jobs are not all in the ``grid.json`` the dir already
holds (another grid; launching part of the recorded grid again is fine), and one whose job
dir holds a record made from another resolved config (``epx.job.config_digest`` of the job
composed now ≠ the record's ``config_digest``); ``rerun=true`` skips both checks and trains
every job again. ``grid.json`` then lists the recorded grid with this launch's spelling of
each job (``epx.analysis.grid.merge_grid``). ``on_run_start`` does the same for a single named
run. Hydra turns an exception raised by a callback into a warning and goes on, so a refusal
(``GridError``, an ``InputError``) is printed as one line, ``epx: error: ...``, and ends the
process with exit code 2 (``SystemExit``, which Hydra lets through), as the CLI does for bad
input. Reused jobs (``record.reused``) do not rebuild the summary after they end: their rows did
not change; ``on_multirun_end`` still writes it once.

Two launches under one ``sweep=`` name at the same moment: the grid is claimed atomically
(``epx.analysis.grid.claim_grid``, an exclusive create of ``grid.json``), so exactly one gets
an empty dir; the other finds the winner's ``grid.json`` and is checked against it like any
later launch: a different grid is refused with the one-line error above (the same grid is
accepted, and each of its jobs refuses a dir another live process is training).

Signals (issue 23): once the launch is accepted, the whole multirun runs inside
``epx.job.interruptible()``: SIGTERM or SIGINT — during a job or between two jobs — ends the
job ``interrupted`` and the process with exit code 143 / 130, and on the way out (``atexit``,
as the process exits, whenever ``on_multirun_end`` was not reached) ``summary.csv`` and
``summary.png`` are written once more, so they list the interrupted job and every job not run
yet (``missing``) instead of being left stale.

Before launching, a launcher preset whose plugin or library is missing
(``hydra/launcher=slurm`` without ``submitit``) is refused with the package to install.

Why the summary has two hooks: in Hydra 1.3 the basic launcher catches a job's exception (``run_job``
marks it FAILED, calls ``on_job_end`` and runs the remaining jobs of the batch), but then
``BasicSweeper.sweep`` reads every ``JobReturn.return_value``, which re-raises the first
failure, so ``Hydra.multirun`` never reaches ``on_multirun_end``. A grid with one failed
job would get no summary from ``on_multirun_end`` alone; ``on_job_end`` (in multirun
mode) rebuilds it after every job, failed ones included, and never raises.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import sys
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from epx.analysis.grid import (
    claim_grid,
    expand_overrides,
    grid_identity,
    job_subdir,
    merge_grid,
    read_grid,
    sweep_arguments,
    write_grid,
)
from epx.analysis.collect import collect_rows
from epx.analysis.summary import log_summary_if_jobs_did, summarize, summarize_quietly, summary_table
from epx.config import is_named
from epx.errors import InputError
from epx.record import FILE_NAME as RECORD_NAME
from epx.record import JobRecord, RecordError

log = logging.getLogger(__name__)

# launcher plugin module prefix -> (the library it drives, what to install)
LAUNCHER_PACKAGES = {
    "hydra_plugins.hydra_submitit_launcher": ("submitit", "hydra-submitit-launcher==1.2.0 'submitit>=1.5,<2'"),
    "hydra_plugins.hydra_joblib_launcher": ("joblib", "hydra-joblib-launcher==1.2.0"),
}


class GridError(InputError):
    """A launch refused before any job runs."""


def _refuse(err: GridError) -> None:
    """End the process with the refusal's one line: Hydra would only warn about an exception."""
    print(f"epx: error: {err}", file=sys.stderr, flush=True)
    raise SystemExit(2) from err


def check_launcher(config: DictConfig) -> None:
    """Refuse a launcher preset whose plugin or library cannot be imported, naming the package."""
    launcher = config.hydra.get("launcher") or {}
    target = str(launcher.get("_target_", ""))
    choice = (config.hydra.runtime.get("choices") or {}).get("hydra/launcher", "?")
    for prefix, (library, install) in LAUNCHER_PACKAGES.items():
        if not target.startswith(prefix):
            continue
        missing = []
        for module in (target.rsplit(".", 1)[0], library):
            try:
                importlib.import_module(module)
            except ImportError as err:
                missing.append(f"{type(err).__name__}: {err}")
        if missing:
            raise GridError(
                f"hydra/launcher={choice} needs the package(s) {install} ({'; '.join(missing)}). "
                f"Install them with: pip install {install}   (or: pip install -e '.[cluster]')"
            )
    if target.endswith("SlurmLauncher"):
        for key in ("tasks_per_node", "gpus_per_node", "nodes"):
            value = launcher.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value < 1:
                raise GridError(
                    f"hydra.launcher.{key}={value} (hydra/launcher={choice}): SLURM needs a number >= 1; slurm_ddp takes "
                    f"it from trainer.devices / trainer.num_nodes, so give GPUs per node as a number, e.g. trainer.devices=4"
                )


def _exclude_keys(config: DictConfig) -> list[str]:
    return [str(key) for key in config.hydra.job.config.override_dirname.exclude_keys or []]


def _prior_record(job_dir: Path) -> JobRecord | None:
    path = job_dir / RECORD_NAME
    if not path.is_file():
        return None
    try:
        return JobRecord.read(path)
    except RecordError as err:
        raise GridError(_other_grid(job_dir, f"its record is unreadable: {err}")) from err


def _other_grid(job_dir: Path, why: str) -> str:
    from epx.job import refuse_other_grid

    return str(refuse_other_grid(job_dir, why))


def _check_digest(job_dir: Path, record: JobRecord, job_config: DictConfig, overrides: list[str]) -> None:
    import shlex

    from epx.job import config_digest

    if not record.config_digest:
        raise GridError(_other_grid(job_dir, "its record has no config digest (made before resumable grids)"))
    if config_digest(job_config) != record.config_digest:
        raise GridError(
            _other_grid(
                job_dir,
                "same overrides, different resolved config: a changed conf/ default, experiment or code; "
                f"`epx diff {shlex.quote(str(job_dir))} {shlex.quote(' '.join(overrides))}` shows what changed",
            )
        )


def check_named_sweep(config: DictConfig, jobs: list[list[str]]) -> list[list[str]]:
    """The checks of a named sweep before its jobs run (module doc); returns grid.json's jobs."""
    sweep_dir = Path(str(config.hydra.sweep.dir))
    if bool(config.get("rerun", False)):
        return jobs
    exclude = _exclude_keys(config)
    stored = read_grid(sweep_dir)
    if stored is None and not (sweep_dir / "grid.json").exists():
        if claim_grid(sweep_dir, jobs):  # this launch made the dir's grid; no other can now
            try:
                _check_job_dirs(config, jobs, sweep_dir, exclude)
            except GridError:
                (sweep_dir / "grid.json").unlink(missing_ok=True)  # a refused launch leaves the dir as it was
                raise
            return jobs
        stored = read_grid(sweep_dir)  # another launch claimed it first: checked against its grid
    if stored is not None:
        new, old = grid_identity(jobs, exclude), grid_identity(stored, exclude)
        if not new <= old:
            outside = sorted(new - old)
            raise GridError(
                f"{sweep_dir} holds another grid: its grid.json lists {len(old)} job(s) and {len(outside)} job(s) of this "
                f"launch are not among them (e.g. {outside[0]}); a sweep dir never mixes two grids. Use another "
                f"sweep=<name> for this grid, or rerun=true to make it this dir's grid and train every job of it again"
            )
    _check_job_dirs(config, jobs, sweep_dir, exclude)
    return merge_grid(stored, jobs, exclude) if stored is not None else jobs


def _check_job_dirs(config: DictConfig, jobs: list[list[str]], sweep_dir: Path, exclude: list[str]) -> None:
    """Each job dir that already holds a record must hold one of this very config."""
    loader = None
    for job in jobs:
        job_dir = sweep_dir / job_subdir(job, exclude)
        record = _prior_record(job_dir)
        if record is None:
            continue
        if loader is None:
            from hydra.core.global_hydra import GlobalHydra

            loader = GlobalHydra.instance().config_loader()
        job_config = loader.load_sweep_config(config, list(job))
        _check_digest(job_dir, record, job_config, [str(item) for item in job])


def _job_reused(config: DictConfig) -> bool:
    try:
        record = JobRecord.read(Path(str(config.hydra.runtime.output_dir)))
    except (RecordError, OSError, ValueError):
        return False
    return record.finished and bool(record.reused)


# The multirun's signal handlers, restored at its end. Module state, not the callback's: a
# launcher such as submitit pickles the callbacks with each job, and an open context cannot be.
_SIGNALS = contextlib.ExitStack()


def _print_table(sweep_dir: Any) -> None:
    """The grid's summary table (``epx.analysis.summary.summary_table``) as a multirun ends."""
    try:
        text = summary_table(collect_rows(sweep_dir))
    except Exception as exc:  # noqa: BLE001 — the summary files are written; the table is extra
        log.warning("summary table of %s not shown: %s: %s", sweep_dir, type(exc).__name__, exc)
        return
    log.info("grid summary (%s):\n%s", sweep_dir, text.rstrip("\n"))


class SummaryCallback(Callback):
    """Records the grid at the start; writes the summary after each job (``every_job``) and at the end."""

    def __init__(self, *, every_job: bool = True) -> None:
        self.every_job = every_job
        self._ended = False

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not is_named(config.get("sweep")) or bool(config.get("rerun", False)):
            return
        job_dir = Path(str(config.hydra.run.dir))
        try:
            record = _prior_record(job_dir)
            if record is not None:
                overrides = [str(item) for item in config.hydra.overrides.task]
                _check_digest(job_dir, record, config, overrides)
        except GridError as err:
            _refuse(err)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_launcher(config)
            if is_named(config.get("sweep")):
                self._start_named_sweep(config)
            else:
                self._record_grid(config)
        except GridError as err:
            _refuse(err)
        self._stop_on_signals(config)  # accepted: from here a signal ends the grid with a summary

    def _stop_on_signals(self, config: DictConfig) -> None:
        from epx.job import interruptible

        _SIGNALS.enter_context(interruptible())
        atexit.register(self._summarize_unfinished, str(config.hydra.sweep.dir))

    def _summarize_unfinished(self, sweep_dir: str) -> None:
        """At exit, when the multirun did not reach its end (a signal, a failed job): the summary
        as the sweep dir stands, interrupted and unrun jobs included."""
        if not self._ended:
            if summarize_quietly(sweep_dir) is not None:
                _print_table(sweep_dir)

    def _record_grid(self, config: DictConfig) -> None:
        try:
            # The sweeper node resolved as its instantiation resolves it; not all of config.hydra,
            # whose job-time values (hydra.job.num, ...) are still missing here.
            hydra_node = {
                "sweeper": OmegaConf.to_container(config.hydra.sweeper, resolve=True),
                "overrides": OmegaConf.to_container(config.hydra.overrides, resolve=False),
            }
            arguments = sweep_arguments(hydra_node)
            if arguments is None:
                log.info("grid.json not written: the sweeper %s picks its jobs at run time", config.hydra.sweeper.get("_target_"))
                return
            path = write_grid(config.hydra.sweep.dir, expand_overrides(arguments))
            log.debug("expected grid: %s", path)
        except Exception as exc:
            log.warning("grid.json not written (%s: %s); the summary will expand multirun.yaml", type(exc).__name__, exc)

    def _start_named_sweep(self, config: DictConfig) -> None:
        try:
            hydra_node = {
                "sweeper": OmegaConf.to_container(config.hydra.sweeper, resolve=True),
                "overrides": OmegaConf.to_container(config.hydra.overrides, resolve=False),
            }
            arguments = sweep_arguments(hydra_node)
            jobs = expand_overrides(arguments) if arguments is not None else None
        except Exception as exc:
            log.warning("grid of sweep %s not checked (%s: %s); each job still checks its own dir", config.get("sweep"), type(exc).__name__, exc)
            return
        if jobs is None:
            log.info("grid.json not written: the sweeper %s picks its jobs at run time", config.hydra.sweeper.get("_target_"))
            return
        jobs = check_named_sweep(config, jobs)  # GridError refuses the launch
        try:
            write_grid(config.hydra.sweep.dir, jobs)
        except Exception as exc:
            log.warning("grid.json not written (%s: %s); the summary will expand multirun.yaml", type(exc).__name__, exc)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        # Single runs (RUN mode) have no sweep dir to summarize; a reused job changed no row.
        if self.every_job and config.hydra.mode == RunMode.MULTIRUN and not _job_reused(config):
            summarize_quietly(config.hydra.sweep.dir)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._ended = True
        _SIGNALS.close()
        csv_path, png_path = summarize(config.hydra.sweep.dir)
        _print_table(config.hydra.sweep.dir)
        log.info("grid summary: %s, %s", csv_path, png_path)
        log_summary_if_jobs_did(config.hydra.sweep.dir, png_path)  # one W&B run for the whole grid
