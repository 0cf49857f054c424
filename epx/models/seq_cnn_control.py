"""Seq-CNN: Seq-GraphReg's no-graph control, as Epi-CNN is Epi-GraphReg's.

Contract: ``SeqCNN`` reads what separate-mode ``SeqGraphReg`` reads — a trained
``seq_cnn_base``'s 64-dim bottleneck per 100 bp bin of a GraphReg window — through the same
``BottleneckEncoder`` (Conv 128 k3 + BN + ReLU pooled 2, 5, 5 into 5 kb nodes), then reaches
far with Epi-CNN's own dilated stage instead of a graph (``epx.models.epi_cnn.EpiCNN`` with
its mark encoder replaced by ``nn.Identity``: Conv 64 k3 + BN + ReLU, ``n_dilated_blocks``
residual dilated blocks, dilation 2^1..2^8 = about +-2.5 Mb, and the same count head). Same
windows, targets, loss and metrics, so only the graph differs between the two.

``forward(*, bottleneck (B, 64, L), edge_index=None, edge_weight=None) -> (B, N)`` counts
>= 0, N = L // 50 (the graph is accepted and ignored, so the two nets are drop-in
replacements). ``reset_parameters()`` redraws every layer.
"""

from __future__ import annotations

import torch
from torch import nn

from epx.models.epi_cnn import EpiCNN
from epx.models.reset import reset_submodules
from epx.models.seq_cnn import BOTTLENECK
from epx.models.seq_graphreg import BottleneckEncoder


class SeqCNN(nn.Module):
    """Bottlenecks of B windows -> predicted counts per 5 kb node, without a graph."""

    def __init__(
        self,
        *,
        bottleneck_channels: int = BOTTLENECK,
        d: int = 128,
        channels: int = 64,
        n_dilated_blocks: int = 8,
        dropout: float = 0.5,
        output: str = "exp",
        layer_order: str = "epx",
    ) -> None:
        super().__init__()
        self.bottleneck_channels, self.d, self.channels, self.n_dilated_blocks = bottleneck_channels, d, channels, n_dilated_blocks
        self.dropout_p, self.output, self.layer_order = dropout, output, layer_order
        self.encoder = BottleneckEncoder(in_channels=bottleneck_channels, d=d, dropout=dropout, layer_order=layer_order)
        self.cnn = EpiCNN(n_marks=d, d=d, channels=channels, n_dilated_blocks=n_dilated_blocks, dropout=dropout, output=output,
                          layer_order=layer_order)
        self.cnn.encoder = nn.Identity()  # the node embeddings come from the bottleneck encoder

    def reset_parameters(self) -> None:
        reset_submodules(self)

    def extra_repr(self) -> str:
        return (f"bottleneck_channels={self.bottleneck_channels}, d={self.d}, channels={self.channels}, "
                f"n_dilated_blocks={self.n_dilated_blocks}, dropout={self.dropout_p}, output={self.output!r}, "
                f"layer_order={self.layer_order!r}")

    def forward(self, *, bottleneck: torch.Tensor, edge_index: torch.Tensor | None = None,
                edge_weight: torch.Tensor | None = None) -> torch.Tensor:
        """bottleneck: (B, 64, L) per 100 bp bin -> (B, L // 50) counts >= 0 (graph ignored)."""
        del edge_index, edge_weight
        return self.cnn(x=self.encoder(bottleneck))
