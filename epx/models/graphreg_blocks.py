"""Building blocks shared by Epi-GraphReg and its Epi-CNN control (Karbalayghareh et al. 2022).

``EpiEncoder`` turns a window of 100 bp histone-mark bins into 5 kb node embeddings:
three Conv1d+BN+ReLU stages pooled by 2, 5 and 5 (50 bins of 100 bp = one 5 kb node), so
a 6 Mb window of 60,000 bins becomes 1,200 nodes. ``CountHead`` maps node embeddings to
non-negative predicted counts with a 1x1 conv 64 + BN + ReLU and a 1x1 conv to one
channel, followed by the output link named in ``OUTPUT_LINKS`` (``exp`` as in the paper,
or ``softplus``, which grows linearly and so cannot overflow on large logits).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

BINS_PER_NODE = 50  # 2 * 5 * 5: the product of the encoder's three pooling sizes

OUTPUT_LINKS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "exp": torch.exp,
    "softplus": F.softplus,
}


def output_link(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """Look up a count link function by name, failing with the valid names."""
    if name not in OUTPUT_LINKS:
        raise ValueError(f"unknown output {name!r}; choose one of {sorted(OUTPUT_LINKS)}")
    return OUTPUT_LINKS[name]


def _conv_bn_relu(*, in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(in_channels, out_channels, kernel_size, padding="same"),
        nn.BatchNorm1d(out_channels),
        nn.ReLU(),
    )


class EpiEncoder(nn.Module):
    """Histone-mark bins -> node embeddings, one node per 50 bins (5 kb at 100 bp bins)."""

    def __init__(self, *, n_marks: int = 7, d: int = 128, dropout: float = 0.5) -> None:
        super().__init__()
        if n_marks < 1 or d < 1:
            raise ValueError(f"n_marks and d must be positive, got n_marks={n_marks}, d={d}")
        self.n_marks = n_marks
        self.d = d
        self.layers = nn.Sequential(
            _conv_bn_relu(in_channels=n_marks, out_channels=d, kernel_size=25),
            nn.MaxPool1d(2),
            nn.Dropout(dropout),
            _conv_bn_relu(in_channels=d, out_channels=d, kernel_size=3),
            nn.MaxPool1d(5),
            nn.Dropout(dropout),
            _conv_bn_relu(in_channels=d, out_channels=d, kernel_size=3),
            nn.MaxPool1d(5),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, M, L) with M = n_marks and L a multiple of 50 -> (B, d, L // 50)."""
        if x.dim() != 3 or x.shape[1] != self.n_marks or x.shape[2] % BINS_PER_NODE:
            raise ValueError(
                f"expected x of shape (B, {self.n_marks}, L) with L a multiple of "
                f"{BINS_PER_NODE} bins, got {tuple(x.shape)}; check the model's n_marks "
                "against the dataset's mark list and the window length"
            )
        return self.layers(x)


class CountHead(nn.Module):
    """Node embeddings -> one non-negative predicted count per node."""

    def __init__(self, *, in_channels: int, hidden: int = 64, output: str = "exp") -> None:
        super().__init__()
        self.link = output_link(output)
        self.layers = nn.Sequential(
            nn.Conv1d(in_channels, hidden, 1),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Conv1d(hidden, 1, 1),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h: (B, C, N) -> (B, N) predicted counts >= 0."""
        return self.link(self.layers(h).squeeze(1))
