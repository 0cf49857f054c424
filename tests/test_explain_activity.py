"""Mark activity around the TSS (issue 13, part 1): exact values, orientation, correlations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyBigWig
import pytest

from epx.constants import CELLS, ROADMAP_CELLS
from epx.data.tracks import SignalTracks
from epx.errors import InputError
from epx.explain.activity import (
    activity_for_folder,
    cell_group,
    correlations,
    group_correlations,
    mark_activity,
    region_means,
    tss_region,
)


def binned(per_bp: np.ndarray, bin_bp: int = 100) -> np.ndarray:
    """Per-bp signal → the cache's bin means (the last bin padded with zeros)."""
    n = -(-len(per_bp) // bin_bp) * bin_bp
    return np.r_[per_bp, np.zeros(n - len(per_bp))].reshape(-1, bin_bp).mean(axis=1)


@pytest.fixture
def hand_made():
    """chr1, 20 kb: H3K4me3 10.0 over 4,900-5,100; H3K27ac 0 to 5 kb then 2.0 (tiny_folder's)."""
    k4 = np.zeros(20_000)
    k4[4_900:5_100] = 10.0
    ac = np.r_[np.zeros(5_000), np.full(15_000, 2.0)]
    tracks = SignalTracks({"chr1": np.stack([binned(k4), binned(ac)], axis=1)}, ["H3K4me3", "H3K27ac"])
    genes = pd.DataFrame(
        {
            "gene_id": ["plus", "minus", "edge", "elsewhere"],
            "chrom": ["chr1", "chr1", "chr1", "chr2"],
            "tss": [5_000, 12_345, 19_900, 1_000],
            "strand": ["+", "-", "+", "+"],
            "rpkm": [10.0, 3.0, 0.0, 1.0],
        }
    )
    return tracks, genes, {"H3K4me3": k4, "H3K27ac": ac}


def test_tss_means_are_exact_on_hand_made_tracks(hand_made):
    tracks, genes, per_bp = hand_made
    act = mark_activity(tracks, genes, cell="E003")
    assert act.flanks_bp == (750, 1500, 3000) and act.marks == ("H3K4me3", "H3K27ac")
    k4, ac = 0, 1
    # "plus": TSS ± f is [5000 - f, 5000 + f): the 200 bp H3K4me3 peak, the H3K27ac step at the TSS
    np.testing.assert_allclose(act.tss_means[0, k4], [2_000 / 1_500, 2_000 / 3_000, 2_000 / 6_000])
    np.testing.assert_allclose(act.tss_means[0, ac], [1.0, 1.0, 1.0])
    # "minus": mirrored, [12345 - f + 1, 12345 + f + 1): all H3K27ac 2.0, no H3K4me3
    np.testing.assert_allclose(act.tss_means[1, :, 0], [0.0, 2.0])
    # "edge": [16900, 22900) runs 2.9 kb past the 20 kb chromosome end: those bases count as 0
    np.testing.assert_allclose(act.tss_means[2, ac, 2], 2.0 * 3_100 / 6_000)
    assert (act.tss_means[3] == 0).all()  # a chromosome the tracks lack
    # bin-unaligned windows are exact where the signal is constant within each partly covered bin
    lo, hi = tss_region(genes.iloc[[1]], 750, 750)
    assert (lo[0], hi[0]) == (11_596, 13_096)
    np.testing.assert_allclose(region_means(tracks, ["chr1"], [4_950], [5_250])[0], [per_bp["H3K4me3"][4_950:5_250].mean(), per_bp["H3K27ac"][4_950:5_250].mean()])
    # the table: one row per gene x mark; expressed = RPKM >= the median of these genes (2.0)
    means = act.means
    assert list(means.columns[:6]) == ["gene_id", "chrom", "tss", "strand", "cell", "mark"]
    assert len(means) == 8 and means.loc[1, "mean_1500"] == pytest.approx(1.0)
    assert list(act.genes["expressed"]) == [True, True, False, False]


def test_profiles_are_5_to_3_prime_on_both_strands(hand_made):
    tracks, _, _ = hand_made
    # a − strand TSS at 5,099 sees the same peak and step as a + strand TSS at 5,000, mirrored
    genes = pd.DataFrame({"gene_id": ["p", "m"], "chrom": ["chr1", "chr1"], "tss": [5_000, 4_999], "strand": ["+", "-"]})
    act = mark_activity(tracks, genes.assign(rpkm=[1.0, 1.0]), cell="E003", profile_bp=6_000, profile_bin_bp=100)
    assert act.profiles.shape == (2, 2, 60) and act.offsets[0] == -3_000 and act.offsets[30] == 0
    plus, minus = act.profiles
    np.testing.assert_allclose(plus[0, 29:31], [10.0, 10.0])  # H3K4me3: 4,900-5,100
    np.testing.assert_allclose(plus[1, :30], 0.0)  # H3K27ac starts at the TSS, downstream
    np.testing.assert_allclose(plus[1, 30:], 2.0)
    np.testing.assert_allclose(minus[1, :30], 2.0)  # − strand: upstream (5') is the higher coordinates
    np.testing.assert_allclose(minus[1, 30:], 0.0)
    np.testing.assert_allclose(minus[0, 29:31], [10.0, 10.0])


def test_activity_from_a_folder_reads_the_cache_exactly(tiny_folder, tmp_path):
    (act,) = activity_for_folder(tiny_folder, "E003", "H3K4me3+H3K27ac", cache_dir=tmp_path / "cache", flanks_bp=(1_000,), profile_bp=2_000)
    genes = act.genes.set_index("gene_id")
    assert list(genes.index) == ["g1", "g2", "g3", "g4"] and act.marks == ("H3K4me3", "H3K27ac")
    bw = pyBigWig.open(str(tiny_folder / "signals" / "E003-H3K4me3.bigwig"))
    try:
        per_bp = np.nan_to_num(bw.values("chr1", 4_000, 6_000, numpy=True))
    finally:
        bw.close()
    # g1 (+, 5,000): [4,000, 6,000) is bin-aligned, so the mean of the bin means is the per-bp mean
    assert act.tss_means[0, 0, 0] == pytest.approx(per_bp.mean(), rel=1e-5)
    assert act.tss_means[0, 1, 0] == pytest.approx(1.0) and act.tss_means[1, 1, 0] == pytest.approx(2.0)
    assert act.tss_means[2, 1, 0] == 0.0  # no H3K27ac on chr2
    assert list(genes["rpkm"]) == [0.0, 10.0, 3.0, 100.0] and list(genes["expressed"]) == [False, True, True, True]


def test_correlation_signs_on_synthetic_data(small_synthetic, tmp_path):
    acts = activity_for_folder(small_synthetic, "E003", "all", cache_dir=tmp_path / "cache", out_dir=tmp_path / "out")
    corr = correlations(acts).set_index(["mark", "flank_bp"])
    for flank in (750, 1500, 3000):
        assert corr.loc[("H3K4me3", flank), "spearman"] > 0.5 and corr.loc[("H3K4me3", flank), "pearson"] > 0.5
        assert corr.loc[("H3K27me3", flank), "spearman"] < 0.05
    assert corr.loc[("H3K4me1", 3000), "spearman"] > corr.loc[("H3K4me1", 750), "spearman"]  # shoulders, not the TSS
    assert (corr["group"] == "ESC").all() and (corr["cell"] == "E003").all()
    for name in (
        "activity.tsv",
        "activity_correlation.tsv",
        "activity_correlation_groups.tsv",
        "activity_profile_summary.tsv",
        "activity_profiles.npz",
        "activity_profiles_E003.png",
    ):
        assert (tmp_path / "out" / name).stat().st_size > 0, name
    table = pd.read_csv(tmp_path / "out" / "activity.tsv", sep="\t")
    assert len(table) == len(acts[0].genes) * 7 and {"mean_750", "mean_1500", "mean_3000"} <= set(table.columns)
    summary = pd.read_csv(tmp_path / "out" / "activity_profile_summary.tsv", sep="\t")
    k36 = summary[(summary["mark"] == "H3K36me3") & summary["expressed"]]
    assert k36.loc[k36["offset_bp"] > 1_000, "mean"].mean() > 2 * k36.loc[k36["offset_bp"] < -1_000, "mean"].mean()  # downstream
    with np.load(tmp_path / "out" / "activity_profiles.npz") as npz:
        assert npz["E003/values"].shape == (len(acts[0].genes), 7, 60)


def test_group_correlations_average_the_cells_of_a_group():
    corr = pd.DataFrame(
        {
            "cell": ["E003", "E016", "E114", "E999"],
            "mark": "H3K4me3",
            "flank_bp": 1500,
            "n": 10,
            "spearman": [0.6, 0.8, 0.5, 0.1],
            "pearson": [0.5, 0.7, 0.4, 0.2],
        }
    )
    corr.insert(1, "group", [cell_group(c) for c in corr["cell"]])
    groups = group_correlations(corr).set_index("group")
    assert groups.loc["ESC", "spearman"] == pytest.approx(0.7) and groups.loc["ESC", "cells"] == "E003,E016"
    assert groups.loc["ESC", "n_cells"] == 2 and groups.loc["cancer line", "spearman"] == 0.5
    assert groups.loc["E999", "n_cells"] == 1  # a cell outside cells.tsv is its own group


def test_cells_table_groups_every_roadmap_cell():
    assert ROADMAP_CELLS == ("E003", "E004", "E005", "E006", "E007", "E016", "E066", "E087", "E114", "E116", "E118")
    groups = {c: CELLS[c]["group"] for c in ROADMAP_CELLS}
    assert groups == {
        "E003": "ESC", "E016": "ESC",
        "E004": "ESC-derived", "E005": "ESC-derived", "E006": "ESC-derived", "E007": "ESC-derived",
        "E066": "primary tissue", "E087": "primary tissue",
        "E114": "cancer line", "E118": "cancer line",
        "E116": "cell line",  # GM12878: EBV-immortalised, not a tumour line
    }  # fmt: skip
    assert {CELLS[c]["roadmap_type"] for c in ("E114", "E118")} == {"CellLine"} and CELLS["E116"]["roadmap_group"] == "ENCODE2012"


def test_an_empty_gene_table_is_one_error(hand_made):
    tracks, genes, _ = hand_made
    with pytest.raises(InputError, match="no genes"):
        mark_activity(tracks, genes.iloc[:0], cell="E003")
