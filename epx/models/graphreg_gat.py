"""GraphReg's own graph-attention layer (Karbalayghareh et al. 2022), as a PyG ``MessagePassing``.

This is the attention of the authors' Keras ``GraphAttention`` layer, which differs from GAT
(Velickovic et al.) and from PyG's ``GATConv`` in four ways:

- each head has two projections: ``W_self`` for the receiver's own features and ``W_neigh``
  for its neighbours', and two attention vectors ``a_self`` and ``a_neigh``;
- a neighbour's score is a sigmoid, not a softmax term:
  ``s_ij = sigmoid(LeakyReLU_0.2(a_self . W_self x_i + a_neigh . W_neigh x_j))``;
- scores are normalised as ``alpha_ij = s_ij / (1 + sum_j s_ij)``, and the node's own term is
  weighted ``beta_i = 1 / (1 + sum_j s_ij)``, so ``beta_i + sum_j alpha_ij = 1``:
  ``out_i = beta_i W_self x_i + sum_j alpha_ij W_neigh x_j`` per head, heads concatenated;
- no self-loops enter the graph (the node's own term is ``beta_i``); any in ``edge_index``
  are dropped. A node without neighbours keeps ``W_self x_i`` (``beta_i = 1``).

No bias and no activation (the original's ``use_bias`` is False; its ELU is applied by the
net, which decides where it sits relative to BatchNorm). ``dropout`` drops the projected
features ``W_self x`` and ``W_neigh x`` (independently) in training, where the original drops
them; the attention coefficients are not dropped.

Parameters per layer: ``heads * (2 * in_channels * out_channels + 2 * out_channels)``
(33,024 for 128 -> 4 x 32). ``reset_parameters()`` draws every weight Glorot-uniform per head,
as the Keras layer initialises (fan-in + fan-out of each head's own matrix).

``forward(x, edge_index, return_attention_weights=None)``: x (N, in_channels), edge_index
(2, E) int64 with ``[0]`` the sender j and ``[1]`` the receiver i (PyG's convention) ->
(N, heads * out_channels); with ``return_attention_weights=True``, ``(out, (edge_index',
alpha'))`` in the contract of PyG's GAT layers: ``edge_index'`` (2, E' + N) the graph without
self-loops followed by one self-loop per node (i, i), ``alpha'`` (E' + N, heads): alpha_ij on
the graph's edges and beta_i on the self-loops, so each receiver's weights sum to 1 per head.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import remove_self_loops, scatter

from epx.models.fast_layers import dropout


class PublishedGATConv(MessagePassing):
    """GraphReg's sigmoid-normalised graph attention (see the module docstring)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        heads: int = 1,
        concat: bool = True,
        dropout: float = 0.0,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__(aggr="add", node_dim=0)
        if not concat:
            # the published networks concatenate; averaging heads was never used with this layer
            raise ValueError("PublishedGATConv concatenates its heads (concat=True)")
        self.in_channels, self.out_channels, self.heads = in_channels, out_channels, heads
        self.dropout, self.negative_slope = dropout, negative_slope
        width = heads * out_channels
        self.lin_self = nn.Linear(in_channels, width, bias=False)
        self.lin_neigh = nn.Linear(in_channels, width, bias=False)
        self.att_self = nn.Parameter(torch.empty(heads, out_channels))
        self.att_neigh = nn.Parameter(torch.empty(heads, out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Keras's glorot_uniform on each head's own (in, out) kernel and (out, 1) attention kernel
        kernel = math.sqrt(6.0 / (self.in_channels + self.out_channels))
        attention = math.sqrt(6.0 / (self.out_channels + 1))
        for weight in (self.lin_self.weight, self.lin_neigh.weight):
            nn.init.uniform_(weight, -kernel, kernel)
        for weight in (self.att_self, self.att_neigh):
            nn.init.uniform_(weight, -attention, attention)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, heads={self.heads}, dropout={self.dropout}, "
                f"negative_slope={self.negative_slope}")

    def forward(
        self,
        x: torch.Tensor,
        edge_index: torch.Tensor,
        return_attention_weights: bool | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x: (N, in_channels); edge_index: (2, E), [0] sender, [1] receiver -> (N, heads * out)."""
        n, heads, width = x.shape[0], self.heads, self.out_channels
        edge_index, _ = remove_self_loops(edge_index)
        own = self.lin_self(x).view(n, heads, width)  # (N, H, F)
        neigh = self.lin_neigh(x).view(n, heads, width)
        score_self = (own * self.att_self).sum(-1)  # (N, H): a_self . W_self x_i
        score_neigh = (neigh * self.att_neigh).sum(-1)  # (N, H): a_neigh . W_neigh x_j
        sender, receiver = edge_index
        s = torch.sigmoid(F.leaky_relu(score_self[receiver] + score_neigh[sender], self.negative_slope))  # (E, H)
        total = scatter(s, receiver, dim=0, dim_size=n, reduce="sum")  # (N, H)
        beta = 1.0 / (1.0 + total)  # the node's own weight
        alpha = s * beta[receiver]  # (E, H)
        # fast_layers' mask: the stock CPU kernel's bernoulli_ costs more than the rest of the layer
        own = dropout(own, self.dropout, self.training)
        neigh = dropout(neigh, self.dropout, self.training)
        out = own * beta.unsqueeze(-1) + self.propagate(edge_index, x=neigh, alpha=alpha)
        out = out.reshape(n, heads * width)
        if not return_attention_weights:
            return out
        loops = torch.arange(n, device=edge_index.device).expand(2, n)
        return out, (torch.cat([edge_index, loops], dim=1), torch.cat([alpha, beta], dim=0))

    def message(self, x_j: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """x_j: (E, H, F) the senders' projected features; alpha: (E, H) -> (E, H, F)."""
        return alpha.unsqueeze(-1) * x_j
