"""epx.explain (issue 13, parts 2-4): attribution, attention and in-silico perturbation.

Tiny finished jobs (``trainer=debug``, narrow nets, GraphReg on 300 kb windows) are trained
in-process on the small synthetic folder; their records are given the overrides a Hydra run
would have recorded, so ``ExplainJob.load`` rebuilds them from the checkpoint as it does a
user's job. Exact values come from a hand-set linear net (IG with a zero baseline = w . x).
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pyBigWig
import pytest
import torch

from conftest import write_folder
from epx.config import compose
from epx.errors import InputError
from epx.explain import (
    METHODS, ExplainJob, attribute, attribution_bigwigs, gene_tracks, graph_attention, mark_tracks, pcre_table, perturb, profile,
)
from epx.models.chromoformer import Chromoformer
from epx.record import JobRecord
from epx.run import train
from test_train import job_cfg

MARKS = "H3K4me3+H3K27ac+H3K36me3"
CHROMOFORMER = [
    "model=chromoformer", "+model.net.d_emb=16", "+model.net.embed_ff=16", "+model.net.pairwise_ff=16", "+model.net.regulation_layers=2",
    "+model.net.regulation_heads=4", "+model.net.regulation_d=32", "+model.net.regulation_ff=16", "+model.net.d_head=16",
]
WINDOWS = ["model.net.d=16", "model.inputs.window_bp=300000", "model.inputs.step_bp=100000"]
MODELS = {
    "promoter_cnn": ["model=promoter_cnn"],
    "linear": ["model=linear"],
    "chromoformer": CHROMOFORMER,
    "graphreg_gatv2": ["model=graphreg_gatv2", *WINDOWS],
    "epi_cnn": ["model=epi_cnn", *WINDOWS],
}


@pytest.fixture(scope="module")
def jobs(small_synthetic, tmp_path_factory):
    """{model: finished job dir}, trained one debug step each."""
    root = tmp_path_factory.mktemp("explain")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    out = {}
    for model, extra in MODELS.items():
        overrides = [
            "dataset=folder", f"dataset.root={small_synthetic}", f"paths.data_dir={root / model / 'data'}",
            f"paths.cache_dir={root / 'shared_cache'}", "logger=none", "trainer=debug", f"mark={MARKS}", *extra,
        ]
        train(job_cfg(root / model, small_synthetic, "trainer=debug", f"mark={MARKS}", *extra))
        record = JobRecord.read(root / model / "job")
        record.overrides = overrides  # what Hydra records for a launched job
        record.write(root / model / "job")
        out[model] = root / model / "job"
    return out


@pytest.fixture(scope="module")
def loaded(jobs):
    cache = {}

    def load(model):
        if model not in cache:
            cache[model] = ExplainJob.load(jobs[model])
        return cache[model]

    return load


# -- loading ---------------------------------------------------------------------------------


def test_load_rebuilds_the_job_in_eval_mode_with_its_predictions(loaded, jobs):
    job = loaded("promoter_cnn")
    assert job.model == "promoter_cnn" and job.marks == ("H3K4me3", "H3K36me3", "H3K27ac") and not job.net.training
    rows = job.rows("test")
    assert len(rows) == job.record.n_genes["test"] and set(job.dm.split.iloc[rows]) == {"test"}
    assert job.expressed(rows).dtype == bool and job.expressed(rows).tolist() == job.genes["label"].iloc[rows].astype(bool).tolist()
    batch = job.adapter.batch(rows)
    with torch.no_grad():
        pred = job.adapter.forward_genes(batch.inputs, batch.extra).numpy()
    csv = pd.read_csv(jobs["promoter_cnn"] / "predictions.csv").set_index("gene_id")
    np.testing.assert_allclose(pred, csv.loc[job.gene_ids(rows), "prediction"].to_numpy(), rtol=1e-5, atol=1e-6)


def test_a_job_without_checkpoint_or_unfinished_is_refused(jobs, tmp_path):
    copy = tmp_path / "copied"
    copy.mkdir()
    record = JobRecord.read(jobs["linear"])
    record.checkpoint = str(tmp_path / "gone" / "best.ckpt")
    record.write(copy)
    with pytest.raises(InputError, match="no checkpoint found"):
        ExplainJob.load(copy)
    record.status = "running"
    record.write(copy)
    with pytest.raises(InputError, match="status is 'running'"):
        ExplainJob.load(copy)
    with pytest.raises(InputError):
        ExplainJob.load(tmp_path / "not_a_job")


def test_a_cross_cell_job_is_explained_on_its_training_cell_unless_asked(jobs, tmp_path):
    copy = tmp_path / "cross"
    shutil.copytree(jobs["linear"], copy)
    record = JobRecord.read(copy)
    record.test_cell, record.overrides = "E114", [*record.overrides, "test_cell=E114"]
    record.write(copy)
    job = ExplainJob.load(copy)
    assert job.dm.test_cell is None and job.dm.cell == "E003" and len(job.rows("test")) == record.n_genes["test"]
    own = ExplainJob.load(copy, cfg=compose(record.overrides))  # a job explaining itself with its own config
    assert own.dm.test_cell is None and own.dm.cell == "E003"
    other = ExplainJob.load(copy, overrides=["cell=E114"])
    assert other.dm.cell == "E114" and not np.array_equal(other.expressed(other.rows("all")), job.expressed(job.rows("all")))


# -- attribution -----------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["promoter_cnn", "chromoformer", "graphreg_gatv2", "epi_cnn"])
def test_integrated_gradients_are_complete_within_5_percent_per_gene(loaded, model):
    job = loaded(model)
    n = 2 if model in ("graphreg_gatv2", "epi_cnn") else 4
    rows = job.rows("test")[:n]
    a = attribute(job, rows, n_steps=32)
    assert set(a.inputs) == set(job.adapter.input_names) and len(a.rows) == n
    for name, values in a.inputs.items():
        assert values.shape[0] == n and values.shape[-2] == 3  # (N, [I,] M, L)
    assert np.all(np.abs(a.delta) < 0.05), a.delta
    diff = a.prediction - a.baseline
    clear = np.abs(diff) >= 0.5 * a.magnitude  # attributions that do not cancel: plain relative error
    assert np.all(np.abs(a.total - diff)[clear] <= 0.05 * np.abs(diff)[clear])


@pytest.mark.parametrize("method", sorted(METHODS))
def test_attribution_of_a_hand_set_linear_net_is_w_times_x(loaded, method):
    job = loaded("linear")
    torch.manual_seed(0)
    w = torch.randn_like(job.net.linear.weight)
    with torch.no_grad():
        job.net.linear.weight.copy_(w)
        job.net.linear.bias.fill_(0.3)
    rows = job.rows("test")[:5]
    x = job.adapter.batch(rows).inputs["x"].numpy()
    a = attribute(job, rows, method=method, n_steps=4)
    expected = w.numpy().reshape(1, *x.shape[1:]) * x
    np.testing.assert_allclose(a["x"], expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(a.prediction, expected.reshape(5, -1).sum(1) + 0.3, rtol=1e-5)
    np.testing.assert_allclose(a.baseline, 0.3, rtol=1e-6)
    assert np.all(np.abs(a.delta) < 1e-4)


def test_unknown_method_is_refused(loaded):
    with pytest.raises(InputError, match="unknown attribution method 'shap'; choose one of ig"):
        attribute(loaded("linear"), [0], method="shap")


def test_promoter_profile_averages_oriented_positions_per_group(loaded):
    job = loaded("promoter_cnn")
    rows = job.rows("test")[:10]
    a = attribute(job, rows, n_steps=8)
    p = profile(a, job)
    assert list(p.columns) == ["input", "resolution_bp", "slot", "mark", "offset_bp", "group", "attribution", "abs_attribution", "n_genes"]
    expressed = job.expressed(rows)
    assert set(p.group) == {"all"} | ({"expressed"} if expressed.any() else set()) | ({"not_expressed"} if (~expressed).any() else set())
    everyone = p[(p.group == "all") & (p.mark == "H3K36me3")].set_index("offset_bp")
    assert everyone.index.tolist() == list(range(-3000, 3000, 100)) and (everyone.n_genes == 10).all()
    k36 = job.mark_index("H3K36me3")
    np.testing.assert_allclose(everyone["attribution"], a["x"][:, k36].mean(axis=0), rtol=1e-5, atol=1e-9)
    coarse = profile(a, job, resolution_bp=1000)
    c = coarse[(coarse.group == "all") & (coarse.mark == "H3K36me3")].set_index("offset_bp")["attribution"]
    np.testing.assert_allclose(c.to_numpy(), a["x"][:, k36].reshape(10, 6, 10).sum(axis=2).mean(axis=0), rtol=1e-5, atol=1e-9)


@pytest.fixture(scope="module")
def mirror_folder(tmp_path_factory):
    """Gene pairs whose marks are mirror images about the TSS: one gene on +, its twin on −."""
    rng = np.random.default_rng(3)
    sizes = {c: 60_000 for c in ("chr1", "chr2", "chr3", "chr4")}
    marks = MARKS.split("+")
    signal = {m: {c: np.zeros(n, np.float32) for c, n in sizes.items()} for m in marks}
    genes = []
    for c in sizes:
        for pair in range(2):
            plus_bin, minus_bin = 50 + pair * 240, 170 + pair * 240  # TSS base bins, windows 12 kb apart
            pattern = {m: rng.gamma(1.0, 3.0, 60).astype(np.float32) for m in marks}  # oriented bins -30..29
            for m in marks:
                for o in range(-30, 30):
                    signal[m][c][(plus_bin + o) * 100 : (plus_bin + o + 1) * 100] = pattern[m][o + 30]
                    signal[m][c][(minus_bin - o) * 100 : (minus_bin - o + 1) * 100] = pattern[m][o + 30]
            genes += [(f"{c}_p{pair}", c, plus_bin * 100 + 37, "+"), (f"{c}_m{pair}", c, minus_bin * 100 + 61, "-")]
    tss = pd.DataFrame(genes, columns=["gene_id", "chrom", "tss", "strand"])
    expression = pd.DataFrame({"gene_id": tss.gene_id, "E003": np.arange(len(tss), dtype=float)})
    return write_folder(
        tmp_path_factory.mktemp("mirror") / "folder", signals={("E003", m): signal[m] for m in marks}, tss=tss,
        expression=expression, chrom_sizes=sizes,
    )


def test_a_minus_strand_twin_has_the_same_profile_and_a_mirrored_genomic_track(jobs, mirror_folder, tmp_path):
    job = ExplainJob.load(jobs["promoter_cnn"], overrides=["dataset=folder", f"dataset.root={mirror_folder}", f"paths.data_dir={tmp_path}"])
    rows = job.rows("all")
    ids = job.gene_ids(rows)
    plus = rows[np.char.find(ids.astype(str), "_p") > 0]
    minus = rows[np.char.find(ids.astype(str), "_m") > 0]
    assert len(plus) == len(minus) == 8
    a = attribute(job, np.r_[plus, minus], n_steps=8)
    np.testing.assert_allclose(a.select(plus)["x"], a.select(minus)["x"], rtol=1e-5, atol=1e-7)
    p_plus, p_minus = profile(a, job, plus), profile(a, job, minus)
    all_plus = p_plus[p_plus.group == "all"].reset_index(drop=True)
    all_minus = p_minus[p_minus.group == "all"].reset_index(drop=True)
    pd.testing.assert_frame_equal(all_plus, all_minus, rtol=1e-5, atol=1e-7)
    marks = mark_tracks(job, np.r_[plus[:1], minus[:1]], a)
    genes = job.genes.iloc[[plus[0], minus[0]]]
    assert marks[0].start_bp == genes.tss.iloc[0] // 100 * 100 - 3000 and marks[1].start_bp == genes.tss.iloc[1] // 100 * 100 - 2900
    # genomic orientation: the − gene's track is the + gene's read backwards, and the sum over marks too
    np.testing.assert_allclose(marks[1].values, marks[0].values[:, ::-1], rtol=1e-5, atol=1e-7)
    tracks = gene_tracks(job, np.r_[plus[:1], minus[:1]], a)
    np.testing.assert_allclose(tracks[1].values, tracks[0].values[::-1], rtol=1e-5, atol=1e-7)
    assert tracks[0].values.sum() == pytest.approx(a.select(plus[:1]).total[0], rel=1e-4)


def test_graphreg_windows_are_genomic_and_their_profile_is_oriented(loaded):
    job = loaded("graphreg_gatv2")
    rows = job.rows("test")
    genes = job.genes.iloc[rows]
    pick = [rows[(genes.strand == "+").to_numpy()][0], rows[(genes.strand == "-").to_numpy()][0]]
    layout = job.adapter.layouts(pick)["x"]
    for i, strand in enumerate("+-"):
        tss_bin = int(job.genes.tss.iloc[pick[i]]) // 100 * 100
        at = np.flatnonzero(layout.start[i] == tss_bin)[0]
        assert layout.offset_bp[i, at] == 0 and np.all(np.diff(layout.start[i]) == 100)  # genomic, left to right
        assert layout.offset_bp[i, at + 1] == (100 if strand == "+" else -100)  # 5'->3' offsets
    a = attribute(job, pick, n_steps=4)
    p = profile(a, job, resolution_bp=5000)
    assert set(p.resolution_bp) == {5000} and (p.offset_bp % 5000 == 0).all()
    tracks = gene_tracks(job, pick, a)
    assert all(t.start_bp >= 0 and t.bin_bp == 100 for t in tracks)
    np.testing.assert_allclose([t.values.sum() for t in tracks], a.total, rtol=1e-4, atol=1e-7)


def test_chromoformer_gene_track_places_promoter_and_pcres_and_sums_to_the_total(loaded):
    job = loaded("chromoformer")
    rows = job.rows("test")[:6]
    slots = job.adapter.slots(rows)
    assert slots.mask.any()
    a = attribute(job, rows, n_steps=8)
    tracks = gene_tracks(job, rows, a)
    np.testing.assert_allclose([t.values.sum() for t in tracks], a.total, rtol=1e-4, atol=1e-7)
    for t, has, start, end in zip(tracks, slots.mask, slots.start, slots.end):
        if has.any():  # the track reaches every linked pCRE
            assert t.start_bp <= start[has].min() and t.end_bp >= end[has].max()
    p = profile(a, job)
    assert set(p.input) == set(job.adapter.input_names)
    assert set(p[p.input.str.startswith("promoter")].slot) == {-1} and set(p[p.input.str.startswith("pcres")].slot) <= set(range(8))


def test_graphreg_attribution_bigwig_per_mark_holds_the_summed_tracks(loaded, tmp_path):
    job = loaded("graphreg_gatv2")
    rows = job.rows("test")[:2]
    a = attribute(job, rows, n_steps=4)
    paths = attribution_bigwigs(job, rows, a, tmp_path)
    assert sorted(paths) == sorted(job.marks) and all(p.name == f"attribution-ig-{m}.bigwig" for m, p in paths.items())
    chrom = job.genes.chrom.iloc[rows[0]]
    size = job.chrom_sizes()[chrom]
    expected = np.zeros((3, -(-size // 100)))
    for t in mark_tracks(job, rows, a):
        expected[:, t.start_bp // 100 : t.start_bp // 100 + t.values.shape[1]] += t.values
    for m, mark in enumerate(job.marks):
        bw = pyBigWig.open(str(paths[mark]))
        per_bp = np.nan_to_num(np.array(bw.values(chrom, 0, size)))
        bw.close()
        np.testing.assert_allclose(per_bp[::100], expected[m], rtol=1e-5, atol=1e-9)


# -- attention -------------------------------------------------------------------------------


def test_chromoformer_return_attention_leaves_the_output_unchanged_and_sums_to_one():
    torch.manual_seed(0)
    net = Chromoformer(n_marks=3, d_emb=16, embed_ff=16, pairwise_ff=16, regulation_layers=2, regulation_heads=4, regulation_d=32,
                       regulation_ff=16, d_head=8, i_max=4).eval()
    res = (2000, 500, 100)
    mask = torch.tensor([[True, True, False, False], [False] * 4, [True] * 4])
    inputs = dict(
        promoter={r: torch.rand(3, 3, 40_000 // r) for r in res}, pcres={r: torch.rand(3, 4, 3, 40_000 // r) for r in res},
        pcre_bin_mask={r: torch.rand(3, 4, 40_000 // r) > 0.2 for r in res}, pcre_mask=mask, freq=torch.rand(3, 4),
    )
    out, attention = net(**inputs, return_attention=True)
    assert torch.equal(out, net(**inputs))
    for r in res:
        assert attention[r].shape == (3, 2, 4, 5)
        torch.testing.assert_close(attention[r].sum(-1), torch.ones(3, 2, 4))
        assert (attention[r][..., 1:][~mask[:, None, None, :].expand(3, 2, 4, 4)] == 0).all()
        assert (attention[r][1, :, :, 0] == 1).all()  # no pCRE: the promoter attends to itself


def test_pcre_table_has_one_row_per_linked_pcre_with_attention_and_attribution(loaded):
    job = loaded("chromoformer")
    rows = job.rows("test")[:8]
    a = attribute(job, rows, n_steps=4)
    table = pcre_table(job, rows, a)
    slots = job.adapter.slots(rows)
    assert len(table) == slots.mask.sum()
    heads = [f"attention_l{l}_h{h}" for l in range(2) for h in range(4)]
    assert {"gene", "gene_id", "slot", "chrom", "start", "end", "attribution", "attention_mean", *heads} <= set(table.columns)
    assert ((table[heads] >= 0) & (table[heads] <= 1)).all().all()
    assert (table.groupby("gene")[heads].sum() <= 1 + 1e-6).all().all()  # the rest goes to the promoter itself
    np.testing.assert_allclose(table["attention_mean"], table[heads].mean(axis=1), rtol=1e-5)
    expected = sum(a[f"pcres_{r}"].sum(axis=(2, 3)) for r in (2000, 500, 100))
    np.testing.assert_allclose(table["attribution"], expected[np.searchsorted(rows, table.gene), table.slot], rtol=1e-5, atol=1e-8)


def test_graph_attention_lists_each_tss_nodes_edges_with_weights_summing_to_one(loaded):
    job = loaded("graphreg_gatv2")
    rows = job.rows("test")[:6]
    table = graph_attention(job, rows)
    assert list(table.columns) == ["gene", "gene_id", "chrom", "tss_node_start", "neighbour_start", "neighbour_end", "self_loop", "layer", "head", "weight"]
    assert set(table.gene) == set(rows) and set(table.layer) == {0, 1} and set(table["head"]) == set(range(4))
    sums = table.groupby(["gene", "layer", "head"]).weight.sum()
    np.testing.assert_allclose(sums, 1.0, rtol=1e-5)
    assert (table.groupby(["gene", "layer", "head"]).self_loop.sum() == 1).all()
    batch = job.adapter.batch(rows)
    starts, mask = job.adapter.neighbours(batch)
    for i, row in enumerate(rows):
        edges = table[(table.gene == row) & (table.layer == 0) & (table["head"] == 0) & ~table.self_loop]
        assert sorted(edges.neighbour_start) == sorted(starts[i][mask[i]])


@pytest.mark.parametrize("model,asked,message", [
    ("promoter_cnn", graph_attention, "graph attention does not apply to model 'promoter_cnn'"),
    ("epi_cnn", graph_attention, "no graph-attention layers"),
    ("graphreg_gatv2", pcre_table, "does not apply to model 'graphreg_gatv2'.*graph_attention"),
])
def test_attention_that_does_not_apply_is_refused(loaded, model, asked, message):
    with pytest.raises(InputError, match=message):
        asked(loaded(model), loaded(model).rows("test")[:2])


# -- perturbation ----------------------------------------------------------------------------


def test_perturbing_a_hand_set_linear_net_scales_the_signal_not_its_log(loaded):
    job = loaded("linear")
    torch.manual_seed(1)
    w = torch.randn_like(job.net.linear.weight)
    with torch.no_grad():
        job.net.linear.weight.copy_(w)
        job.net.linear.bias.fill_(-0.2)
    rows = job.rows("test")[:4]
    x = job.adapter.batch(rows).inputs["x"].double().numpy()
    factors = np.array([1.0, 0.5, 0.0])
    table = perturb(job, rows, mark="H3K27ac", region="promoter", factors=factors)
    assert list(table.columns) == ["gene", "gene_id", "region", "chunk", "chrom", "start", "end", "factor", "prediction", "delta"]
    assert len(table) == 12 and (table.chunk == 0).all() and (table.region == "promoter").all()
    w = w.double().numpy().reshape(x.shape[1:])
    for f in factors:
        scaled = x.copy()
        m = job.mark_index("H3K27ac")
        scaled[:, m] = np.log(f * np.expm1(x[:, m]) + 1)  # the whole 6 kb window is TSS ± 3 kb
        got = table[table.factor == f].prediction.to_numpy()
        np.testing.assert_allclose(got, (w * scaled).reshape(4, -1).sum(1) - 0.2, rtol=1e-5, atol=1e-5)
    assert (table[table.factor == 1.0].delta == 0).all()
    genes = job.genes.iloc[rows]
    assert (table.end - table.start == 6000).all() and set(table.chrom) == set(genes.chrom)


@pytest.mark.parametrize("model,region,mark", [
    ("promoter_cnn", "promoter", "H3K4me3"),
    ("chromoformer", "pcres", "H3K27ac"),
    ("chromoformer", "flanks", "H3K36me3"),
    ("graphreg_gatv2", "neighbours", "H3K27ac"),
])
def test_perturbation_is_batched_and_equals_a_loop_over_genes(loaded, model, region, mark):
    job = loaded(model)
    rows = job.rows("test")[: 2 if region == "flanks" else 4]
    batched = perturb(job, rows, mark=mark, region=region, batch_size=7)
    looped = pd.concat([t for t in (perturb(job, [r], mark=mark, region=region) for r in rows) if len(t)], ignore_index=True)
    assert len(batched) == len(looped) > 0
    np.testing.assert_allclose(sorted(set(batched.factor)), np.linspace(0, 1, 11))
    pd.testing.assert_frame_equal(batched.drop(columns=["prediction", "delta"]), looped.drop(columns=["prediction", "delta"]))
    np.testing.assert_allclose(batched.prediction, looped.prediction, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(batched[batched.factor == 1.0].delta, 0.0, atol=1e-5)
    if region in ("pcres", "neighbours"):  # each element alone (chunk = slot / rank) and all of them (chunk -1)
        assert -1 in set(batched.chunk)
    if region == "flanks":
        assert sorted(set(batched.chunk)) == list(range(-20_000, 20_000, 2000))


@pytest.mark.parametrize("model,kwargs,message", [
    ("promoter_cnn", dict(mark="H3K27ac", region="pcres"), "region 'pcres' does not apply to model 'promoter_cnn'.*regions that apply: promoter"),
    ("promoter_cnn", dict(mark="H3K27ac", region="flanks"), "'flanks' does not apply to model 'promoter_cnn', which sees TSS ± 3000 bp"),
    ("chromoformer", dict(mark="H3K27ac", region="neighbours"), "regions that apply: promoter .*flanks .*pcres"),
    ("promoter_cnn", dict(mark="H3K9me3", region="promoter"), "mark 'H3K9me3' is not an input of this job"),
    ("promoter_cnn", dict(mark="H3K27ac", region="promoter", factors=[1, -0.5]), "factors must be finite and >= 0"),
])
def test_a_perturbation_that_does_not_apply_is_refused_before_work(loaded, model, kwargs, message, monkeypatch):
    job = loaded(model)
    monkeypatch.setattr(job.adapter, "batch", lambda rows: pytest.fail("work started before the refusal"))
    with pytest.raises(InputError, match=message):
        perturb(job, job.rows("test")[:2], **kwargs)
