"""The Seq-CNN base net, its Poisson-tracks objective and the Fourier attribution prior.

Net (``epx.models.seq_cnn.SeqCNNBase``): shapes for 2 kb and 4 kb chunks (one bin per
100 bp, a 64-dim bottleneck), the parameter count of the published configuration, exact
outputs on hand-set weights (which also pins the original's Conv -> ReLU -> BN order),
reverse-complement averaging and the one-hot reverse complement.

Published configuration (``train/Seq-CNN_base.py``: 3 tracks H3K4me3/H3K27ac/DNase, 6 dilated
blocks, heads k 5): 320,643 trainable parameters =
  stage 1  4*256*21 + 256 + BN 2*256      =  22,272
  stage 2  256*128*3 + 128 + BN 2*128     =  98,688
  stage 3  128*128*3 + 128 + BN 2*128     =  49,536
  stage 4  128*128*3 + 128 + BN 2*128     =  49,536
  stage 5  128*64*3 + 64 + BN 2*64        =  24,768   (bottleneck: 244,800 so far)
  dilated  6 * (64*64*3 + 64 + BN 2*64)   =  74,880
  heads    3 * (64*5 + 1)                 =     963
(Keras' summary would add the BatchNorm moving statistics, 2 * 1,344 non-trainable.)

Objective (``epx.train.track_counts.PoissonTracks``): finite loss equal to the Poisson NLL,
NaN metrics before any batch, per-track bin Pearson over all bins seen, gene outputs.
Prior (``epx.train.priors.FourierAttributionPrior``) and the ``EpxModule(prior=...)`` hook.
"""

from __future__ import annotations

import copy
import math
from functools import partial

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from epx.io.fasta import encode, onehot, reverse_complement
from epx.models.seq_cnn import SeqCNNBase, reverse_complement_onehot
from epx.train.module import EpxModule
from epx.train.priors import FourierAttributionPrior, fourier_prior_loss
from epx.train.track_counts import PoissonTracks

PUBLISHED_PARAMS = 320_643


def _onehot(batch: int, length: int, seed: int = 0, n_fraction: float = 0.02) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 4, (batch, length)).astype(np.uint8)
    codes[rng.random((batch, length)) < n_fraction] = 4  # a few N
    return torch.from_numpy(onehot(codes))


def _n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------- the net


@pytest.mark.parametrize("length", [2_000, 4_000])
@pytest.mark.parametrize("dilated", [False, True])
def test_shapes_one_bin_per_100_bp(length, dilated):
    torch.manual_seed(0)
    net = SeqCNNBase(n_tracks=2, dilated=dilated).eval()
    x = _onehot(3, length)
    with torch.no_grad():
        out, h = net(x), net.bottleneck(x)
    assert out.shape == (3, 2, length // 100) and h.shape == (3, 64, length // 100)
    assert torch.isfinite(out).all() and (out >= 0).all()


def test_bad_shapes_and_settings_are_refused():
    net = SeqCNNBase(n_tracks=1)
    with pytest.raises(ValueError, match="multiple of 100"):
        net(torch.zeros(1, 4, 150))
    with pytest.raises(ValueError, match=r"\(B, 4, L\)"):
        net(torch.zeros(1, 5, 200))
    with pytest.raises(ValueError, match="bin_bp must be 100"):
        SeqCNNBase(n_tracks=1, bin_bp=50)
    with pytest.raises(ValueError, match="unknown output"):
        SeqCNNBase(n_tracks=1, output="relu")


def test_parameter_count_of_the_published_configuration():
    """3 tracks, 6 dilated blocks, heads k 5: 320,643 (breakdown in the module docstring)."""
    published = SeqCNNBase(n_tracks=3, dilated=True)
    assert _n_params(published) == PUBLISHED_PARAMS
    assert _n_params(SeqCNNBase(n_tracks=3, dilated=False)) == 244_800 + 963  # no dilated blocks
    assert _n_params(SeqCNNBase(n_tracks=2, dilated=True)) == PUBLISHED_PARAMS - 321  # one head fewer


def test_narrower_stages_keep_the_bottleneck_kernels_and_pools():
    """widths: channels of stages 1-4 (a CPU-sized base); stage 5 stays the 64-dim bottleneck."""
    narrow = SeqCNNBase(n_tracks=2, dilated=True, widths=(64, 64, 64, 64))
    # stage 1: 64*4*21 + 64 + BN 128; stages 2-5: 64*64*3 + 64 + 128 each; 6 blocks as published; 2 heads of 64*5 + 1
    assert _n_params(narrow) == (64 * 4 * 21 + 64 + 128) + 4 * (64 * 64 * 3 + 192) + 6 * (64 * 64 * 3 + 192) + 2 * 321
    convs = [m for m in narrow.encoder.modules() if isinstance(m, torch.nn.Conv1d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0]) for c in convs] == [(4, 64, 21), (64, 64, 3), (64, 64, 3), (64, 64, 3), (64, 64, 3)]
    x = _onehot(2, 2_000)
    with torch.no_grad():
        assert narrow.eval()(x).shape == (2, 2, 20) and narrow.bottleneck(x).shape == (2, 64, 20)
    assert "widths=[64, 64, 64, 64]" in narrow.extra_repr()
    assert SeqCNNBase(n_tracks=1).widths == (256, 128, 128, 128)
    for bad in ((64, 64, 64), (64, 64, 64, 0)):
        with pytest.raises(ValueError, match="widths are the channels of the first 4 stages"):
            SeqCNNBase(n_tracks=1, widths=bad)


