"""Epi-CNN: GraphReg's no-graph control, which reaches far with dilated convolutions instead.

Karbalayghareh et al., Genome Research 2022. The same ``EpiEncoder`` as Epi-GraphReg
(100 bp bins -> 5 kb nodes), then a Conv1d to 64 channels + BN + ReLU and 8 residual
dilated blocks (dilation 2^1 ... 2^8; together they see about +-510 nodes, i.e. +-2.5 Mb,
as far as the graph can reach in a 6 Mb window), then the same ``CountHead``. It takes the
graph arguments and ignores them, so the two models are drop-in replacements for each other.
``layer_order="published"`` is the authors' Keras arrangement (train/Epi-CNN.py): Conv -> ReLU ->
BN in the encoder and the bridge, Keras's BatchNorm constants, each residual block adding its
dropped-out input (as the original adds the Dropout's output), and a head of one 1x1 conv to
the count (no hidden 64-channel stage): 233,729 trainable parameters with 3 tracks, the
network ``epx import graphreg --model epi_cnn`` fills with the authors' weights.
``reset_parameters()`` redraws every layer with PyTorch's default initialisation (BatchNorm
statistics included), in construction order.
"""

from __future__ import annotations

import torch
from torch import nn

from epx.models.fast_layers import Dropout
from epx.models.graphreg_blocks import CountHead, EpiEncoder
from epx.models.graphreg_blocks import layer_order as find_layer_order
from epx.models.reset import reset_submodules

# the published head has no hidden stage: the count is a 1x1 conv of the last block's output
HEAD_HIDDEN = {"epx": 64, "published": 0}


class DilatedResidualBlock(nn.Module):
    """Dropout -> dilated Conv1d (k 3) + ReLU, added to the input, then BatchNorm.

    ``layer_order="published"``: the dropped-out input is what is added (the Keras code adds
    its Dropout's output), and the BatchNorm takes Keras's constants.
    """

    def __init__(self, *, channels: int, dilation: int, dropout: float, layer_order: str = "epx") -> None:
        super().__init__()
        order = find_layer_order(layer_order)
        self.layer_order = layer_order
        self.dropout = Dropout(dropout)
        self.conv = nn.Conv1d(channels, channels, 3, dilation=dilation, padding="same")
        self.norm = order.norm(channels)
        self._add_dropped = layer_order == "published"

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h: (B, C, N) -> (B, C, N)."""
        dropped = self.dropout(h)
        return self.norm((dropped if self._add_dropped else h) + torch.relu(self.conv(dropped)))


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
        layer_order: str = "epx",
    ) -> None:
        super().__init__()
        order = find_layer_order(layer_order)
        self.n_marks, self.d, self.channels = n_marks, d, channels
        self.n_dilated_blocks, self.dropout_p, self.output = n_dilated_blocks, dropout, output
        self.layer_order = layer_order
        self.encoder = EpiEncoder(n_marks=n_marks, d=d, dropout=dropout, layer_order=layer_order)
        self.bridge = nn.Sequential(
            Dropout(dropout),
            *order.stage(nn.Conv1d(d, channels, 3, padding="same"), channels),
        )
        self.blocks = nn.Sequential(
            *(
                DilatedResidualBlock(channels=channels, dilation=2**i, dropout=dropout, layer_order=layer_order)
                for i in range(1, n_dilated_blocks + 1)
            )
        )
        self.head = CountHead(in_channels=channels, hidden=HEAD_HIDDEN[layer_order], output=output, layer_order=layer_order)

    def reset_parameters(self) -> None:
        reset_submodules(self)

    def extra_repr(self) -> str:
        return (f"n_marks={self.n_marks}, d={self.d}, channels={self.channels}, "
                f"n_dilated_blocks={self.n_dilated_blocks}, dropout={self.dropout_p}, "
                f"output={self.output!r}, layer_order={self.layer_order!r}")

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
