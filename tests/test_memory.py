"""epx.memory.tune_malloc: glibc's mallopt applied once per job, a no-op (never an error) elsewhere,
and compute.malloc_tune a run key (it never changes a job's config digest)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from epx import memory
from epx.config import compose, is_run_key
from epx.job import config_digest


def test_disabled_does_nothing():
    assert memory.tune_malloc(False) == {"malloc_tune": False, "reason": "compute.malloc_tune=false"}


def test_the_environment_wins(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_MAX_", "65536")
    done = memory.tune_malloc(True)
    assert done["malloc_tune"] is False and "MALLOC_MMAP_MAX_" in done["reason"]


def test_not_glibc_is_a_no_op(monkeypatch):
    monkeypatch.setattr(memory.sys, "platform", "darwin")
    assert memory.glibc() is None
    assert memory.tune_malloc(True) == {"malloc_tune": False, "reason": "not glibc (darwin)"}


def test_a_refusing_mallopt_is_reported_not_raised(monkeypatch):
    class Refusing:
        def mallopt(self, option, value):
            return 0

    monkeypatch.delenv("MALLOC_MMAP_MAX_", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    monkeypatch.setattr(memory, "glibc", Refusing)
    assert memory.tune_malloc(True) == {"malloc_tune": False, "reason": "mallopt refused the values"}


@pytest.mark.skipif(memory.glibc() is None, reason="needs Linux with glibc")
def test_on_glibc_repeated_steps_reuse_their_big_blocks():
    # in fresh processes (mallopt is process-wide): a "step" of three 40 MB tensors, repeated.
    # glibc's default maps blocks over 32 MB (its largest mmap threshold) afresh every time and
    # faults their pages in again; tuned, once the heap has grown the steps fault in nothing
    script = textwrap.dedent("""
        import resource, sys
        import torch
        from epx.memory import tune_malloc
        if sys.argv[1] == "tuned":
            assert tune_malloc(True)["malloc_tune"] is True
        torch.set_num_threads(1)
        def step():
            a = torch.ones(10_000_000)
            return float(((a * 2) + a).sum())
        for _ in range(10):
            step()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(10):
            step()
        print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    faults = {mode: int(subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True,
                                       check=True, env=env).stdout.split()[-1])
              for mode in ("tuned", "default")}
    assert faults["default"] > 10 * 3 * 9_000, faults  # 10 steps x 3 blocks x ~9,800 pages of 4 kB
    assert faults["tuned"] < 2_000, faults


def test_malloc_tune_is_a_run_key_on_by_default():
    cfg = compose(["model=linear"])
    assert cfg.compute.malloc_tune is True and is_run_key("compute.malloc_tune")
    assert config_digest(compose(["model=linear", "compute.malloc_tune=false"])) == config_digest(cfg)
