"""What a job shows on the console: each line once, no noise, and the line it ends with.

Contract
--------
- ``quiet_third_party()``: run once per process before training (``epx.cli.run_job``). It
  removes Lightning's own stderr handler from the ``lightning`` logger (so each of its lines
  reaches the console once, through Hydra's handlers, and ``launch.log`` too), sends Python
  warnings through logging (``logging.captureWarnings``: the console and ``launch.log`` get
  the same text) and filters, narrowly, by message, the third-party notices that say nothing
  about the job (``NOISE``, each named with why it is safe to drop). The others are fixed at
  their cause where epx causes them (``epx.train.loggers``: no ``anonymous=`` for W&B; every
  checkpoint loaded with ``weights_only``).
- ``quiet_commands()``: the same for the other ``epx`` commands (``epx.cli.main``).
- ``progress_bars_wanted() -> bool``: a progress bar only on a terminal; in a log file a
  job gets one line per epoch instead (``EpochLine``, a Lightning callback).
- ``closing_line(record, job_dir) -> str``: the one line a job ends with: status, the primary
  metric, the other test metrics, genes used/dropped, wall time, job dir.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import warnings
from typing import Any

log = logging.getLogger("epx")

# (category, module regex, message regex, why it may be dropped): Python warnings
NOISE_WARNINGS: tuple[tuple[type[Warning], str, str, str], ...] = (
    (UserWarning, r"torchmetrics", r"Metric `SpearmanCorrcoef` will save all targets",
     "epx computes Spearman on the test split only, whose size the job already knows"),
    (UserWarning, r"torch", r"Using padding='same' with even kernel lengths",
     "a performance note of torch (an internal padded copy) on promoter_cnn's even kernel, not a result change"),
    (Warning, r"lightning", r".*isinstance\(treespec, LeafSpec\)",
     "a deprecation inside Lightning's own _pytree helper, nothing epx calls"),
)
# (logger, message regex, why): log records of third-party loggers
NOISE_RECORDS: tuple[tuple[str, str, str], ...] = (
    ("lightning.pytorch.utilities.rank_zero", r"litlogger", "an advert for another Lightning product"),
)


class _DropMatching(logging.Filter):
    def __init__(self, pattern: str) -> None:
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(record.getMessage())


_done = False


def _filter_noise() -> None:
    for category, module, message, _why in NOISE_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    for name, pattern, _why in NOISE_RECORDS:
        logging.getLogger(name).addFilter(_DropMatching(pattern))
    logging.captureWarnings(True)


def quiet_commands() -> None:
    """The same for the other ``epx`` commands (``predict``, ``explain``, ...), which log to
    stderr through ``logging.basicConfig`` and import Lightning later, if at all: Lightning's
    lines stop at its own handler (``propagate = False`` on the ``lightning`` logger, set
    before Lightning adds the handler) instead of printing twice."""
    logging.getLogger("lightning").propagate = False
    _filter_noise()


def quiet_third_party() -> None:
    """See the module doc; safe to call more than once."""
    global _done
    if _done:
        return
    _done = True
    lightning_logger = logging.getLogger("lightning")
    for handler in list(lightning_logger.handlers):  # Lightning's "INFO: ..." stderr copy of every line
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            lightning_logger.removeHandler(handler)
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).propagate = True
    _filter_noise()


def progress_bars_wanted(stream: Any = None) -> bool:
    """Progress bars redraw a line with ``\\r``: only where a person watches a terminal
    (Lightning's bar writes to stdout, so stdout must be one)."""
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "? s"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def closing_line(record: Any, job_dir: Any) -> str:
    """``job ok: pearson 0.7825 | spearman 0.77, mse 0.41 | genes 1840 used, 230 dropped | 3.1 min | DIR``."""
    status = str(record.status)
    if getattr(record, "smoke", False):
        status += " (smoke run: not a result)"
    if getattr(record, "reused", False):
        status += " (reused)"
    parts = [f"job {status}"]
    primary = record.primary_metric
    test = dict(record.test or {})
    if primary:
        parts[0] += f": {primary} {_fmt(test.pop(primary, None))}"
    if test:
        parts.append(", ".join(f"{k} {_fmt(v)}" for k, v in sorted(test.items())))
    genes = record.genes or {}
    if genes.get("used") is not None:
        parts.append(f"genes {genes['used']} used, {genes.get('dropped_total', 0)} dropped")
    if record.error:
        parts.append(f"error: {str(record.error).splitlines()[0][:200]}")
    parts.append(_duration(record.wall_seconds))
    parts.append(str(job_dir))
    return " | ".join(parts)


class EpochLine:
    """A Lightning callback: one log line per finished epoch (the logged epoch metrics), the
    log-file stand-in for a progress bar. Built lazily so this module imports no Lightning."""

    def __new__(cls):
        import lightning as L

        class _EpochLine(L.Callback):
            def on_train_epoch_start(self, trainer, pl_module) -> None:
                self._start = time.perf_counter()

            def on_train_epoch_end(self, trainer, pl_module) -> None:
                if trainer.sanity_checking or trainer.global_rank != 0:
                    return
                metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if getattr(v, "numel", lambda: 1)() == 1}
                shown = ", ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items()))
                took = time.perf_counter() - getattr(self, "_start", time.perf_counter())
                log.info("epoch %d/%s: %s (%.1f s)", trainer.current_epoch + 1, trainer.max_epochs, shown or "no metrics", took)

        return _EpochLine()
