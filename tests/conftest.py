"""Shared fixtures: tiny contract folders written in tmp dirs, and the real E003 slice.

``write_folder(root, signals, tss, expression, chrom_sizes, interactions=None)`` writes a
contract folder from in-memory arrays with the ``epx.io`` writers (the same code the
converters and the synthetic generator use), so each test states its data exactly.
``write_bigwig`` is ``epx.io.bigwig.write_bigwig``, re-exported for the tests that import it
from here. ``small_synthetic`` is a session-wide small synthetic dataset for training tests.

The environment the suite assumes (issue 23): ``pin_environment`` runs when this file is
imported, before any test module, and sets it whatever the user's shell exported — every
``WANDB_*`` variable dropped, then ``WANDB_MODE=disabled`` and ``WANDB_SILENT=true``, and
``NETRC`` pointed at an empty file (no W&B login is found, so ``mode: auto`` is offline);
``HYDRA_FULL_ERROR`` and the ``EPX_*`` variables that ``conf/`` reads (``EPX_THREADS``,
``EPX_DATA_DIR``) dropped. Subprocesses inherit it. A test that needs W&B, a login or
another value sets it itself (``monkeypatch.setenv``, or the ``env`` of its subprocess).
Thread counts (``OMP_NUM_THREADS`` & co.) are left as they are: they change speed, not results
or output.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from epx.io.bedpe import write_interactions
from epx.io.bigwig import write_bigwig
from epx.io.chrom_sizes import write_chrom_sizes
from epx.io.expression import write_expression
from epx.io.tss import write_tss

# variables of the user's shell that change what a test sees; the pinned values follow
UNPINNED_PREFIXES = ("WANDB_",)
UNPINNED = ("HYDRA_FULL_ERROR", "EPX_THREADS", "EPX_DATA_DIR", "NETRC")
PINNED = {"WANDB_MODE": "disabled", "WANDB_SILENT": "true", "NETRC": os.devnull}


def pin_environment(environ=os.environ) -> None:
    for name in [name for name in environ if name.startswith(UNPINNED_PREFIXES) or name in UNPINNED]:
        del environ[name]
    environ.update(PINNED)


pin_environment()

REPO = Path(__file__).resolve().parents[1]
E003_DEMO = REPO.parent / "shared" / "data" / "roadmap_e003_demo"


def write_folder(root: Path, *, signals, tss: pd.DataFrame, expression: pd.DataFrame, chrom_sizes: dict[str, int], interactions: dict | None = None) -> Path:
    """signals: {(cell, mark): {chrom: per-bp array}}; tss: gene_id, chrom, tss, strand."""
    root.mkdir(parents=True, exist_ok=True)
    for (cell, mark), values in signals.items():
        write_bigwig(root / "signals" / f"{cell}-{mark}.bigwig", chrom_sizes, values)
    write_tss(tss, root / "tss.bed")
    write_expression(expression, root / "expression.tsv")
    write_chrom_sizes(chrom_sizes, root / "chrom.sizes")
    for cell, frame in (interactions or {}).items():
        write_interactions(frame, root / "interactions" / f"{cell}.bedpe")
    return root


@pytest.fixture(scope="session")
def e003_demo() -> Path:
    if not (E003_DEMO / "tss.bed").exists():
        pytest.skip(f"real Roadmap E003 slice not found at {E003_DEMO} (it lives in ../shared beside the repo)")
    return E003_DEMO


@pytest.fixture
def tiny_folder(tmp_path) -> Path:
    """2 chromosomes × 20 kb, 4 genes, 2 marks, 1 cell: exact values for reader/cache tests."""
    sizes = {"chr1": 20_000, "chr2": 15_050}
    rng = np.random.default_rng(0)
    sig = {
        ("E003", "H3K4me3"): {c: rng.random(n).astype(np.float32) * 10 for c, n in sizes.items()},
        ("E003", "H3K27ac"): {"chr1": np.r_[np.zeros(5_000), np.full(15_000, 2.0)]},
    }
    tss = pd.DataFrame({"gene_id": ["g1", "g2", "g3", "g4"], "chrom": ["chr1", "chr1", "chr2", "chr2"], "tss": [5_000, 12_345, 7_000, 14_999], "strand": ["+", "-", "+", "-"]})
    expr = pd.DataFrame({"gene_id": ["g1", "g2", "g3", "g4", "g5"], "E003": [0.0, 10.0, 3.0, 100.0, 1.0]})
    root = write_folder(tmp_path / "tiny", signals=sig, tss=tss, expression=expr, chrom_sizes=sizes)
    return root


@pytest.fixture(scope="session")
def small_synthetic(tmp_path_factory) -> Path:
    """A small synthetic Roadmap-like folder (all 23 chromosomes, few genes, 2 cells)."""
    from epx.synthetic.generate import generate

    root = tmp_path_factory.mktemp("synth") / "small"
    return generate(root, seed=1, **SMALL_SYNTHETIC)


@pytest.fixture(scope="session")
def small_synthetic_cache(small_synthetic, tmp_path_factory) -> Path:
    """One signal-cache dir (``paths.cache_dir``) for the session's jobs on ``small_synthetic``,
    the one ``test_train.job_cfg`` gives in-process jobs: the first job builds each cell's
    cache, later ones (subprocesses too) read it. Safe to share: the cache is fingerprinted by
    dataset, locked per cell and written atomically (``epx.data.prepare.cache``). Tests about
    building the cache use their own dir."""
    cache = tmp_path_factory.getbasetemp() / "shared_cache"
    cache.mkdir(exist_ok=True)
    return cache


SMALL_SYNTHETIC = dict(n_chroms=23, chrom_length=1_000_000, genes_per_chrom=12, cells=("E003", "E114"))


@pytest.fixture(autouse=True)
def _environment_restored():
    """Each test leaves the environment as it found it: an in-process W&B run exports its
    service's address (``WANDB_SERVICE``), and a later test's subprocess job would join that
    service and find its deterministic run id already in use."""
    before = dict(os.environ)
    yield
    if os.environ != before:
        os.environ.clear()
        os.environ.update(before)
