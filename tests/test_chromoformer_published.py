"""Chromoformer's published input layout (issue 21 part 1): hand-built cases against a direct
per-gene definition of the published dataset's rules, and the real E003 slice.

The reference here (``_published``) is the rules written as plain loops over per-bp arrays:
promoter [TSS - 20 kb, TSS + 20 kb) binned from its first base, mean then ln(x + 1), reversed
for − strand genes; pCREs binned from their own start, never reversed, partial last bin over
its real bases, centre-padded with left pad ceil((L - n) / 2); pCREs are the second anchors of
rows whose first anchor contains the TSS, best score first, ties by ``chrom:start-end`` text.
``benchmarks/compare_chromoformer_published.py`` checks the same layout against the original
code itself on the E003 slice (max difference 4.8e-7 over every tensor).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import write_folder

MARKS = ("H3K4me3", "H3K27ac")
RESOLUTIONS = (2000, 500, 100)
SIZES = {"chr1": 200_000, "chr2": 90_000}


def _mean_log(x: np.ndarray, r: int) -> np.ndarray:
    """(M, l) per-bp -> (M, ceil(l / r)) ln(mean + 1), partial last bin over its real bases."""
    edges = np.arange(0, x.shape[1], r)  # bin i: bases [i r, min((i + 1) r, l))
    lengths = np.diff(np.append(edges, x.shape[1]))
    return np.log(np.add.reduceat(x.astype(np.float64), edges, axis=1) / lengths + 1)


def _published(signal: dict, gene: dict, pcres: list[tuple[str, int, int]], r: int, *, marks=MARKS, window: int = 40_000,
               w_max: int = 40_000):
    """One gene's published tensors at resolution r: promoter (M, L), pCREs (n, M, n_out), masks (n, n_out)."""
    def per_bp(c, s, e):
        return np.stack([signal[m][c][s:e] for m in marks])

    tss = gene["tss"]
    promoter = _mean_log(per_bp(gene["chrom"], tss - window // 2, tss + window // 2), r)
    if gene["strand"] == "-":
        promoter = promoter[:, ::-1]
    n_out = w_max // r
    x = np.zeros((len(pcres), len(marks), n_out), np.float32)
    mask = np.zeros((len(pcres), n_out), bool)
    for i, (c, s, e) in enumerate(pcres):
        binned = _mean_log(per_bp(c, s, e), r)
        pad = math.ceil((n_out - binned.shape[1]) / 2)
        x[i, :, pad : pad + binned.shape[1]] = binned
        mask[i, pad : pad + binned.shape[1]] = True
    return promoter, x, mask


@pytest.fixture(scope="module")
def hand_built(tmp_path_factory):
    rng = np.random.default_rng(3)
    signal = {m: {c: (rng.random(n) * rng.integers(0, 20, n)).astype(np.float32) for c, n in SIZES.items()} for m in MARKS}
    genes = pd.DataFrame({"gene_id": ["plus", "minus", "lonely"], "chrom": ["chr1", "chr1", "chr2"],
                          "tss": [60_000, 120_003, 45_000], "strand": ["+", "-", "+"], "label": [1, 0, 1]})
    rows = [
        # plus: a partial-bin pCRE (3,050 bp: odd L - n at 500 bp), a tie broken by text, one containing its own TSS
        ("chr1", 59_990, 60_010, "chr1", 10_000, 13_050, "plus", 2.0),
        ("chr1", 59_990, 60_010, "chr1", 90_000, 90_777, "plus", 3.0),
        ("chr1", 59_990, 60_010, "chr1", 140_000, 141_000, "plus", 3.0),
        ("chr1", 59_990, 60_010, "chr1", 59_000, 61_001, "plus", 1.7),
        ("chr1", 59_990, 60_010, "chr1", 10_000, 13_050, "plus", 2.5),  # the same partner again: best score kept
        # minus: its pCRE is never reversed
        ("chr1", 120_003, 120_004, "chr1", 150_000, 155_001, "minus", 1.9),
        # a reversed row: its SECOND anchor holds minus's TSS; minus must not take its first anchor
        ("chr1", 30_000, 31_000, "chr1", 120_000, 120_100, "other", 9.0),
        # an anchor 500 bp from plus's TSS, not containing it: not plus's (tolerance 0)
        ("chr1", 60_500, 60_600, "chr1", 170_000, 171_000, "near", 8.0),
    ]
    frame = pd.DataFrame(rows, columns=["chrom1", "start1", "end1", "chrom2", "start2", "end2", "name", "score"])
    expected = {
        "plus": [("chr1", 140_000, 141_000), ("chr1", 90_000, 90_777), ("chr1", 10_000, 13_050), ("chr1", 59_000, 61_001)],
        "minus": [("chr1", 150_000, 155_001)],
        "lonely": [],
    }
    freqs = {"plus": [3.0, 3.0, 2.5, 1.7], "minus": [1.9], "lonely": []}
    # "chr1:140000-141000" < "chr1:90000-90777" as text: the published PriorityQueue order
    tss = genes[["gene_id", "chrom", "tss", "strand"]]
    root = write_folder(tmp_path_factory.mktemp("published") / "data", signals={("E003", m): signal[m] for m in MARKS}, tss=tss,
                        expression=pd.DataFrame({"gene_id": genes.gene_id, "E003": [5.0, 0.1, 3.0]}), chrom_sizes=SIZES,
                        interactions={"E003": frame})
    return root, signal, genes, frame.assign(strength=frame["score"]), expected, freqs, tmp_path_factory.mktemp("cache")


def _dataset(hand_built, **kw):
    from epx.data.inputs.chromoformer import ChromoformerInputs
    from epx.data.inputs.context import DataContext
    from epx.data.prepare.contract import DatasetSpec
    from epx.data.prepare.windows import WindowStore

    root, _, genes, contacts, *_, cache = hand_built
    builder = ChromoformerInputs(layout="published", i_max=8, **kw)
    store = WindowStore(DatasetSpec(root=root), "E003", cache, SIZES, resolutions=builder.resolutions)
    binned = store.load(MARKS, builder.regions(genes, contacts))
    context = DataContext.of(genes, cell="E003", marks=MARKS, target_column="label", windows=binned, contacts=contacts)
    return builder, builder(context, np.arange(len(genes)))


def test_layout_option_picks_the_published_builder():
    from hydra.utils import instantiate

    from epx.config import compose
    from epx.data.inputs.chromoformer import ChromoformerInputs
    from epx.data.inputs.chromoformer_published import PublishedChromoformerInputs
    from epx.errors import InputError

    paper = instantiate(compose(["experiment=chromoformer_paper"]).model.inputs)
    assert isinstance(paper, PublishedChromoformerInputs) and paper.tolerance_bp == 0 and paper.sources == ("windows", "contacts")
    default = instantiate(compose(["model=chromoformer"]).model.inputs)
    assert type(default) is ChromoformerInputs and default.tolerance_bp == 1000 and default.layout == "epx"
    assert instantiate(compose(["model=chromoformer", "model.inputs.layout=published"]).model.inputs).layout == "published"
    with pytest.raises(InputError, match="not a Chromoformer input layout"):
        ChromoformerInputs(layout="grid")


def test_hand_built_genes_equal_the_published_rules(hand_built):
    _, signal, genes, _, expected, freqs, _ = hand_built
    _, ds = _dataset(hand_built)
    x = ds.__getitems__(np.arange(len(genes)))["x"]
    for k, gene in enumerate(genes.to_dict("records")):
        n = len(expected[gene["gene_id"]])
        assert x["pcre_mask"][k].sum() == n and x["pcre_mask"][k, :n].all()
        got = [(ds.slots.chrom[k, i], int(ds.slots.start[k, i]), int(ds.slots.end[k, i])) for i in range(n)]
        assert got == expected[gene["gene_id"]], gene["gene_id"]
        np.testing.assert_allclose(x["freq"][k, :n].numpy(), freqs[gene["gene_id"]])
        for r in RESOLUTIONS:
            promoter, pcres, mask = _published(signal, gene, expected[gene["gene_id"]], r)
            np.testing.assert_allclose(x["promoter"][r][k].numpy(), promoter, rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(x["pcres"][r][k, :n].numpy(), pcres, rtol=1e-6, atol=1e-6)
            assert np.array_equal(x["pcre_bin_mask"][r][k, :n].numpy(), mask)
            assert not x["pcre_bin_mask"][r][k, n:].any() and not x["pcres"][r][k, n:].any()


def test_minus_strand_promoter_is_the_reversed_window_and_its_pcres_are_not(hand_built):
    _, signal, *_ = hand_built
    _, ds = _dataset(hand_built)
    x = ds.__getitems__([1])["x"]
    tss = 120_003
    forward = _mean_log(np.stack([signal[m]["chr1"][tss - 20_000 : tss + 20_000] for m in MARKS]), 100)
    assert np.allclose(x["promoter"][100][0].numpy(), forward[:, ::-1], atol=1e-6)
    # its TSS base sits in bin L/2 - 1 after the flip, as published
    assert np.allclose(x["promoter"][100][0, :, 199].numpy(), forward[:, 200], atol=1e-6)
    # the 5,001 bp pCRE: 51 bins at 100 bp (the last of 1 base), left pad ceil(349 / 2) = 175, genomic order
    mask = x["pcre_bin_mask"][100][0, 0].numpy()
    assert np.flatnonzero(mask)[[0, -1]].tolist() == [175, 225]
    last = np.log(np.array([signal[m]["chr1"][155_000] for m in MARKS]) + 1)
    assert np.allclose(x["pcres"][100][0, 0, :, 225].numpy(), last, atol=1e-6)


def test_pcre_longer_than_the_window_is_one_error_naming_the_file(hand_built):
    from epx.data.inputs.chromoformer import ChromoformerInputs
    from epx.errors import InputError

    _, _, genes, contacts, *_ = hand_built
    long = contacts.copy()
    long.loc[0, "end2"] = long.loc[0, "start2"] + 45_000
    with pytest.raises(InputError, match=r"interactions/E003.bedpe: 1 linked pCRE\(s\) are longer than model.inputs.w_max=40000"):
        ChromoformerInputs(layout="published").regions(genes, long, where="interactions/E003.bedpe")


def test_layouts_place_every_position_on_the_genome(hand_built):
    builder, ds = _dataset(hand_built)
    _, _, genes, *_ = hand_built
    lay = builder.layouts(genes, ds.slots)
    p = lay["promoter_2000"]
    assert p.start[0, 0] == 40_000 and p.end[0, -1] == 80_000  # plus: genomic order
    assert p.start[1, 0] == 120_003 + 20_000 - 2000 and p.reverse[1]  # minus: 5'->3'
    c = lay["pcres_100"]
    k = np.flatnonzero(c.valid[1, 0])
    assert c.start[1, 0, k[0]] == 150_000 and c.end[1, 0, k[-1]] == 155_001 and not c.reverse.any()


def test_store_is_built_once_and_reused(hand_built):
    from epx.data.prepare.contract import DatasetSpec
    from epx.data.prepare.windows import Regions, WindowStore

    root, *_, cache = hand_built
    store = WindowStore(DatasetSpec(root=root), "E003", cache / "again", SIZES, resolutions=(500,))
    regions = Regions.of(["chr1", "chr2"], [100, 7], [2_100, 1_007])
    paths = store.ensure(MARKS, regions)
    stamps = [p.stat().st_mtime_ns for p in paths]
    assert store.ensure(MARKS, regions) == paths and [p.stat().st_mtime_ns for p in paths] == stamps
    other = Regions.of(["chr1"], [100], [2_101])
    assert store.path(MARKS[0], other) != paths[0]  # other regions: another file


@pytest.mark.realdata
@pytest.mark.slow  # ~25 s on 2 shared cores: the DataModule's build plus the per-gene reference
def test_e003_slice_equals_the_published_rules(e003_demo, tmp_path):
    """Every gene of the slice through ``experiment=chromoformer_paper``'s DataModule equals the
    rules applied to the bigWigs directly, and its pCREs are exactly the BEDPE rows named by it."""
    import pyBigWig
    from hydra.utils import instantiate

    from epx.config import compose
    from epx.constants import MARKS as ALL

    cfg = compose(["experiment=chromoformer_paper", "dataset=folder", f"dataset.root={e003_demo}", "dataset.folds.scheme=balanced",
                   "mark=all", "cell=E003", f"paths.cache_dir={tmp_path}", "logger=none"])
    dm = instantiate(cfg.data, target_column="label")
    dm.prepare_data()
    dm.setup()
    bedpe = pd.read_csv(e003_demo / "interactions" / "E003.bedpe", sep="\t", header=None,
                        names=["c1", "s1", "e1", "c2", "s2", "e2", "name", "score"])
    handles = {m: pyBigWig.open(str(e003_demo / "signals" / f"E003-{m}.bigwig")) for m in ALL}
    signal = _LazySignal(handles)
    n_pcres = 0
    for ds in dm.datasets.values():
        batch = ds.__getitems__(np.arange(len(ds)))
        x = batch["x"]
        for k, row in enumerate(batch["gene"].numpy()):
            gene = dm.genes.iloc[row].to_dict()
            mine = bedpe[bedpe["name"] == gene["gene_id"]].sort_values("score", ascending=False, kind="stable")
            want = list(zip(mine.c2, mine.s2.astype(int), mine.e2.astype(int)))
            n = int(x["pcre_mask"][k].sum())
            assert [(ds.slots.chrom[k, i], int(ds.slots.start[k, i]), int(ds.slots.end[k, i])) for i in range(n)] == want
            n_pcres += n
            for r in RESOLUTIONS:
                promoter, pcres, mask = _published(signal, gene, want, r, marks=ALL)
                np.testing.assert_allclose(x["promoter"][r][k].numpy(), promoter, rtol=1e-5, atol=1e-5)
                np.testing.assert_allclose(x["pcres"][r][k, :n].numpy(), pcres, rtol=1e-5, atol=1e-5)
                assert np.array_equal(x["pcre_bin_mask"][r][k, :n].numpy(), mask)
    assert n_pcres == len(bedpe) == 580


class _LazySignal(dict):
    """signal[mark][chrom][s:e] -> per-bp values read from a bigWig (uncovered = 0)."""

    def __init__(self, handles):
        super().__init__()
        self.handles = handles

    def __missing__(self, mark):
        bw = self.handles[mark]

        class Chrom:
            def __init__(self, chrom):
                self.chrom = chrom

            def __getitem__(self, span):
                return np.nan_to_num(bw.values(self.chrom, span.start, span.stop, numpy=True))

        return {c: Chrom(c) for c in bw.chroms()}
