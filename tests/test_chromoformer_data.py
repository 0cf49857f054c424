"""Chromoformer inputs: pCRE selection, batch assembly, strand, and a fast_dev_run job."""


import numpy as np
import pandas as pd
import pytest
import torch

from epx.data.inputs.chromoformer import ChromoformerInputs
from epx.data.inputs.context import DataContext
from epx.data.prepare.interactions import ContactFilter
from epx.io.bedpe import COLUMNS as BEDPE_COLUMNS
from epx.io.bedpe import read_interactions
from epx.data.inputs.pcres import select_pcres
from epx.data.tracks import SignalTracks
from epx.models.chromoformer import Chromoformer
from test_train import job_cfg, read_metrics
from epx.run import train


def bedpe(rows):
    return read_interactions(pd.DataFrame(rows, columns=BEDPE_COLUMNS))


GENES = pd.DataFrame({"gene_id": ["a", "b", "c"], "chrom": ["chr1", "chr1", "chr2"], "tss": [10_000, 50_000, 5_000], "strand": ["+", "-", "+"]})


def test_pcre_selection_by_score_both_orientations_ties_deterministic():
    links = bedpe([
        ["chr1", 10_000, 10_001, "chr1", 30_000, 32_000, "a", 2.0],
        ["chr1", 70_000, 71_000, "chr1", 10_500, 10_600, "x", 5.0],   # reversed orientation, anchor within tolerance
        ["chr1", 10_000, 10_001, "chr1", 20_000, 21_000, "a", 2.0],   # tie with the first: (chrom, start) breaks it
        ["chr1", 10_000, 10_001, "chr1", 9_000, 9_500, "a", 9.0],     # partner overlaps the promoter: not a pCRE
        ["chr1", 10_000, 10_001, "chr1", 30_000, 32_000, "a", 1.0],   # duplicate partner, lower score
        ["chr1", 12_000, 12_001, "chr1", 40_000, 41_000, "a", 3.0],   # anchor 2 kb away: beyond tolerance
        ["chr2", 5_000, 5_001, "chr2", 100, 200, "c", 1.5],
    ])
    slots = select_pcres(GENES, links, tolerance_bp=1000, i_max=2)
    assert slots.mask.tolist() == [[True, True], [False, False], [True, False]]
    assert list(zip(slots.start[0], slots.end[0], slots.freq[0])) == [(70_000, 71_000, 5.0), (20_000, 21_000, 2.0)]
    slots3 = select_pcres(GENES, links, tolerance_bp=1000, i_max=3)
    assert slots3.start[0].tolist() == [70_000, 20_000, 30_000] and slots3.freq[0].tolist() == [5.0, 2.0, 2.0]
    assert slots3.start[2, 0] == 100


def test_pcres_honour_the_dataset_threshold_and_score_kind():
    tracks = SignalTracks({"chr1": np.ones((2000, 1), np.float32), "chr2": np.ones((500, 1), np.float32)}, ["A"])
    links = bedpe([
        ["chr1", 10_000, 10_001, "chr1", 30_000, 32_000, "a", 0.05],
        ["chr1", 10_000, 10_001, "chr1", 60_000, 61_000, "a", 0.001],
        ["chr1", 10_000, 10_001, "chr1", 90_000, 91_000, "a", 0.5],  # q above the cut: dropped
    ])
    def ctx(score_kind="frequency", threshold=None):
        return _context(tracks, GENES, links, ContactFilter(score_kind, threshold))

    by_q = ChromoformerInputs(i_max=3)(ctx("qvalue", 0.1), np.arange(3)).slots
    # the smallest q is the strongest contact; strength is -log10 q
    assert by_q.start[0].tolist()[:2] == [60_000, 30_000] and by_q.mask[0].tolist() == [True, True, False]
    np.testing.assert_allclose(by_q.freq[0, :2], [3.0, -np.log10(0.05)], rtol=1e-6)
    as_freq = ChromoformerInputs(i_max=3)(ctx(threshold=0.01), np.arange(3)).slots
    assert as_freq.start[0].tolist() == [90_000, 30_000, 0] and as_freq.mask[0].tolist() == [True, True, False]
    # no threshold set: every interaction is a candidate
    assert ChromoformerInputs(i_max=3)(ctx(), np.arange(3)).slots.mask[0].all()
    with pytest.raises(Exception, match="score_kind"):
        ContactFilter(score_kind="pvalue")


