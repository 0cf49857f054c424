"""Epi-CNN: GraphReg's no-graph control, which reaches far with dilated convolutions instead.

Karbalayghareh et al., Genome Research 2022. The same ``EpiEncoder`` as Epi-GraphReg
(100 bp bins -> 5 kb nodes), then a Conv1d to 64 channels + BN + ReLU and 8 residual
dilated blocks (dilation 2^1 ... 2^8; together they see about +-510 nodes, i.e. +-2.5 Mb,
as far as the graph can reach in a 6 Mb window), then the same ``CountHead``. It takes the
graph arguments and ignores them, so the two models are drop-in replacements for each other.
``reset_parameters()`` redraws every layer with PyTorch's default initialisation (BatchNorm
statistics included), in construction order.
"""

from __future__ import annotations

import torch
from torch import nn

from epx.models.graphreg_blocks import CountHead, EpiEncoder
from epx.models.reset import reset_submodules


class DilatedResidualBlock(nn.Module):
    """Dropout -> dilated Conv1d (k 3) + ReLU, added to the input, then BatchNorm."""

    def __init__(self, *, channels: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.conv = nn.Conv1d(channels, channels, 3, dilation=dilation, padding="same")
        self.norm = nn.BatchNorm1d(channels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h: (B, C, N) -> (B, C, N)."""
        return self.norm(h + torch.relu(self.conv(self.dropout(h))))


class EpiCNN(nn.Module):
    """Histone marks of B windows -> predicted counts per 5 kb node, without a graph."""

    def __init__(
        self,
        *,
        n_marks: int = 7,
        d: int = 128,
        channels: int = 64,
        n_dilated_blocks: int = 8,
        dropout: float = 0.5,
        output: str = "exp",
    ) -> None:
        super().__init__()
        self.n_marks, self.d, self.channels = n_marks, d, channels
        self.n_dilated_blocks, self.dropout_p, self.output = n_dilated_blocks, dropout, output
        self.encoder = EpiEncoder(n_marks=n_marks, d=d, dropout=dropout)
        self.bridge = nn.Sequential(
            nn.Dropout(dropout),
            nn.Conv1d(d, channels, 3, padding="same"),
            nn.BatchNorm1d(channels),
            nn.ReLU(),
        )
        self.blocks = nn.Sequential(
            *(
                DilatedResidualBlock(channels=channels, dilation=2**i, dropout=dropout)
                for i in range(1, n_dilated_blocks + 1)
            )
        )
        self.head = CountHead(in_channels=channels, output=output)

    def reset_parameters(self) -> None:
        reset_submodules(self)

    def extra_repr(self) -> str:
        return (f"n_marks={self.n_marks}, d={self.d}, channels={self.channels}, "
                f"n_dilated_blocks={self.n_dilated_blocks}, dropout={self.dropout_p}, "
                f"output={self.output!r}")

    def forward(
        self,
        *,
        x: torch.Tensor,
        edge_index: torch.Tensor | None = None,
        edge_weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict counts for every node of every window.

        x: (B, M, L) marks over B windows of L 100 bp bins (L = 60,000 for 6 Mb).
        edge_index: (2, E), edge_weight: (E,) accepted and ignored (the control has no graph).
        returns: (B, N) predicted counts >= 0, N = L // 50.
        """
        del edge_index, edge_weight
        return self.head(self.blocks(self.bridge(self.encoder(x))))