def test_extra_repr_names_the_hyper_parameters():
    net = SeqCNNBase(n_tracks=2, dilated=True, output="softplus", rc_average=True)
    first = repr(net).splitlines()[1].strip()
    assert first == net.extra_repr()
    for key in ("n_tracks=2", "bin_bp=100", "dropout=0.5", "dilated=True", "n_dilated=6", "output='softplus'", "rc_average=True", "head_kernel=5"):
        assert key in first


def _set_stage(stage: torch.nn.Sequential, *, w: float, b: float, gamma: float, beta: float) -> None:
    conv = next(m for m in stage if isinstance(m, torch.nn.Conv1d))
    norm = next(m for m in stage if isinstance(m, torch.nn.BatchNorm1d))
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[:, :, conv.kernel_size[0] // 2] = w  # a centre-tap kernel: no edge effects
        conv.bias.fill_(b)
        norm.weight.fill_(gamma)
        norm.bias.fill_(beta)


@pytest.mark.parametrize("output,link", [("exp", math.exp), ("softplus", lambda v: math.log1p(math.exp(v)))])
def test_exact_output_on_hand_set_weights(output, link):
    """All-A input, centre-tap kernels: every stage is the scalar map
    v -> gamma * relu(C_in * w * v + b) / sqrt(1 + eps) + beta (Conv -> ReLU -> BN, as the
    original). Stage 1's BN output is negative: Conv -> BN -> ReLU would clip it to 0 and give
    another number."""
    net = SeqCNNBase(n_tracks=2, dilated=False, output=output).eval()
    channels_in = [4, 256, 128, 128, 128]
    # stage 1 sees one active base (A), so its weight counts once; later stages average
    weights = [0.5] + [1.0 / c for c in channels_in[1:]]
    biases = [-0.45, 0.3, 0.2, 0.1, 0.05]
    gamma, beta, eps = 1.5, -0.1, net.encoder[0][2].eps
    for stage, w, b in zip(net.encoder, weights, biases):
        _set_stage(stage, w=w, b=b, gamma=gamma, beta=beta)
    head_w, head_b = (0.01, 0.03), (0.0, -1.0)
    with torch.no_grad():
        for head, hw, hb in zip(net.heads, head_w, head_b):
            head.weight.zero_()
            head.weight[:, :, 2] = hw
            head.bias.fill_(hb)

    v, active = 1.0, [1] + channels_in[1:]  # input A = 1 in one channel
    for c, w, b in zip(active, weights, biases):
        v = gamma * max(c * w * v + b, 0.0) / math.sqrt(1 + eps) + beta
        if c == 1:
            assert v < 0  # stage 1 ends negative: the layer order matters below
    expected = [link(64 * hw * v + hb) for hw, hb in zip(head_w, head_b)]

    x = torch.zeros(1, 4, 300)
    x[:, 0] = 1.0  # AAAA...
    with torch.no_grad():
        out = net(x)
        h = net.bottleneck(x)
    assert out.shape == (1, 2, 3)
    # float32 convolutions (oneDNN on CPU) agree with the float64 closed form to ~1e-5; the
    # other layer order would be off by > 10% from stage 2 on
    assert torch.allclose(h, torch.full_like(h, v), rtol=1e-4)
    for t in range(2):
        assert torch.allclose(out[0, t], torch.full((3,), expected[t]), rtol=1e-4), (out[0, t], expected[t])


def test_reverse_complement_onehot():
    codes = encode("AACGTNTTGCA")
    x = torch.from_numpy(onehot(codes)).unsqueeze(0)  # (1, 4, 11)
    rc = reverse_complement_onehot(x)
    assert torch.equal(rc[0], torch.from_numpy(onehot(reverse_complement(codes))))
    assert torch.equal(reverse_complement_onehot(rc), x)
    a_only = torch.zeros(1, 4, 3)
    a_only[:, 0] = 1
    assert torch.equal(reverse_complement_onehot(a_only)[0].argmax(0), torch.full((3,), 3))  # A -> T
    batch = _onehot(2, 500, seed=3)
    assert torch.equal(reverse_complement_onehot(reverse_complement_onehot(batch)), batch)
    with pytest.raises(ValueError):
        reverse_complement_onehot(torch.zeros(2, 3, 10))


def test_rc_average_is_strand_symmetric_in_eval_only():
    torch.manual_seed(1)
    net = SeqCNNBase(n_tracks=2, dilated=True, rc_average=True).eval()
    x = _onehot(2, 2_000, seed=4)
    with torch.no_grad():
        pred, pred_rc = net(x), net(reverse_complement_onehot(x))
    assert torch.allclose(pred, pred_rc.flip(-1), rtol=1e-5, atol=1e-6)
    net.rc_average = False
    with torch.no_grad():
        plain, plain_rc = net(x), net(reverse_complement_onehot(x))
    assert not torch.allclose(plain, plain_rc.flip(-1), rtol=1e-3)  # a random net is not symmetric
    assert torch.allclose(pred, 0.5 * (plain + plain_rc.flip(-1)), rtol=1e-5, atol=1e-6)
    # training mode: the plain forward (augmentation is the builder's job)
    net = SeqCNNBase(n_tracks=2, dropout=0.0, rc_average=True).train()
    with torch.no_grad():
        trained_mode = net(x)
        net.rc_average = False
        assert torch.equal(trained_mode, net(x))


def test_reset_parameters_is_seeded():
    a, b = SeqCNNBase(n_tracks=2, dilated=True), SeqCNNBase(n_tracks=2, dilated=True)
    torch.manual_seed(5)
    a.reset_parameters()
    torch.manual_seed(5)
    b.reset_parameters()
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


# ----------------------------------------------------------------------------- the objective


def _batch(batch: int = 2, tracks: int = 2, length: int = 2_000, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    n_bins = length // 100
    y = torch.poisson(torch.rand(batch, tracks, n_bins, generator=g) * 5, generator=g)
    gene_pos = torch.tensor([0, 3, n_bins + 7])
    return {
        "x": {"x": _onehot(batch, length, seed)},
        "y": y,
        "gene": torch.tensor([10, 11, 12]),
        "gene_pos": gene_pos,
        "gene_target": torch.log2(y[:, 0].reshape(-1)[gene_pos] + 1),
    }


def test_objective_loss_gene_outputs_and_metrics():
    objective = PoissonTracks(track_names=["H3K4me3", "H3K27ac"])
    assert (objective.name, objective.target_column, objective.primary, objective.out_dim) == ("poisson_tracks", "target", "bin_pearson", 2)
    batch = _batch()
    out = torch.rand_like(batch["y"]) * 4 + 0.1
    loss = objective.loss(out, batch)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert torch.allclose(loss, F.poisson_nll_loss(out, batch["y"], log_input=False))

    pred, target, gene = objective.gene_outputs(out, batch)
    assert pred.shape == target.shape == gene.shape == (3,)
    n_bins = out.shape[-1]
    assert torch.allclose(pred, torch.log2(torch.stack([out[0, 0, 0], out[0, 0, 3], out[1, 0, 7]]) + 1))
    assert torch.equal(gene, batch["gene"]) and torch.equal(target, batch["gene_target"]) and n_bins == 20

    metrics = objective.metrics().clone(prefix="val/")
    fresh = metrics.compute()
    expected_keys = {"val/" + k for k in ("pearson", "spearman", "mse", "bin_nll", "bin_pearson", "bin_pearson_H3K4me3", "bin_pearson_H3K27ac")}
    assert set(fresh) == expected_keys
    assert all(math.isnan(float(v)) for v in fresh.values())  # never updated -> NaN

    second = _batch(seed=1)
    out2 = torch.rand_like(second["y"]) * 4 + 0.1
    objective.update_metrics(metrics, out, batch)
    objective.update_metrics(metrics, out2, second)
    values = {k.removeprefix("val/"): float(v) for k, v in metrics.compute().items()}
    log_p = torch.log2(torch.cat([out, out2]) + 1)
    log_y = torch.log2(torch.cat([batch["y"], second["y"]]) + 1)
    per_track = [np.corrcoef(log_p[:, t].reshape(-1), log_y[:, t].reshape(-1))[0, 1] for t in range(2)]
    assert values["bin_pearson_H3K4me3"] == pytest.approx(per_track[0], rel=1e-5)
    assert values["bin_pearson_H3K27ac"] == pytest.approx(per_track[1], rel=1e-5)
    assert values["bin_pearson"] == pytest.approx(np.mean(per_track), rel=1e-5)
    nll = F.poisson_nll_loss(torch.cat([out, out2]), torch.cat([batch["y"], second["y"]]), log_input=False)
    assert values["bin_nll"] == pytest.approx(float(nll), rel=1e-5)
    assert all(math.isfinite(v) for v in values.values())


def test_objective_without_track_count_sizes_itself_and_refuses_mismatches():
    objective = PoissonTracks()
    metrics = objective.metrics()
    assert "bin_pearson_0" not in metrics and math.isnan(float(metrics.compute()["bin_pearson"]))
    batch = _batch(tracks=3)
    empty = {**batch, "gene": batch["gene"][:0], "gene_pos": batch["gene_pos"][:0], "gene_target": batch["gene_target"][:0]}
    objective.update_metrics(metrics, torch.rand_like(batch["y"]) + 0.1, empty)  # a chunk without genes
    values = metrics.compute()
    assert {"bin_pearson_0", "bin_pearson_1", "bin_pearson_2"} <= set(values)
    assert math.isfinite(float(values["bin_pearson"])) and math.isnan(float(values["pearson"]))

    fixed = PoissonTracks(n_tracks=2)
    with pytest.raises(ValueError, match="built for 2 tracks"):
        fixed.update_metrics(fixed.metrics(), torch.rand_like(batch["y"]), batch)
    with pytest.raises(ValueError, match=r"\(B, T, N\)"):
        fixed.loss(torch.rand(2, 20), _batch())
    with pytest.raises(ValueError):
        PoissonTracks(n_tracks=3, track_names=["a", "b"])
    with pytest.raises(ValueError):
        PoissonTracks(track_names=["a", "a"])


# ----------------------------------------------------------------------------- the prior


def test_prior_loss_is_finite_for_zero_attribution_and_prefers_smooth():
    length = 2_000
    assert math.isfinite(float(fourier_prior_loss(torch.zeros(2, length), freq_limit=0.15, limit_softness=0.2, smooth_sigma=3)))
    t = torch.arange(length, dtype=torch.float32)
    smooth = (1 + 0.5 * torch.sin(2 * math.pi * 3 * t / length)).unsqueeze(0)
    noise = torch.rand(1, length, generator=torch.Generator().manual_seed(0))
    alternating = (t % 2).unsqueeze(0)  # all non-DC power at the Nyquist frequency
    for sigma in (0.0, 3.0):
        loss = partial(fourier_prior_loss, freq_limit=0.15, limit_softness=0.2, smooth_sigma=sigma)
        assert float(loss(alternating)) > float(loss(noise)) > float(loss(smooth)) + 0.05
        # 0 unsmoothed; 0.06 smoothed: the zero-padded ends dip (as both originals pad)
        assert float(loss(smooth)) < 0.1
    hard = partial(fourier_prior_loss, freq_limit=0.15, limit_softness=None, smooth_sigma=0.0)
    assert float(hard(alternating)) == pytest.approx(1.0, abs=1e-4)  # 1 - low / total power
    assert float(hard(smooth)) == pytest.approx(0.0, abs=1e-4)


def test_prior_on_a_net_zero_gradient_is_finite_and_the_term_trains():
    prior = FourierAttributionPrior(weight=2.0)
    x = _onehot(2, 2_000).requires_grad_(True)
    const = (x * 0).sum(dim=(1, 2))  # output independent of x: zero gradient
    assert math.isfinite(float(prior(None, {"x": x}, const)))

    torch.manual_seed(0)
    net = SeqCNNBase(n_tracks=2, dropout=0.0).train()
    out = net(x)
    term = prior(net, {"x": x}, out)
    assert term.dim() == 0 and 0 <= float(term) <= 2.0
    term.backward()  # create_graph: the prior's gradient reaches the weights
    grad = net.encoder[0][0].weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0

    with pytest.raises(ValueError, match="requires_grad_"):
        prior(net, {"x": x.detach()}, net(x.detach()))


def _fit_one_step(module: EpxModule, batch: dict) -> L.Trainer:
    trainer = L.Trainer(max_steps=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader([batch], batch_size=None))
    return trainer


def test_training_step_with_the_prior_changes_weights_and_logs():
    torch.manual_seed(0)
    batch = _batch()
    net = SeqCNNBase(n_tracks=2)
    before = [p.detach().clone() for p in net.parameters()]
    module = EpxModule(net=net, objective=PoissonTracks(n_tracks=2), optimizer=partial(torch.optim.Adam, lr=1e-3),
                       prior=FourierAttributionPrior(weight=1.0))
    trainer = _fit_one_step(module, batch)
    logged = trainer.callback_metrics
    assert math.isfinite(float(logged["train/loss"])) and math.isfinite(float(logged["train/prior"]))
    assert 0 <= float(logged["train/prior"]) <= 1
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert not batch["x"]["x"].requires_grad  # the batch itself is left as it was


def test_module_without_a_prior_trains_as_before():
    torch.manual_seed(0)
    batch = _batch()
    net = SeqCNNBase(n_tracks=2, dropout=0.0)
    reference = copy.deepcopy(net)
    objective = PoissonTracks(n_tracks=2)
    module = EpxModule(net=net, objective=objective, optimizer=partial(torch.optim.Adam, lr=1e-3))
    assert module.prior is None and set(module.hparams) == {"provenance", "monitor"}
    trainer = _fit_one_step(module, batch)
    assert "train/prior" not in trainer.callback_metrics

    # the same step by hand: forward, loss, one Adam step
    optimizer = torch.optim.Adam(reference.parameters(), lr=1e-3)
    reference.train()
    loss = objective.loss(reference(**batch["x"]), batch)
    loss.backward()
    optimizer.step()
    assert float(trainer.callback_metrics["train/loss"]) == pytest.approx(float(loss), rel=1e-6)
    for (name, p), q in zip(net.named_parameters(), reference.parameters()):
        assert torch.allclose(p, q, rtol=1e-6, atol=1e-8), name