def _context(tracks, genes, links, contacts=ContactFilter(threshold=None)):
    """As the DataModule builds it: the contacts are the rows past the dataset's threshold."""
    g = genes.assign(target=np.arange(len(genes), dtype=float), rpkm=1.0, label=0)
    return DataContext.of(g, marks=tracks.marks, tracks=tracks, contacts=contacts.apply(links))


def test_batch_matches_the_network_contract_and_runs():
    rng = np.random.default_rng(0)
    tracks = SignalTracks({"chr1": rng.random((2000, 2), dtype=np.float32), "chr2": rng.random((500, 2), dtype=np.float32)}, ["A", "B"])
    links = bedpe([["chr1", 10_000, 10_001, "chr1", 30_000, 32_000, "a", 2.0]])
    ds = ChromoformerInputs(i_max=3)(_context(tracks, GENES, links), np.arange(3))
    batch = ds.__getitems__([0, 1, 2])
    x = batch["x"]
    assert x["promoter"][2000].shape == (3, 2, 20) and x["promoter"][100].shape == (3, 2, 400)
    assert x["pcres"][500].shape == (3, 3, 2, 80) and x["pcre_bin_mask"][100].shape == (3, 3, 400)
    assert x["pcre_mask"].tolist() == [[True, False, False], [False, False, False], [False, False, False]]
    assert x["pcre_bin_mask"][100][0, 0].sum() == 20  # a 2 kb pCRE is 20 real 100-bp bins
    expected, _ = tracks.region_windows(["chr1"], [30_000], [32_000], length_bp=40_000, bin_bp=100)
    np.testing.assert_allclose(x["pcres"][100][0, 0].numpy(), expected[0])
    net = Chromoformer(n_marks=2, i_max=3).eval()
    with torch.no_grad():
        out = net(**x)
    assert out.shape == (3, 1) and torch.isfinite(out).all()


def test_minus_strand_gene_sees_mirrored_promoter_and_pcres():
    rng = np.random.default_rng(1)
    n = 3000
    fwd = rng.random((n, 2), dtype=np.float32)
    tracks = SignalTracks({"chr1": fwd, "chrR": fwd[::-1].copy()}, ["A", "B"])
    length = n * 100
    tss, pc = 150_050, (170_000, 172_000)
    genes = pd.DataFrame({"gene_id": ["f", "r"], "chrom": ["chr1", "chrR"], "tss": [tss, length - 1 - tss], "strand": ["+", "-"]})
    links = bedpe([
        ["chr1", tss, tss + 1, "chr1", *pc, "f", 3.0],
        ["chrR", length - 1 - tss, length - tss, "chrR", length - pc[1], length - pc[0], "r", 3.0],
    ])
    batch = ChromoformerInputs(i_max=2)(_context(tracks, genes, links), np.arange(2)).__getitems__([0, 1])
    for r in (2000, 500, 100):
        np.testing.assert_allclose(batch["x"]["promoter"][r][0], batch["x"]["promoter"][r][1], rtol=1e-6)
        np.testing.assert_allclose(batch["x"]["pcres"][r][0], batch["x"]["pcres"][r][1], rtol=1e-6)
        assert torch.equal(batch["x"]["pcre_bin_mask"][r][0], batch["x"]["pcre_bin_mask"][r][1])


def test_chromoformer_fast_dev_run_job(tmp_path, small_synthetic):
    train(job_cfg(tmp_path, small_synthetic, "model=chromoformer", "trainer=debug", "mark=all", "model.batch_size=8"))
    record = read_metrics(tmp_path)
    assert record.status == "ok" and record.n_params == 5_341_457


def test_chromoformer_classification_param_count(tmp_path, small_synthetic):
    train(job_cfg(tmp_path, small_synthetic, "model=chromoformer", "task=classification", "trainer=debug", "mark=all", "model.batch_size=4"))
    assert read_metrics(tmp_path).n_params == 5_341_586


