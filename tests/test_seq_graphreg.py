"""Seq-GraphReg (separate and end-to-end modes) and its Seq-CNN control, as jobs like any other.

A tiny ``seq_cnn_base`` job (one epoch of three batches, 20 kb chunks, chromosomes 1-4 of the
session's small synthetic folder, fold 0) is the base. The Seq-GraphReg jobs run on 300 kb
windows stepping 100 kb (60 nodes of 5 kb, the middle 20 scored) with a narrow net
(``d=16``) and ``trainer=debug``; the configured 6 Mb geometry is the benchmark's
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

FOUR = ["data.exclude_chroms=['^chr([5-9]|[1-2][0-9]|X|Y)$']", "data.max_dropped_fraction=1.0"]
BASE = ["model=seq_cnn_base", "mark=H3K4me3+H3K27ac", "model.inputs.chunk_bp=20000", "model.batch_size=2",
        "model.eval_batch_size=16", "trainer.max_epochs=1", "+trainer.limit_train_batches=3", "+trainer.limit_val_batches=2",
        "callbacks=none", *FOUR]
WINDOWS = ["model.inputs.window_bp=300000", "model.inputs.step_bp=100000"]
NODES, MIDDLE = 60, 20


@pytest.fixture(scope="module")
def base_job(small_synthetic, tmp_path_factory):
    root = tmp_path_factory.mktemp("seqbase")
    record = train(job_cfg(root, small_synthetic, *BASE))
    assert record.status == "ok"
    return root / "job"


def _job(root, folder, base, model, *extra):
    return job_cfg(root, folder, f"model={model}", f"model.inputs.base={base}", "trainer=debug", "mark=H3K4me3", *WINDOWS,
                   "model.net.d=16", *FOUR, *extra)


@pytest.fixture(scope="module")
def sg_job(small_synthetic, base_job, tmp_path_factory):
    root = tmp_path_factory.mktemp("seqgraphreg")
    record = train(_job(root, small_synthetic, base_job, "seq_graphreg"))
    assert record.status == "ok", record.error
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
    assert set(preds.loc[preds.split == "test", "chrom"]) == {"chr1"}
    assert list((base_job / "bottlenecks").glob("bottlenecks-*.h5")), "the bottlenecks are cached with the base"


def test_the_cache_holds_the_bases_bottleneck_and_is_computed_once(base_job, small_synthetic, sg_job):
    import h5py

    from epx.data.genome import GenomeSequence

    builder = _builder(base_job)
    cache = builder.cache

    with h5py.File(cache.path, "r") as f:
        group = next(k for k in f if k.startswith("chr2__"))
        done = f[group]["done"][:]
        assert done.all(), "every chunk of a chromosome with windows is computed"
    # recompute one chunk directly with the base net: the cache holds its bottleneck (float16)
    codes = _genome_codes(small_synthetic, "chr2")
    genome = GenomeSequence({"chr2": codes})
    onehot = genome.onehot(np.array(["chr2"], dtype=object), np.array([7 * 20_000]), 20_000)
    with torch.no_grad():
        direct = builder.base.net.bottleneck(torch.from_numpy(onehot))[0].numpy()
    cached = cache.read(genome, "chr2", 7, 1)
    np.testing.assert_allclose(cached, direct, rtol=1e-2, atol=1e-2)
    # a window reaching past the start reads the all-N chunk's bottleneck there
    window = cache.read(genome, "chr2", -2, 4)
    assert window.shape == (64, 4 * 200)
    np.testing.assert_array_equal(window[:, :200], window[:, 200:400])
    np.testing.assert_allclose(window[:, 400:600], cache.read(genome, "chr2", 0, 1))
    # nothing is computed a second time
    assert cache.ensure(genome, "chr2", np.arange(-3, 50), builder.compute) == 0


def _genome_codes(folder, chrom: str) -> np.ndarray:
    from epx.io.fasta import FastaFile

    with FastaFile(folder / "genome.fa") as fasta:
        return fasta.codes(chrom)


def test_the_control_and_a_second_job_reuse_the_cache(small_synthetic, base_job, sg_job, tmp_path):
    record = train(_job(tmp_path, small_synthetic, base_job, "seq_cnn"))
    assert record.status == "ok" and record.model == "seq_cnn"
    assert math.isfinite(record.test["bin_nll_tss"]) and record.test["pearson"] is None or math.isfinite(record.test["pearson"])


@pytest.mark.parametrize("base,match", [
    (None, "model.inputs.base is not set"),
    ("/no/such/job", "no such job dir or checkpoint"),
])
def test_a_missing_base_is_one_error_before_any_work(small_synthetic, tmp_path, base, match):
    cfg = _job(tmp_path, small_synthetic, "x", "seq_graphreg", f"model.inputs.cache_dir={tmp_path / 'cache'}")
    cfg.model.inputs.base = base
    with pytest.raises(InputError, match=match):
        train(cfg)
    assert JobRecord.read(tmp_path / "job").status == "failed" and not (tmp_path / "cache").exists()


def test_an_unreadable_or_other_fold_base_is_refused(small_synthetic, base_job, tmp_path):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable checkpoint"):
        train(_job(tmp_path / "a", small_synthetic, junk, "seq_graphreg"))
    with pytest.raises(InputError, match="trained on fold 0, this job is fold 1.*leak"):
        train(_job(tmp_path / "b", small_synthetic, base_job, "seq_graphreg", "fold=1"))
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
    builders = [_builder(base_job), instantiate(compose(["model=seq_graphreg_e2e", *WINDOWS, "model.inputs.chunk_bp=20000"]).model.inputs)]
    genes = pd.DataFrame({"gene_id": ["a", "b"], "chrom": ["chr1", "chr1"], "tss": [150_000, 950_000], "strand": ["+", "-"]})
    for builder in builders:
        assert isinstance(builder, InputBuilder) and problems(builder, tuple(SOURCES)) == []
        assert any(cls in ADAPTERS for cls in type(builder).__mro__)
        spans = builder.intervals(genes)
        assert ((spans.start <= genes.tss) & (genes.tss < spans.end)).all()
    assert builders[0].sources == ("genome", "contacts"), "separate mode builds no histone cache"
    with pytest.raises(InputError, match="must be whole chunks"):
        instantiate(compose(["model=seq_graphreg_e2e", "model.inputs.window_bp=310000", "model.inputs.step_bp=110000",
                             "model.inputs.chunk_bp=20000"]).model.inputs)


def test_explain_attributes_the_bottleneck_bins(sg_job):
    from epx.explain.attribution import attribute
    from epx.explain.job import ExplainJob

    job = ExplainJob.load(sg_job)
    rows = job.rows("test")[:2]
    result = attribute(job, rows, method="input_x_gradient")
    assert result["bottleneck"].shape == (2, 64, 3000)
    layout = job.adapter.layouts(rows)["bottleneck"]
    assert layout.bin_bp == 100 and layout.start.shape == (2, 3000)


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
                            lambda: {"x": torch.nn.functional.one_hot(torch.randint(0, 4, (2, 20_000)), 4).float().transpose(1, 2),
                                     "edge_index": _graph(4)}, "n_tracks=2"),
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
    n_nodes = 20 if name != "SeqGraphRegEndToEnd" else 4
    assert counts.shape == (2, n_nodes) and (counts >= 0).all()
    if isinstance(out, dict):
        assert out["tracks"].shape == (2, 2, 200)
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


def test_checkpointing_changes_memory_not_results():
    make, inputs, _ = NETS["SeqGraphRegEndToEnd"]
    torch.manual_seed(0)
    plain = make()
    for m in plain.modules():  # dropout off: the two runs must draw nothing
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    ckpt = SeqGraphRegEndToEnd(n_tracks=2, chunk_bp=5000, d=16, heads=2, gat_dim=8, n_dilated=2, checkpointing=True)
    ckpt.load_state_dict(plain.state_dict())
    for m in ckpt.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    plain.checkpointing = False
    batch = inputs()
    grads = []
    for net in (plain, ckpt):
        net.train()
        out = net(**batch)
        (out["counts"].sum() + out["tracks"].sum()).backward()
        grads.append([p.grad.clone() for p in net.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- end-to-end mode


def test_alpha_is_the_published_schedule():
    assert alpha(0) == 0.01 and alpha(10) == 0.5 and alpha(30) > 0.999
    objective = JointPoissonCounts(n_tracks=2)
    # Poisson NLL (log_input=False): expression pred 1, y 0 -> 1; epigenome pred 2, y 2 -> 2 - 2 ln 2
    out = {"counts": torch.ones(1, NODES), "tracks": torch.full((1, 2, 3000), 2.0)}
    batch = {"y": torch.zeros(1, MIDDLE), "y_tracks": torch.full((1, 2, 3000), 2.0)}
    for epoch in (0, 10, 40):
        objective.set_epoch(epoch)
        a = alpha(epoch)
        assert objective.loss(out, batch).item() == pytest.approx(a * 1.0 + (1 - a) * (2 - 2 * math.log(2)), rel=1e-5)


def test_an_end_to_end_job_trains_epigenome_and_expression(small_synthetic, tmp_path):
    cfg = job_cfg(tmp_path, small_synthetic, "model=seq_graphreg_e2e", "trainer=debug", "mark=H3K4me3+H3K27ac", *WINDOWS,
                  "model.inputs.chunk_bp=20000", "model.net.d=16", *FOUR)
    record = train(cfg)
    assert record.status == "ok", record.error
    assert {"pearson", "bin_nll_tss", "epi_bin_pearson", "epi_bin_nll"} <= set(record.test)
    assert math.isfinite(record.test["epi_bin_nll"])
    preds = pd.read_csv(tmp_path / "job" / "predictions.csv")
    assert set(preds.split) == {"train", "val", "test"}
