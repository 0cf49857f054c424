"""One job's bookkeeping around its steps: the job dir, the record, failure handling.

Contract: ``Job(dir, record)``; the steps of a job run inside ``with job.running():``. On
the way out, whatever happened, the record gets its wall time and is written atomically to
``dir/metrics.json``, and the experiment logger (``job.logger``, set once a step made one) is
finished with the job's status. An exception inside marks the record ``failed`` with the
error (``"TypeName: message"``) and is re-raised, so Hydra and the CLI still see it; a
job therefore never leaves a ``running`` record behind unless the process itself was killed.
``job.save()`` writes the record mid-job (e.g. once the W&B run id is known).

On the way in, the record gets ``host`` (``socket.gethostname()``) and ``pid``
(``os.getpid()``) of the process running the job and is written (status ``running``): a
record still ``running`` whose process is gone is a killed job — even one killed during its
first minutes, e.g. while the cache is built — and ``epx summarize`` reports it as ``killed``
(``epx.analysis.collect``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from epx.record import JobRecord
from epx.train.loggers import finish_run

log = logging.getLogger(__name__)


@dataclass
class Job:
    dir: Path
    record: JobRecord
    logger: Any = False

    def save(self) -> Path:
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
            self.record.status = "failed"
            self.record.error = f"{type(err).__name__}: {err}"
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
