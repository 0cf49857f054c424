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

Why the summary has two hooks: in Hydra 1.3 the basic launcher catches a job's exception (``run_job``
marks it FAILED, calls ``on_job_end`` and runs the remaining jobs of the batch), but then
``BasicSweeper.sweep`` reads every ``JobReturn.return_value``, which re-raises the first
failure, so ``Hydra.multirun`` never reaches ``on_multirun_end``. A grid with one failed
job would get no summary from ``on_multirun_end`` alone; ``on_job_end`` (in multirun
mode) rebuilds it after every job, failed ones included, and never raises.
"""

from __future__ import annotations

import logging
from typing import Any

from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from epx.analysis.grid import expand_overrides, sweep_arguments, write_grid
from epx.analysis.summary import summarize, summarize_quietly

log = logging.getLogger(__name__)


class SummaryCallback(Callback):
    """Records the grid at the start; writes the summary after each job (``every_job``) and at the end."""

    def __init__(self, *, every_job: bool = True) -> None:
        self.every_job = every_job

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
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

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        # Single runs (RUN mode) have no sweep dir to summarize.
        if self.every_job and config.hydra.mode == RunMode.MULTIRUN:
            summarize_quietly(config.hydra.sweep.dir)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        csv_path, png_path = summarize(config.hydra.sweep.dir)
        log.info("grid summary: %s, %s", csv_path, png_path)
