"""Chromoformer network: shapes, exact parameter counts, gradients, masks, batch invariance,
dtype/device handling, the exact TSS-query shortcut, input validation, reset and summary."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from epx.models.attention import MultiHeadAttention, TransformerLayer
from epx.models.chromoformer import Chromoformer, sinusoidal_positions

RESOLUTIONS = (2000, 500, 100)
WINDOW = 40_000
SMALL = dict(d_emb=16, embed_ff=16, pairwise_ff=32, regulation_layers=2, regulation_heads=4,
             regulation_d=32, regulation_ff=32, d_head=16, window_bp=4_000)


def n_trainable(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def make_inputs(*, valid: list[list[bool]], n_marks: int = 7, window_bp: int = WINDOW,
                seed: int = 0) -> dict:
    """Random inputs in the Chromoformer contract; each real pCRE is a centre-padded window
    of random length, padding zero-valued like the data layer writes it."""
    g = torch.Generator().manual_seed(seed)
    pcre_mask = torch.tensor(valid, dtype=torch.bool)
    b, i = pcre_mask.shape
    promoter, pcres, bin_mask = {}, {}, {}
    for r in RESOLUTIONS:
        n_bins = window_bp // r
        promoter[r] = torch.rand(b, n_marks, n_bins, generator=g) * 3
        lengths = torch.randint(1, n_bins + 1, (b, i), generator=g)
        left = torch.div(n_bins - lengths + 1, 2, rounding_mode="floor")
        pos = torch.arange(n_bins)
        mask = (pos >= left[..., None]) & (pos < (left + lengths)[..., None]) & pcre_mask[..., None]
        bin_mask[r] = mask
        pcres[r] = torch.rand(b, i, n_marks, n_bins, generator=g) * 3 * mask[:, :, None, :]
    freq = torch.rand(b, i, generator=g) * 4 * pcre_mask
    return dict(promoter=promoter, pcres=pcres, pcre_bin_mask=bin_mask, pcre_mask=pcre_mask,
                freq=freq)


@pytest.fixture(scope="module")
def model() -> Chromoformer:
    torch.manual_seed(0)
    return Chromoformer(out_dim=1).eval()


VALID = [[True, True, False], [False, False, False], [True, False, False], [True, True, True]]


@pytest.mark.parametrize("out_dim", [1, 2])
def test_output_and_branch_embedding_shapes(out_dim):
    torch.manual_seed(0)
    net = Chromoformer(out_dim=out_dim).eval()
    x = make_inputs(valid=VALID)
    with torch.no_grad():
        assert net(**x).shape == (4, out_dim)
        embeddings = net.branch_embeddings(**x)
    assert list(embeddings) == list(RESOLUTIONS)
    assert all(e.shape == (4, 128) for e in embeddings.values())
    assert net.n_bins == {2000: 20, 500: 80, 100: 400}


def test_parameter_counts_match_the_published_trained_parameters():
    assert n_trainable(Chromoformer(n_marks=7, out_dim=1)) == 5_341_457
    assert n_trainable(Chromoformer(n_marks=7, out_dim=2)) == 5_341_586


def test_reset_parameters_redraws_the_weights_of_construction():
    torch.manual_seed(5)
    built = Chromoformer(n_marks=2, **SMALL)
    net = Chromoformer(n_marks=2, **SMALL)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)  # stands in for training: moves every weight, frequency gains included
    torch.manual_seed(5)
    net.reset_parameters()
    reference = built.state_dict()
    assert all(torch.equal(value, reference[key]) for key, value in net.state_dict().items())
    gains = [m.bias_gain for m in net.modules() if isinstance(m, MultiHeadAttention) and m.bias_gain is not None]
    assert len(gains) == 3 * SMALL["regulation_layers"] and all(torch.equal(g, torch.ones_like(g)) for g in gains)


def test_summary_names_the_hyper_parameters():
    summary = Chromoformer(n_marks=7).extra_repr()
    assert summary == ("n_marks=7, out_dim=1, resolutions=(2000, 500, 100), window_bp=40000, i_max=8, "
                       "d_emb=128, layers=(embed=1, pairwise=2, regulation=6), dropout=0.0")
    assert repr(Chromoformer(n_marks=7)).splitlines()[1].strip() == summary


@pytest.mark.parametrize("n_marks", range(1, 8))
def test_any_mark_count_builds_and_runs(n_marks):
    net = Chromoformer(n_marks=n_marks, **SMALL).eval()
    full = Chromoformer(n_marks=7, **SMALL)
    # Marks enter through two bias-free projections (promoter, pCRE) per branch only.
    assert n_trainable(full) - n_trainable(net) == 3 * 2 * 16 * (7 - n_marks)
    x = make_inputs(valid=VALID[:2], n_marks=n_marks, window_bp=4_000)
    with torch.no_grad():
        y = net(**x)
    assert y.shape == (2, 1) and torch.isfinite(y).all()


def test_every_parameter_receives_a_gradient():
    torch.manual_seed(1)
    net = Chromoformer(out_dim=2).train()
    x = make_inputs(valid=[[True, False], [False, False]], seed=1)
    net(**x).square().sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_masked_values_never_reach_the_output(model):
    x = make_inputs(valid=VALID, seed=2)
    g = torch.Generator().manual_seed(3)
    noisy = dict(x, pcres={}, freq=x["freq"].clone())
    for r in RESOLUTIONS:
        hidden = ~x["pcre_bin_mask"][r][:, :, None, :].expand_as(x["pcres"][r])
        noise = torch.randn(x["pcres"][r].shape, generator=g) * 5
        noisy["pcres"][r] = torch.where(hidden, noise, x["pcres"][r])
    noisy["freq"][~x["pcre_mask"]] = 7.0
    with torch.no_grad():
        base, changed = model(**x), model(**noisy)
        # A change in a real bin must show, or the comparison above proves nothing.
        shifted = x["pcres"][100] + 1.0 * x["pcre_bin_mask"][100][:, :, None]
        real = dict(x, pcres={**x["pcres"], 100: shifted})
        moved = model(**real)
    assert torch.equal(changed, base)  # hidden keys get exactly zero weight
    assert (moved - base)[[0, 2, 3]].abs().min() > 1e-6


def test_an_extra_empty_slot_leaves_the_output_unchanged(model):
    x = make_inputs(valid=VALID, seed=4)
    wider = dict(
        promoter=x["promoter"],
        pcres={r: F.pad(t, (0, 0, 0, 0, 0, 1), value=2.0) for r, t in x["pcres"].items()},
        pcre_bin_mask={r: F.pad(t, (0, 0, 0, 1), value=False)
                       for r, t in x["pcre_bin_mask"].items()},
        pcre_mask=F.pad(x["pcre_mask"], (0, 1), value=False),
        freq=F.pad(x["freq"], (0, 1)),
    )
    with torch.no_grad():
        torch.testing.assert_close(model(**wider), model(**x), rtol=1e-5, atol=1e-5)


def test_a_gene_without_interactions_is_finite_and_trainable():
    torch.manual_seed(5)
    net = Chromoformer(out_dim=1)
    x = make_inputs(valid=[[False] * 8, [False] * 8], seed=5)
    y = net(**x)
    assert torch.isfinite(y).all()
    y.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
    # With every slot empty the prediction is the promoter's alone.
    net.eval()
    with torch.no_grad():
        one_slot = make_inputs(valid=[[False], [False]], seed=5)
        one_slot["promoter"] = x["promoter"]
        torch.testing.assert_close(net(**one_slot), net(**x), rtol=1e-5, atol=1e-5)


def test_predictions_do_not_depend_on_the_batch(model):
    x = make_inputs(valid=VALID, seed=6)
    with torch.no_grad():
        batched = model(**x)
        for k in range(4):
            alone = model(
                promoter={r: t[k : k + 1] for r, t in x["promoter"].items()},
                pcres={r: t[k : k + 1] for r, t in x["pcres"].items()},
                pcre_bin_mask={r: t[k : k + 1] for r, t in x["pcre_bin_mask"].items()},
                pcre_mask=x["pcre_mask"][k : k + 1],
                freq=x["freq"][k : k + 1],
            )
            torch.testing.assert_close(alone, batched[k : k + 1], rtol=0, atol=1e-5)


def test_interaction_frequency_biases_the_prediction(model):
    x = make_inputs(valid=VALID, seed=7)
    louder = dict(x, freq=x["freq"] + 3.0 * x["pcre_mask"])
    with torch.no_grad():
        delta = (model(**louder) - model(**x)).abs().squeeze(1)
    assert delta[1] == 0  # gene 1 has no pCRE: nothing to bias
    assert delta[[0, 2, 3]].min() > 1e-4


def test_bf16_autocast_gives_finite_output(model):
    x = make_inputs(valid=VALID, seed=8)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(**x)
    assert torch.isfinite(y.float()).all()
    with torch.no_grad():
        torch.testing.assert_close(y.float(), model(**x), rtol=0.1, atol=0.1)


def test_positions_are_buffers_that_follow_the_module():
    net = Chromoformer(**SMALL).to(torch.float64)
    buffers = dict(net.named_buffers())
    assert {n for n in buffers if n.endswith("positions")} == {
        f"branches.{r}.{part}.positions" for r in RESOLUTIONS for part in ("embedding", "pairwise")
    }
    assert all(b.dtype == torch.float64 for b in buffers.values())
    assert "positions" not in "".join(net.state_dict())  # recomputed, not checkpointed
    x = make_inputs(valid=VALID, window_bp=4_000)
    x = {k: ({r: t.double() if t.is_floating_point() else t for r, t in v.items()}
             if isinstance(v, dict) else (v.double() if v.is_floating_point() else v))
         for k, v in x.items()}
    assert net(**x).dtype == torch.float64


def test_sinusoidal_positions_hand_values():
    table = sinusoidal_positions(3, 4)
    expected = torch.tensor([
        [0.0, 1.0, 0.0, 1.0],
        [math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)],
        [math.sin(2), math.cos(2), math.sin(0.02), math.cos(0.02)],
    ])
    torch.testing.assert_close(table, expected)


@pytest.mark.parametrize("embed_layers", [1, 2])
def test_tss_only_embedding_equals_the_full_pass(embed_layers):
    torch.manual_seed(9)
    net = Chromoformer(embed_layers=embed_layers, **SMALL).eval()
    embedding = net.branches["100"].embedding
    promoter = torch.rand(3, 40, 7)
    with torch.no_grad():
        x = embedding.project(promoter) + embedding.positions
        for layer in embedding.layers:
            x = layer(x)
        torch.testing.assert_close(embedding(promoter), x[:, 40 // 2], rtol=1e-5, atol=1e-6)


def _reference_layer(layer, query, context, hide=None, bias=None):
    """Published-style layer: every query row, square bool mask (True = hide) filled -1e9."""
    att = layer.attention
    n, h = query.shape[0], att.n_heads
    q = att.query_proj(query).view(n, query.shape[1], h, -1).transpose(1, 2)
    k, v = (t.view(n, context.shape[1], h, -1).transpose(1, 2)
            for t in att.key_value_proj(context).chunk(2, -1))
    logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if bias is not None:
        logits = logits + att.bias_gain[None, :, None, None] * bias[:, None]
    if hide is not None:
        logits = logits.masked_fill(hide[:, None], -1e9)
    heads = (logits.softmax(-1) @ v).transpose(1, 2).flatten(2)
    if att.gate_proj is not None:
        heads = heads * torch.sigmoid(att.gate_proj(query))
    return layer.feed_forward(att.norm(query + att.out_proj(heads)))


def _reference_branch(branch, promoter, pcres, bin_mask, pcre_mask, freq):
    """The published computation: full promoter sequence, all promoter bins as pairwise
    queries, square masks over padded queries and keys, frequency bias matrix."""
    b, i = pcre_mask.shape
    n_bins = promoter.shape[-1]
    emb, pw = branch.embedding, branch.pairwise
    x = emb.project(promoter.transpose(1, 2)) + emb.positions
    for layer in emb.layers:
        x = _reference_layer(layer, x, x)
    xp = pw.project_promoter(x)[:, None].expand(b, i, n_bins, -1).reshape(b * i, n_bins, -1)
    xc = pw.project_pcre(pcres.transpose(2, 3).reshape(b * i, n_bins, -1)) + pw.positions
    hide = ~(bin_mask & pcre_mask[..., None]).reshape(b * i, 1, n_bins).expand(-1, n_bins, -1)
    for layer in pw.layers:
        xp = _reference_layer(layer, xp, xc, hide)
    tokens = torch.cat([x[:, None, n_bins // 2], xp[:, n_bins // 2].view(b, i, -1)], dim=1)
    real = torch.cat([torch.ones(b, 1, dtype=torch.bool), pcre_mask], dim=1)
    bias = torch.zeros(b, i + 1, i + 1)
    bias[:, 0, 1:] = freq
    y = tokens
    for layer in branch.regulation.layers:
        y = _reference_layer(layer, y, y, ~(real[:, :, None] & real[:, None, :]), bias)
    return y[:, 0] + tokens[:, 0]


def test_matches_the_published_full_computation():
    torch.manual_seed(13)
    net = Chromoformer(out_dim=2, window_bp=8_000).eval()
    x = make_inputs(valid=VALID, window_bp=8_000, seed=13)
    with torch.no_grad():
        want = net.head(torch.cat([
            _reference_branch(net.branches[str(r)], x["promoter"][r], x["pcres"][r],
                              x["pcre_bin_mask"][r], x["pcre_mask"], x["freq"])
            for r in RESOLUTIONS], dim=-1))
        torch.testing.assert_close(net(**x), want, rtol=1e-5, atol=1e-5)


def test_query_rows_are_independent_within_a_layer():
    torch.manual_seed(10)
    layer = TransformerLayer(d_model=8, n_heads=2, d_inner=8, d_ff=16).eval()
    query, context = torch.randn(2, 5, 8), torch.randn(2, 7, 8)
    key_valid = torch.tensor([[True] * 7, [False, True, True, False, True, True, False]])
    with torch.no_grad():
        full = layer(query, context=context, key_valid=key_valid)
        row = layer(query[:, 2:3], context=context, key_valid=key_valid)
    torch.testing.assert_close(row, full[:, 2:3], rtol=1e-5, atol=1e-6)


def test_attention_matches_a_hand_computation():
    torch.manual_seed(11)
    att = MultiHeadAttention(d_model=4, n_heads=2, d_inner=4, gated=True, pair_bias=True).eval()
    with torch.no_grad():
        att.bias_gain.copy_(torch.tensor([0.5, -2.0]))
    x = torch.randn(1, 3, 4)
    key_valid = torch.tensor([[True, True, False]])
    bias = torch.tensor([[[0.0, 1.5, 9.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    with torch.no_grad():
        got = att(x, key_valid=key_valid, pair_bias=bias)
        q = att.query_proj(x).view(1, 3, 2, 2).transpose(1, 2)
        k, v = (t.view(1, 3, 2, 2).transpose(1, 2) for t in att.key_value_proj(x).chunk(2, -1))
        logits = q @ k.transpose(-1, -2) / math.sqrt(2)
        logits = logits + bias[:, None] * att.bias_gain[:, None, None]
        logits[..., 2] = float("-inf")
        heads = (logits.softmax(-1) @ v).transpose(1, 2).reshape(1, 3, 4)
        heads = heads * torch.sigmoid(att.gate_proj(x))
        want = att.norm(x + att.out_proj(heads))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_all_padding_keys_attend_uniformly_instead_of_nan():
    att = MultiHeadAttention(d_model=4, n_heads=1, d_inner=4).eval()
    query, context = torch.randn(1, 1, 4), torch.randn(1, 3, 4)
    with torch.no_grad():
        hidden = att(query, context=context, key_valid=torch.zeros(1, 3, dtype=torch.bool))
        open_ = att(query, context=context)
    torch.testing.assert_close(hidden, open_)


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda x: x["promoter"].update({100: x["promoter"][100][:, :5]}),
         r"promoter\[100\].*n_marks"),
        (lambda x: x["pcres"].pop(500), "pcres has resolutions"),
        (lambda x: x.update(pcre_mask=x["pcre_mask"].float()), "pcre_mask must be a"),
        (lambda x: x["pcre_bin_mask"].update({2000: x["pcre_bin_mask"][2000][..., :-1]}),
         "window_bp"),
        (lambda x: x.update(freq=x["freq"][:, :1]), "freq has shape"),
    ],
)
def test_bad_inputs_raise_one_clear_error(model, corrupt, message):
    x = make_inputs(valid=VALID)
    corrupt(x)
    with pytest.raises(ValueError, match=message):
        model(**x)


def test_too_many_slots_and_bad_config_are_rejected():
    net = Chromoformer(i_max=2, **SMALL)
    with pytest.raises(ValueError, match="i_max=2"):
        net(**make_inputs(valid=VALID, window_bp=4_000))
    with pytest.raises(ValueError, match="window_bp=30500"):
        Chromoformer(window_bp=30_500)
    with pytest.raises(ValueError, match="n_heads"):
        Chromoformer(regulation_d=250)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_autocast_matches_cpu(dtype):
    torch.manual_seed(12)
    net = Chromoformer(out_dim=1).eval()
    x = make_inputs(valid=VALID, seed=12)
    with torch.no_grad():
        want = net(**x)
    net = net.cuda()
    on_gpu = {k: ({r: t.cuda() for r, t in v.items()} if isinstance(v, dict) else v.cuda())
              for k, v in x.items()}
    with torch.autocast("cuda", dtype=dtype):
        got = net(**on_gpu)
        got.float().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())
    torch.testing.assert_close(got.float().cpu(), want, rtol=0.05, atol=0.05)
