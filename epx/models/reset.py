"""Re-initialising a net's learnable parameters, the way ``nn.Linear`` and friends do it.

Contract: ``reset_submodules(module)`` calls ``reset_parameters()`` on every direct child
that has one and recurses into the children that do not (containers, plain blocks), so each
layer is re-initialised once, by its own rule, in registration order. Every epx net's
``reset_parameters()`` is this plus any parameter the net owns directly. Initialisers draw
from torch's global generator, so ``torch.manual_seed(s); net.reset_parameters()`` gives the
same weights every time.
"""

from __future__ import annotations

from torch import nn


def reset_submodules(module: nn.Module) -> None:
    for child in module.children():
        reset = getattr(child, "reset_parameters", None)
        if callable(reset):
            # A layer's own reset covers its sublayers (GATConv resets its linear maps):
            # descending as well would draw their initial values twice.
            reset()
        else:
            reset_submodules(child)
