"""glibc's allocator told to keep freed memory, once at the start of a training or predict job.

Contract: ``tune_malloc(enabled=True) -> dict`` calls glibc's ``mallopt`` with
``M_MMAP_MAX = 0`` and ``M_TRIM_THRESHOLD = TRIM_THRESHOLD`` (2**31 - 1 bytes, the largest
int ``mallopt`` takes) and returns what it did (``{"malloc_tune": True, ...}``, or
``{"malloc_tune": False, "reason": ...}``). ``epx.run`` (training) and ``epx.predict`` call it
first thing with the job's
``compute.malloc_tune`` (``conf/config.yaml``, default ``true``; a run key, so it never changes
a job's config digest). It does nothing, and never raises, where it cannot apply: not Linux,
not glibc (musl, macOS), ``mallopt`` refusing a value, or ``MALLOC_MMAP_MAX_`` /
``MALLOC_TRIM_THRESHOLD_`` already set in the environment (the user's own allocator settings
win). Calling it again is harmless.

Why: by default glibc serves every block over its mmap threshold (128 kB, rising to at most
32 MB as blocks are freed) with its own ``mmap`` and hands it back with ``munmap`` when torch
frees it, and trims the heap's top once 128 kB+ lie free there. A training step allocates and
frees the same large activations every step, so each step page-faults tens to hundreds of MB
in again (the kernel zeroes each 4 kB page): ``seq_cnn_base``'s 100 kb chunks (100+ MB
activations) spend about half their step in page faults (its 4-chunk step: 6.9 s CPU untuned,
3.7 s tuned), the 6 Mb GraphReg / Epi-CNN windows 0-18% (about 30 MB faulted in per step;
``benchmarks/bench_step.py`` reports the share per model, run to run it varies).
With mmap off and trimming only past 2 GB of free heap top, freed blocks stay in the heap and the next step reuses
them, the effect of ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000`` in the
environment, applied from inside the job.

The cost: the process keeps its peak heap for its lifetime (resident memory does not fall
after the largest step), which is what a job that repeats that step wants anyway. Threads'
own arenas still take blocks over 64 MB with mmap (glibc falls back to it there), so nothing
fails; ``compute.malloc_tune=false`` restores glibc's defaults for a process that must give
memory back.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_MAX = -4
TRIM_THRESHOLD = 2**31 - 1  # mallopt's value is a C int
ENVIRONMENT = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_")


def glibc() -> ctypes.CDLL | None:
    """This process's C library when it is glibc (has ``gnu_get_libc_version``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        version = libc.gnu_get_libc_version
        libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        libc.mallopt.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    version.restype = ctypes.c_char_p
    return libc


def tune_malloc(enabled=True) -> dict:
    """Apply the settings of the module docstring once; returns what was done (for the job record)."""
    if not enabled:
        return {"malloc_tune": False, "reason": "compute.malloc_tune=false"}
    preset = [name for name in ENVIRONMENT if name in os.environ]
    if preset:
        return {"malloc_tune": False, "reason": f"set in the environment: {', '.join(preset)}"}
    libc = glibc()
    if libc is None:
        return {"malloc_tune": False, "reason": f"not glibc ({sys.platform})"}
    trim = TRIM_THRESHOLD
    try:
        ok = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, trim) == 1
    except Exception as err:  # noqa: BLE001 - a foreign call must never stop the job
        return {"malloc_tune": False, "reason": f"mallopt failed: {err}"}
    if not ok:
        return {"malloc_tune": False, "reason": "mallopt refused the values"}
    log.debug("glibc malloc: mmap off, trim threshold %d bytes (compute.malloc_tune)", trim)
    return {"malloc_tune": True, "mmap_max": 0, "trim_threshold": trim}
