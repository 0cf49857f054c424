"""In-silico saturation mutagenesis (epx.explain.ism) on the small synthetic folder's
seq_cnn_base data with a net that reads one motif (``seq_explain_stub.MotifNet``): the largest
|Δ| lies on the planted motif instance, every Δ is the edited sequence's forward pass, the
batching changes nothing, and the analysis writes the table, heatmap and bigWig."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyBigWig
import pytest
import torch
from seq_explain_stub import MotifNet, stub_job

from epx.explain.ism import base_scores, ism, motif_centers
from epx.explain.motifs import MotifSet
from epx.explain.run import ANALYSES, with_defaults
from epx.io.motifs import read_motif_sites

DRIVER = "TF_HOUSEKEEPING"


@pytest.fixture(scope="module")
def job(small_synthetic, tmp_path_factory):
    one = MotifSet.load(small_synthetic / "motifs.meme", [DRIVER])
    return stub_job(small_synthetic, tmp_path_factory.getbasetemp() / "seq_stub_cache", MotifNet(log_odds=one.matrices, thresholds=one.thresholds))


@pytest.fixture(scope="module")
def planted(job, small_synthetic):
    """Genes of the job with a planted promoter site of the driver: (rows, sites)."""
    sites = read_motif_sites(small_synthetic / "motif_sites.tsv")
    sites = sites[(sites["motif"] == DRIVER) & (sites["role"] == "promoter")]
    rows = job.rows("all")
    ids = job.genes["gene_id"].to_numpy()[rows]
    keep = np.isin(ids, sites["target"])
    return rows[keep][:2], sites.set_index("target")


def test_ism_peaks_on_the_planted_motif_instance(job, planted):
    rows, sites = planted
    assert len(rows) == 2
    first = sites.loc[job.genes["gene_id"].to_numpy()[rows]].groupby(level=0, sort=False).first()
    table = ism(job, rows, first["start"].to_numpy() + 5, flank_bp=30)  # the site and 20+ bp either side
    scores = base_scores(table)
    assert (table.groupby(["gene", "position"]).size() == 3).all() and (table["ref"] != table["alt"]).all()
    for row in rows:
        part = scores[scores["gene"] == row]
        peak = part.loc[part["max_abs_delta"].idxmax(), "position"]
        mine = sites.loc[[job.genes["gene_id"].iloc[row]]]
        assert ((mine["start"] <= peak) & (peak < mine["end"])).any(), (row, peak, mine[["start", "end"]])


def test_each_delta_is_the_edited_forward_pass_and_batching_changes_nothing(job, planted):
    rows, _ = planted
    centers = job.genes["tss"].to_numpy()[rows]
    table = ism(job, rows, centers, flank_bp=6)
    again = ism(job, rows, centers, flank_bp=6, batch_size=5)
    np.testing.assert_allclose(table["delta"], again["delta"], atol=1e-9)
    row = table.iloc[17]
    batch = job.adapter.batch([row["gene"]])
    x = batch.inputs["x"].clone()
    col = int(row["position"] - job.adapter.layouts([row["gene"]])["x"].start[0, 0])
    assert "ACGT"[int(x[0, :, col].argmax())] == row["ref"]
    x[0, :, col] = 0
    x[0, "ACGT".index(row["alt"]), col] = 1
    with torch.no_grad():
        mutant = float(job.adapter.forward_genes({"x": x}, batch.extra)[0])
    assert row["mutant"] == pytest.approx(mutant, abs=1e-6)


def test_motif_centers_find_the_planted_site(job, planted, small_synthetic):
    rows, _ = planted
    centers = motif_centers(job, rows, MotifSet.load(small_synthetic / "motifs.meme"), DRIVER)
    for row, c in zip(rows, centers):
        chunk = job.adapter.layouts([row])["x"].start[0, [0, -1]]
        assert c >= 0 and chunk[0] <= c <= chunk[1]


def test_the_analysis_writes_table_heatmap_and_bigwig(job, planted, tmp_path):
    rows, _ = planted
    gene_ids = list(job.genes["gene_id"].to_numpy()[rows])
    options = with_defaults({"ism": {"genes": gene_ids, "center": "motif", "motif": DRIVER, "flank_bp": 10}})["ism"]
    ANALYSES["ism"].check(job, options)
    paths = ANALYSES["ism"].run(job, tmp_path, options)
    assert {p.name for p in paths} == {"ism.tsv", "ism_bases.tsv", "ism.png", "ism.bigwig"}
    bases = pd.read_csv(tmp_path / "ism_bases.tsv", sep="\t")
    assert len(bases) == 2 * 21 and set(bases["gene_id"]) == set(gene_ids)
    bw = pyBigWig.open(str(tmp_path / "ism.bigwig"))
    first = bases.iloc[0]
    value = bw.values(first["chrom"], int(first["position"]), int(first["position"]) + 1)[0]
    bw.close()
    assert abs(value) >= abs(first["mean_delta"]) - 1e-6
    from epx.errors import InputError

    with pytest.raises(InputError, match="center=motif needs analysis.ism.motif"):
        ANALYSES["ism"].check(job, {**options, "motif": None})
    with pytest.raises(InputError, match="not in the job's gene table"):
        ANALYSES["ism"].run(job, tmp_path, {**options, "genes": ["NOPE"]})
