"""The published GraphReg networks (issue 21): the paper's GAT layer, its layer order, and
``epx import graphreg`` reproducing the authors' Keras models on the reference outputs.

Parameter breakdown of ``experiment=graphreg_paper`` with 3 tracks (184,065, as the paper's):
encoder 109,056 (conv 25x3->128: 9,728; two conv 3x128->128: 49,280 each; 3 BN x 256);
2 published GAT layers x 33,024 (4 heads x (2 x 128x32 + 2 x 32)); 2 BN x 256;
head 8,449 (1x1 conv 128->64: 8,256; BN 128; 1x1 conv 64->1: 65).
Epi-CNN, layer_order=published (233,729): encoder 109,056; bridge 3x128->64 24,640 + BN 128;
8 dilated blocks x (12,352 + BN 128); head 1x1 conv 64->1: 65.

The reference folder (``../shared/reference/graphreg_published``) holds the authors' models
with random weights and their outputs; tests that need it skip, naming it, where it is absent.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import REPO

REFERENCE = REPO.parent / "shared" / "reference" / "graphreg_published"
RTOL = 1e-4


def _reference():
    if not (REFERENCE / "expected.npz").is_file():
        pytest.skip(f"GraphReg reference outputs not found at {REFERENCE} (they live in ../shared beside the repo)")
    return np.load(REFERENCE / "inputs.npz"), np.load(REFERENCE / "expected.npz")


def _n_params(net) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def test_paper_experiment_builds_the_published_network_with_184065_parameters():
    from hydra.utils import instantiate

    from epx.config import compose

    cfg = compose(["experiment=graphreg_paper", "mark=H3K4me3+H3K27ac+H3K4me1"])
    assert cfg.model.net.attention == "published" and cfg.model.net.layer_order == "published"
    assert _n_params(instantiate(cfg.model.net)) == 184_065
    cnn = compose(["experiment=graphreg_paper", "model=epi_cnn", "mark=H3K4me3+H3K27ac+H3K4me1"])
    assert _n_params(instantiate(cnn.model.net)) == 233_729
    # GATConv stays model=graphreg's default, its network unchanged
    assert compose(["model=graphreg"]).model.net.attention == "gat"
    assert _n_params(instantiate(compose(["model=graphreg", "mark=H3K4me3+H3K27ac+H3K4me1"]).model.net)) == 151_553


def test_published_attention_weights_sum_to_one_with_the_self_term():
    from epx.models.graphreg_gat import PublishedGATConv

    torch.manual_seed(0)
    layer = PublishedGATConv(8, 4, heads=3).eval()
    x = torch.randn(5, 8)
    edges = torch.tensor([[0, 1, 2, 2, 3], [1, 0, 3, 2, 4]])  # (2, 2) is a self-loop: dropped
    out, (index, alpha) = layer(x, edges, return_attention_weights=True)
    assert out.shape == (5, 12) and index.shape == (2, 4 + 5) and alpha.shape == (9, 3)
    total = torch.zeros(5, 3).index_add_(0, index[1], alpha)
    assert torch.allclose(total, torch.ones(5, 3))
    # a node without neighbours keeps its own projection
    assert torch.allclose(out[2], layer.lin_self(x[2]))


def _rel(ours: np.ndarray, theirs: np.ndarray) -> tuple[float, float]:
    err = np.abs(ours - theirs)
    return float(err.max()), float((err / np.maximum(np.abs(theirs), 1e-12)).max())


def test_imported_epi_graphreg_reproduces_the_published_outputs_and_attention():
    from epx.imports.graphreg import read_keras, to_net

    inputs, expected = _reference()
    net = to_net(read_keras(REFERENCE / "epi_graphreg.h5"), "epi_graphreg")
    assert _n_params(net) == 184_065
    x = torch.from_numpy(inputs["X"]).transpose(1, 2)  # channels-last -> (B, M, L)
    edges = torch.from_numpy(inputs["edges"])[[1, 0]]  # reference: [receiver, sender]; epx: [sender, receiver]
    with torch.no_grad():
        y, layers = net(x=x, edge_index=edges, return_attention=True)
    abs_err, rel_err = _rel(y.numpy(), expected["graphreg_y"])
    assert rel_err < RTOL, f"graphreg_y: max abs {abs_err:.3g}, max rel {rel_err:.3g}"
    n_edges = edges.shape[1]
    for layer, (index, alpha) in enumerate(layers):
        assert torch.equal(index[:, :n_edges], edges)  # the graph's edges first, in order
        for head in range(alpha.shape[1]):
            ours, theirs = alpha[:n_edges, head].numpy(), expected[f"graphreg_att_l{layer}_h{head}"]
            abs_err, rel_err = _rel(ours, theirs)
            assert rel_err < RTOL, f"attention l{layer} h{head}: max abs {abs_err:.3g}, max rel {rel_err:.3g}"


def test_imported_epi_cnn_reproduces_the_published_outputs():
    from epx.imports.graphreg import read_keras, to_net

    inputs, expected = _reference()
    net = to_net(read_keras(REFERENCE / "epi_cnn.h5"), "epi_cnn")
    assert _n_params(net) == 233_729
    with torch.no_grad():
        y = net(x=torch.from_numpy(inputs["X"]).transpose(1, 2))
    abs_err, rel_err = _rel(y.numpy(), expected["cnn_y"])
    assert rel_err < RTOL, f"cnn_y: max abs {abs_err:.3g}, max rel {rel_err:.3g}"


def test_mismatched_files_are_one_clear_input_error(tmp_path):
    from epx.errors import InputError
    from epx.imports.graphreg import import_graphreg, read_keras

    _reference()
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not an hdf5 file")
    with pytest.raises(InputError, match="not a readable Keras HDF5 model"):
        read_keras(junk)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes((REFERENCE / "epi_cnn.h5").read_bytes()[:50_000])
    with pytest.raises(InputError, match="truncated|not a readable"):
        read_keras(truncated)
    with pytest.raises(InputError, match="holds Epi-CNN, not Epi-GraphReg"):
        import_graphreg(REFERENCE / "epi_cnn.h5", tmp_path / "job", model="epi_graphreg")
    with pytest.raises(InputError, match="reads 3 tracks, the job's marks are 1"):
        import_graphreg(REFERENCE / "epi_graphreg.h5", tmp_path / "job", overrides=["mark=H3K4me3"])


def test_import_writes_a_job_dir_that_opens_like_a_trained_job(tmp_path, small_synthetic):
    import json

    from epx.imports.graphreg import import_graphreg, sha256
    from epx.trained import open_job

    inputs, expected = _reference()
    out = tmp_path / "imported"
    overrides = ["dataset=folder", f"dataset.root={small_synthetic}", f"paths.cache_dir={tmp_path / 'cache'}",
                 "mark=H3K4me3+H3K27ac+H3K4me1", "logger=none"]
    record = import_graphreg(REFERENCE / "epi_graphreg.h5", out, overrides=overrides)
    data = json.loads((out / "metrics.json").read_text())
    assert data["kind"] == "imported" and data["status"] == "ok" and data["n_params"] == 184_065
    assert data["source"]["sha256"] == sha256(REFERENCE / "epi_graphreg.h5") and record.model == "graphreg_published"
    # mark= gave the file's channels in order; the job's data (and net) read them in epx's canonical order
    assert record.marks == ["H3K4me1", "H3K4me3", "H3K27ac"] and data["source"]["channels"] == ["H3K4me3", "H3K27ac", "H3K4me1"]
    job = open_job(out)
    net = job.net().eval()
    x = torch.from_numpy(inputs["X"][..., [2, 0, 1]]).transpose(1, 2)
    with torch.no_grad():
        y = net(x=x, edge_index=torch.from_numpy(inputs["edges"])[[1, 0]])
    assert _rel(y.numpy(), expected["graphreg_y"])[1] < RTOL
