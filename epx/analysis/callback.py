"""Hydra callback that keeps ``summary.csv`` / ``summary.png`` current at the sweep root.

Enable it with::

    hydra:
      callbacks:
        summary:
          _target_: epx.analysis.callback.SummaryCallback

Why two hooks: in Hydra 1.3 the basic launcher catches a job's exception (``run_job``
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
from omegaconf import DictConfig

from epx.analysis.summary import summarize, summarize_quietly

log = logging.getLogger(__name__)


class SummaryCallback(Callback):
    """Writes the grid summary after each multirun job (``every_job``) and at the end."""

    def __init__(self, *, every_job: bool = True) -> None:
        self.every_job = every_job

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        # Single runs (RUN mode) have no sweep dir to summarize.
        if self.every_job and config.hydra.mode == RunMode.MULTIRUN:
            summarize_quietly(config.hydra.sweep.dir)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        csv_path, png_path = summarize(config.hydra.sweep.dir)
        log.info("grid summary: %s, %s", csv_path, png_path)
