"""The full-size synthetic dataset on a genome preset (``epx synth OUT --genome hg19``).

Nothing here renders the real 3 Gb: the preset's tables and gene counts are checked without
rendering, and the end-to-end runs use the hidden ``scale`` (hg19 shrunk to 2%: 23
chromosomes, 61 Mb, 380 genes, well under a second per cell). The real size is measured by
``benchmarks/bench_synth.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pyBigWig
import pytest

from epx import cli
from epx.constants import MARKS, ROADMAP_CELLS
from epx.data.prepare.cache import CellCache
from epx.data.prepare.contract import DatasetSpec
from epx.data.prepare.folds import gene_folds
from epx.data.prepare.genes import load_genes
from epx.errors import InputError
from epx.synthetic import generate as synthetic

SCALE = 0.02
CELLS = ("E003", "E114")
HG19 = {"chr1": 249_250_621, "chr2": 243_199_373, "chr21": 48_129_895, "chr22": 51_304_566, "chrX": 155_270_560}


@pytest.fixture(scope="module")
def scaled(tmp_path_factory) -> Path:
    return synthetic.generate(tmp_path_factory.mktemp("hg19") / "ds", seed=0, genome="hg19", scale=SCALE, cells=CELLS)


# ----------------------------------------------------------------------------- preset tables


def test_hg19_sizes_are_ucsc_chr1_to_chrX():
    sizes = synthetic.genome_chrom_sizes("hg19")
    assert list(sizes) == [f"chr{i}" for i in range(1, 23)] + ["chrX"]
    assert {c: sizes[c] for c in HG19} == HG19
    assert sum(sizes.values()) == 3_036_303_846


def test_hg19_layout_has_19000_genes_in_proportion_to_length():
    sizes, genes = synthetic.genome_layout("hg19")
    assert sizes == synthetic.genome_chrom_sizes("hg19")
    assert sum(genes.values()) == 19_000
    total = sum(sizes.values())
    for chrom, n in genes.items():
        assert abs(n - 19_000 * sizes[chrom] / total) < 1, chrom
    assert genes["chr1"] == 1560 and genes["chr21"] == 301


def test_scaled_layout_keeps_every_chromosome_usable():
    sizes, genes = synthetic.genome_layout("hg19", scale=SCALE)
    assert sizes["chr1"] == round(HG19["chr1"] * SCALE)
    assert min(sizes.values()) >= synthetic.MIN_CHROM_LENGTH
    assert sum(genes.values()) == round(19_000 * SCALE) and min(genes.values()) >= 1


def test_default_params_are_unchanged_so_old_default_folders_are_reused():
    resolved = synthetic.resolve_params()
    assert set(resolved) == set(synthetic.DEFAULTS)
    assert resolved == {**synthetic.DEFAULTS, "cells": list(ROADMAP_CELLS), "marks": list(MARKS)}


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(genome="hg19", n_chroms=3), "drop \\['n_chroms'\\]"),
        (dict(genome="hg38"), "genome must be one of"),
        (dict(scale=0.5), "scale need a genome preset"),
        (dict(genome="hg19", scale=0), "scale must be in"),
        (dict(genome="hg19", n_genes=0), "n_genes must be"),
    ],
)
def test_genome_parameters_are_checked(params, message):
    with pytest.raises(InputError, match=message):
        synthetic.resolve_params(**params)


# ----------------------------------------------------------------------------- end to end


def test_scaled_folder_is_a_contract_folder_the_readers_take(scaled, tmp_path):
    manifest = json.loads((scaled / "synthetic.json").read_text())
    assert manifest["params"] == synthetic.resolve_params(seed=0, genome="hg19", scale=SCALE, cells=CELLS)
    assert manifest["n_genes"] == 380
    spec = DatasetSpec(scaled)
    spec.check(CELLS, MARKS)
    sizes, _ = synthetic.genome_layout("hg19", scale=SCALE)
    assert spec.chrom_sizes("E003", MARKS) == sizes
    bw = pyBigWig.open(str(spec.signal_path("E114", "H3K36me3")))
    assert bw.chroms() == sizes
    bw.close()

    genes = load_genes(spec.path("tss"), spec.path("expression"), "E003", sizes)
    assert len(genes) == 380
    folds = gene_folds(genes, "chromoformer")
    assert (folds >= 0).all() and set(folds) == {0, 1, 2, 3}
    contacts, _ = spec.contacts("E003", sizes)
    assert len(contacts) > 0

    cache = CellCache(spec, "E003", tmp_path / "cache")
    with h5py.File(cache.ensure(MARKS), "r") as f:
        assert sorted(f.keys()) == sorted(MARKS)


def test_promoter_marks_still_separate_expressed_genes(scaled):
    truth = pd.read_csv(scaled / "truth.tsv", sep="\t")
    rpkm = pd.read_csv(scaled / "expression.tsv", sep="\t").set_index("gene_id").loc[truth["gene_id"], "E003"]
    bw = pyBigWig.open(str(scaled / "signals" / "E003-H3K4me3.bigwig"))
    k4 = np.array([np.nan_to_num(bw.values(c, int(t) - 1_000, int(t) + 1_000, numpy=True)).mean() for c, t in zip(truth["chrom"], truth["tss"])])
    bw.close()
    expressed = rpkm.to_numpy() >= 0.5
    ranks = pd.Series(k4).rank().to_numpy()
    n_pos, n_neg = expressed.sum(), (~expressed).sum()
    assert (ranks[expressed].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg) > 0.8


def test_cli_cells_narrows_to_the_same_bytes(scaled, tmp_path, capsys):
    # E003 made alone (through `epx synth`) is E003 of the two-cell run: same genome, same tracks.
    out = tmp_path / "e003"
    assert cli.main(["synth", str(out), "--genome", "hg19", "--cells", "E003", "--scale", str(SCALE)]) == 0
    assert capsys.readouterr().out.strip() == str(out.absolute())
    assert sorted(p.name for p in (out / "signals").iterdir()) == [f"E003-{m}.bigwig" for m in sorted(MARKS)]
    assert [p.name for p in (out / "interactions").iterdir()] == ["E003.bedpe"]
    same = ["tss.bed", "truth.tsv", "chrom.sizes", "interactions/E003.bedpe", *(f"signals/E003-{m}.bigwig" for m in MARKS)]
    for name in same:
        assert (out / name).read_bytes() == (scaled / name).read_bytes(), name
    alone = pd.read_csv(out / "expression.tsv", sep="\t")
    both = pd.read_csv(scaled / "expression.tsv", sep="\t")
    assert list(alone.columns) == ["gene_id", "E003"]
    pd.testing.assert_frame_equal(alone, both[["gene_id", "E003"]])
    elements = pd.read_csv(scaled / "elements.tsv", sep="\t")
    pd.testing.assert_frame_equal(pd.read_csv(out / "elements.tsv", sep="\t"), elements[elements["cell"] == "E003"].reset_index(drop=True))


def test_genome_folder_is_reused_and_its_element_table_rebuilt(scaled):
    params = dict(seed=0, genome="hg19", scale=SCALE, cells=CELLS)
    stamp = (scaled / "synthetic.json").stat().st_mtime_ns
    assert synthetic.ensure_synthetic(scaled, **params) == scaled
    assert (scaled / "synthetic.json").stat().st_mtime_ns == stamp
    written = (scaled / "elements.tsv").read_bytes()
    (scaled / "elements.tsv").unlink()
    synthetic.write_elements(scaled)
    assert (scaled / "elements.tsv").read_bytes() == written


def test_progress_reports_time_and_bytes_per_cell(tmp_path):
    reports = []
    out = synthetic.generate(tmp_path / "ds", genome="hg19", scale=SCALE, cells=["E116"], marks=["H3K27ac"], progress=reports.append)
    (report,) = reports
    assert report["cell"] == "E116" and report["seconds"] > 0 and report["entries"] > 0
    assert report["signal_bytes"] == {"H3K27ac": (out / "signals" / "E116-H3K27ac.bigwig").stat().st_size}
    assert report["bytes"] == report["signal_bytes"]["H3K27ac"] + (out / "interactions" / "E116.bedpe").stat().st_size
