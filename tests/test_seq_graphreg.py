"""Seq-GraphReg (separate and end-to-end modes) and its Seq-CNN control, as jobs like any other.

A tiny ``seq_cnn_base`` job (``trainer=debug``, 10 kb chunks, fold 0) on a synthetic folder of
four 500 kb chromosomes with three genes each is the base. The Seq-GraphReg jobs run on 30 kb
windows stepping 10 kb (6 nodes of 5 kb, the middle 2 scored; three chunks of the base each)
with a narrow net (``d=16``) and ``trainer=debug``; the configured 6 Mb geometry is the benchmark's
(``benchmarks/bench_seq_graphreg.py``). These configs name this file as their model contract
(``contract:`` in ``conf/model/*.yaml``), so it checks what ``test_model_contract`` checks of
the others: builder contract and adapter, net shapes, gradients, ``reset_parameters``,
``extra_repr``, a whole job.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from test_train import job_cfg

from epx.config import compose
from epx.data.inputs.protocol import InputBuilder, problems
from epx.data.inputs.seq_graphreg import SeqGraphRegInputs
from epx.data.sources import SOURCES
from epx.errors import InputError
from epx.explain.adapters import ADAPTERS
from epx.models.seq_cnn_control import SeqCNN
from epx.models.seq_graphreg import SeqGraphReg, SeqGraphRegEndToEnd
from epx.record import JobRecord
from epx.run import train
from epx.train.joint import JointPoissonCounts, alpha

# Four 500 kb chromosomes with three genes each (chr1 is fold 0's test chromosome): a window
# is 30 kb (three 10 kb chunks of the base), so the base runs over ~360 kb of DNA in all
FOLDER = {"n_chroms": 4, "chrom_length": 500_000, "genes_per_chrom": 3, "cells": ("E003", "E114")}
BASE = ["model=seq_cnn_base", "mark=H3K4me3+H3K27ac", "model.inputs.chunk_bp=10000", "model.batch_size=2",
        "model.eval_batch_size=2", "trainer=debug", "data.max_dropped_fraction=1.0",
        "model.net.widths=[16,16,16,16]"]  # a narrow base (experiment=seq_cnn_base_cpu's option): its net is rebuilt from the record
WINDOWS = ["model.inputs.window_bp=30000", "model.inputs.step_bp=10000"]
NODES, MIDDLE, BINS = 6, 2, 300
# a builder's InputError raised while Hydra builds it reaches the caller inside Hydra's wrapper
BUILD_ERRORS = InputError  # epx.run unwraps Hydra's InstantiationException: the user sees the InputError itself


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from epx.synthetic.generate import generate

    return generate(tmp_path_factory.mktemp("seqsynth") / "tiny", seed=1, **FOLDER)


@pytest.fixture(scope="module")
def base_job(folder, tmp_path_factory):
    root = tmp_path_factory.mktemp("seqbase")
    record = train(job_cfg(root, folder, *BASE))
    assert record.finished, record.error  # degenerate: one test batch of two chunks holds no gene
    return root / "job"


def _job(root, folder, base, model, *extra):
    return job_cfg(root, folder, f"model={model}", f"model.inputs.base={base}", "trainer=debug", "mark=H3K4me3", *WINDOWS,
                   "model.net.d=16", "data.max_dropped_fraction=1.0", *extra)


@pytest.fixture(scope="module")
def sg_job(folder, base_job, tmp_path_factory):
    root = tmp_path_factory.mktemp("seqgraphreg")
    record = train(_job(root, folder, base_job, "seq_graphreg"))
    assert record.finished, record.error
    return root / "job"


def _builder(base_job, **kw) -> SeqGraphRegInputs:
    cfg = compose(["model=seq_graphreg", f"model.inputs.base={base_job}", *WINDOWS, "fold=0"])
    return instantiate(cfg.model.inputs, **kw)


# ----------------------------------------------------------------------------- separate mode


def test_a_separate_job_records_graphreg_metrics_and_predicts_every_split(sg_job, base_job):
    record = JobRecord.read(sg_job)
    assert record.model == "seq_graphreg" and record.primary_metric == "pearson" and record.n_params > 0
    assert {"pearson", "spearman", "mse", "bin_nll_tss", "bin_pearson_expressed_contact"} <= set(record.test)
    assert math.isfinite(record.test["bin_nll_tss"])
    preds = pd.read_csv(sg_job / "predictions.csv")
    assert set(preds.split) == {"train", "val", "test"} and preds.gene_id.is_unique and (preds.prediction >= 0).all()
    assert set(preds.loc[preds.split == "test", "chrom"]) == {"chr1"}  # fold 0's test chromosome of the four
    assert list((base_job / "bottlenecks").glob("bottlenecks-*.h5")), "the bottlenecks are cached with the base"


def test_the_cache_holds_the_bases_bottleneck_and_is_computed_once(base_job, folder, sg_job):
    import h5py

    from epx.data.genome import GenomeSequence
    from epx.io.fasta import FastaFile

    builder = _builder(base_job)
    cache = builder.cache
    with h5py.File(cache.path, "r", locking=False) as f:
        group = next(k for k in f if k.startswith("chr2__"))
        done = np.flatnonzero(f[group]["done"][:])
    assert 0 < len(done) < 50, "only the chunks of windows with genes are computed"
    with FastaFile(folder / "genome.fa") as fasta:
        genome = GenomeSequence({"chr2": fasta.codes("chr2")})
    # the base net's own bottleneck of that chunk, to float16 precision
    onehot = genome.onehot(np.array(["chr2"], dtype=object), np.array([done[0] * 10_000]), 10_000)
    with torch.no_grad():
        direct = builder.base.net.bottleneck(torch.from_numpy(onehot))[0].numpy()
    np.testing.assert_allclose(cache.read(genome, "chr2", int(done[0]), 1), direct, rtol=1e-2, atol=1e-2)
    assert cache.ensure(genome, "chr2", done, builder.compute) == 0, "nothing is computed twice"


def test_a_window_reads_its_chunks_side_by_side_and_n_past_the_ends(tmp_path):
    from epx.data.genome import GenomeSequence
    from epx.data.inputs.bottleneck_cache import BottleneckCache

    rng = np.random.default_rng(0)
    genome = GenomeSequence({"c": rng.integers(0, 4, 2_500).astype(np.uint8)})
    calls = []

    def per_bin_gc(onehot):  # a stand-in base: (K, 4, 1000) -> (K, 2, 10), G+C and A+T per 100 bp bin
        calls.append(len(onehot))
        k = onehot.shape[0]
        bins = onehot.reshape(k, 4, 10, 100).sum(-1)
        return np.stack([bins[:, 1] + bins[:, 2], bins[:, 0] + bins[:, 3] + 1.0], axis=1)

    cache = BottleneckCache(tmp_path / "b.h5", chunk_bp=1000, channels=2, dtype="float32")
    assert cache.ensure(genome, "c", np.arange(-1, 4), per_bin_gc) == 4  # chunks 0, 1, 2 and the N chunk
    window = cache.read(genome, "c", -1, 5)  # one chunk before the start, two past the end
    assert window.shape == (2, 50)
    np.testing.assert_array_equal(window[:, :10], [[0] * 10, [1] * 10])  # N: no base, the stand-in's bias
    np.testing.assert_array_equal(window[:, 40:], window[:, :10])
    expect = per_bin_gc(genome.onehot(np.array(["c"] * 3, dtype=object), np.array([0, 1000, 2000]), 1000))
    np.testing.assert_array_equal(window[:, 10:40], expect.transpose(1, 0, 2).reshape(2, 30))
    assert cache.ensure(genome, "c", np.arange(-1, 4), per_bin_gc) == 0
    cache.close()
    other = GenomeSequence({"c": rng.integers(0, 4, 2_500).astype(np.uint8)})  # another sequence, same name
    assert cache.ensure(other, "c", np.arange(3), per_bin_gc) == 3, "a chromosome's entry is keyed by its sequence"


def test_the_control_and_a_second_job_reuse_the_cache(folder, base_job, sg_job, tmp_path):
    record = train(_job(tmp_path, folder, base_job, "seq_cnn"))
    assert record.finished and record.model == "seq_cnn"
    assert math.isfinite(record.test["bin_nll_tss"])


@pytest.mark.parametrize("base,match", [
    (None, "model.inputs.base is not set"),
    ("/no/such/job", "no such job dir or checkpoint"),
])
def test_a_missing_base_is_one_error_before_any_work(folder, tmp_path, base, match):
    cfg = _job(tmp_path, folder, "x", "seq_graphreg", f"model.inputs.cache_dir={tmp_path / 'cache'}")
    cfg.model.inputs.base = base
    with pytest.raises(BUILD_ERRORS, match=match):
        train(cfg)
    assert JobRecord.read(tmp_path / "job").status == "failed" and not (tmp_path / "cache").exists()


def test_an_unreadable_or_other_fold_base_is_refused(folder, base_job, tmp_path):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(BUILD_ERRORS, match="not a readable checkpoint"):
        train(_job(tmp_path / "a", folder, junk, "seq_graphreg"))
    with pytest.raises(BUILD_ERRORS, match="trained on fold 0, this job is fold 1.*leak"):
        train(_job(tmp_path / "b", folder, base_job, "seq_graphreg", "fold=1"))
    assert JobRecord.read(tmp_path / "b" / "job").status == "failed"


def test_test_chromosomes_the_base_trained_on_are_refused(base_job):
    builder = _builder(base_job)
    assert builder.base.test_chroms == ("chr1",)
    genes = pd.DataFrame({"chrom": ["chr1", "chr2"], "tss": [10, 20]})
    context = type("C", (), {"genes": genes})()
    builder.check_split(context, np.array([0]), "test")
    with pytest.raises(InputError, match=r"tests on \['chr2'\], which the base trained or validated on"):
        builder.check_split(context, np.array([0, 1]), "test")


def test_the_builders_satisfy_the_input_contract_and_have_adapters(base_job):
    builders = [_builder(base_job), instantiate(compose(["model=seq_graphreg_e2e", *WINDOWS, "model.inputs.chunk_bp=10000"]).model.inputs)]
    genes = pd.DataFrame({"gene_id": ["a", "b"], "chrom": ["chr1", "chr1"], "tss": [15_000, 95_000], "strand": ["+", "-"]})
    for builder in builders:
        assert isinstance(builder, InputBuilder) and problems(builder, tuple(SOURCES)) == []
        assert any(cls in ADAPTERS for cls in type(builder).__mro__)
        spans = builder.intervals(genes)
        assert ((spans.start <= genes.tss) & (genes.tss < spans.end)).all()
    assert builders[0].sources == ("genome", "contacts"), "separate mode builds no histone cache"
    with pytest.raises(InstantiationException, match="must be whole chunks"):  # Hydra's own instantiate wraps it
        instantiate(compose(["model=seq_graphreg_e2e", "model.inputs.window_bp=35000", "model.inputs.step_bp=15000",
                             "model.inputs.chunk_bp=10000"]).model.inputs)


def test_explain_attributes_the_bottleneck_bins(sg_job):
    from epx.explain.attribution import attribute
    from epx.explain.job import ExplainJob

    job = ExplainJob.load(sg_job)
    rows = job.rows("test")[:2]
    result = attribute(job, rows, method="input_x_gradient")
    assert result["bottleneck"].shape == (2, 64, BINS)
    layout = job.adapter.layouts(rows)["bottleneck"]
    assert layout.bin_bp == 100 and layout.start.shape == (2, BINS)


def test_the_dna_view_predicts_as_the_job_and_recomputes_only_edited_chunks(sg_job):
    """Seen from its DNA, a separate-mode job predicts exactly what it predicts from its cache;
    an edit recomputes only the edited chunk, and equals the base run over the edited window."""
    from epx.explain.job import ExplainJob
    from epx.explain.onehot import onehot_adapter, onehot_layout, onehot_name, predict, predict_edited

    job = ExplainJob.load(sg_job)
    view = onehot_adapter(job)
    assert onehot_name(job) == "dna" and view is onehot_adapter(job), "one view per job: its memos persist"
    rows = job.rows("test")[:2]
    assert onehot_layout(job, rows).bin_bp == 1
    batch, own = view.batch(rows), job.adapter.batch(rows)
    with torch.no_grad():
        expected = job.adapter.forward_genes(own.inputs, own.extra).double().numpy()
    np.testing.assert_array_equal(predict(view, batch, 1), expected)
    calls = []
    base = view.base_net
    original = base.bottleneck
    base.bottleneck = lambda x: calls.append(x.shape[0]) or original(x)
    try:
        def knock(x, lo, hi):
            x[:, :, 15_000:15_050] = 0  # 50 bases of the middle 10 kb chunk set to N

        edited = predict_edited(view, batch, "dna", np.array([0]), knock, 1)
        again = predict_edited(view, batch, "dna", np.array([0]), knock, 1)

        def other(x, lo, hi):  # another edit of the same chunk and the same window
            x[:, :, 15_000:15_050] = 0
            x[:, 0, 15_020] = 1  # one base of the 50 left as A: a different edit by one position

        different = predict_edited(view, batch, "dna", np.array([0]), other, 1)
    finally:
        base.bottleneck = original
    assert calls == [1, 1], "one chunk recomputed per distinct edit, once: the repeated edit is the memo's"
    np.testing.assert_array_equal(edited, again)
    assert different[0] != edited[0], "the memo tells edits of the same chunk apart"
    # the same edit through the base over the whole window, as a cache would hold it
    dna = batch.inputs["dna"][:1].float()
    knock(dna, 0, 1)
    with torch.no_grad():
        chunks = dna.view(1, 4, 3, 10_000).permute(0, 2, 1, 3).reshape(3, 4, 10_000)
        b = original(chunks).to(torch.float16).float().permute(1, 0, 2).reshape(1, 64, -1)
        one = {k: v[:1] for k, v in batch.extra.items()}
        counts = job.net(bottleneck=b, edge_index=view.edge_index(one))
        direct = torch.log2(counts.gather(1, one["tss_node"][:, None])[:, 0] + 1).double().numpy()
    np.testing.assert_allclose(edited, direct, rtol=1e-6)


def test_genes_whose_tss_node_has_no_sequence_are_counted_and_named(caplog):
    from types import SimpleNamespace

    from epx.data.genome import GenomeSequence
    from epx.data.inputs.seq_graphreg import report_unsequenced, unsequenced_genes

    codes = np.zeros(40_000, np.uint8)
    codes[10_000:20_000] = 4  # a 10 kb assembly gap: node 2 and 3 of a window at 0
    genome = GenomeSequence({"chr1": codes})
    # two windows of chr1 (at 0 and at -10 kb, past the start: N there), genes at local nodes
    table = SimpleNamespace(chrom=["chr1", "chr1"], start_bp=np.array([0, -10_000]), n_genes=np.array([3, 1]),
                            gene_node=np.array([1, 2, 3, 0]), gene=np.array([0, 1, 2, 3]))
    assert unsequenced_genes(genome, table, node_bp=5_000).tolist() == [False, True, True, True]
    genes = pd.DataFrame({"gene_id": ["g0", "g1", "g2", "g3"], "chrom": "chr1", "tss": [7_000, 12_000, 17_000, 0]})
    with caplog.at_level("WARNING", logger="epx.data.inputs.seq_graphreg"):
        n = report_unsequenced(SimpleNamespace(genome=genome, genes=genes), table, node_bp=5_000, split="test")
    assert n == 3
    message = " ".join(r.getMessage() for r in caplog.records)
    assert "3 of 4 genes have no sequence" in message and "g1 (chr1:12000)" in message and "g0" not in message


def test_knockout_and_variants_run_on_a_separate_mode_job(sg_job, folder):
    from epx.explain.job import ExplainJob
    from epx.explain.knockout import knockout
    from epx.explain.motifs import MotifSet
    from epx.explain.onehot import onehot_adapter
    from epx.explain.variants import score_variants
    from epx.io.vcf import read_snvs

    job = ExplainJob.load(sg_job)
    rows = job.rows("test")
    motifs = MotifSet.load(folder / "motifs.meme", None, pvalue=1e-4)
    table = knockout(job, rows, motifs)
    assert len(table) == len(rows) * len(motifs.names)
    # genes sharing a window are scanned once: the counts are each gene's own scan's
    one = onehot_adapter(job).batch(rows[-1:])
    own = np.bincount(motifs.scan_onehot(one.inputs["dna"]).motif, minlength=len(motifs.names))
    assert table.loc[table.gene == rows[-1]].sort_values("motif")["n_hits"].tolist() == [own[motifs.names.index(m)] for m in sorted(motifs.names)]
    assert (table.loc[table.n_hits == 0, "delta"] == 0).all()
    assert np.isfinite(table["delta"]).all() and (table.n_hits > 0).any()
    view = onehot_adapter(job)
    snvs = read_snvs(folder / "variants.vcf", job.chrom_sizes())
    scores = score_variants(job, snvs, rows)
    assert scores.counts["scored_pairs"] == len(scores.table) and np.isfinite(scores.table["delta"]).all()
    assert len(view._windows) <= view.WINDOW_MEMO


def test_predict_rescores_it_on_another_cell_from_the_cached_bottlenecks(sg_job, base_job):
    from epx.predict import predict

    cache = next((base_job / "bottlenecks").glob("bottlenecks-*.h5"))
    before = cache.stat().st_mtime_ns
    record = predict(sg_job, ["cell=E114"])
    assert record.finished and record.cell == "E114" and record.model == "seq_graphreg"
    other = pd.read_csv(sg_job / "predict" / "cell=E114" / "predictions.csv")
    assert set(other.split) == {"train", "val", "test"}
    assert cache.stat().st_mtime_ns == before, "the same DNA and base: nothing is recomputed or rewritten"


# ----------------------------------------------------------------------------- nets


def _graph(n_nodes: int) -> torch.Tensor:
    """(2, E) edges over two windows of ``n_nodes`` nodes each, both directions."""
    pairs = torch.tensor([[0, n_nodes - 1], [1, n_nodes - 2], [n_nodes, 2 * n_nodes - 1]])
    return torch.cat([pairs.T, pairs.T.flip(0)], dim=1)


NETS = {
    # bottleneck: (B, 64, L), edge_index over B * N nodes -> (B, N), N = L // 50
    "SeqGraphReg": (lambda: SeqGraphReg(d=16, heads=2, gat_dim=8),
                    lambda: {"bottleneck": torch.randn(2, 64, 1000), "edge_index": _graph(20)}, "d=16"),
    "SeqCNN": (lambda: SeqCNN(d=16, channels=8, n_dilated_blocks=2),
               lambda: {"bottleneck": torch.randn(2, 64, 1000)}, "n_dilated_blocks=2"),
    # x: (B, 4, W) -> counts (B, W / 5000), tracks (B, T, W / 100)
    "SeqGraphRegEndToEnd": (lambda: SeqGraphRegEndToEnd(n_tracks=2, chunk_bp=5000, d=16, heads=2, gat_dim=8, n_dilated=2),
                            lambda: {"x": torch.nn.functional.one_hot(torch.randint(0, 4, (2, 10_000)), 4).float().transpose(1, 2),
                                     "edge_index": _graph(2)}, "n_tracks=2"),
}


def _counts(out):
    return out["counts"] if isinstance(out, dict) else out


@pytest.mark.parametrize("name", NETS)
def test_net_shapes_gradients_reset_and_repr(name):
    make, inputs, key = NETS[name]
    torch.manual_seed(0)
    net = make().train()
    batch = inputs()
    out = net(**batch)
    counts = _counts(out)
    n_nodes = 20 if name != "SeqGraphRegEndToEnd" else 2
    assert counts.shape == (2, n_nodes) and (counts >= 0).all()
    if isinstance(out, dict):
        assert out["tracks"].shape == (2, 2, 100)
    loss = counts.mean() + (out["tracks"].mean() if isinstance(out, dict) else 0)
    loss.backward()
    missing = [n for n, p in net.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without a gradient: {missing}"
    other = make()
    torch.manual_seed(3)
    net.reset_parameters()
    torch.manual_seed(3)
    other.reset_parameters()
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), other.state_dict().values()))
    assert key in net.extra_repr() and net.extra_repr() in repr(net)


def test_seq_graphreg_takes_the_papers_attention_and_layer_order():
    """model.net.attention=published / layer_order=published: the paper's GAT layer and Keras order, as Epi-GraphReg."""
    from epx.models.graphreg_gat import PublishedGATConv

    torch.manual_seed(0)
    net = SeqGraphReg(d=16, heads=2, gat_dim=8, attention="published", layer_order="published").eval()
    assert sum(isinstance(m, PublishedGATConv) for m in net.modules()) == net.n_gat_layers
    edges = _graph(20)
    counts, attention = net(bottleneck=torch.randn(2, 64, 1000), edge_index=edges, return_attention=True)
    assert counts.shape == (2, 20) and (counts >= 0).all() and len(attention) == net.n_gat_layers
    for layer_edges, alpha in attention:
        assert layer_edges.shape[0] == 2 and alpha.shape[0] == layer_edges.shape[1] and torch.isfinite(alpha).all()


