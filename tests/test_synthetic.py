"""The synthetic Roadmap-like dataset: contract, determinism, atomicity, caching, biology."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pyBigWig
import pytest

from epx.constants import MARKS
from epx.synthetic import generate as synthetic
from epx.errors import InputError
from epx.synthetic.biology import FLAT, PEAK, _Features, _paint

CELLS = ("E003", "E114")
SMALL = dict(n_chroms=4, chrom_length=2_000_000, genes_per_chrom=40, cells=CELLS, distal_fraction=0.3)
TINY = dict(n_chroms=2, chrom_length=600_000, genes_per_chrom=8, cells=("E003",), marks=("H3K4me3", "H3K27ac"))


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return synthetic.generate(tmp_path_factory.mktemp("synth") / "ds", seed=0, **SMALL)


@pytest.fixture(scope="module")
def tables(small):
    truth = pd.read_csv(small / "truth.tsv", sep="\t")
    expression = pd.read_csv(small / "expression.tsv", sep="\t").set_index("gene_id").loc[truth["gene_id"]]
    return truth, expression


def auroc(score: np.ndarray, positive: np.ndarray) -> float:
    ranks = pd.Series(score).rank().to_numpy()
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(pd.Series(a).rank(), pd.Series(b).rank())[0, 1])


def window_means(path: Path, chroms, starts, ends) -> np.ndarray:
    bw = pyBigWig.open(str(path))
    try:
        return np.array([np.nan_to_num(bw.values(c, int(s), int(e), numpy=True)).mean() for c, s, e in zip(chroms, starts, ends)])
    finally:
        bw.close()


def read_bedpe(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", header=None, names=["c1", "s1", "e1", "c2", "s2", "e2", "name", "score"])


# ----------------------------------------------------------------------------- contract


def test_folder_satisfies_the_contract(small):
    sizes = pd.read_csv(small / "chrom.sizes", sep="\t", header=None, names=["chrom", "size"])
    assert list(sizes["chrom"]) == ["chr1", "chr2", "chr3", "chr4"]
    assert (sizes["size"] == 2_000_000).all()
    for cell in CELLS:
        for mark in MARKS:
            bw = pyBigWig.open(str(small / "signals" / f"{cell}-{mark}.bigwig"))
            assert bw.chroms() == dict(zip(sizes["chrom"], sizes["size"]))
            assert bw.header()["nBasesCovered"] > 0
            bw.close()

    tss = pd.read_csv(small / "tss.bed", sep="\t", header=None)
    assert tss.shape == (4 * 40, 6)
    assert (tss[2] == tss[1] + 1).all() and set(tss[5]) == {"+", "-"} and tss[3].is_unique

    expression = pd.read_csv(small / "expression.tsv", sep="\t")
    assert list(expression.columns) == ["gene_id", *CELLS]
    assert list(expression["gene_id"]) == list(tss[3])
    assert (expression[list(CELLS)] >= 0).all().all()

    tss_of = dict(zip(tss[3], tss[1]))
    for cell in CELLS:
        bedpe = read_bedpe(small / "interactions" / f"{cell}.bedpe")
        assert bedpe.shape[1] == 8 and len(bedpe) > 0
        assert (bedpe["score"] > 1.5).all()
        assert (bedpe["s1"] == bedpe["name"].map(tss_of)).all() and (bedpe["e1"] == bedpe["s1"] + 1).all()
        width = bedpe["e2"] - bedpe["s2"]
        assert width.between(2_000, 5_000).all()

    manifest = json.loads((small / "synthetic.json").read_text())
    assert manifest["format_version"] == synthetic.FORMAT_VERSION
    assert manifest["params"] == synthetic.resolve_params(seed=0, **SMALL)


def test_tss_spacing_gene_bodies_and_expression_ranges(tables):
    truth, expression = tables
    for _, genes in truth.groupby("chrom"):
        assert np.diff(genes["tss"].to_numpy()).min() >= 10_000
    body = (truth["gene_end"] - truth["tss"]) * np.where(truth["strand"] == "+", 1, -1)
    assert body.between(4_999, 60_000).all()  # always downstream in the gene's orientation
    rpkm = expression.to_numpy()
    expressed = rpkm >= 0.5
    assert rpkm[expressed].max() <= 500 and rpkm[~expressed].max() <= 0.3
    assert 0.2 <= 1 - expressed.mean() <= 0.5


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = synthetic.generate(tmp_path / "a", seed=5, **TINY)
    b = synthetic.generate(tmp_path / "b", seed=5, **TINY)
    c = synthetic.generate(tmp_path / "c", seed=6, **TINY)
    for name in ("tss.bed", "expression.tsv", "interactions/E003.bedpe", "truth.tsv", "signals/E003-H3K4me3.bigwig"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for name in ("tss.bed", "expression.tsv", "interactions/E003.bedpe"):
        assert (a / name).read_bytes() != (c / name).read_bytes(), name


def test_failed_generation_leaves_nothing(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(synthetic, "_write_signals", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        synthetic.generate(tmp_path / "ds", **TINY)
    assert list(tmp_path.iterdir()) == []


def test_failed_regeneration_keeps_the_old_folder(tmp_path, monkeypatch):
    out = synthetic.generate(tmp_path / "ds", seed=1, **TINY)
    before = (out / "expression.tsv").read_bytes()
    monkeypatch.setattr(synthetic, "_write_manifest", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("killed")))
    with pytest.raises(RuntimeError):
        synthetic.generate(out, seed=2, **TINY)
    assert (out / "expression.tsv").read_bytes() == before
    assert json.loads((out / "synthetic.json").read_text())["params"]["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_refuses_to_replace_a_foreign_folder(tmp_path):
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not a synthetic dataset"):
        synthetic.generate(precious, **TINY)
    assert (precious / "notes.txt").read_text() == "keep me"


def test_ensure_reuses_then_regenerates_on_param_change(tmp_path, monkeypatch):
    calls = []
    real = synthetic.generate
    monkeypatch.setattr(synthetic, "generate", lambda *a, **k: calls.append(k) or real(*a, **k))
    root = synthetic.ensure_synthetic(tmp_path / "ds", seed=0, **TINY)
    stamp = (root / "synthetic.json").stat().st_mtime_ns
    assert synthetic.ensure_synthetic(tmp_path / "ds", seed=0, **TINY) == root
    assert (root / "synthetic.json").stat().st_mtime_ns == stamp and len(calls) == 1

    synthetic.ensure_synthetic(tmp_path / "ds", seed=1, **TINY)
    assert len(calls) == 2
    assert json.loads((root / "synthetic.json").read_text())["params"]["seed"] == 1


def test_ensure_builds_once_under_concurrency(tmp_path, monkeypatch):
    calls = []
    real = synthetic.generate
    monkeypatch.setattr(synthetic, "generate", lambda *a, **k: calls.append(1) or real(*a, **k))
    results, errors = [], []

    def worker():
        try:
            results.append(synthetic.ensure_synthetic(tmp_path / "ds", seed=3, **TINY))
        except Exception as err:  # surfaced by the assert below
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(calls) == 1
    assert len(set(results)) == 1 and (results[0] / "synthetic.json").exists()


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(marks=("H3K4me3", "H3K79me2")), "H3K79me2"),
        (dict(n_chroms=30), "n_chroms"),
        (dict(chrom_length=600_000, genes_per_chrom=500), "genes_per_chrom"),
        (dict(distal_fraction=1.5), "distal_fraction"),
    ],
)
def test_bad_parameters_raise_one_clear_error(tmp_path, params, message):
    with pytest.raises(ValueError, match=message):
        synthetic.generate(tmp_path / "ds", **{**TINY, **params})
    assert not (tmp_path / "ds").exists()


def test_ensure_rejects_unknown_parameters_before_any_work(tmp_path):
    with pytest.raises(InputError, match="colour"):
        synthetic.ensure_synthetic(tmp_path / "ds", colour="blue")
    assert list(tmp_path.iterdir()) == []


def test_cli_writes_a_folder(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = [str(out), "--seed", "7", "--n-chroms", "1", "--chrom-length", "600000", "--genes-per-chrom", "6", "--cells", "E003,E116"]
    assert synthetic.main(argv) == 0
    assert capsys.readouterr().out.strip() == str(out.absolute())
    params = json.loads((out / "synthetic.json").read_text())["params"]
    assert params["seed"] == 7 and params["cells"] == ["E003", "E116"]
    assert sorted(p.name for p in (out / "interactions").iterdir()) == ["E003.bedpe", "E116.bedpe"]


def test_paint_sums_profiles_into_bins():
    features = _Features(
        start=np.array([100, 250]), end=np.array([300, 450]), height=np.array([2.0, 1.0]), profile=np.array([FLAT, PEAK])
    )
    dense = _paint(features, length=500, res=100)
    # Flat covers bins 1-2; the peak covers bins 2-4, profile 0.15 + 0.85 sin(pi t) at t = 1/6, 1/2, 5/6.
    edge = 0.15 + 0.85 * np.sin(np.pi / 6)
    np.testing.assert_allclose(dense, [0.0, 2.0, 2.0 + edge, 1.0, edge])


# ----------------------------------------------------------------------------- biology


@pytest.mark.parametrize("cell", CELLS)
def test_promoter_marks_separate_expressed_from_silent(small, tables, cell):
    truth, expression = tables
    expressed = expression[cell].to_numpy() >= 0.5
    lo, hi = truth["tss"] - 1_000, truth["tss"] + 1_000
    k4me3 = window_means(small / "signals" / f"{cell}-H3K4me3.bigwig", truth["chrom"], lo, hi)
    k9me3 = window_means(small / "signals" / f"{cell}-H3K9me3.bigwig", truth["chrom"], lo, hi)
    assert auroc(k4me3, expressed) > 0.8
    assert auroc(k9me3, expressed) < 0.6


@pytest.mark.parametrize("strand", ["+", "-"])
def test_h3k36me3_covers_the_body_downstream_on_both_strands(small, tables, strand):
    truth, expression = tables
    genes = truth[(expression["E003"].to_numpy() >= 0.5) & (truth["strand"] == strand).to_numpy()]
    sign = 1 if strand == "+" else -1
    tss, far = genes["tss"], genes["tss"] + sign * 5_000
    near_far = (np.minimum(tss, far), np.maximum(tss, far))
    far_up = genes["tss"] - sign * 5_000
    up = (np.minimum(tss, far_up), np.maximum(tss, far_up))
    path = small / "signals" / "E003-H3K36me3.bigwig"
    downstream = window_means(path, genes["chrom"], *near_far)
    upstream = window_means(path, genes["chrom"], *up)
    assert len(genes) > 20
    assert downstream.mean() > 2 * upstream.mean()
    assert (downstream > upstream).mean() > 0.75


def test_distal_genes_follow_their_linked_enhancer_not_their_promoter(small, tables):
    truth, expression = tables
    distal = truth[truth["distal_driven"] == 1]
    enh_signal, prom_signal, level = [], [], []
    for cell in CELLS:
        signals = small / "signals"
        enh_signal.append(window_means(signals / f"{cell}-H3K27ac.bigwig", distal["enhancer_chrom"], distal["enhancer_start"], distal["enhancer_end"]))
        prom_signal.append(window_means(signals / f"{cell}-H3K4me3.bigwig", distal["chrom"], distal["tss"] - 1_000, distal["tss"] + 1_000))
        level.append(np.log2(expression.loc[distal["gene_id"], cell].to_numpy() + 1))
    enh_signal, prom_signal, level = map(np.concatenate, (enh_signal, prom_signal, level))
    assert len(level) >= 60
    assert spearman(enh_signal, level) > 0.5
    assert abs(spearman(prom_signal, level)) < 0.3


def test_distal_genes_have_poised_promoters_a_class_without_a_level(small, tables):
    # H3K4me3 as at a mid-level active promoter, but no acetylation: recognisable, not readable.
    truth, expression = tables
    signals = small / "signals"
    distal = truth[truth["distal_driven"] == 1]
    expressed = truth[(truth["distal_driven"] == 0) & (expression["E003"].to_numpy() >= 4.0)]

    def at_tss(genes, mark):
        return window_means(signals / f"E003-{mark}.bigwig", genes["chrom"], genes["tss"] - 1_000, genes["tss"] + 1_000)

    k4_distal, k4_expressed = at_tss(distal, "H3K4me3"), at_tss(expressed, "H3K4me3")
    assert np.median(k4_distal) > 0.5 * np.median(k4_expressed)
    for mark in ("H3K27ac", "H3K9ac"):
        assert np.median(at_tss(distal, mark)) < 0.1 * np.median(at_tss(expressed, mark))


def test_driver_link_is_in_every_cell_and_links_do_not_mark_distal_genes(small, tables):
    truth, _ = tables
    distal = truth[truth["distal_driven"] == 1].set_index("gene_id")
    for cell in CELLS:
        bedpe = read_bedpe(small / "interactions" / f"{cell}.bedpe")
        drivers = bedpe.merge(distal, left_on="name", right_index=True)
        hits = drivers[(drivers["s2"] < drivers["enhancer_end"]) & (drivers["e2"] > drivers["enhancer_start"])]
        assert set(hits["name"]) == set(distal.index)
        linked = set(bedpe["name"])
        non_distal_linked = linked - set(distal.index)
        assert len(non_distal_linked) > 0.5 * (len(truth) - len(distal))
        # Partner regions sit 25-200 kb away for driver and decoy links alike.
        distance = (bedpe["s2"] + bedpe["e2"]) / 2 - bedpe["s1"]
        assert distance.abs().between(20_000, 205_000).all()


@pytest.mark.slow
def test_default_size_fills_every_fold_group(tmp_path):
    out = synthetic.generate(tmp_path / "default")
    tss = pd.read_csv(out / "tss.bed", sep="\t", header=None)
    groups = [{1, 5, 6, 8, 14, "Y"}, {7, 10, 11, 12, 15, 21}, {2, 3, 4, 16, 18, 20}, {9, 13, 17, 19, 22, "X"}]
    for group in groups:
        names = {f"chr{c}" for c in group}
        assert tss[0].isin(names).sum() >= 100
    sizes = pd.read_csv(out / "chrom.sizes", sep="\t", header=None)
    assert (sizes[1] >= 7_000_000).all()


def test_a_track_does_not_depend_on_the_other_marks(tmp_path):
    both = synthetic.generate(tmp_path / "both", seed=4, **TINY)
    alone = synthetic.generate(tmp_path / "alone", seed=4, **{**TINY, "marks": ("H3K27ac",)})
    assert (both / "signals/E003-H3K27ac.bigwig").read_bytes() == (alone / "signals/E003-H3K27ac.bigwig").read_bytes()
    assert not (alone / "signals/E003-H3K4me3.bigwig").exists()


# ----------------------------------------------------------------------------- element table


def test_element_table_lists_each_expressed_distal_gene_driver_and_decoys(small, tables):
    truth, expression = tables
    elements = pd.read_csv(small / "elements.tsv", sep="\t")
    assert list(elements.columns[:6]) == ["chrom", "start", "end", "gene", "significant", "effect_size"]
    distal = truth.set_index("gene_id")["distal_driven"] == 1
    assert distal.loc[elements["gene"]].all()
    for cell in CELLS:
        rows = elements[elements["cell"] == cell]
        expressed = set(expression.index[(expression[cell] >= 0.5).to_numpy() & distal.loc[expression.index].to_numpy()])
        assert set(rows["gene"]) == expressed
        per_gene = rows.groupby("gene")
        assert (per_gene.size() == 4).all() and (per_gene["significant"].sum() == 1).all()
        drivers = rows[rows["significant"] == 1].set_index("gene")
        t = truth.set_index("gene_id").loc[drivers.index]
        assert (drivers["start"] == t["enhancer_start"]).all() and (drivers["end"] == t["enhancer_end"]).all()
        assert (drivers["effect_size"] == -1.0).all() and (rows.loc[rows["significant"] == 0, "effect_size"] == 0).all()
        # linked: the element's own link is a row of that cell's BEDPE (every driver's is); each
        # BEDPE row of a listed gene is the link of exactly one of its listed elements
        bedpe = read_bedpe(small / "interactions" / f"{cell}.bedpe")
        for _, row in rows[rows["linked"] == 1].iterrows():
            anchors = bedpe[bedpe["name"] == row["gene"]]
            assert ((anchors["s2"] < row["end"]) & (anchors["e2"] > row["start"])).any(), row.to_dict()
        assert rows["linked"].sum() == bedpe["name"].isin(set(rows["gene"])).sum()
        assert drivers["linked"].all()
        assert rows["distance_bp"].abs().between(25_000, 200_000).all()


def test_write_elements_adds_the_same_table_to_an_existing_folder(tmp_path):
    out = synthetic.generate(tmp_path / "ds", seed=5, **TINY)
    written = (out / "elements.tsv").read_bytes()
    others = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "elements.tsv"}
    (out / "elements.tsv").unlink()
    assert synthetic.write_elements(out) == out / "elements.tsv"
    assert (out / "elements.tsv").read_bytes() == written
    assert {p: p.read_bytes() for p in others} == others
    # ensure_synthetic adds it to a matching folder written before elements.tsv existed
    (out / "elements.tsv").unlink()
    stamp = (out / "synthetic.json").stat().st_mtime_ns
    assert synthetic.ensure_synthetic(out, seed=5, **TINY) == out
    assert (out / "elements.tsv").read_bytes() == written and (out / "synthetic.json").stat().st_mtime_ns == stamp
    # a folder that cannot take it is still used (training does not need the table)
    (out / "elements.tsv").unlink()
    (out / "tss.bed").write_text((out / "tss.bed").read_text() + "\n")
    assert synthetic.ensure_synthetic(out, seed=5, **TINY) == out and not (out / "elements.tsv").exists()


def test_write_elements_refuses_a_folder_it_did_not_write(tmp_path):
    out = synthetic.generate(tmp_path / "ds", seed=5, **TINY)
    with pytest.raises(InputError, match="not a synthetic dataset folder"):
        synthetic.write_elements(tmp_path)
    (out / "tss.bed").write_text((out / "tss.bed").read_text().replace("SYN000001", "EDITED"))
    with pytest.raises(InputError, match="tss.bed differ"):
        synthetic.write_elements(out)
    manifest = json.loads((out / "synthetic.json").read_text())
    (out / "synthetic.json").write_text(json.dumps({**manifest, "format_version": 2}))
    with pytest.raises(InputError, match="format 2"):
        synthetic.write_elements(out)
