"""Motif knockout (epx.explain.knockout) on the small synthetic folder's seq_cnn_base data with
a hand-made net whose output is a known function of one motif (``seq_explain_stub.MotifNet``):
knocking that motif out ranks its planted genes first, a decoy's knockout moves nothing, every
number is the forward pass of the edited sequence, and the analysis writes its tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from seq_explain_stub import MotifNet, stub_job

from epx.errors import InputError
from epx.explain.knockout import knockout, planted_targets, ranked, summary
from epx.explain.motifs import MotifSet
from epx.explain.run import ANALYSES, parse_request, with_defaults

DRIVER = "TF_HOUSEKEEPING"


@pytest.fixture(scope="module")
def job(small_synthetic, tmp_path_factory):
    one = MotifSet.load(small_synthetic / "motifs.meme", [DRIVER])
    return stub_job(small_synthetic, tmp_path_factory.getbasetemp() / "seq_stub_cache", MotifNet(log_odds=one.matrices, thresholds=one.thresholds))


@pytest.fixture(scope="module")
def table(job, small_synthetic):
    return knockout(job, job.rows("all"), MotifSet.load(small_synthetic / "motifs.meme"))


def test_the_driving_motif_ranks_its_planted_genes_first_and_decoys_move_nothing(table, small_synthetic):
    planted = planted_targets(small_synthetic)
    summ = summary(table, 100, planted).set_index("motif")
    assert summ.loc[DRIVER, "n_planted"] >= 10
    assert summ.loc[DRIVER, "precision_at_k"] >= 0.8, summ.loc[DRIVER]
    down = ranked(table, 100, planted)
    assert (down.loc[down["motif"] == DRIVER, "rank"].to_numpy() == np.arange(1, (down["motif"] == DRIVER).sum() + 1)).all()
    for decoy in (m for m in summ.index if m.startswith("DECOY_")):
        assert summ.loc[decoy, "n_down"] <= 0.2 * summ.loc[decoy, "n_genes"], summ.loc[decoy]
    # no hit, no change; the ratio is on the predictions' log2 scale
    assert (table.loc[table["n_hits"] == 0, "delta"] == 0).all()
    np.testing.assert_allclose(table["log2_fold_change"], table["knockout"] - table["prediction"])


def test_each_number_is_the_forward_pass_of_the_knocked_out_sequence(job, table, small_synthetic):
    motifs = MotifSet.load(small_synthetic / "motifs.meme", [DRIVER])
    row = table[(table["motif"] == DRIVER) & (table["n_hits"] > 0)].iloc[0]
    batch = job.adapter.batch([row["gene"]])
    x = batch.inputs["x"].clone()
    hits = motifs.scan_onehot(x)
    for s, w in zip(hits.start, hits.width):
        x[0, :, s : s + w] = 0
    assert int((x.sum(1) == 0).sum() - (batch.inputs["x"].sum(1) == 0).sum()) == row["n_bases"]
    with torch.no_grad():
        expected = float(job.adapter.forward_genes({"x": x}, batch.extra)[0])
    assert row["knockout"] == pytest.approx(expected, abs=1e-6)


def test_regions_limit_the_hits_knocked_out(job, small_synthetic, tmp_path):
    motifs = MotifSet.load(small_synthetic / "motifs.meme", [DRIVER])
    rows = job.rows("test")
    bed = tmp_path / "far.bed"
    bed.write_text("chr9\t0\t1000\n")
    none = knockout(job, rows, motifs, regions=pd.DataFrame({"chrom": ["chr9"], "start": [0], "end": [1000]}))
    assert (none["n_hits"] == 0).all() and (none["delta"] == 0).all()
    genes = job.genes.iloc[rows]
    around = pd.DataFrame({"chrom": genes["chrom"], "start": genes["tss"] - 500, "end": genes["tss"] + 500})
    near = knockout(job, rows, motifs, regions=around)
    every = knockout(job, rows, motifs)
    assert (near["n_hits"] <= every["n_hits"]).all() and (near["n_hits"] < every["n_hits"]).any()
    # the net sees hits within 500 bp of the TSS bin: those alone carry (almost) all of the change
    np.testing.assert_allclose(near["delta"], every["delta"], atol=0.35)


def test_the_analysis_writes_tables_and_refuses_bad_input(job, small_synthetic, tmp_path):
    options = with_defaults({"knockout": {"names": [DRIVER, "DECOY_1"], "max_genes": 6}})["knockout"]
    ANALYSES["knockout"].check(job, options)
    paths = ANALYSES["knockout"].run(job, tmp_path, options)
    assert {p.name for p in paths} == {"knockout.tsv", "knockout_ranked.tsv", "knockout_summary.tsv", "knockout_summary.png"}
    ranked_table = pd.read_csv(tmp_path / "knockout_ranked.tsv", sep="\t")
    assert set(ranked_table["motif"]) <= {DRIVER, "DECOY_1"} and "planted" in ranked_table
    assert parse_request(["knockout", "knockout.names=[TF_ESC]"])["knockout"]["pvalue"] == 1e-4
    with pytest.raises(InputError, match="no motif NOPE"):
        ANALYSES["knockout"].check(job, {**options, "names": ["NOPE"]})
    bad = tmp_path / "bad.meme"
    bad.write_text("not a meme file\n")
    with pytest.raises(InputError, match="bad.meme"):
        ANALYSES["knockout"].check(job, {**options, "motifs": str(bad)})
    with pytest.raises(InputError, match="BED file not found"):
        ANALYSES["knockout"].check(job, {**options, "regions": str(tmp_path / "none.bed")})


def test_a_model_without_dna_is_refused(job):
    from epx.explain.onehot import onehot_name

    class NoDna:
        adapter = type("A", (), {"input_names": ("x",), "sees": "the marks of a 6 kb window"})()
        dm = type("D", (), {"inputs": type("I", (), {"channels": staticmethod(lambda marks: ("H3K4me3",))})(), "marks": ("H3K4me3",)})()
        model = "promoter_cnn"

    with pytest.raises(InputError, match="motif knockout edits one-hot DNA; model 'promoter_cnn' sees the marks"):
        onehot_name(NoDna(), "motif knockout")


def test_calls_need_the_effect_threshold_and_a_decoy_is_scored_against_every_drivers_targets():
    """summary/ranked on a hand-made table: A drives g1, g2; B drives g3; D (a decoy) drives nothing."""
    lfc = {"A": [-1.0, -0.5, -0.05, -0.01], "B": [0.0, -0.02, -0.9, 0.1], "D": [-0.3, -0.04, -0.03, -0.01]}
    table = pd.DataFrame([{"motif": m, "gene": i, "gene_id": f"g{i + 1}", "n_hits": 1, "log2_fold_change": v}
                          for m, values in lfc.items() for i, v in enumerate(values)])
    planted = {"A": {"g1", "g2"}, "B": {"g3"}}
    loose = summary(table, 100, planted).set_index("motif")
    assert loose.loc["D", "n_down"] == 4 and loose.loc["D", "against"] == "any driver" and loose.loc["D", "k"] == 3
    assert loose.loc["D", "precision_at_k"] == 1.0  # without a threshold, noise-sized changes rank g1-g3 first: all driven
    strict = summary(table, 100, planted, min_effect=0.2).set_index("motif")
    assert strict.loc["D", "n_down"] == 1 and strict.loc["D", "precision_at_k"] == pytest.approx(1 / 3)  # g1 only
    assert (strict.loc["A", "against"], strict.loc["A", "k"], strict.loc["A", "precision_at_k"]) == ("own", 2, 1.0)
    assert strict.loc["B", "precision_at_k"] == 1.0 and strict.loc["D", "n_planted"] == 0
    down = ranked(table, 100, planted, min_effect=0.2)
    assert down.groupby("motif")["gene_id"].apply(list).to_dict() == {"A": ["g1", "g2"], "B": ["g3"], "D": ["g1"]}
