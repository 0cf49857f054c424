"""GraphReg graph construction from interactions, its window restriction, and window tiling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from epx.data.inputs.graphreg.graph import INTERACTION_COLUMNS, interaction_edges, window_edges
from epx.data.prepare.interactions import significant
from epx.data.inputs.graphreg.tiling import middle_slice, tile_windows, tss_bin_index, window_of

# node = anchor midpoint // 5000; the comment gives (node1, node2) of each row.
BEDPE_ROWS = [
    ("chr1", 10_000, 10_010, "chr1", 50_000, 50_010, "a", 3.0),  # (2, 10)
    ("chr1", 50_000, 50_010, "chr1", 10_000, 10_010, "b", 5.0),  # (10, 2): same pair reversed
    ("chr1", 12_000, 13_000, "chr1", 200_000, 201_000, "c", 1.0),  # (2, 40)
    ("chr1", 7_000, 8_000, "chr1", 9_000, 9_999, "d", 9.0),  # (1, 1): self-loop
    ("chr2", 10_000, 10_010, "chr2", 50_000, 50_010, "e", 9.0),  # other chromosome
    ("chr1", 10_000, 10_010, "chr2", 50_000, 50_010, "f", 9.0),  # inter-chromosomal
    ("chr1", 4_999, 5_001, "chr1", 30_000, 30_002, "g", 2.0),  # (1, 6)
]


@pytest.fixture
def bedpe() -> pd.DataFrame:
    return pd.DataFrame(BEDPE_ROWS, columns=list(INTERACTION_COLUMNS))


@pytest.mark.parametrize(
    ("score_kind", "threshold", "expected"),
    [
        ("frequency", 2.0, [[1, 2, 6, 10], [6, 10, 1, 2]]),  # >= 2 keeps a, b, g (d is a loop)
        ("frequency", 4.0, [[2, 10], [10, 2]]),  # only b (and the loop d)
        ("frequency", 10.0, np.empty((2, 0))),
        ("qvalue", 2.0, [[1, 2, 6, 40], [6, 40, 1, 2]]),  # <= 2 keeps c, g
        ("qvalue", 1.0, [[2, 40], [40, 2]]),
    ],
)
def test_interaction_edges_exact(bedpe, score_kind, threshold, expected):
    edges = interaction_edges(significant(bedpe, score_kind=score_kind, threshold=threshold), "chr1")
    assert edges.dtype == np.int64
    np.testing.assert_array_equal(edges, np.asarray(expected, dtype=np.int64).reshape(2, -1))


def test_interaction_edges_symmetric_unique_loop_free(bedpe):
    edges = interaction_edges(significant(bedpe, score_kind="frequency", threshold=0.0), "chr1")
    pairs = set(zip(edges[0].tolist(), edges[1].tolist()))
    assert len(pairs) == edges.shape[1]  # no duplicates
    assert all((b, a) in pairs for a, b in pairs)
    assert all(a != b for a, b in pairs)
    assert pairs == {(2, 10), (10, 2), (2, 40), (40, 2), (1, 6), (6, 1)}


def test_interaction_edges_other_chromosome_only_sees_its_rows(bedpe):
    np.testing.assert_array_equal(interaction_edges(significant(bedpe, score_kind="frequency", threshold=0.0), "chr2"), [[2, 10], [10, 2]])
    assert interaction_edges(significant(bedpe, score_kind="frequency", threshold=0.0), "chrX").shape == (2, 0)


def test_interaction_edges_bad_input(bedpe):
    with pytest.raises(ValueError, match="score_kind"):
        significant(bedpe, score_kind="pvalue", threshold=0.1)
    with pytest.raises(ValueError, match="score"):
        interaction_edges(bedpe.drop(columns="score"), "chr1")


@pytest.mark.parametrize(
    ("node_start", "n_nodes", "expected"),
    [
        (0, 10, [[1, 6], [6, 1]]),  # node 10 and 40 fall outside [0, 10)
        (2, 9, [[0, 8], [8, 0]]),  # [2, 11): only the 2 <-> 10 pair
        (-5, 12, [[6, 11], [11, 6]]),  # padded window [-5, 7)
        (0, 41, [[1, 2, 2, 6, 10, 40], [6, 10, 40, 1, 2, 2]]),
        (100, 1200, np.empty((2, 0))),
    ],
)
def test_window_edges_exact(bedpe, node_start, n_nodes, expected):
    edges = interaction_edges(significant(bedpe, score_kind="frequency", threshold=0.0), "chr1")
    local = window_edges(edges, node_start, n_nodes)
    assert local.dtype == np.int64
    np.testing.assert_array_equal(local, np.asarray(expected, dtype=np.int64).reshape(2, -1))


def test_window_edges_matches_brute_force_on_random_graph():
    rng = np.random.default_rng(0)
    n = 2000
    df = pd.DataFrame(
        {
            "chrom1": "chr7",
            "start1": rng.integers(0, n * 5000, 3000),
            "chrom2": "chr7",
            "start2": rng.integers(0, n * 5000, 3000),
            "name": ".",
            "score": rng.random(3000),
        }
    )
    df["end1"], df["end2"] = df["start1"] + 1, df["start2"] + 1
    edges = interaction_edges(significant(df, score_kind="frequency", threshold=0.5), "chr7")
    for node_start in (-600, 0, 700, 1500):
        inside = np.all((edges >= node_start) & (edges < node_start + 1200), axis=0)
        np.testing.assert_array_equal(window_edges(edges, node_start, 1200), edges[:, inside] - node_start)


def test_window_edges_rejects_unsorted():
    with pytest.raises(ValueError, match="sorted"):
        window_edges(np.array([[5, 1], [1, 5]]), 0, 10)


# ---- tiling -------------------------------------------------------------------------


def test_tile_windows_exact_starts():
    np.testing.assert_array_equal(tile_windows(5_000_001), [-2_000_000, 0, 2_000_000])
    np.testing.assert_array_equal(tile_windows(4_000_000), [-2_000_000, 0])
    np.testing.assert_array_equal(
        tile_windows(25_000, window_bp=30_000, step_bp=10_000, node_bp=1_000), [-10_000, 0, 10_000]
    )
    assert middle_slice() == slice(400, 800)
    assert middle_slice(window_bp=30_000, step_bp=10_000, node_bp=1_000) == slice(10, 20)


@pytest.mark.parametrize(
    "length", [1, 4_999, 5_000, 1_999_999, 2_000_000, 2_000_001, 5_999_999, 6_000_000, 13_456_789]
)
def test_tiling_middles_cover_each_bin_once(length):
    starts = tile_windows(length)
    mid = middle_slice()
    middle_nodes = np.concatenate([np.arange(s // 5000 + mid.start, s // 5000 + mid.stop) for s in starts])
    n_chrom_nodes = -(-length // 5000)
    # contiguous from node 0 without repeats, reaching the last node, and no window idle
    np.testing.assert_array_equal(middle_nodes, np.arange(middle_nodes.size))
    assert n_chrom_nodes <= middle_nodes.size < n_chrom_nodes + 400
    assert np.all(starts % 5000 == 0)
    # every base (sampled, plus both ends) lies in exactly one window middle
    bases = np.unique(np.r_[0, length - 1, np.random.default_rng(length).integers(0, length, 200)])
    lo = starts[:, None] + 2_000_000
    in_middle = (bases[None, :] >= lo) & (bases[None, :] < lo + 2_000_000)
    assert np.all(in_middle.sum(axis=0) == 1)
    np.testing.assert_array_equal(np.argmax(in_middle, axis=0), window_of(bases))


def test_tiling_rejects_bad_geometry():
    with pytest.raises(ValueError, match="node_bp"):
        tile_windows(10_000_000, window_bp=6_000_000, step_bp=2_000_000, node_bp=7_000)
    with pytest.raises(ValueError, match="chrom_length"):
        tile_windows(0)


def test_tss_bin_index_exact():
    tss = np.array([0, 4_999, 5_000, 12_345, 1_999_999, 2_000_000])
    np.testing.assert_array_equal(tss_bin_index(tss, -2_000_000, 5000), [400, 400, 401, 402, 799, -1])
    np.testing.assert_array_equal(tss_bin_index(tss, 0, 5000), [-1, -1, -1, -1, -1, 400])


def test_every_gene_maps_to_one_middle_bin():
    rng = np.random.default_rng(1)
    length = 9_876_543
    tss = rng.integers(0, length, 500)
    starts = tile_windows(length)
    index = np.stack([tss_bin_index(tss, s, 5000) for s in starts])  # (windows, genes)
    assert np.all((index >= 0).sum(axis=0) == 1)
    owner = window_of(tss)
    own_index = index[owner, np.arange(tss.size)]
    np.testing.assert_array_equal(starts[owner] // 5000 + own_index, tss // 5000)
