"""Enhancer–gene validation (issue 13, part 5): the element table, the scorers, AUPRC.

The model scorers are fed small fakes of the attribution engineer's shapes (``GeneTrack``,
the pCRE table), so these tests do not train or attribute anything.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from epx.data.tracks import SignalTracks
from epx.errors import InputError
from epx.explain.elements import evaluated, graphreg_window, read_elements
from epx.explain.validation import (
    ABC_GAMMA,
    SCORERS,
    ScoringInputs,
    abc_contact,
    applicable,
    auprc,
    plot_pr,
    score_elements,
    validate,
    validate_job,
    write_validation,
)
from epx.io.chrom_sizes import read_chrom_sizes
from epx.io.tss import read_tss

GENES = pd.DataFrame(
    {
        "gene_id": ["gA", "gB", "gC"],
        "chrom": ["chr1", "chr1", "chr2"],
        "tss": [100_000, 300_000, 50_000],
        "strand": ["+", "-", "+"],
    }
)
SIZES = {"chr1": 1_000_000, "chr2": 500_000}
HEADER = "chrom\tstart\tend\tgene\tsignificant\teffect_size\n"


def write(tmp_path: Path, text: str, name: str = "elements.tsv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@dataclass
class FakeTrack:
    gene_id: str
    chrom: str
    start_bp: int
    bin_bp: int
    values: np.ndarray


# ----------------------------------------------------------------------------- the element table


def test_synthetic_element_table_round_trip(small_synthetic):
    genes = read_tss(small_synthetic / "tss.bed")
    sizes = read_chrom_sizes(small_synthetic / "chrom.sizes")
    raw = pd.read_csv(small_synthetic / "elements.tsv", sep="\t")
    table, report = read_elements(small_synthetic / "elements.tsv", genes, sizes, cell="E003")
    e003 = raw[raw["cell"] == "E003"]
    assert report.n_rows == len(table) == len(e003) and report.n_other_cells == len(raw) - len(e003)
    assert report.counts == {} and report.n_scorable == report.n_evaluated == len(e003)
    np.testing.assert_array_equal(table[["start", "end"]].to_numpy(), e003[["start", "end"]].to_numpy())
    # one driver per listed gene, and it is truth.tsv's enhancer
    assert (table.groupby("gene_id")["significant"].sum() == 1).all()
    truth = pd.read_csv(small_synthetic / "truth.tsv", sep="\t").set_index("gene_id")
    drivers = table[table["significant"]].set_index("gene_id")
    assert (truth.loc[drivers.index, "distal_driven"] == 1).all()
    np.testing.assert_array_equal(drivers["start"], truth.loc[drivers.index, "enhancer_start"].astype(int))
    np.testing.assert_array_equal(drivers["end"], truth.loc[drivers.index, "enhancer_end"].astype(int))
    assert (drivers["effect_size"] == -1.0).all() and (table.loc[~table["significant"], "effect_size"] == 0).all()
    # every listed gene is expressed in E003 (a screen reads out expressed genes only)
    expression = pd.read_csv(small_synthetic / "expression.tsv", sep="\t").set_index("gene_id")
    assert (expression.loc[table["gene_id"].unique(), "E003"] >= 0.5).all()
    # GraphReg's 6 Mb tile sees them all; a 6 kb promoter window none (floored, not an error)
    _, wide = read_elements(small_synthetic / "elements.tsv", genes, sizes, cell="E003", window=graphreg_window())
    _, narrow = read_elements(small_synthetic / "elements.tsv", genes, sizes, cell="E003", window=3_000)
    assert wide.counts == {} and narrow.counts == {"outside_window": len(e003)} and narrow.n_evaluated == len(e003)


def test_several_cells_need_a_cell(small_synthetic):
    genes = read_tss(small_synthetic / "tss.bed")
    sizes = read_chrom_sizes(small_synthetic / "chrom.sizes")
    with pytest.raises(InputError, match="name the cell"):
        read_elements(small_synthetic / "elements.tsv", genes, sizes)
    with pytest.raises(InputError, match="no element of cell E999"):
        read_elements(small_synthetic / "elements.tsv", genes, sizes, cell="E999")


def test_unknown_genes_chromosomes_and_window_are_reported_with_counts(tmp_path):
    text = HEADER + "".join(
        [
            "1\t120000\t121000\tgA\t1\t-0.3\n",  # Ensembl naming, reconciled to chr1
            "chr1\t90000\t91000\tgA\t0\t0\n",
            "chr1\t700000\t701000\tgA\t0\tNA\n",  # 600 kb away: outside a ±500 kb window
            "chr1\t320000\t321000\tgNOPE\t1\t-0.5\n",
            "chr1\t330000\t331000\tgNOPE\t0\t0\n",
            "chr9\t10000\t11000\tgB\t0\t0\n",
            "chr2\t10000\t11000\tgB\t0\t0\n",  # gB's TSS is on chr1
            "2\t499000\t501000\tgC\t1\t-0.2\n",  # ends past chr2's end
            "chr1\t310000\t311000\tgB.4\ttrue\t-0.1\n",  # Ensembl-style version stripped
        ]
    )
    table, report = read_elements(write(tmp_path, text), GENES, SIZES, window=500_000)
    assert report.counts == {"unknown_gene": 2, "unknown_chrom": 1, "other_chrom": 1, "beyond_chrom_end": 1, "outside_window": 1}
    assert report.renaming.renamed == {"1": "chr1", "2": "chr2"} and report.renaming.n_renamed == 2
    assert list(table["unscorable"]) == ["", "", "outside_window", "unknown_gene", "unknown_gene", "unknown_chrom", "other_chrom", "beyond_chrom_end", ""]
    assert table.loc[0, "chrom"] == "chr1" and table.loc[8, "gene_id"] == "gB"
    assert report.n_scorable == 3 and report.n_evaluated == 4 and report.n_positive == 2
    assert list(evaluated(table)) == [True, True, True, False, False, False, False, False, True]
    assert "line 5: chr1:320000-321000 gNOPE" in report.examples["unknown_gene"][0]
    assert np.isnan(table.loc[2, "effect_size"]) and table.loc[0, "distance_bp"] == 20_500
    assert all(reason in " ".join(report.lines()) for reason in ("not in the dataset's gene table", "another chromosome"))


def test_genes_outside_the_analysed_split_are_counted(tmp_path):
    text = HEADER + "chr1\t120000\t121000\tgA\t1\t-0.3\nchr1\t320000\t321000\tgB\t1\t-0.3\n"
    table, report = read_elements(write(tmp_path, text), GENES, SIZES, scope=["gA"])
    assert report.counts == {"not_analysed": 1} and list(table["unscorable"]) == ["", "not_analysed"]


def test_an_element_table_with_nothing_scorable_is_one_error(tmp_path):
    path = write(tmp_path, HEADER + "chr1\t120000\t121000\tNOT_A_GENE\t1\t-0.3\n1\t5\t6\tMISSING\t0\t0\n")
    with pytest.raises(InputError) as err:
        read_elements(path, GENES, SIZES)
    message = str(err.value)
    assert str(path) in message and "none of its 2 element(s) can be scored" in message
    assert "2 element(s) name a gene that is not in the dataset's gene table" in message and "fix: use the dataset's gene ids" in message


@pytest.mark.parametrize(
    "text, match",
    [
        ("chrom\tstart\tend\tgene\n" + "chr1\t1\t2\tgA\n", "no significant column"),
        (HEADER + "chr1\tten\t2\tgA\t1\t0\n", "line 2: non-numeric start 'ten'"),
        (HEADER + "chr1\t1\t2\tgA\tmaybe\t0\n", r"line 2: significant 'maybe' \(must be 1/0"),
        (HEADER + "chr1\t5\t2\tgA\t1\t0\n", "end 2 before start 5"),
        (HEADER, "only a header line"),
    ],
)
def test_a_broken_element_table_names_the_line_and_fix(tmp_path, text, match):
    with pytest.raises(InputError, match=match):
        read_elements(write(tmp_path, text), GENES, SIZES)


def test_fulco_and_benchmark_header_spellings(tmp_path):
    text = "chr\tchromStart\tchromEnd\tmeasuredEnsemblID\tSignificant\tEffectSize\tclass\n" "chr1\t120000\t121000\tgA\tTRUE\t-0.25\tdistal\n"
    table, report = read_elements(write(tmp_path, text), GENES, SIZES)
    assert bool(table.loc[0, "significant"]) and table.loc[0, "effect_size"] == -0.25 and table.loc[0, "class"] == "distal"


# ----------------------------------------------------------------------------- AUPRC


def scores_frame(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["scorer", "gene_id", "score", "significant"])
    frame["seen"] = True
    return frame


def test_auprc_exact_on_a_hand_made_table():
    # scorer s: ranking (desc) g1:+ , g2:- , g1:- , g2:+ , g2:-   (2 positives of 5)
    rows = [
        ("s", "g1", 0.9, True),
        ("s", "g1", 0.5, False),
        ("s", "g2", 0.7, False),
        ("s", "g2", 0.4, True),
        ("s", "g2", 0.1, False),
        ("t", "g1", 0.2, True),  # t ties a positive with a negative at the top
        ("t", "g1", 0.2, False),
        ("t", "g2", 0.0, False),
        ("t", "g2", 0.0, True),
        ("t", "g2", 0.0, False),
    ]
    per_gene, pooled, curves = validate(scores_frame(rows))
    # s pooled: P@1 = 1 (R 1/2), then the second positive at rank 4: P = 2/4 -> AP = 1/2 * 1 + 1/2 * 1/2
    assert pooled["s"] == pytest.approx(0.75)
    # t pooled: threshold 0.2 -> P 1/2, R 1/2; threshold 0 -> P 2/5, R 1 -> AP = 1/2 * 1/2 + 1/2 * 2/5
    assert pooled["t"] == pytest.approx(0.45)
    g = per_gene.set_index(["scorer", "gene_id"])
    assert g.loc[("s", "g1"), "auprc"] == pytest.approx(1.0)
    assert g.loc[("s", "g2"), "auprc"] == pytest.approx(0.5)  # its positive is 2nd of 3
    assert g.loc[("t", "g2"), "auprc"] == pytest.approx(1 / 3)  # all tied: the positive rate
    assert list(g.loc[("s", "g2"), ["n_elements", "n_positive"]]) == [3, 1]
    assert curves["s"].positive_rate == pytest.approx(0.4) and curves["s"].n == 5
    assert auprc([1.0, 2.0], [False, False]) != auprc([1.0, 2.0], [False, False])  # NaN without a positive


def test_large_score_ranges_are_not_squashed_into_ties():
    # distances of 10^5 bp: torchmetrics would sigmoid raw scores to exactly 0/1
    score = -np.array([25_000.0, 60_000.0, 120_000.0, 180_000.0])
    assert auprc(score, [False, True, False, False]) == pytest.approx(0.5)


def test_plot_pr_writes_a_png(tmp_path):
    _, _, curves = validate(scores_frame([("s", "g", 0.9, True), ("s", "g", 0.1, False), ("s", "h", 0.5, False)]))
    path = plot_pr(curves, tmp_path / "pr.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- scorers


def element_table(tmp_path, lines: str, genes=GENES, sizes=SIZES, **kw):
    return read_elements(write(tmp_path, HEADER + lines), genes, sizes, **kw)[0]


def test_distance_ranks_a_closer_element_higher(tmp_path):
    table = element_table(tmp_path, "chr1\t130000\t131000\tgA\t1\t-0.3\nchr1\t40000\t41000\tgA\t0\t0\nchr1\t101000\t102000\tgA\t0\t0\n")
    scores = score_elements(table, ScoringInputs(GENES), ["distance"]).set_index("element")["score"]
    assert scores[2] > scores[0] > scores[1]  # 1.5 kb > 30.5 kb > 59.5 kb


def abc_inputs(contacts=None) -> ScoringInputs:
    # H3K27ac 4.0 over chr1:120-121 kb and 1.0 over chr1:150-151 kb; H3K4me1 1.0 over both
    ac = np.zeros(10_000, np.float32)
    me1 = np.zeros(10_000, np.float32)
    ac[1200:1210], ac[1500:1510] = 4.0, 1.0
    me1[1200:1210], me1[1500:1510] = 1.0, 1.0
    tracks = SignalTracks({"chr1": np.stack([me1, ac], axis=1)}, ["H3K4me1", "H3K27ac"])
    return ScoringInputs(GENES, tracks=tracks, contacts=contacts)


def bedpe(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["chrom1", "start1", "end1", "chrom2", "start2", "end2", "name", "score"])
    return frame.assign(strength=frame["score"].astype(float))


def test_abc_uses_the_contact_strength_when_a_contact_exists(tmp_path):
    table = element_table(tmp_path, "chr1\t120000\t121000\tgA\t0\t0\nchr1\t150000\t151000\tgA\t1\t-0.4\n")
    rows = table[evaluated(table)].assign(tss=lambda t: t["tss"].astype(int), mid=lambda t: t["mid"].astype(int))
    # promoter anchor in the second BEDPE column this time: either orientation counts
    contacts = bedpe([("chr1", 149_500, 152_000, "chr1", 99_000, 99_500, "x", 8.0), ("chr1", 150_200, 150_300, "chr1", 99_800, 100_001, "y", 6.0)])
    contact, from_hic = abc_contact(rows, contacts, tolerance_bp=1000)
    assert list(from_hic) == [False, True]
    assert contact[1] == 8.0  # the strongest linking contact
    assert contact[0] == pytest.approx((20_500 / 5_000) ** -ABC_GAMMA)  # the power law, no contact
    scores = score_elements(table, abc_inputs(contacts), ["abc"]).set_index("element")["score"]
    # activity: sqrt(4 * 1) = 2 and sqrt(1 * 1) = 1; the contact lifts the weaker element above
    a0, a1 = 2.0 * contact[0], 1.0 * 8.0
    assert scores[0] == pytest.approx(a0 / (a0 + a1)) and scores[1] == pytest.approx(a1 / (a0 + a1))
    no_contact = score_elements(table, abc_inputs(None), ["abc"]).set_index("element")["score"]
    assert no_contact[0] > no_contact[1]


def test_graphreg_rule_and_its_floor(tmp_path):
    lines = "chr1\t120000\t121000\tgA\t1\t-0.3\nchr1\t90000\t90200\tgA\t0\t0\nchr1\t900000\t901000\tgA\t0\t0\n"
    table = element_table(tmp_path, lines)
    values = np.zeros(2_000)  # 100 bp bins over chr1:0-200 kb, genomic orientation
    values[1000] = -10.0  # the TSS bin: the window's max |attribution|
    values[1205] = 5.0  # within ±4 kb of the first element's midpoint (120.5 kb)
    values[860] = 3.0  # chr1:86.0-86.1 kb, just beyond 4 kb of the second element's midpoint (90.1 kb): not counted
    values[861] = 2.0  # chr1:86.1-86.2 kb, within: counted
    track = FakeTrack("gA", "chr1", 0, 100, values)
    scores = score_elements(table, ScoringInputs(GENES, gene_tracks={"gA": track}), ["graphreg_rule"]).set_index("element")
    assert scores.loc[0, "score"] == pytest.approx(0.5) and scores.loc[1, "score"] == pytest.approx(0.2)
    assert not scores.loc[2, "seen"] and scores.loc[2, "score"] == pytest.approx(0.2 - 1.0)  # floor: below every seen score


def test_pcre_scores_read_the_overlapping_slot(tmp_path):
    table = element_table(tmp_path, "chr1\t120000\t121000\tgA\t1\t-0.3\nchr1\t150000\t151000\tgA\t0\t0\nchr1\t310000\t311000\tgB\t1\t0\n")
    pcres = pd.DataFrame(
        {
            "gene": [0, 0, 1],
            "gene_id": ["gA", "gA", "gB"],
            "slot": [0, 1, 0],
            "chrom": ["chr1", "chr1", "chr1"],
            "start": [119_000, 170_000, 400_000],
            "end": [120_500, 172_000, 402_000],
            "attribution": [-0.8, 0.3, 0.9],
            "attention_mean": [0.6, 0.4, 1.0],
        }
    )
    inputs = ScoringInputs(GENES, pcres=pcres)
    scores = score_elements(table, inputs, ["pcre_attribution", "pcre_attention"])
    got = scores.pivot(index="element", columns="scorer", values="score")
    assert list(got["pcre_attribution"]) == [0.8, 0.0, 0.0] and list(got["pcre_attention"]) == [0.6, 0.0, 0.0]


def test_a_scorer_that_does_not_apply_is_refused_before_work():
    with pytest.raises(InputError, match=r"pcre_attention do not apply to model promoter_cnn: pcre_attention needs pCREs"):
        applicable(["distance", "pcre_attention"], ScoringInputs(GENES, source="promoter_cnn"))
    with pytest.raises(InputError, match="unknown validation scorer"):
        applicable(["nearest"], ScoringInputs(GENES))
    assert set(SCORERS) == {"graphreg_rule", "pcre_attribution", "pcre_attention", "distance", "abc"}


# ----------------------------------------------------------------------------- one job, faked


@pytest.fixture(scope="module")
def synthetic_dm(small_synthetic, tmp_path_factory):
    from epx.data.datamodule import EpxDataModule
    from epx.data.inputs.promoter import PromoterInputs
    from epx.data.prepare.contract import DatasetSpec

    dm = EpxDataModule(
        spec=DatasetSpec(small_synthetic),
        cell="E003",
        marks="all",
        fold=0,
        inputs=PromoterInputs(),
        target_column="target",
        cache_dir=tmp_path_factory.mktemp("cache"),
    )
    dm.prepare_data()
    dm.setup()
    return dm


class FakeJob:
    """The ExplainJob attributes validation reads: record, dm, marks, rows(split)."""

    def __init__(self, dm):
        self.dm, self.marks = dm, dm.marks
        self.record = types.SimpleNamespace(model="promoter_cnn")

    def rows(self, split):
        return np.flatnonzero((self.dm.split == split).to_numpy())


def test_validate_job_end_to_end_with_a_faked_attribution(synthetic_dm, small_synthetic, tmp_path, monkeypatch):
    job = FakeJob(synthetic_dm)
    seen_rows = []

    def gene_tracks(job_, rows, attribution):
        seen_rows.append(np.asarray(rows))
        genes = job_.dm.genes.iloc[rows]
        # a promoter model: 6 kb around the TSS, attribution peaked at the TSS
        return [FakeTrack(g, c, t - 3000, 100, np.r_[np.zeros(30), 1.0, np.zeros(29)]) for g, c, t in zip(genes["gene_id"], genes["chrom"], genes["tss"])]

    fake = types.SimpleNamespace(attribute=lambda job_, rows, method, n_steps: "A", gene_tracks=gene_tracks)
    monkeypatch.setitem(sys.modules, "epx.explain.attribution", fake)
    monkeypatch.setitem(sys.modules, "epx.explain.attention", types.SimpleNamespace())  # no pcre_table needed
    result = validate_job(job, small_synthetic / "elements.tsv", split="test", out_dir=tmp_path / "explain")
    assert set(result.pooled) == {"graphreg_rule", "distance", "abc"}  # no pCREs for a promoter model
    test_genes = set(synthetic_dm.genes["gene_id"][synthetic_dm.split == "test"])
    assert set(result.scores["gene_id"]) <= test_genes and result.report.counts["outside_window"] == result.report.n_evaluated
    assert set(synthetic_dm.genes["gene_id"].to_numpy()[seen_rows[0]]) == set(result.scores["gene_id"])  # attribution only where elements are
    rule = result.scores[result.scores["scorer"] == "graphreg_rule"]
    assert not rule["seen"].any()  # the 6 kb window sees no distal element: the floor
    assert result.pooled["graphreg_rule"] == pytest.approx(rule["significant"].mean())
    assert result.report.counts.get("not_analysed", 0) > 0  # train/val genes' elements are counted, not scored
    for name in ("validation_scores.tsv", "validation_per_gene.tsv", "validation_pooled.tsv", "validation_pr.png", "validation_elements.json"):
        assert (tmp_path / "explain" / name).exists(), name
    pooled = pd.read_csv(tmp_path / "explain" / "validation_pooled.tsv", sep="\t").set_index("scorer")
    assert pooled.loc["graphreg_rule", "n_unseen"] == len(rule)
    with pytest.raises(InputError, match="pcre_attribution do not apply to model promoter_cnn"):
        validate_job(job, small_synthetic / "elements.tsv", scorers=["pcre_attribution"])


def test_write_validation_round_trip(tmp_path):
    scores = scores_frame([("s", "g", 0.9, True), ("s", "g", 0.1, False)])
    per_gene, pooled, curves = validate(scores)
    paths = write_validation(scores, per_gene, curves, tmp_path)
    back = pd.read_csv(paths["per_gene"], sep="\t")
    assert list(back.columns) == ["scorer", "gene_id", "n_elements", "n_positive", "auprc"] and back["auprc"].iloc[0] == 1.0
