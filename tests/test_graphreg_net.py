"""Epi-GraphReg and Epi-CNN networks: shapes, graph batching, empty graphs, options, training,
and the attention weights GraphReg returns on request."""

from __future__ import annotations

import math

import pytest
import torch
from torch_geometric.nn import GATv2Conv

from epx.models.epi_cnn import EpiCNN
from epx.models.graphreg import EpiGraphReg
from epx.models.graphreg_blocks import EpiEncoder

SMALL_L = 1000  # 20 nodes: enough to exercise the graph, cheap on 2 cores


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _edges(*pairs: tuple[int, int]) -> torch.Tensor:
    both = [p for a, b in pairs for p in ((a, b), (b, a))]
    return torch.tensor(both, dtype=torch.long).T.reshape(2, -1)


NO_EDGES = torch.empty(2, 0, dtype=torch.long)


def test_poisson_nll_matches_hand_computation():
    pred = torch.tensor([1.0, 2.0, 0.5])
    target = torch.tensor([0.0, 3.0, 1.0])
    # mean of mu - y log mu (the lgamma(y + 1) term is constant in the model)
    hand = ((1.0 - 0.0) + (2.0 - 3.0 * math.log(2.0)) + (0.5 - 1.0 * math.log(0.5))) / 3
    loss = torch.nn.PoissonNLLLoss(log_input=False)(pred, target)
    assert loss.item() == pytest.approx(hand, abs=1e-6)