def _random_dataset(seed, n_marks=3, n_genes=120, **inputs):
    """Genes on both strands, at chromosome ends and on a chromosome without a track; pCREs from
    1 bp to longer than the window, near chromosome ends, on other chromosomes, 0-11 per gene (8 kept)."""
    rng = np.random.default_rng(seed)
    sizes = {"chr1": 1_500_000, "chr2": 700_000}
    tracks = SignalTracks({c: rng.gamma(0.5, 2.0, (n // 100, n_marks)).astype(np.float32) for c, n in sizes.items()},
                          [f"m{i}" for i in range(n_marks)])
    chroms = ["chr1", "chr2", "chrU"]  # chrU: no track, reads as zeros
    chrom = rng.choice(chroms, n_genes, p=[0.5, 0.4, 0.1])
    length = np.array([sizes.get(c, 1_000_000) for c in chrom])
    tss = rng.integers(0, length)
    tss = np.where(rng.random(n_genes) < 0.15, rng.choice([0, 5, 15_000], n_genes), tss)
    tss = np.where(rng.random(n_genes) < 0.1, length - rng.integers(1, 25_000, n_genes), tss)
    genes = pd.DataFrame({"gene_id": [f"g{i}" for i in range(n_genes)], "chrom": chrom, "tss": tss,
                          "strand": rng.choice(["+", "-"], n_genes)})
    rows = []
    for g in range(n_genes):
        for _ in range(rng.choice([0, 0, 1, 2, 5, 8, 11])):
            other = chrom[g] if rng.random() < 0.85 else str(rng.choice(chroms))
            size = int(rng.choice([1, 99, 100, 101, 250, 2_000, 4_999, 8_000, 39_999, 40_000, 40_001, 123_457]))
            start = int(max(0, tss[g] + rng.integers(-300_000, 300_000))) if other == chrom[g] else int(rng.integers(0, 600_000))
            if rng.random() < 0.05:
                start = sizes.get(other, 1_000_000) - int(rng.integers(0, 5_000))
            rows.append([chrom[g], tss[g], tss[g] + 1, other, start, start + size, f"g{g}", float(rng.integers(1, 6))])
    return ChromoformerInputs(**inputs)(_context(tracks, genes, bedpe(rows)), np.arange(n_genes))


def _assert_identical(a, b, where="x"):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_identical(a[key], b[key], f"{where}[{key}]")
    else:
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), f"{where} differs by {(a.float() - b.float()).abs().max()}"


@pytest.mark.parametrize("seed, n_marks, inputs", [
    (0, 3, {}),
    (1, 1, {}),  # one mark: NumPy sums a contiguous axis pairwise; the fast path must too
    (2, 7, {"window_bp": 6_000, "resolutions": (1000, 300, 100), "w_max": 12_000, "i_max": 3}),
])
def test_fast_assembly_is_bit_identical_to_the_window_api(seed, n_marks, inputs):
    """Issue 14 part 5: the vectorised batch equals the per-resolution window-API batch (the
    assembly before it) bit for bit: random genes, both strands, padding, cropping, edges."""
    ds = _random_dataset(seed, n_marks, **inputs)
    assert ds.slots.mask.any(axis=1).mean() > 0.5 and not ds.slots.mask.all()
    rng = np.random.default_rng(seed)
    for size in (1, 7, 64, len(ds)):
        idx = rng.choice(len(ds), size, replace=False)
        _assert_identical(ds.assemble_x(idx), ds.reference_x(idx))
    batch = ds.__getitems__([3, 0, 3])  # repeats are fine
    _assert_identical(batch["x"], ds.reference_x([3, 0, 3]))
    assert batch["gene"].tolist() == [3, 0, 3]


def test_batch_without_any_pcre():
    ds = _random_dataset(4)
    none = np.flatnonzero(~ds.slots.mask.any(axis=1))[:5]
    assert none.size
    x = ds.assemble_x(none)
    _assert_identical(x, ds.reference_x(none))
    assert not x["pcre_mask"].any() and not any(t.any() for t in x["pcres"].values())
