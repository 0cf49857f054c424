"""Linear histone-level baseline: ridge (regression) / logistic (classification) on the window.

Contract: ``LinearHistone(n_marks, n_bins, out_dim)``; ``forward(x)`` with ``x: (B, M, L)``
returns ``(B, out_dim)`` = W·vec(x) + b. The ridge/logistic penalty is the optimizer's weight
decay (``conf/model/linear.yaml``), so it trains in the same loop, objective and metrics as
every deep model and stays usable with tens of genes. The floor every deep model must beat.
"""

from __future__ import annotations

import torch
from torch import nn


class LinearHistone(nn.Module):
    def __init__(self, *, n_marks: int, n_bins: int = 60, out_dim: int = 1):
        super().__init__()
        self.linear = nn.Linear(n_marks * n_bins, out_dim)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, M, L) → (B, out_dim)."""
        return self.linear(x.flatten(1))
