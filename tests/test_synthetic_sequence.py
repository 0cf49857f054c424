"""The synthetic genome's DNA: files, byte-identity of everything else, the planted grammar,
its agreement with the tracks, determinism; the MEME and motif-site readers/writers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyBigWig
import pytest

from epx.errors import InputError
from epx.io.chrom_sizes import read_chrom_sizes
from epx.io.fasta import FastaFile, read_fasta_sizes, reverse_complement
from epx.io.motifs import (
    SITE_COLUMNS,
    read_meme,
    read_meme_background,
    read_motif_sites,
    write_meme,
    write_motif_sites,
)
from epx.synthetic import generate as synthetic
from epx.synthetic.sequence import (
    BACKGROUND,
    log_odds,
    min_site_score,
    plan_sequence,
    program_motif,
    scan,
)

TINY = {"n_chroms": 2, "chrom_length": 600_000, "genes_per_chrom": 8, "cells": ("E003",), "marks": ("H3K4me3", "H3K27ac")}
SEQUENCE_FILES = set(synthetic.SEQUENCE_FILES)
WINDOW = (-500, 500)  # around the TSS: the planted promoter window (-416..+96) and its CpG island


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def folder(small_synthetic) -> dict:
    """The shared small synthetic folder, read once: motifs, sites, truth, the FASTA."""
    truth = pd.read_csv(small_synthetic / "truth.tsv", sep="\t")
    fasta = FastaFile(small_synthetic / "genome.fa")
    yield {
        "root": small_synthetic,
        "motifs": read_meme(small_synthetic / "motifs.meme"),
        "sites": read_motif_sites(small_synthetic / "motif_sites.tsv"),
        "truth": truth,
        "fasta": fasta,
        "seq": {c: fasta.codes(c) for c in fasta.sizes},
    }
    fasta.close()


def hits(folder: dict, motif: str, chroms, centers) -> np.ndarray:
    """Scanned sites (planted or by chance) of ``motif`` at its planting threshold, per window."""
    pwm = folder["motifs"][motif]
    threshold = min_site_score(pwm) - 1e-6
    return np.array([len(scan(pwm, folder["seq"][c][p + WINDOW[0] : p + WINDOW[1]], threshold)[0]) for c, p in zip(chroms, centers)])


def background_windows(folder: dict, n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """Random windows 10 kb or more from every TSS and enhancer core, off the N caps."""
    rng = np.random.default_rng(0)
    sizes = folder["fasta"].sizes
    chroms = rng.choice(list(sizes), size=4 * n)
    pos = rng.integers(60_000, min(sizes.values()) - 60_000, size=4 * n)
    features = pd.concat(
        [folder["truth"][["chrom", "tss"]].rename(columns={"tss": "pos"}), folder["sites"].loc[folder["sites"]["role"] == "enhancer", ["chrom", "start"]].rename(columns={"start": "pos"})]
    )
    far = np.array([(np.abs(features.loc[features["chrom"] == c, "pos"].to_numpy() - p) > 10_000).all() for c, p in zip(chroms, pos)])
    return chroms[far][:n], pos[far][:n]


# ----------------------------------------------------------------------------- files


def test_fasta_covers_chrom_sizes_with_a_realistic_background(folder):
    root = folder["root"]
    assert (root / "genome.fa.fai").is_file()
    assert read_fasta_sizes(root / "genome.fa") == read_chrom_sizes(root / "chrom.sizes")
    codes = np.concatenate(list(folder["seq"].values()))
    counts = np.bincount(codes, minlength=5)
    assert 0.39 < (counts[1] + counts[2]) / counts[:4].sum() < 0.43  # GC ~41%
    for seq in folder["seq"].values():
        assert (seq[:10_000] == 4).all() and (seq[-10_000:] == 4).all() and (seq[10_000:-10_000] < 4).all()
    # CpG islands at promoters whose level they show; depleted CpG elsewhere
    truth = folder["truth"]
    shows = (truth["program"] != "silent") & (truth["distal_driven"] == 0)
    cpg = [((w[:-1] == 1) & (w[1:] == 2)).mean() for w in (folder["seq"][c][t - 500 : t + 500] for c, t in zip(truth["chrom"], truth["tss"]))]
    cpg = np.array(cpg)
    assert cpg[shows].mean() > 3 * cpg[~shows].mean()


def test_other_files_are_byte_identical_with_and_without_the_sequence(tmp_path):
    with_seq = digests(synthetic.generate(tmp_path / "with", seed=5, **TINY))
    without = digests(synthetic.generate(tmp_path / "without", seed=5, sequence=False, **TINY))
    assert SEQUENCE_FILES <= set(with_seq) and not SEQUENCE_FILES & set(without)
    assert {k: v for k, v in with_seq.items() if k not in SEQUENCE_FILES} == without


def test_same_seed_same_sequence_other_seed_differs(tmp_path):
    a = synthetic.generate(tmp_path / "a", seed=5, **TINY)
    b = synthetic.generate(tmp_path / "b", seed=5, **TINY)
    c = synthetic.generate(tmp_path / "c", seed=6, **TINY)
    for name in SEQUENCE_FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for name in ("genome.fa", "motifs.meme", "motif_sites.tsv"):
        assert (a / name).read_bytes() != (c / name).read_bytes(), name


def test_sequence_is_added_to_an_existing_folder_and_nothing_else_changes(tmp_path):
    reference = digests(synthetic.generate(tmp_path / "ref", seed=5, **TINY))
    out = synthetic.generate(tmp_path / "ds", seed=5, sequence=False, **TINY)
    before = digests(out)
    stamp = (out / "synthetic.json").stat().st_mtime_ns
    assert synthetic.ensure_synthetic(out, seed=5, **TINY) == out
    assert digests(out) == reference and (out / "synthetic.json").stat().st_mtime_ns == stamp
    assert {k: v for k, v in digests(out).items() if k in before} == before
    # write_sequence refuses a folder whose genome it cannot rebuild
    (out / "tss.bed").write_text((out / "tss.bed").read_text().replace("SYN000001", "EDITED"))
    with pytest.raises(InputError, match="tss.bed differ"):
        synthetic.write_sequence(out)


def test_a_genome_preset_writes_no_sequence_unless_asked_and_the_same_dna_for_any_cells(tmp_path):
    preset = {"seed": 0, "genome": "hg19", "scale": 0.02, "marks": ["H3K27ac"]}
    plain = synthetic.generate(tmp_path / "plain", cells=["E003"], **preset)
    assert not any((plain / name).exists() for name in SEQUENCE_FILES)
    asked = synthetic.generate(tmp_path / "asked", cells=["E114"], sequence=True, **preset)
    synthetic.write_sequence(plain)
    for name in SEQUENCE_FILES:
        assert (plain / name).read_bytes() == (asked / name).read_bytes(), name


def test_cli_sequence_flag(tmp_path, capsys):
    args = ["--n-chroms", "1", "--chrom-length", "600000", "--genes-per-chrom", "4", "--cells", "E003"]
    assert synthetic.main([str(tmp_path / "no"), *args, "--no-sequence"]) == 0
    assert synthetic.main([str(tmp_path / "yes"), *args]) == 0
    assert not (tmp_path / "no" / "genome.fa").exists() and (tmp_path / "yes" / "genome.fa").exists()


# ----------------------------------------------------------------------------- the grammar


def test_every_planted_site_is_a_scoring_instance_of_its_motif(folder):
    sites, motifs, seq = folder["sites"], folder["motifs"], folder["seq"]
    assert set(sites["motif"]) == set(motifs)
    assert set(sites["role"]) == {"promoter", "enhancer", "decoy"}
    assert ((sites["target"] == "") == (sites["role"] == "decoy")).all()
    for name, rows in sites.groupby("motif"):
        pwm = motifs[name]
        assert (rows["end"] - rows["start"] == len(pwm)).all()
        codes = np.stack([seq[c][s:e] for c, s, e in zip(rows["chrom"], rows["start"], rows["end"])])
        minus = (rows["strand"] == "-").to_numpy()
        codes[minus] = reverse_complement(codes[minus])
        score = log_odds(pwm)[np.arange(len(pwm)), codes].sum(axis=1)
        assert (score >= min_site_score(pwm) - 1e-6).all(), name
        np.testing.assert_allclose(score, rows["score"], atol=2e-3)
        assert (codes != codes[0]).any(), name  # drawn from the PWM, not one consensus copy
        assert 0.2 < minus.mean() < 0.8 or name == "TF_PROMOTER"  # both strands
    # sites never overlap, and TF_PROMOTER reads on its gene's strand
    for _, rows in sites.groupby("chrom"):
        assert (rows["start"].to_numpy()[1:] >= rows["end"].to_numpy()[:-1]).all()
    core = sites[sites["motif"] == "TF_PROMOTER"].merge(folder["truth"], left_on="target", right_on="gene_id")
    assert (core["strand_x"] == core["strand_y"]).all()


def test_active_promoters_carry_their_programs_motif(folder):
    truth, motifs = folder["truth"], folder["motifs"]
    factor = truth["program"].map(lambda p: program_motif(p) or "")
    shows = (truth["distal_driven"] == 0).to_numpy()
    bg_chroms, bg_pos = background_windows(folder)
    ratios = {}
    for name in (m for m in motifs if m.startswith("TF_") and m != "TF_PROMOTER"):
        mine = ((factor == name).to_numpy() & shows)
        if mine.sum() < 5:
            continue
        at = hits(folder, name, truth["chrom"], truth["tss"])
        background = hits(folder, name, bg_chroms, bg_pos).mean()
        ratios[name] = at[mine].mean() / max(background, 1e-3)
        assert at[mine].mean() > 5 * max(at[~mine].mean(), background), (name, at[mine].mean(), at[~mine].mean(), background)
    assert len(ratios) >= 3, ratios
    capable = (truth["program"] != "silent").to_numpy()
    core = hits(folder, "TF_PROMOTER", truth["chrom"], truth["tss"])
    assert core[capable].mean() > 5 * max(core[~capable].mean(), hits(folder, "TF_PROMOTER", bg_chroms, bg_pos).mean())
    # decoys: no more at active promoters than anywhere else
    for name in (m for m in motifs if m.startswith("DECOY_")):
        at = hits(folder, name, truth["chrom"], truth["tss"])[capable].mean()
        assert at < 2 * hits(folder, name, bg_chroms, bg_pos).mean() + 0.05, name


def test_driver_enhancers_carry_their_genes_motif_and_site_counts_follow_activity(folder):
    truth, sites = folder["truth"], folder["sites"]
    drivers = truth[truth["distal_driven"] == 1]
    center = ((drivers["enhancer_start"] + drivers["enhancer_end"]) // 2).astype(int).to_numpy()
    factor = drivers["program"].map(program_motif).to_numpy()
    per_motif = {name: hits(folder, name, drivers["chrom"], center) for name in set(factor)}
    own = np.array([per_motif[f][i] for i, f in enumerate(factor)])
    assert (own >= 1).all()
    bg_chroms, bg_pos = background_windows(folder)
    assert own.mean() > 5 * np.mean([hits(folder, name, bg_chroms, bg_pos).mean() for name in per_motif])
    # the distal genes' own promoters carry the core motif only
    promoter_sites = sites[(sites["role"] == "promoter") & sites["target"].isin(drivers["gene_id"])]
    assert set(promoter_sites["motif"]) == {"TF_PROMOTER"}
    # more sites where the promoter is more active (strength x level sets its peaks)
    expression = pd.read_csv(folder["root"] / "expression.tsv", sep="\t").set_index("gene_id").loc[truth["gene_id"]].to_numpy()
    level = np.where(expression >= 0.5, np.log2(expression + 1), np.nan)
    activity = truth["strength"].to_numpy() * np.nanmean(np.where(np.isnan(level).all(1, keepdims=True), 0, level), axis=1)
    n_tf = sites[(sites["role"] == "promoter") & (sites["motif"] != "TF_PROMOTER")].groupby("target").size()
    has = truth["gene_id"].isin(n_tf.index).to_numpy()
    assert np.corrcoef(pd.Series(activity[has]).rank(), pd.Series(n_tf.loc[truth["gene_id"][has]].to_numpy()).rank())[0, 1] > 0.7


def test_the_tracks_are_where_the_sequence_says(folder):
    # In each cell, promoters carrying a factor of a program active there have H3K27ac; those
    # carrying another group's factor (and silent ones) mostly do not.
    truth, sites, root = folder["truth"], folder["sites"], folder["root"]
    tf_sites = sites[(sites["role"] == "promoter") & (sites["motif"] != "TF_PROMOTER")].groupby("target")["motif"].first()
    for cell, own in (("E003", {"TF_HOUSEKEEPING", "TF_ESC"}), ("E114", {"TF_HOUSEKEEPING", "TF_cancer_line"})):
        bw = pyBigWig.open(str(root / "signals" / f"{cell}-H3K27ac.bigwig"))
        try:
            k27 = np.array([np.nan_to_num(bw.values(c, t - 1_000, t + 1_000, numpy=True)).mean() for c, t in zip(truth["chrom"], truth["tss"])])
        finally:
            bw.close()
        motif = truth["gene_id"].map(tf_sites).fillna("").to_numpy()
        on, off = np.isin(motif, list(own)), motif == ""
        other = ~on & ~off
        assert on.sum() > 20 and other.sum() > 5
        assert np.median(k27[on]) > 3 * max(np.median(k27[other]), np.median(k27[off]), 0.1), cell


def test_decoys_are_planted_at_a_real_motifs_density_genome_wide(folder):
    sites = folder["sites"]
    counts = sites.groupby("motif").size()
    real = counts[[m for m in counts.index if not m.startswith("DECOY_")]]
    decoys = counts[[m for m in counts.index if m.startswith("DECOY_")]]
    assert len(decoys) == 3
    assert ((decoys > 0.7 * real.mean()) & (decoys < 1.3 * real.mean())).all(), (decoys, real.mean())
    per_chrom = sites[sites["role"] == "decoy"].groupby("chrom").size()
    assert len(per_chrom) == len(folder["fasta"].sizes)


def test_plan_is_deterministic_and_changes_with_the_seed(small_synthetic):
    params = synthetic.resolve_params(**synthetic.read_manifest(small_synthetic)["params"])
    genome = synthetic._full_genome(params)
    a, b, c = plan_sequence(genome, 1), plan_sequence(genome, 1), plan_sequence(genome, 2)
    pd.testing.assert_frame_equal(a.sites, b.sites)
    assert all(np.array_equal(a.motifs[k], b.motifs[k]) for k in a.motifs)
    assert not a.sites[["start", "motif"]].equals(c.sites[["start", "motif"]])


# ----------------------------------------------------------------------------- epx.io.motifs


def test_meme_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    motifs = {f"M{i}": np.round(rng.dirichlet(np.ones(4), size=w), 6) for i, w in enumerate((8, 10, 12))}
    motifs = {k: v / v.sum(1, keepdims=True) for k, v in motifs.items()}
    path = write_meme(tmp_path / "m.meme", motifs, background=BACKGROUND)
    back = read_meme(path)
    assert list(back) == list(motifs)
    for name in motifs:
        np.testing.assert_allclose(back[name], motifs[name], atol=1e-5)
    np.testing.assert_allclose(read_meme_background(path), BACKGROUND)
    assert read_meme_background(write_meme(tmp_path / "n.meme", motifs)) is None


GOOD = "MEME version 4\n\nALPHABET= ACGT\n\nMOTIF A1 alt\nletter-probability matrix: alength= 4 w= 2 nsites= 9\n0.25 0.25 0.25 0.25\n0.7 0.1 0.1 0.1\n"


@pytest.mark.parametrize(
    "text, message",
    [
        ("MOTIF A1\n", "line 1: not a MEME motif file"),
        (GOOD.replace("ACGT", "ACDEFGHIKLMNPQRSTVWY"), "line 3: alphabet"),
        (GOOD.replace("0.7 0.1 0.1 0.1", "0.7 0.1 0.1"), "line 8: .*3 number"),
        (GOOD.replace("0.7 0.1 0.1 0.1", "0.7 0.1 x 0.1"), "line 8: .*non-numeric"),
        (GOOD.replace("0.7 0.1 0.1 0.1", "0.9 0.1 0.1 0.1"), "line 8: .*sums to 1.2"),
        (GOOD.replace("0.7 0.1 0.1 0.1", "1.2 -0.1 -0.05 -0.05"), "line 8: .*>= 0"),
        (GOOD.replace("w= 2", "w= 3"), "line 8: .*2 matrix row"),
        (GOOD.replace("w= 2", "w=two"), "line 6: .*w= WIDTH"),
        (GOOD.replace("letter-probability matrix:", "letter-probability:"), "line 5: .*no 'letter-probability"),
        (GOOD + GOOD[GOOD.index("MOTIF"):], "line 9: motif A1 is listed twice"),
        ("MEME version 4\n\nALPHABET= ACGT\n", "no MOTIF"),
    ],
)
def test_malformed_meme_is_one_input_error_naming_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.meme"
    path.write_text(text)
    read_meme_ok = tmp_path / "good.meme"
    read_meme_ok.write_text(GOOD)
    assert list(read_meme(read_meme_ok)) == ["A1"]
    with pytest.raises(InputError, match=f"{path}.*{message}"):
        read_meme(path)


def test_motif_sites_round_trip_and_errors(tmp_path, folder):
    sites = folder["sites"]
    path = write_motif_sites(tmp_path / "s.tsv", sites)
    pd.testing.assert_frame_equal(read_motif_sites(path), sites, check_dtype=False)
    assert path.read_text().splitlines()[0].split("\t") == SITE_COLUMNS
    bad = tmp_path / "bad.tsv"
    bad.write_text(path.read_text().replace("\tenhancer\t", "\tsilencer\t", 1))
    with pytest.raises(InputError, match=r"bad.tsv, line \d+: role 'silencer'"):
        read_motif_sites(bad)
    bad.write_text("chrom\tstart\n")
    with pytest.raises(InputError, match="bad.tsv, line 1: header"):
        read_motif_sites(bad)
