"""Torch CPU threads per job, so parallel jobs on one machine do not fight over cores.

Contract: the job config's ``threads`` (``conf/config.yaml``: ``${oc.env:EPX_THREADS,null}``)
is applied at the start of every job with ``apply_threads(value)``: an int sets
``torch.set_num_threads`` (and, where torch still allows it, the inter-op pool); null or ""
leaves torch's default (one thread per core of the machine: right for one job at a time).
``conf/hydra/default.yaml`` sets ``EPX_THREADS`` for every job through ``hydra.job.env_set``
to ``${epx.launcher_threads:${hydra.launcher}}`` (``launcher_threads``), the CPUs the job's
launcher gives it:

- Hydra's joblib launcher (``hydra/launcher=joblib``): ``cpus_per_job(n_jobs)`` = the CPUs this
  process may use (``os.sched_getaffinity``) divided by the jobs joblib runs at once
  (joblib's rule for ``n_jobs``: -1 = one job per CPU, -2 = all but one, ...), at least 1;
- submitit (``local``, ``slurm``, ``slurm_ddp``): ``cpus_per_task`` (what SLURM reserves for
  each task; submitit's local executor starts every job of a grid at once, so the ``local``
  preset gives each job one CPU by default);
- any other launcher (the basic one runs one job at a time): ``$EPX_THREADS`` as set in the
  shell, else "" (torch's default).

``threads=4`` on the command line overrides all of this. ``epx.config`` registers
``launcher_threads`` and ``cpus_per_job`` as the resolvers ``epx.launcher_threads`` and
``epx.cpus_per_job``.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask: what SLURM/cgroups/taskset allow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no sched_getaffinity (macOS)
        return max(1, os.cpu_count() or 1)


def cpus_per_job(n_jobs, cpus: int | None = None) -> int:
    """CPUs for each of ``n_jobs`` jobs running at once (joblib's meaning of ``n_jobs``)."""
    cpus = available_cpus() if cpus is None else cpus
    n = int(n_jobs)
    if n == 0:
        raise ValueError("n_jobs=0 runs no job; use a positive number, or -1 for one job per CPU")
    parallel = n if n > 0 else max(1, cpus + 1 + n)
    return max(1, cpus // parallel)


def apply_threads(value) -> int | None:
    """Set torch's threads for this job from the ``threads`` setting; returns what was set."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "null", "none", "auto")):
        return None
    try:
        threads = int(value)
    except (TypeError, ValueError) as err:
        from epx.errors import InputError

        raise InputError(f"threads={value!r} is not a number of threads; use e.g. threads=4, or threads=null for torch's default") from err
    if threads < 1:
        from epx.errors import InputError

        raise InputError(f"threads={threads} must be at least 1 (or null for torch's default)")
    import torch

    torch.set_num_threads(threads)
    try:  # only possible before the first inter-op parallel work of the process
        torch.set_num_interop_threads(threads)
    except RuntimeError:
        pass
    log.info("torch threads: %d", threads)
    return threads


def launcher_threads(launcher) -> str:
    """``EPX_THREADS`` for a job of ``launcher`` (the ``hydra.launcher`` node; module doc)."""
    launcher = launcher if launcher is not None else {}
    target = str(launcher.get("_target_", "") or "")
    if "joblib" in target and launcher.get("n_jobs") is not None:
        return str(cpus_per_job(launcher.get("n_jobs")))
    if "submitit" in target and launcher.get("cpus_per_task"):
        return str(int(launcher.get("cpus_per_task")))
    return os.environ.get("EPX_THREADS", "")