@pytest.mark.slow  # two forward and backward passes of the base: ~10-20 s on 2 busy cores
def test_checkpointing_changes_memory_not_results():
    """Checkpointed groups of one chunk give the base the same outputs and gradients (dropout
    off, BatchNorm on its running statistics, so grouping chunks changes no statistic)."""
    make, inputs, _ = NETS["SeqGraphRegEndToEnd"]
    torch.manual_seed(0)
    plain = make()
    ckpt = SeqGraphRegEndToEnd(n_tracks=2, chunk_bp=5000, d=16, heads=2, gat_dim=8, n_dilated=2, checkpoint_chunks=1)
    ckpt.load_state_dict(plain.state_dict())
    batch = inputs()
    outs, grads = [], []
    for net in (plain, ckpt):
        net.train()
        for m in net.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
            if isinstance(m, torch.nn.BatchNorm1d):
                m.eval()
        out = net(**batch)
        (out["counts"].sum() + out["tracks"].sum()).backward()
        outs.append(out)
        grads.append([p.grad.clone() for p in net.base.parameters()])
    for key in ("counts", "tracks"):
        torch.testing.assert_close(outs[0][key], outs[1][key])
    for a, b in zip(*grads):  # float sums in another order: equal up to rounding
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5 * float(a.abs().max()) + 1e-7)


