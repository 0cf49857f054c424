"""Promoter CNN: the DeepChrome-style "covnet" of the epi_to_express / chromexpress study.

Contract: ``PromoterCNN(n_marks, n_bins=60, out_dim=1)``; ``forward(x)`` with ``x: (B, M, L)``
the ln(mean+1) signal of M marks in L bins around the TSS (TSS ± 3 kb at 100 bp → L=60),
oriented 5'→3'; returns ``(B, out_dim)`` (1 regression output, or 2 class logits).

Layers (as published): Conv1d 175 (k 8) → ReLU → MaxPool 4 → Dropout 0.1; Conv1d 350 (k 4)
→ ReLU → MaxPool 2 → Dropout 0.1; Conv1d 700 (k 4) → ReLU → MaxPool 2 → Dropout 0.1;
Flatten → Dropout 0.4 → Dense 625 → ReLU → Dense 125 → ReLU → Dense ``out_dim``.
``padding="same"`` keeps L/16 positions into the dense layers (3 at L=60); the Keras
original's ``"valid"`` is available and leaves 1. ``reset_parameters()`` redraws every layer
with PyTorch's default initialisation, in construction order.

Cheaper on the CPU, same values and gradients (``benchmarks/bench_step.py``): each conv
computes only the positions its pool reads (``PoolAlignedConv1d``: 14 of 15, 6 of 7 at
L=60), the ReLU runs after the pool (they commute), and ``conf/model/promoter_cnn.yaml``
uses torch's fused Adam. ``state_dict`` keys and shapes are those of the plain layers.
"""

from __future__ import annotations

import torch
from torch import nn

from epx.models.fast_layers import Dropout, MaxPool1d, PoolAlignedConv1d
from epx.models.reset import reset_submodules


def _conv_block(c_in: int, c_out: int, kernel: int, pool: int, dropout: float, padding: str) -> nn.Sequential:
    # ReLU after the pool, not before: max and ReLU commute (relu(max) = max(relu), and the
    # gradient reaches the same first maximum of each window, or nothing where it is <= 0), so
    # values and gradients are the published order's exactly, with the ReLU on a pool-times
    # smaller tensor; in place, as max's backward keeps its indices, not its output
    return nn.Sequential(
        PoolAlignedConv1d(c_in, c_out, kernel_size=kernel, padding=padding, pool=pool),
        MaxPool1d(pool),
        nn.ReLU(inplace=True),
        Dropout(dropout),
    )


class PromoterCNN(nn.Module):
    def __init__(
        self,
        *,
        n_marks: int,
        n_bins: int = 60,
        out_dim: int = 1,
        channels: tuple[int, int, int] = (175, 350, 700),
        kernels: tuple[int, int, int] = (8, 4, 4),
        pools: tuple[int, int, int] = (4, 2, 2),
        conv_dropout: float = 0.1,
        dense: tuple[int, int] = (625, 125),
        dense_dropout: float = 0.4,
        padding: str = "same",
    ):
        super().__init__()
        self.n_marks, self.n_bins, self.out_dim = n_marks, n_bins, out_dim
        self.channels, self.kernels, self.pools = tuple(channels), tuple(kernels), tuple(pools)
        self.dense, self.padding = tuple(dense), padding
        self.conv_dropout, self.dense_dropout = conv_dropout, dense_dropout
        blocks, c_in = [], n_marks
        for c_out, k, p in zip(channels, kernels, pools):
            blocks.append(_conv_block(c_in, c_out, k, p, conv_dropout, padding))
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        with torch.no_grad():
            n_flat = self.features(torch.zeros(1, n_marks, n_bins)).numel()
        self.head = nn.Sequential(
            nn.Flatten(),
            Dropout(dense_dropout),
            nn.Linear(n_flat, dense[0]),
            nn.ReLU(),
            nn.Linear(dense[0], dense[1]),
            nn.ReLU(),
            nn.Linear(dense[1], out_dim),
        )

    def reset_parameters(self) -> None:
        reset_submodules(self)

    def extra_repr(self) -> str:
        return (
            f"n_marks={self.n_marks}, n_bins={self.n_bins}, out_dim={self.out_dim}, "
            f"channels={self.channels}, kernels={self.kernels}, pools={self.pools}, "
            f"dense={self.dense}, padding={self.padding!r}, "
            f"dropout=({self.conv_dropout}, {self.dense_dropout})"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, M, L) → (B, out_dim)."""
        return self.head(self.features(x))
