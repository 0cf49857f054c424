"""The CPU fast paths behind the models (issue 21, part 5) compute what the stock layers do:
epx.models.fast_layers' Dropout and MaxPool1d, and attention over an affine context."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from epx.models.attention import TransformerLayer
from epx.models.fast_layers import Dropout, MaxPool1d, PhaseMax, PoolAlignedConv1d, conv_by_phase


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_keeps_one_minus_p_and_scales_like_nn_dropout(p):
    torch.manual_seed(0)
    y = Dropout(p).train()(torch.ones(4, 8, 50_001))
    kept = y != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.005
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / (1 - p)))


def test_dropout_is_seeded_identity_in_eval_and_differentiable():
    x = torch.randn(2, 3, 101, requires_grad=True)
    layer = Dropout(0.5).train()
    torch.manual_seed(1)
    a = layer(x)
    torch.manual_seed(1)
    assert torch.equal(a, layer(x))
    (grad,) = torch.autograd.grad(a.sum(), x)
    torch.testing.assert_close(grad, (a != 0).float() * 2.0)
    assert torch.equal(layer.eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)


def test_dropout_function_is_the_module_and_stock_in_eval():
    from epx.models.fast_layers import dropout

    x = torch.randn(3, 4, 50)
    torch.manual_seed(2)
    a = dropout(x, 0.3, True)
    torch.manual_seed(2)
    assert torch.equal(a, Dropout(0.3).train()(x))
    assert torch.equal(dropout(x, 0.3, False), x)


@pytest.mark.parametrize("kernel, length", [(2, 60), (5, 30), (4, 15), (2, 7)])
def test_max_pool_matches_the_stock_pool_and_its_gradient(kernel, length):
    x = torch.randn(3, 4, length, requires_grad=True)
    ours, stock = MaxPool1d(kernel)(x), F.max_pool1d(x, kernel)
    assert torch.equal(ours, stock)
    g = torch.randn_like(stock)
    assert torch.equal(torch.autograd.grad(ours, x, g)[0], torch.autograd.grad(stock, x, g)[0])


@pytest.mark.parametrize("kernel", [2, 5])
def test_max_pool_sends_a_tied_windows_gradient_to_its_first_maximum_like_the_stock_pool(kernel):
    # ReLU -> BatchNorm (the published layer order) makes whole windows equal
    x = torch.randint(0, 3, (2, 4, 10 * kernel)).float().requires_grad_(True)
    ours, stock = MaxPool1d(kernel)(x), F.max_pool1d(x, kernel)
    assert torch.equal(ours, stock)
    g = torch.randn_like(stock)
    assert torch.equal(torch.autograd.grad(ours, x, g)[0], torch.autograd.grad(stock, x, g)[0])


def test_max_pool_of_a_window_with_nan_outputs_nan_like_the_stock_pool():
    x = torch.randn(1, 2, 10)
    x[0, 0, 3] = float("nan")
    x.requires_grad_(True)
    out = MaxPool1d(2)(x)
    assert out[0, 0, 1].isnan() and torch.equal(out.isnan(), F.max_pool1d(x, 2).isnan())


def test_max_pool_output_may_take_an_in_place_relu_before_the_backward():
    # PromoterCNN's ReLU after the pool runs in place on the pool's output
    x = torch.randn(2, 3, 12, requires_grad=True)
    ours = torch.relu_(MaxPool1d(2)(x))
    stock = torch.relu(F.max_pool1d(x, 2))
    g = torch.randn_like(stock)
    (expected,) = torch.autograd.grad(stock, x, g)
    assert torch.equal(torch.autograd.grad(ours, x, g)[0], expected)
    planes = x.view(2, 3, 6, 2).transpose(2, 3)
    phased = torch.relu_(PhaseMax.apply(planes))
    assert torch.equal(torch.autograd.grad(phased, x, g)[0], expected)


def test_max_pool_of_a_length_the_kernel_does_not_divide_drops_the_tail_like_the_stock_pool():
    x = torch.randn(2, 3, 7, requires_grad=True)
    assert MaxPool1d(2)._is_reshape(x) and not MaxPool1d(2, ceil_mode=True)._is_reshape(x)
    ours, stock = MaxPool1d(2, ceil_mode=True)(x), F.max_pool1d(x, 2, ceil_mode=True)
    assert ours.shape[-1] == 4 and torch.equal(ours, stock)
    (grad,) = torch.autograd.grad(MaxPool1d(2)(x).sum(), x)
    assert not grad[..., -1].any()  # the dropped position gets no gradient


@pytest.mark.parametrize("kernel, padding, pool, length", [(4, "same", 2, 7), (4, "same", 2, 15), (8, "same", 4, 60),
                                                      (3, "same", 2, 9), (4, "valid", 2, 10), (3, 1, 4, 13), (5, "same", 3, 11)])
def test_pool_aligned_conv_feeds_the_pool_what_the_full_conv_does(kernel, padding, pool, length):
    torch.manual_seed(0)
    full = torch.nn.Conv1d(3, 5, kernel, padding=padding)
    ours = PoolAlignedConv1d(3, 5, kernel, padding=padding, pool=pool)
    ours.load_state_dict(full.state_dict())  # same keys and shapes
    x = torch.randn(2, 3, length, requires_grad=True)
    reference = full(x)
    aligned = ours(x)
    assert aligned.shape[-1] == reference.shape[-1] // pool * pool
    torch.testing.assert_close(aligned, reference[..., : aligned.shape[-1]], rtol=1e-6, atol=1e-6)
    g = torch.randn(2, 5, reference.shape[-1] // pool)
    grads = [torch.autograd.grad(F.max_pool1d(y, pool), [x, *m.parameters()], g)
             for y, m in ((aligned, ours), (reference, full))]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_attention_over_an_affine_context_equals_the_built_context():
    torch.manual_seed(0)
    layer = TransformerLayer(d_model=16, n_heads=2, d_inner=16, d_ff=8).eval()
    marks, weight, offset = torch.randn(5, 9, 3), torch.randn(16, 3), torch.randn(9, 16)
    query = torch.randn(5, 2, 16)
    key_valid = torch.rand(5, 9) > 0.3
    key_valid[0] = False  # all padding: uniform attention on both paths
    built = layer(query, context=marks @ weight.T + offset, key_valid=key_valid)
    affine = layer(query, affine_context=(marks, weight, offset), key_valid=key_valid)
    torch.testing.assert_close(affine, built, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel, padding, k, length", [(25, "same", 2, 60), (3, "same", 5, 30), (4, "same", 2, 14), (5, 2, 3, 12)])
def test_conv_by_phase_is_the_full_conv_regrouped_by_window(kernel, padding, k, length):
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(3, 4, kernel, padding=padding)
    x = torch.randn(2, 3, length, requires_grad=True)
    planes = conv_by_phase(conv, x, k)
    full = conv(x)
    assert planes.shape == (2, 4, k, length // k)
    regrouped = full.view(2, 4, length // k, k).transpose(2, 3)
    torch.testing.assert_close(planes, regrouped, rtol=1e-6, atol=1e-6)
    g = torch.randn_like(regrouped)
    ours = torch.autograd.grad(planes, [x, conv.weight, conv.bias], g)
    stock = torch.autograd.grad(regrouped, [x, conv.weight, conv.bias], g)
    for a, b in zip(ours, stock):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("k", [2, 5])
@pytest.mark.parametrize("tied", [False, True])
def test_phase_max_is_the_stock_pool_of_the_interleaved_windows(k, tied):
    n = 12
    x = (torch.randint(0, 3, (2, 4, n * k)).float() if tied else torch.randn(2, 4, n * k)).requires_grad_(True)
    planes = x.view(2, 4, n, k).transpose(2, 3)  # the layout conv_by_phase writes
    ours, stock = PhaseMax.apply(planes), F.max_pool1d(x, k)
    assert torch.equal(ours, stock)
    g = torch.randn_like(stock)
    assert torch.equal(torch.autograd.grad(ours, x, g)[0], torch.autograd.grad(stock, x, g)[0])


@pytest.mark.parametrize("layer_order", ["epx", "published"])
def test_encoder_fast_path_matches_its_stock_forward_and_gradients(layer_order):
    from epx.models.graphreg_blocks import EpiEncoder

    torch.manual_seed(0)
    encoder = EpiEncoder(n_marks=3, d=16, dropout=0.0, layer_order=layer_order).train()
    x = torch.rand(2, 3, 500) * 2
    g = torch.randn(2, 16, 10)
    params = list(encoder.parameters())
    fast = encoder(x)
    fast_grads = torch.autograd.grad(fast, params, g)
    stats = [b.clone() for b in encoder.buffers()]
    torch.manual_seed(0)
    stock_encoder = EpiEncoder(n_marks=3, d=16, dropout=0.0, layer_order=layer_order).train()
    stock = stock_encoder._stock_forward(x)
    stock_grads = torch.autograd.grad(stock, list(stock_encoder.parameters()), g)
    torch.testing.assert_close(fast, stock, rtol=1e-5, atol=1e-5)
    # rounding, measured against the largest gradient (a conv bias before BN gets only rounding: 0 in exact math)
    scale = max(float(b.abs().max()) for b in stock_grads)
    for a, b in zip(fast_grads, stock_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=2e-6 * scale)
    for a, b in zip(stats, stock_encoder.buffers()):  # running statistics and batch counts
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    encoder.eval(), stock_encoder.eval()
    with torch.no_grad():
        torch.testing.assert_close(encoder(x), stock_encoder._stock_forward(x), rtol=1e-6, atol=1e-6)
