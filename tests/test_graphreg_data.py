"""GraphReg windows and the Poisson count objective, exact on hand-built inputs.

Layout used throughout (defaults: 6 Mb windows stepping 2 Mb, 5 kb nodes, middle = nodes
400:800): chr1 is 7 Mb, so 4 windows start at -2, 0, 2, 4 Mb with middles [0,2), [2,4),
[4,6), [6,7) Mb; chr2 is 1.2 Mb, one window. Genes (TSS -> global node, window, local node):
g0 12,345 -> 2, w0, 402 (RPKM 3); g1 14,999 -> 2, w0, 402 (RPKM 5, shares g0's bin);
g2 2,500,000 -> 500, w1, 500 (RPKM 0); g3 4,999,999 -> 999, w2, 599 (RPKM 10);
g4 chr2 100 -> 0, w0, 400 (RPKM 7). chr1 window 3 holds no TSS.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import write_bigwig
from epx.data.inputs.graphreg.windows import GraphRegInputs
from epx.data.inputs.context import DataContext
from epx.data.prepare.interactions import ContactFilter
from epx.io.bedpe import COLUMNS as BEDPE_COLUMNS
from epx.io.bedpe import read_interactions
from epx.data.tracks import SignalTracks
from epx.models.graphreg import EpiGraphReg
from epx.train.counts import PoissonCounts

SIZES = {"chr1": 7_000_000, "chr2": 1_200_000}
N, S = 1200, 400


def _tracks() -> SignalTracks:
    # mark 0 counts the 100 bp bin index (so every slice is recognisable), mark 1 is 2.0 on chr1
    tracks = {}
    for chrom, size in SIZES.items():
        n = size // 100
        tracks[chrom] = np.stack([np.arange(n, dtype=np.float32), np.full(n, 2.0 if chrom == "chr1" else 0.0, np.float32)], axis=1)
    return SignalTracks(tracks, ["H3K4me3", "H3K27ac"])


def _genes() -> pd.DataFrame:
    rpkm = np.array([3.0, 5.0, 0.0, 10.0, 7.0])
    return pd.DataFrame(
        {
            "gene_id": [f"g{i}" for i in range(5)],
            "chrom": ["chr1"] * 4 + ["chr2"],
            "tss": [12_345, 14_999, 2_500_000, 4_999_999, 100],
            "strand": ["+", "-", "+", "+", "-"],
            "rpkm": rpkm,
            "target": np.log2(rpkm + 1),
            "label": (rpkm >= 5).astype(int),
        }
    )


def _bedpe(rows) -> pd.DataFrame:
    return read_interactions(pd.DataFrame(rows, columns=BEDPE_COLUMNS))


INTERACTIONS = [
    ("chr1", 12_000, 12_500, "chr1", 1_000_000, 1_001_000, "a", 2.0),  # node 2 <-> 200
    ("chr1", 12_000, 12_500, "chr1", 4_500_000, 4_501_000, "b", 1.0),  # below threshold
    ("chr1", 2_500_000, 2_500_001, "chr1", 6_500_000, 6_501_000, "c", 3.0),  # node 500 <-> 1300
    ("chr1", 4_999_000, 4_999_998, "chr1", 5_500_000, 5_501_000, "d", 2.0),  # node 999 <-> 1100
    ("chr1", 12_000, 12_500, "chr2", 100, 200, "e", 9.0),  # between chromosomes: ignored
]


def _context(interactions=None, genes=None, *, score_kind="frequency", threshold=1.5) -> DataContext:
    """The DataModule's context: the dataset's contacts are the rows past its threshold."""
    genes = _genes() if genes is None else genes
    contacts = ContactFilter(score_kind, threshold).apply(_bedpe(INTERACTIONS) if interactions is None else interactions)
    return DataContext.of(genes, cell="E003", marks=("H3K4me3", "H3K27ac"), tracks=_tracks(), contacts=contacts)


def _edge_set(edge_index: torch.Tensor) -> set[tuple[int, int]]:
    return set(map(tuple, edge_index.T.tolist()))


def test_windows_with_a_tss_are_kept_in_chromosome_order():
    ds = GraphRegInputs()(_context(), np.arange(5))
    assert ds.table.chrom == ["chr1", "chr1", "chr1", "chr2"]
    assert ds.table.start_bp.tolist() == [-2_000_000, 0, 2_000_000, -2_000_000]
    every = GraphRegInputs(skip_empty=False)(_context(), np.arange(5))
    assert every.table.start_bp.tolist() == [-2_000_000, 0, 2_000_000, 4_000_000, -2_000_000]


def test_middles_tile_each_chromosome_exactly_once():
    ds = GraphRegInputs(skip_empty=False)(_context(), np.arange(5))
    chr1 = [s for c, s in zip(ds.table.chrom, ds.table.start_bp) if c == "chr1"]
    covered = np.concatenate([np.arange(s // 5000 + 400, s // 5000 + 800) for s in chr1])
    np.testing.assert_array_equal(np.sort(covered), np.arange(4 * 400))  # 7 Mb -> nodes 0..1599, padded end


def test_batch_targets_genes_and_masks_are_exact():
    ds = GraphRegInputs()(_context(), np.arange(5))
    batch = ds.__getitems__([0, 2, 3])
    y = batch["y"].numpy()
    assert y.shape == (3, S) and y.dtype == np.float32
    expected = np.zeros((3, S), np.float32)
    expected[0, 2] = 3 + 5  # g0 + g1 share the bin
    expected[1, 199] = 10  # g3
    expected[2, 0] = 7  # g4 on chr2
    np.testing.assert_array_equal(y, expected)
    assert np.argwhere(batch["has_tss"].numpy()).tolist() == [[0, 2], [1, 199], [2, 0]]
    # gene <-> TSS bin: flat index into (B * 1200)
    assert batch["gene"].tolist() == [0, 1, 3, 4]
    assert batch["gene_pos"].tolist() == [402, 402, 1200 + 599, 2400 + 400]
    np.testing.assert_allclose(batch["gene_target"].numpy(), np.log2([4.0, 6.0, 11.0, 8.0]))
    # a window with a TSS but nothing expressed is kept (g2, RPKM 0)
    assert ds.__getitems__([1])["y"].sum() == 0 and ds.__getitems__([1])["has_tss"][0, 100]


def test_batch_signal_is_ln_mean_plus_one_with_zero_padding():
    ds = GraphRegInputs()(_context(), np.arange(5))
    x = ds.__getitems__([0, 3])["x"]["x"].numpy()
    assert x.shape == (2, 2, 60_000) and x.dtype == np.float32
    # chr1 window 0 starts at -2 Mb: 20,000 bins of padding, then bins 0..39,999
    np.testing.assert_array_equal(x[0, 0, :20_000], 0)
    np.testing.assert_allclose(x[0, 0, 20_000:], np.log1p(np.arange(40_000, dtype=np.float32)), rtol=1e-6)
    np.testing.assert_allclose(x[0, 1, 20_000:], math.log(3.0), rtol=1e-6)
    # chr2 (1.2 Mb): bins 0..11,999 then padding to the window end
    np.testing.assert_allclose(x[1, 0, 20_000:32_000], np.log1p(np.arange(12_000, dtype=np.float32)), rtol=1e-6)
    np.testing.assert_array_equal(x[1, :, 32_000:], 0)


def test_edges_are_thresholded_symmetric_inside_windows_and_pyg_batched():
    ds = GraphRegInputs()(_context(threshold=1.5), np.arange(5))
    # window 0 (nodes -400..800): 2 <-> 200 -> local 402 <-> 600; window 2 (nodes 400..1600): 500 <-> 1300
    # -> local 100 <-> 900 and 999 <-> 1100 -> local 599 <-> 700, offset by 1 window in the batch
    batch = ds.__getitems__([0, 2])
    assert batch["x"]["edge_index"].dtype == torch.long
    assert _edge_set(batch["x"]["edge_index"]) == {
        (402, 600), (600, 402),
        (1200 + 100, 1200 + 900), (1200 + 900, 1200 + 100), (1200 + 599, 1200 + 700), (1200 + 700, 1200 + 599),
    }
    # window 1 (nodes 0..1200): 2 <-> 200 and 999 <-> 1100 are inside; 500 <-> 1300 is not
    assert _edge_set(ds.__getitems__([1])["x"]["edge_index"]) == {(2, 200), (200, 2), (999, 1100), (1100, 999)}
    # contacts in the middles (local 400..800): w0 local 402 and 600; w2 local 599 and 700
    contact = batch["has_contact"].numpy()
    assert np.argwhere(contact).tolist() == [[0, 2], [0, 200], [1, 199], [1, 300]]
    # a qvalue threshold keeps scores <= t instead
    strict = GraphRegInputs()(_context(score_kind="qvalue", threshold=1.0), np.arange(5))
    # only row b (node 2 <-> 900) passes; it fits in window 1 (nodes 0..1200) alone
    assert _edge_set(strict.__getitems__([0, 1, 2])["x"]["edge_index"]) == {(1200 + 2, 1200 + 900), (1200 + 900, 1200 + 2)}


def test_each_gene_lies_in_exactly_one_window_across_splits():
    genes = _genes()
    builder = GraphRegInputs()
    seen = []
    for rows in (np.array([0, 1, 2, 3]), np.array([4])):  # chromosome-held-out splits
        ds = builder(_context(genes=genes), rows)
        seen.extend(ds.__getitems__(list(range(len(ds))))["gene"].tolist())
    assert sorted(seen) == list(range(5))


def test_bin_targets_use_only_the_splits_genes():
    ds = GraphRegInputs()(_context(), np.array([0, 2, 3]))  # g1 (RPKM 5, same bin as g0) held out
    assert ds.__getitems__([0])["y"][0, 2] == 3


def test_empty_interactions_file_gives_no_edges_and_the_net_still_runs(tmp_path):
    path = tmp_path / "E003.bedpe"
    path.write_text("")
    ds = GraphRegInputs()(_context(interactions=read_interactions(path)), np.arange(5))
    batch = ds.__getitems__([0, 1])
    assert batch["x"]["edge_index"].shape == (2, 0) and not batch["has_contact"].any()
    net = EpiGraphReg(n_marks=2, d=8, heads=1, gat_dim=4).eval()
    with torch.no_grad():
        out = net(**batch["x"])
    assert out.shape == (2, N) and bool((out >= 0).all())


def test_cage_bigwig_replaces_rpkm_as_the_bin_target(tmp_path):
    cage = tmp_path / "cage" / "E003.bigwig"
    values = np.zeros(SIZES["chr1"])
    values[12_000:12_010] = 2.0  # node 2: 20
    values[2_500_000:2_500_005] = 1.0  # node 500: 5
    write_bigwig(cage, SIZES, {"chr1": values})
    ctx = _context()
    ctx.cage = cage  # the dataset found cage/{cell}.bigwig (dataset.files.cage)
    ds = GraphRegInputs()(ctx, np.arange(5))
    y = ds.__getitems__([0, 1, 3])["y"].numpy()
    assert y[0, 2] == pytest.approx(20.0) and y[1, 100] == pytest.approx(5.0)
    assert y.sum() == pytest.approx(25.0)  # chr2 has no CAGE signal
    # the gene-level target stays log2(RPKM + 1)
    np.testing.assert_allclose(ds.__getitems__([0])["gene_target"].numpy(), np.log2([4.0, 6.0]))


def test_unknown_score_kind_is_one_clear_error():
    with pytest.raises(ValueError, match="score_kind 'pvalue'.*frequency"):
        ContactFilter(score_kind="pvalue")


def test_dataloader_passes_the_batch_through():
    from torch.utils.data import DataLoader

    ds = GraphRegInputs()(_context(), np.arange(5))
    batch = next(iter(DataLoader(ds, batch_size=4, collate_fn=ds.collate_fn)))
    assert batch["x"]["x"].shape == (4, 2, 60_000) and batch["y"].shape == (4, S)


# ----------------------------------------------------------------------------- objective


def _objective_batch():
    out = torch.ones(2, N)
    out[0, 402] = 7.0
    out[1, 599] = 3.0
    y = torch.zeros(2, S)
    y[0, 2], y[1, 199], y[1, 10] = 8.0, 10.0, 0.0
    has_tss = torch.zeros(2, S, dtype=torch.bool)
    has_tss[0, 2] = has_tss[1, 199] = has_tss[1, 10] = True
    has_contact = torch.zeros(2, S, dtype=torch.bool)
    has_contact[0, 2] = True
    batch = {
        "y": y, "has_tss": has_tss, "has_contact": has_contact,
        "gene": torch.tensor([0, 1, 3]), "gene_pos": torch.tensor([402, 402, 1200 + 599]),
        "gene_target": torch.log2(torch.tensor([4.0, 6.0, 11.0])),
    }
    return out, batch


def test_poisson_loss_matches_a_hand_computation_on_the_middle_bins():
    out, batch = _objective_batch()
    out[:, :400] = 100.0  # flanks must not count
    middle = out[:, 400:800]
    hand = (middle - batch["y"] * torch.log(middle + 1e-8)).mean()
    assert PoissonCounts().loss(out, batch).item() == pytest.approx(hand.item(), rel=1e-6)
    assert hand.item() == pytest.approx((798 + 7 + 3 - 8 * math.log(7) - 10 * math.log(3)) / 800, rel=1e-6)


def test_gene_outputs_read_each_genes_tss_bin():
    out, batch = _objective_batch()
    pred, target, gene = PoissonCounts().gene_outputs(out, batch)
    np.testing.assert_allclose(pred.numpy(), np.log2([8.0, 8.0, 4.0]))
    assert gene.tolist() == [0, 1, 3] and torch.equal(target, batch["gene_target"])


def test_bin_metrics_over_tss_expressed_and_contact_bins():
    out, batch = _objective_batch()
    objective = PoissonCounts()
    metrics = objective.metrics().clone(prefix="test/")
    objective.update_metrics(metrics, out, batch)
    values = {k: float(v) for k, v in metrics.compute().items()}
    assert set(values) == {f"test/{k}" for k in ("pearson", "spearman", "mse")} | {
        f"test/bin_{s}_{b}" for s in ("nll", "pearson") for b in ("tss", "expressed", "expressed_contact")
    }
    nll = {(0, 2): 7 - 8 * math.log(7), (1, 199): 3 - 10 * math.log(3), (1, 10): 1.0}
    assert values["test/bin_nll_tss"] == pytest.approx(sum(nll.values()) / 3, rel=1e-5)
    assert values["test/bin_nll_expressed"] == pytest.approx((nll[0, 2] + nll[1, 199]) / 2, rel=1e-5)
    assert values["test/bin_nll_expressed_contact"] == pytest.approx(nll[0, 2], rel=1e-5)
    tss_pred, tss_true = np.log2([8.0, 4.0, 2.0]), np.log2([9.0, 11.0, 1.0])
    assert values["test/bin_pearson_tss"] == pytest.approx(np.corrcoef(tss_pred, tss_true)[0, 1], rel=1e-4)
    assert values["test/bin_pearson_expressed"] == pytest.approx(-1.0, abs=1e-5)  # 2 bins, opposite order
    assert math.isnan(values["test/bin_pearson_expressed_contact"])  # 1 bin: no correlation
    gene_pred, gene_true = np.log2([8.0, 8.0, 4.0]), np.log2([4.0, 6.0, 11.0])
    assert values["test/mse"] == pytest.approx(np.mean((gene_pred - gene_true) ** 2), rel=1e-5)
    assert values["test/pearson"] == pytest.approx(np.corrcoef(gene_pred, gene_true)[0, 1], rel=1e-4)
