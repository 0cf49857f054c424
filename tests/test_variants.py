"""Variant effects (epx.explain.variants, epx.io.vcf) and the synthetic VCF
(epx.synthetic.variants): the reader splits or refuses multi-allelic records, refuses indels,
reconciles chromosome names and refuses another assembly, all counted; on the small synthetic
folder with a net that reads the program factors' motifs (``seq_explain_stub.MotifNet``), the
SNVs that break planted driver sites rank above the decoys (AUPRC), wrong-REF records are
listed and never scored, every Δ is the edited forward pass, and the analysis writes the
table and the annotated VCF."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pysam
import pytest
import torch
from conftest import REPO
from seq_explain_stub import SMALL, MotifNet, stub_job

from epx.errors import InputError
from epx.explain.motifs import MotifSet
from epx.explain.run import ANALYSES, parse_request, with_defaults
from epx.explain.validation import auprc
from epx.explain.variants import score_variants
from epx.io.fasta import FastaFile
from epx.io.vcf import read_snvs
from epx.synthetic.sequence import log_odds, min_site_score

SIZES = {"chr1": 1000, "chr2": 500}


def vcf_text(tmp_path, body: str, contigs=SIZES, name="v.vcf"):
    head = "##fileformat=VCFv4.2\n" + "".join(f"##contig=<ID={c},length={n}>\n" for c, n in contigs.items())
    path = tmp_path / name
    path.write_text(head + "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n" + body)
    return path


def test_the_reader_splits_refuses_and_counts(tmp_path):
    body = "1\t10\ta\tA\tT\t.\t.\t.\nchr1\t20\tb\tC\tG,T\t.\t.\t.\nchr2\t5\tc\tGA\tG\t.\t.\t.\nchr2\t7\t.\tg\t<DEL>\t.\t.\t.\nchrUn\t3\td\tA\tC\t.\t.\t.\n"
    path = vcf_text(tmp_path, body, contigs={"1": 1000, "chr1": 1000, "chr2": 500, "chrUn": 50})
    snvs = read_snvs(path, SIZES)
    assert list(snvs.table["chrom"]) == ["chr1", "chr1", "chr1"] and list(snvs.table["alt"]) == ["T", "G", "T"]
    assert list(snvs.table["pos"]) == [9, 19, 19] and list(snvs.table["record"]) == [0, 1, 1]
    c = snvs.counts
    assert (c["records"], c["snvs"], c["multiallelic_records"], c["non_snv"], c["unknown_chrom"], c["renamed_chrom"]) == (5, 3, 1, 2, 1, 1)
    assert snvs.unknown_chroms == ["chrUn"]
    refused = read_snvs(path, SIZES, multiallelic="refuse")
    assert len(refused.table) == 1 and refused.counts["multiallelic_refused"] == 1
    import gzip

    gz = tmp_path / "v.vcf.gz"
    pysam.tabix_compress(str(path), str(gz))
    assert read_snvs(gz, SIZES).table.equals(snvs.table)
    plain = tmp_path / "plain.vcf.gz"
    plain.write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(InputError, match="not bgzip-compressed; recompress it"):
        read_snvs(plain, SIZES)


def test_bad_vcfs_are_one_error(tmp_path):
    with pytest.raises(InputError, match="another assembly.*chr1 999 vs chr1 1000"):
        read_snvs(vcf_text(tmp_path, "chr1\t10\ta\tA\tT\t.\t.\t.\n", contigs={"chr1": 999}), SIZES)
    with pytest.raises(InputError, match="none of its chromosomes"):
        read_snvs(vcf_text(tmp_path, "chrQ\t10\ta\tA\tT\t.\t.\t.\n", contigs={}), SIZES)
    junk = tmp_path / "junk.vcf"
    junk.write_text("not a vcf\n")
    with pytest.raises(InputError, match="junk.vcf: cannot read it as a VCF"):
        read_snvs(junk, SIZES)
    with pytest.raises(InputError, match="VCF not found"):
        read_snvs(tmp_path / "none.vcf", SIZES)


def test_the_synthetic_vcf_breaks_driver_sites_and_has_wrong_refs(small_synthetic):
    records = [r for r in pysam.VariantFile(str(small_synthetic / "variants.vcf"))]
    kinds = pd.Series([r.info["CLASS"] for r in records])
    assert set(kinds) == {"break", "decoy", "wrong_ref"} and (kinds == "wrong_ref").sum() == 20
    motifs = MotifSet.load(small_synthetic / "motifs.meme").motifs
    with FastaFile(small_synthetic / "genome.fa") as fasta:
        for r in records:
            base = fasta.codes(r.chrom, r.pos - 1, r.pos)[0]
            assert ("ACGT"[base] == r.ref) == (r.info["CLASS"] != "wrong_ref")
            if r.info["CLASS"] == "break":
                assert r.info["TARGET"].startswith("SYN") and r.info["MOTIF"] not in ("TF_PROMOTER",)
    # a broken site no longer scores as one: scan the 24 bp around each break
    with FastaFile(small_synthetic / "genome.fa") as fasta:
        for r in [r for r in records if r.info["CLASS"] == "break"][:20]:
            pwm = motifs[r.info["MOTIF"]]
            seq = fasta.codes(r.chrom, r.pos - 13, r.pos + 12).copy()
            seq[12] = "ACGT".index(r.alts[0])
            lo, w = log_odds(pwm), len(pwm)
            best = max(max(lo[np.arange(w), seq[i : i + w]].sum(), lo[::-1, ::-1][np.arange(w), seq[i : i + w]].sum())
                       for i in range(len(seq) - w + 1) if (seq[i : i + w] < 4).all())
            assert best < min_site_score(pwm) + 1.0


@pytest.fixture(scope="module")
def job(small_synthetic, tmp_path_factory):
    factors = [m for m in MotifSet.load(small_synthetic / "motifs.meme").names if m.startswith("TF_") and m != "TF_PROMOTER"]
    motifs = MotifSet.load(small_synthetic / "motifs.meme", factors)
    return stub_job(small_synthetic, tmp_path_factory.getbasetemp() / "seq_stub_cache", MotifNet(log_odds=motifs.matrices, thresholds=motifs.thresholds))


@pytest.fixture(scope="module")
def scored(job, small_synthetic):
    snvs = read_snvs(small_synthetic / "variants.vcf", job.chrom_sizes())
    return snvs, score_variants(job, snvs, job.rows("all"))


def test_breaking_variants_rank_above_decoys_and_wrong_refs_are_listed(scored, small_synthetic):
    snvs, result = scored
    kind = {r.id: r.info["CLASS"] for r in pysam.VariantFile(str(small_synthetic / "variants.vcf"))}
    assert set(result.mismatches["id"].map(kind)) == {"wrong_ref"} and result.counts["ref_mismatch"] == 20
    assert not set(result.table["variant_id"].map(kind)) & {"wrong_ref"}
    c = result.counts
    assert c["scored_variants"] + c["ref_mismatch"] + c["outside_windows"] == c["snvs"] and c["scored_variants"] > 10
    effect = result.table.groupby("variant_id")["delta"].min()  # the strongest drop over the genes it reaches
    classes = effect.index.map(kind)
    pair = classes.isin(["break", "decoy"])
    score = auprc(-effect[pair].to_numpy(), np.asarray(classes[pair] == "break"))
    assert score >= 0.9, score
    print(f"AUPRC break vs decoy (stub net): {score:.3f} over {int((classes == 'break').sum())} breaks, {int((classes == 'decoy').sum())} decoys")


def test_each_delta_is_the_edited_forward_pass(job, scored):
    _, result = scored
    row = result.table.sort_values("delta").iloc[0]
    batch = job.adapter.batch([row["gene"]])
    x = batch.inputs["x"].clone()
    col = int(row["pos"] - 1 - job.adapter.layouts([row["gene"]])["x"].start[0, 0])
    assert "ACGT"[int(x[0, :, col].argmax())] == row["ref"]
    x[0, :, col] = 0
    x[0, "ACGT".index(row["alt"]), col] = 1
    with torch.no_grad():
        alt = float(job.adapter.forward_genes({"x": x}, batch.extra)[0])
        ref = float(job.adapter.forward_genes(batch.inputs, batch.extra)[0])
    assert (row["alt_prediction"], row["ref_prediction"]) == (pytest.approx(alt, abs=1e-6), pytest.approx(ref, abs=1e-6))


def test_the_analysis_writes_the_table_and_annotated_vcf(job, small_synthetic, tmp_path):
    assert parse_request(["variants", str(small_synthetic / "variants.vcf")])["variants"]["vcf"] == str(small_synthetic / "variants.vcf")
    options = with_defaults({"variants": {"vcf": str(small_synthetic / "variants.vcf"), "split": "test"}})["variants"]
    ANALYSES["variants"].check(job, options)
    paths = ANALYSES["variants"].run(job, tmp_path, options)
    assert {p.name for p in paths} - {"variants.parquet"} == {"variants.tsv", "variants_summary.tsv", "variants_ref_mismatch.tsv", "variants.vcf.gz"}
    table = pd.read_csv(tmp_path / "variants.tsv", sep="\t")
    try:
        import pyarrow  # noqa: F401  (the dev extra installs it)
    except ImportError:
        assert "variants.parquet" not in {p.name for p in paths}
    else:  # the same table, typed
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "variants.parquet"), table, check_dtype=False)
    out = list(pysam.VariantFile(str(tmp_path / "variants.vcf.gz")))
    status = pd.Series([r.info["EPX_STATUS"] for r in out])
    assert set(status) == {"scored", "ref_mismatch", "outside_windows"} and (status == "scored").sum() == table["record"].nunique()
    annotated = next(r for r in out if "EPX" in r.info)
    alt, gene, delta, _ = annotated.info["EPX"][0].split("|")
    assert gene in set(table["gene_id"]) and alt in "ACGT" and np.isfinite(float(delta))
    with pytest.raises(InputError, match="variants needs a VCF"):
        ANALYSES["variants"].check(job, {**options, "vcf": None})


@pytest.mark.slow
def test_epx_explain_runs_them_on_a_trained_job(small_synthetic, tmp_path):
    """End to end: a few-step seq_cnn_base job, then `epx explain JOB variants FILE knockout ism`."""
    job = tmp_path / "job"
    proc = subprocess.run(
        [sys.executable, "launch.py", "dataset=folder", f"dataset.root={small_synthetic}", f"paths.cache_dir={tmp_path / 'cache'}",
         "logger=none", "model=seq_cnn_base", "mark=H3K4me3+H3K27ac", "trainer.max_epochs=1", "+trainer.limit_train_batches=2",
         "+trainer.limit_val_batches=1", "trainer.enable_progress_bar=false", f"hydra.run.dir={job}", "analysis=[knockout]",
         "analysis.knockout.names=[TF_HOUSEKEEPING]", "analysis.knockout.max_genes=4", *SMALL],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (job / "explain" / "knockout" / "knockout_ranked.tsv").exists()
    from epx.cli import main as cli

    assert cli(["explain", str(job), "variants", str(small_synthetic / "variants.vcf"), "variants.split=test", "ism", "ism.max_genes=1",
                "ism.flank_bp=3", "--no-wandb"]) == 0
    assert (job / "explain" / "variants" / "variants.vcf.gz").exists() and (job / "explain" / "ism" / "ism.bigwig").exists()
