"""Epi-GraphReg: a CNN over histone-mark bins, then graph attention over 3D contacts.

Karbalayghareh et al., Genome Research 2022. A 6 Mb window of 100 bp bins of M marks is
encoded into 1,200 nodes of 5 kb (``EpiEncoder``); ``n_gat_layers`` graph-attention layers
(each attention -> BatchNorm -> ELU, dropout between) let every node read the nodes it
contacts in Hi-C/HiChIP; ``CountHead`` predicts a non-negative count per node. The
training objective (Poisson NLL on the middle 400 nodes) lives outside the model.

Attention: the original uses its own sigmoid-normalised attention (GraphReg's GAT variant
on a dense adjacency). We use PyTorch Geometric's ``GATConv`` (softmax-normalised over each
node's neighbours, self-loops added by the layer) as designed, with ``attention="gatv2"``
(``GATv2Conv``, dynamic attention) as an option. Like the paper, the graph is binary:
contact strength does not enter the attention.

Why the option matters: GATConv's attention is static (Brody et al., ICLR 2022) — the
receiver's term cancels in the softmax up to the LeakyReLU, so every node ranks its
neighbours alike. It cannot learn "read the linked enhancer only if *this* promoter is
enhancer-dependent"; GATv2 scores each (receiver, sender) pair jointly. On the synthetic
distal benchmark (``experiment=graphreg_distal``, two seeds) both gain on distal-driven
genes (GATConv +0.18/+0.24 Spearman over Epi-CNN, GATv2 +0.31/+0.25), but GATConv pays for
it on the other genes (0.81-0.84 against 0.87-0.88), as static attention predicts: it mixes
enhancers into every promoter alike.

``attention="published"`` is the paper's own layer (``epx.models.graphreg_gat.PublishedGATConv``:
separate self and neighbour projections per head, sigmoid scores normalised as
s_ij / (1 + sum s), the node's own term weighted 1 / (1 + sum s), no self-loops); it drops its
projected features itself, as the original does, so the net adds no dropout before it.
``layer_order="published"`` arranges the rest as the authors' Keras code does: Conv -> ReLU ->
BN in the encoder and the head, GAT -> ELU -> BN after each attention layer (epx: GAT -> BN ->
ELU), Keras's BatchNorm constants (``graphreg_blocks.LAYER_ORDERS``). Both together are the
published network (184,065 trainable parameters with 3 tracks), which ``epx import graphreg``
fills with the authors' trained weights.

Batching follows PyG's ``Batch`` convention: the B windows' node sets are concatenated, so
node ``n`` of window ``b`` has id ``b * N + n`` in ``edge_index`` (N = 1,200 for 6 Mb).

``forward(..., return_attention=True)`` also returns, per GAT layer, the edges the layer
attended over (the graph plus the self-loops it adds; for ``published`` the self-loops carry
the node's own weight 1 / (1 + sum s)) and their attention weights: for each
head, the weights of a node's incoming edges are >= 0 and sum to 1 — what to inspect to see
whether a promoter reads its linked enhancer. ``reset_parameters()`` redraws every layer
(PyTorch's and PyG's default initialisation, BatchNorm statistics included).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import GATConv, GATv2Conv

from epx.models.fast_layers import Dropout
from epx.models.graphreg_blocks import CountHead, EpiEncoder
from epx.models.graphreg_blocks import layer_order as find_layer_order
from epx.models.graphreg_gat import PublishedGATConv
from epx.models.reset import reset_submodules

ATTENTION_LAYERS: dict[str, type[nn.Module]] = {
    "gat": GATConv,
    "gatv2": GATv2Conv,
    "published": PublishedGATConv,
}
# Where each attention's dropout acts: on the layer's input (the net drops the node features
# before the layer) or on the layer's projected features (the layer drops them itself).
ATTENTION_DROPOUT: dict[str, str] = {"gat": "input", "gatv2": "input", "published": "features"}


def _elu_then_norm(norm: nn.Module, h: torch.Tensor) -> torch.Tensor:
    return norm(F.elu(h))


def _norm_then_elu(norm: nn.Module, h: torch.Tensor) -> torch.Tensor:
    return F.elu(norm(h))


# what follows each attention layer, by layer order (the Keras code applies its ELU inside the layer)
AFTER_ATTENTION = {"epx": _norm_then_elu, "published": _elu_then_norm}


def _check_edge_index(edge_index: torch.Tensor, n_nodes: int) -> None:
    # Out-of-range ids otherwise surface as an opaque scatter error (a device assert on GPU).
    if edge_index.dim() != 2 or edge_index.shape[0] != 2 or edge_index.dtype != torch.long:
        raise ValueError(
            f"edge_index must be a (2, E) int64 tensor, got shape {tuple(edge_index.shape)} "
            f"dtype {edge_index.dtype}"
        )
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= n_nodes):
        raise ValueError(
            f"edge_index has node ids outside [0, {n_nodes}) for a batch of {n_nodes} nodes; "
            "offset each window's local ids by window_index * nodes_per_window (PyG Batch)"
        )


class EpiGraphReg(nn.Module):
    """Histone marks of B windows + their contact graph -> predicted counts per 5 kb node."""

    def __init__(
        self,
        *,
        n_marks: int = 7,
        d: int = 128,
        n_gat_layers: int = 2,
        heads: int = 4,
        gat_dim: int = 32,
        dropout: float = 0.5,
        attention: str = "gat",
        output: str = "exp",
        layer_order: str = "epx",
    ) -> None:
        super().__init__()
        order = find_layer_order(layer_order)
        if attention not in ATTENTION_LAYERS:
            raise ValueError(f"unknown attention {attention!r}; choose one of {sorted(ATTENTION_LAYERS)}")
        if n_gat_layers < 0:
            raise ValueError(f"n_gat_layers must be >= 0, got {n_gat_layers}")
        layer_cls = ATTENTION_LAYERS[attention]
        self.n_marks, self.d, self.n_gat_layers, self.heads, self.gat_dim = n_marks, d, n_gat_layers, heads, gat_dim
        self.dropout_p, self.attention, self.output, self.layer_order = dropout, attention, output, layer_order
        self.encoder = EpiEncoder(n_marks=n_marks, d=d, dropout=dropout, layer_order=layer_order)
        self.dropout = Dropout(dropout)
        width = gat_dim * heads
        inside = ATTENTION_DROPOUT[attention] == "features"
        self._drop_input = not inside
        extra = {"dropout": dropout} if inside else {}
        self.gat_layers = nn.ModuleList(
            layer_cls(d if i == 0 else width, gat_dim, heads=heads, concat=True, **extra)
            for i in range(n_gat_layers)
        )
        self.gat_norms = nn.ModuleList(order.norm(width) for _ in range(n_gat_layers))
        self._after_attention = AFTER_ATTENTION[layer_order]
        self.head = CountHead(in_channels=width if n_gat_layers else d, output=output, layer_order=layer_order)

    def reset_parameters(self) -> None:
        reset_submodules(self)

    def extra_repr(self) -> str:
        return (f"n_marks={self.n_marks}, d={self.d}, n_gat_layers={self.n_gat_layers}, "
                f"heads={self.heads}, gat_dim={self.gat_dim}, attention={self.attention!r}, "
                f"dropout={self.dropout_p}, output={self.output!r}, layer_order={self.layer_order!r}")

    def forward(
        self,
        *,
        x: torch.Tensor,
        edge_index: torch.Tensor,
        edge_weight: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Predict counts for every node of every window.

        x: (B, M, L) marks over B windows of L 100 bp bins (L = 60,000 for 6 Mb).
        edge_index: (2, E) int64 over the B * N batched nodes, N = L // 50 (id = b * N + n);
            may be empty (E = 0): each node then attends only to itself.
        edge_weight: (E,) accepted so both GraphReg models share one call signature; unused,
            because the attention sees a binary graph (as in the paper).
        return_attention: also return each GAT layer's attention.
        returns: (B, N) predicted counts >= 0; with ``return_attention``, ``(counts,
            attention)`` where ``attention[k] = (edge_index_k (2, E'), alpha_k (E', heads))``
            for GAT layer k: E' = E plus one self-loop per node (the layer adds them),
            ``edge_index_k[0]`` the sender and ``[1]`` the receiver, in batched node ids;
            alpha >= 0 sums to 1 over each receiver's incoming edges, per head (``published``:
            the graph's self-loops are dropped first and the added self-loop carries the
            node's own weight).
        """
        del edge_weight
        h = self.encoder(x)  # (B, d, N)
        batch, channels, n_nodes = h.shape
        _check_edge_index(edge_index, batch * n_nodes)
        nodes = h.transpose(1, 2).reshape(batch * n_nodes, channels)
        attention = []
        for gat, norm in zip(self.gat_layers, self.gat_norms):
            if return_attention:
                # PyG returns a tuple whenever the flag is truthy, so it is passed only then.
                nodes, weights = gat(self.dropout(nodes) if self._drop_input else nodes, edge_index, return_attention_weights=True)
                attention.append(weights)
            else:
                nodes = gat(self.dropout(nodes) if self._drop_input else nodes, edge_index)
            nodes = self._after_attention(norm, nodes)
        h = nodes.reshape(batch, n_nodes, -1).transpose(1, 2)  # (B, C, N)
        counts = self.head(self.dropout(h))
        return (counts, attention) if return_attention else counts
