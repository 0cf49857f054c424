"""Linear histone-level baseline: ridge (regression) / logistic (classification) on the window.

Contract: ``LinearHistone(n_marks, n_bins, out_dim, l2)``; ``forward(x)`` with ``x: (B, M, L)``
returns ``(B, out_dim)`` = W·vec(x) + b; ``penalty()`` = l2·‖W‖² (the bias is not shrunk),
which the LightningModule adds to the loss. Trained full-batch with L-BFGS
(``conf/model/linear.yaml``), this is ridge regression / L2-logistic regression solved to
convergence, in the same loop, objective and metrics as every deep model, and it stays
usable with tens of genes. The floor every deep model must beat.
"""

from __future__ import annotations

import torch
from torch import nn


class LinearHistone(nn.Module):
    def __init__(self, *, n_marks: int, n_bins: int = 60, out_dim: int = 1, l2: float = 1e-2):
        super().__init__()
        self.l2 = l2
        self.linear = nn.Linear(n_marks * n_bins, out_dim)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, M, L) → (B, out_dim)."""
        return self.linear(x.flatten(1))

    def penalty(self) -> torch.Tensor:
        return self.l2 * self.linear.weight.pow(2).sum()