# ----------------------------------------------------------------------------- end-to-end mode


def test_alpha_is_the_published_schedule():
    assert alpha(0) == 0.01 and alpha(10) == 0.5 and alpha(30) > 0.999
    objective = JointPoissonCounts(n_tracks=2)
    # Poisson NLL (log_input=False): expression pred 1, y 0 -> 1; epigenome pred 2, y 2 -> 2 - 2 ln 2
    out = {"counts": torch.ones(1, NODES), "tracks": torch.full((1, 2, BINS), 2.0)}
    batch = {"y": torch.zeros(1, MIDDLE), "y_tracks": torch.full((1, 2, BINS), 2.0)}
    for epoch in (0, 10, 40):
        objective.set_epoch(epoch)
        a = alpha(epoch)
        assert objective.loss(out, batch).item() == pytest.approx(a * 1.0 + (1 - a) * (2 - 2 * math.log(2)), rel=1e-5)


@pytest.mark.slow  # a whole job through the base's conv tower: ~15-35 s on 2 busy cores
def test_an_end_to_end_job_trains_epigenome_and_expression(folder, tmp_path):
    cfg = job_cfg(tmp_path, folder, "model=seq_graphreg_e2e", "trainer=debug", "mark=H3K4me3+H3K27ac", *WINDOWS,
                  "model.inputs.chunk_bp=10000", "model.net.d=16", "data.max_dropped_fraction=1.0")
    record = train(cfg)
    assert record.finished and record.model == "seq_graphreg_e2e", record.error
    assert {"pearson", "bin_nll_tss", "epi_bin_pearson", "epi_bin_nll"} <= set(record.test)
    assert math.isfinite(record.test["epi_bin_nll"])
    preds = pd.read_csv(tmp_path / "job" / "predictions.csv")
    assert set(preds.split) == {"train", "val", "test"}
