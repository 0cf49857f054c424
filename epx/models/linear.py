"""Linear histone-level baseline: ridge (regression) / logistic (classification) on the window.

Contract: ``LinearHistone(n_marks, n_bins, out_dim, l2)``; ``forward(x)`` with ``x: (B, M, L)``
returns ``(B, out_dim)`` = W·vec(x) + b; ``penalty()`` = l2·‖W‖² (the bias is not shrunk),
which the LightningModule adds to the loss. Trained full-batch with L-BFGS
(``conf/model/linear.yaml``), this is ridge regression / L2-logistic regression solved to
convergence, in the same loop, objective and metrics as every deep model, and it stays
usable with tens of genes. The floor every deep model must beat. ``reset_parameters()``
returns W and b to zero, the starting point of the convex fit (no random draw).
"""

from __future__ import annotations

import torch
from torch import nn


class LinearHistone(nn.Module):
    def __init__(self, *, n_marks: int, n_bins: int = 60, out_dim: int = 1, l2: float = 1e-2):
        super().__init__()
        self.n_marks, self.n_bins, self.out_dim, self.l2 = n_marks, n_bins, out_dim, l2
        self.linear = nn.Linear(n_marks * n_bins, out_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # The objective is convex, so the start does not matter for the optimum; zeros make
        # the L-BFGS path (and so every metric) independent of the seed.
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def extra_repr(self) -> str:
        return f"n_marks={self.n_marks}, n_bins={self.n_bins}, out_dim={self.out_dim}, l2={self.l2}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, M, L) → (B, out_dim)."""
        return self.linear(x.flatten(1))

    def penalty(self) -> torch.Tensor:
        return self.l2 * self.linear.weight.pow(2).sum()