def test_encoder_parameter_count_and_pooling():
    encoder = EpiEncoder(n_marks=7)
    # convs (7*25, 128*3, 128*3 inputs -> 128, + bias) and three BatchNorms (weight + bias)
    expected = (7 * 25 * 128 + 128) + 2 * (128 * 3 * 128 + 128) + 3 * 2 * 128
    assert sum(p.numel() for p in encoder.parameters()) == expected
    assert encoder(torch.randn(1, 7, SMALL_L)).shape == (1, 128, SMALL_L // 50)


def test_full_window_shapes_and_nonnegative():
    x = torch.randn(2, 7, 60_000)
    edge_index = torch.cat([_edges((0, 599), (400, 1199)), _edges((0, 599)) + 1200], dim=1)
    graphreg = EpiGraphReg(n_marks=7).eval()
    cnn = EpiCNN(n_marks=7).eval()
    with torch.no_grad():
        out = graphreg(x=x, edge_index=edge_index)
        out_cnn = cnn(x=x[:1])
    assert out.shape == (2, 1200) and out_cnn.shape == (1, 1200)
    assert torch.all(out >= 0) and torch.all(torch.isfinite(out))
    assert torch.all(out_cnn >= 0) and torch.all(torch.isfinite(out_cnn))


def test_graph_reaches_exactly_connected_nodes_of_its_own_window():
    """An edge 3 <-> 15 in window 1 changes only those two nodes, only in window 1."""
    model = EpiGraphReg(n_marks=3).eval()
    x = torch.randn(2, 3, SMALL_L)
    with torch.no_grad():
        alone = model(x=x, edge_index=NO_EDGES)
        linked = model(x=x, edge_index=_edges((20 + 3, 20 + 15)))
        window1_alone = model(x=x[1:], edge_index=_edges((3, 15)))
    changed = (alone - linked).abs() > 1e-6
    assert changed[1].nonzero().flatten().tolist() == [3, 15]
    assert not changed[0].any()
    torch.testing.assert_close(linked[1:], window1_alone)  # PyG batching: id = b * N + n


def test_empty_graph_trains():
    model = EpiGraphReg(n_marks=3).train()
    out = model(x=torch.randn(2, 3, SMALL_L), edge_index=NO_EDGES)
    torch.nn.PoissonNLLLoss(log_input=False)(out, torch.rand(2, SMALL_L // 50)).backward()
    for gat in model.gat_layers:
        grads = [p.grad for p in gat.parameters()]
        assert all(g is not None and torch.all(torch.isfinite(g)) for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)


def test_gatv2_and_softplus_options():
    model = EpiGraphReg(n_marks=2, attention="gatv2", output="softplus", n_gat_layers=3)
    assert sum(isinstance(m, GATv2Conv) for m in model.modules()) == 3
    out = model(x=torch.randn(1, 2, SMALL_L), edge_index=_edges((0, 19), (5, 6)))
    assert out.shape == (1, 20) and torch.all(out >= 0)
    out.sum().backward()
    assert all(p.grad is not None for p in model.gat_layers.parameters())


def test_epi_cnn_ignores_the_graph():
    model = EpiCNN(n_marks=3).eval()
    x = torch.randn(1, 3, SMALL_L)
    with torch.no_grad():
        with_graph = model(x=x, edge_index=_edges((0, 19)), edge_weight=torch.ones(2))
        torch.testing.assert_close(model(x=x), with_graph)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="attention"):
        EpiGraphReg(attention="transformer")
    with pytest.raises(ValueError, match="output"):
        EpiCNN(output="relu")
    model = EpiGraphReg(n_marks=7)
    with pytest.raises(ValueError, match="n_marks"):
        model(x=torch.randn(1, 3, SMALL_L), edge_index=NO_EDGES)
    with pytest.raises(ValueError, match="multiple of 50"):
        model(x=torch.randn(1, 7, SMALL_L + 7), edge_index=NO_EDGES)
    with pytest.raises(ValueError, match="outside"):
        model(x=torch.randn(1, 7, SMALL_L), edge_index=_edges((0, 20)))


@pytest.mark.parametrize("model_cls", [EpiGraphReg, EpiCNN])
def test_a_few_steps_reduce_the_loss(model_cls):
    # dropout off so that the loss on the fixed batch is a deterministic function of the weights
    model = model_cls(n_marks=3, dropout=0.0).train()
    x = torch.randn(2, 3, SMALL_L)
    target = torch.poisson(torch.full((2, SMALL_L // 50), 3.0))
    edge_index = _edges((1, 7), (20 + 2, 20 + 9))
    loss_fn = torch.nn.PoissonNLLLoss(log_input=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loss() -> torch.Tensor:
        return loss_fn(model(x=x, edge_index=edge_index), target)

    before = loss().item()
    for _ in range(5):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    assert loss().item() < before - 0.1


# ----------------------------------------------------------------------------- attention


@pytest.mark.parametrize("attention", ["gat", "gatv2"])
def test_attention_weights_are_a_softmax_over_each_nodes_incoming_edges(attention):
    model = EpiGraphReg(n_marks=3, d=16, heads=2, gat_dim=8, attention=attention).eval()
    x = torch.randn(2, 3, SMALL_L)
    edge_index = torch.cat([_edges((0, 19), (3, 4), (3, 15)), _edges((2, 9)) + 20], dim=1)
    with torch.no_grad():
        out, attention_weights = model(x=x, edge_index=edge_index, return_attention=True)
        torch.testing.assert_close(out, model(x=x, edge_index=edge_index), rtol=0, atol=0)
    n_nodes = 2 * 20
    assert len(attention_weights) == model.n_gat_layers == 2
    for layer_edges, alpha in attention_weights:
        # the graph's edges plus one self-loop per node, in batched ids
        assert layer_edges.shape == (2, edge_index.shape[1] + n_nodes) and alpha.shape == (layer_edges.shape[1], 2)
        assert _pairs(layer_edges) == _pairs(edge_index) | {(i, i) for i in range(n_nodes)}
        assert bool((alpha >= 0).all())
        per_receiver = torch.zeros(n_nodes, 2).index_add_(0, layer_edges[1], alpha)
        torch.testing.assert_close(per_receiver, torch.ones(n_nodes, 2))
    # a node with no contact attends only to itself
    isolated = (attention_weights[0][0][1] == 7)
    assert torch.equal(attention_weights[0][1][isolated], torch.ones(1, 2))


def _pairs(edge_index: torch.Tensor) -> set[tuple[int, int]]:
    return set(map(tuple, edge_index.T.tolist()))


def _sender_rankings(model: EpiGraphReg) -> torch.Tensor:
    """Every receiver 0..7 hears the same senders 10..14: (receiver, head, senders by weight)."""
    receivers, senders = range(8), range(10, 15)
    edge_index = torch.tensor([(s, r) for r in receivers for s in senders]).T
    with torch.no_grad():
        _, [(layer_edges, alpha), _] = model(x=torch.randn(1, 3, SMALL_L), edge_index=edge_index, return_attention=True)
    heard = layer_edges[0] != layer_edges[1]  # drop the self-loops
    weights = alpha[heard].reshape(len(receivers), len(senders), -1)  # edges come receiver by receiver
    assert layer_edges[0][heard].reshape(len(receivers), len(senders)).eq(torch.tensor(senders)).all()
    return weights.argsort(dim=1).transpose(1, 2)


def test_gat_ranks_neighbours_alike_for_every_node_gatv2_does_not():
    """The README's claim: GATConv's attention is static — softmax(LeakyReLU(a_s·W h_s +
    a_r·W h_r)) is monotone in the sender's term, so every receiver ranks the same senders in
    the same order — while GATv2 scores each (receiver, sender) pair jointly."""
    static = _sender_rankings(EpiGraphReg(n_marks=3, d=16, heads=4, gat_dim=8, attention="gat").eval())
    dynamic = _sender_rankings(EpiGraphReg(n_marks=3, d=16, heads=4, gat_dim=8, attention="gatv2").eval())
    assert torch.equal(static, static[:1].expand_as(static))
    assert not torch.equal(dynamic, dynamic[:1].expand_as(dynamic))
