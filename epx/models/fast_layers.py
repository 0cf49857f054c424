"""Drop-in subclasses of ``nn.Dropout`` and ``nn.MaxPool1d`` that cost less on the CPU.

Same modules, same (empty) ``state_dict``, same results in distribution (dropout) or exactly
(pooling); only the CPU kernels differ, because the stock ones dominate a conv net's step
there (measured in ``benchmarks/bench_step.py``, one thread):

- ``Dropout``: on CPU the stock kernel draws one ``bernoulli_`` per element, several times
  slower than the rest of the layer. This one draws 64-bit random integers and reads each as
  two uniform 32-bit integers, keeping an element where its integer is at or above
  ``p * 2**32`` (probability 1 - p to within 2**-32, finer than the float32 uniforms of the
  stock kernel), then scales the kept ones by ``1 / (1 - p)`` as ``nn.Dropout`` does. Masks
  come from torch's generator, so ``torch.manual_seed`` still fixes them (they differ from
  the stock kernel's masks). Other devices, ``p`` of 0 or 1, and eval mode run the stock
  ``nn.Dropout``.
- ``MaxPool1d``: a non-overlapping pool (``stride == kernel_size``, no padding or dilation)
  of a length that the kernel divides is a max over the last axis of a ``(..., L // k, k)``
  view, which is faster than the stock pooling kernel on CPU and routes the gradient to one
  maximum of each window, as the stock pool does. Anything else runs the stock kernel.

Under ``torch.compile`` both run the stock layer, which the compiler fuses and draws its own
random numbers for (``compute.compile=true``).
"""

from __future__ import annotations

import torch
from torch import nn

_INT32_SPAN = 2**32


class Dropout(nn.Dropout):
    """``nn.Dropout`` with a cheaper CPU mask (see the module docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: any shape -> the same shape."""
        if (not self.training or x.device.type != "cpu" or not 0.0 < self.p < 1.0 or self.inplace
                or torch.compiler.is_compiling()):
            return super().forward(x)
        n = x.numel()
        # random_(from) fills [from, int64 max]: with from = int64 min, every 32-bit half is uniform
        bits = torch.empty((n + 1) // 2, dtype=torch.int64).random_(-(2**63), None).view(torch.int32)[:n]
        threshold = round(self.p * _INT32_SPAN) - _INT32_SPAN // 2
        mask = (bits >= threshold).view(x.shape).to(x.dtype).mul_(1.0 / (1.0 - self.p))
        return x * mask


class MaxPool1d(nn.MaxPool1d):
    """``nn.MaxPool1d`` with a cheaper CPU path for non-overlapping windows (see the module docstring)."""

    def _is_reshape(self, x: torch.Tensor) -> bool:
        k = self.kernel_size
        return (
            x.device.type == "cpu" and x.dim() == 3 and self.stride == k and self.padding == 0
            and self.dilation == 1 and not self.return_indices and x.shape[-1] % k == 0
            and not torch.compiler.is_compiling()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, L) -> (B, C, L // kernel_size)."""
        if not self._is_reshape(x):
            return super().forward(x)
        b, c, length = x.shape
        return x.reshape(b, c, length // self.kernel_size, self.kernel_size).max(dim=-1).values
