"""Motif scanning (epx.explain.motifs): the vectorised both-strand log-odds scan agrees with a
brute-force scan, N windows never hit, the p-value threshold is exact for background DNA,
chromosomes scanned in pieces lose no hit, planted synthetic sites are found, bad files are
one error."""

from __future__ import annotations

import numpy as np
import pytest

from epx.errors import InputError
from epx.explain import motifs as scan_module
from epx.explain.motifs import MotifSet
from epx.io.fasta import FastaFile, onehot
from epx.io.motifs import read_motif_sites, write_meme


def random_pwm(rng, width):
    pwm = np.maximum(rng.dirichlet(np.full(4, 0.3), size=width), 0.01)
    return pwm / pwm.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def motifs():
    rng = np.random.default_rng(0)
    return MotifSet({"long": random_pwm(rng, 12), "short": random_pwm(rng, 7)}, pvalue=1e-3)


def brute_force(motifs: MotifSet, codes: np.ndarray) -> set[tuple[str, int, int]]:
    found = set()
    for name, lo in motifs.matrices.items():
        w = len(lo)
        windows = codes[np.arange(len(codes) - w + 1)[:, None] + np.arange(w)]
        ok = (windows < 4).all(axis=1)
        for strand, m in ((1, lo), (-1, lo[::-1, ::-1])):
            score = np.where(ok, m[np.arange(w), np.minimum(windows, 3)].sum(axis=1), -np.inf)
            found |= {(name, int(s), strand) for s in np.flatnonzero(score >= motifs.thresholds[name])}
    return found


def test_the_scan_is_the_brute_force_scan_on_both_strands_and_skips_n(motifs):
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 4, size=50_000).astype(np.uint8)
    codes[1_000:1_030] = 4
    hits = motifs.scan_onehot(onehot(codes)[None])
    got = {(motifs.names[m], int(s), int(d)) for m, s, d in zip(hits.motif, hits.start, hits.strand)}
    assert got == brute_force(motifs, codes) and len(got) > 50
    assert not any(970 < s < 1_030 for _, s, _ in got)
    assert ((hits.start + hits.width) <= len(codes)).all()  # wholly inside
    # scores are the log-odds of the hit's bases
    i = int(np.argmax(hits.score))
    lo = motifs.matrices[motifs.names[hits.motif[i]]]
    window = codes[hits.start[i] : hits.start[i] + hits.width[i]]
    m = lo if hits.strand[i] > 0 else lo[::-1, ::-1]
    assert hits.score[i] == pytest.approx(m[np.arange(len(m)), window].sum(), abs=1e-4)


def test_the_threshold_is_the_exact_background_tail(motifs):
    rng = np.random.default_rng(2)
    codes = rng.integers(0, 4, size=2_000_000).astype(np.uint8)  # uniform: the set's background
    hits = motifs.scan_codes({"chrZ": codes})
    for name in motifs.names:
        rate = (hits["motif"] == name).sum() / (2 * len(codes))
        assert 0.6 * motifs.pvalue < rate <= 1.15 * motifs.pvalue, (name, rate)
        assert (hits.loc[hits["motif"] == name, "pvalue"] <= motifs.pvalue * 1.05).all()
    p = motifs.pvalue_of("long", np.linspace(-200, 30, 50))
    assert (np.diff(p) <= 0).all() and p[0] == pytest.approx(1.0) and p[-1] >= 0


def test_chromosomes_scanned_in_pieces_lose_and_double_no_hit(motifs, monkeypatch):
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 4, size=12_000).astype(np.uint8)
    whole = motifs.scan_codes({"c": codes})
    monkeypatch.setattr(scan_module, "PIECE_BP", 997)
    pieces = motifs.scan_codes({"c": codes})
    assert whole[["start", "strand", "motif"]].equals(pieces[["start", "strand", "motif"]])
    assert len(whole) > 20


def test_planted_synthetic_sites_are_found(small_synthetic):
    motifs = MotifSet.load(small_synthetic / "motifs.meme")
    assert motifs.names[0] == "TF_PROMOTER" and np.allclose(motifs.background.sum(), 1)
    sites = read_motif_sites(small_synthetic / "motif_sites.tsv")
    with FastaFile(small_synthetic / "genome.fa") as fasta:
        chroms = ["chr1", "chr2"]
        hits = motifs.scan_codes({c: fasta.codes(c) for c in chroms})
    planted = sites[sites["chrom"].isin(chroms)]
    key = set(zip(hits["chrom"], hits["start"], hits["motif"]))
    found = np.mean([(c, s, m) in key for c, s, m in zip(planted["chrom"], planted["start"], planted["motif"])])
    assert found >= 0.95, found
    strand = hits.set_index(["chrom", "start", "motif"])["strand"]
    matched = planted[[(c, s, m) in key for c, s, m in zip(planted["chrom"], planted["start"], planted["motif"])]]
    agree = np.mean([strand.loc[(c, s, m)] == d if np.ndim(strand.loc[(c, s, m)]) == 0 else d in set(strand.loc[(c, s, m)])
                     for c, s, m, d in zip(matched["chrom"], matched["start"], matched["motif"], matched["strand"])])
    assert agree > 0.95


def test_bad_motif_files_and_names_are_one_error(tmp_path):
    bad = tmp_path / "bad.meme"
    bad.write_text("MEME version 4\n\nMOTIF X\nletter-probability matrix: alength= 4 w= 2\n0.5 0.5 0 0\n0.1 0.1\n")
    with pytest.raises(InputError, match=r"bad\.meme, line 6"):
        MotifSet.load(bad)
    good = write_meme(tmp_path / "good.meme", {"A1": np.full((6, 4), 0.25)})
    with pytest.raises(InputError, match="no motif NOPE; it has A1"):
        MotifSet.load(good, ["NOPE"])
    with pytest.raises(InputError, match="p-value"):
        MotifSet.load(good, pvalue=0)
    flat = MotifSet.load(good, pvalue=1e-4)  # a flat PWM never reaches p 1e-4: no hit at all
    assert len(flat.scan_onehot(onehot(np.zeros(100, np.uint8))[None])) == 0
