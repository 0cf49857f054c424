"""Drop-in subclasses of ``nn.Dropout``, ``nn.MaxPool1d`` and ``nn.Conv1d`` that cost less on the CPU.

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
  ``nn.Dropout``. ``dropout(x, p, training)`` is the same as a function, for a layer that
  drops inside (``PublishedGATConv``'s projected features).
- ``MaxPool1d``: a non-overlapping pool (``stride == kernel_size``, no padding or dilation)
  is a max over the last axis of a ``(..., L // k, k)`` view, which is faster than the stock
  pooling kernel on CPU and routes the gradient to the first maximum of each window, as the
  stock pool does. For k = 2 (``PairMax``, the pool after Epi-GraphReg's first stage: 7.7 M
  elements a step) the max of the two strided halves is several times cheaper than
  ``max(dim)``, which also writes an int64 index per window; the backward finds each
  window's first maximum again from the saved input (one comparison). A window holding NaN
  outputs NaN, as the stock pool does (where its gradient goes is left open: a NaN loss stops
  the job, ``epx.errors.NonFiniteLossError``). A length the
  kernel does not divide drops its last ``L % k`` positions first, as the stock pool does
  without ``ceil_mode`` (``PromoterCNN``'s 15 and 7 bins). Anything else runs the stock kernel.

- ``PoolAlignedConv1d``: a ``Conv1d`` (stride 1) followed by a non-overlapping pool of
  ``pool`` without ``ceil_mode``, which reads only the first ``(L_out // pool) * pool`` of
  its ``L_out`` positions: it computes just those, the same values (the pool's output and
  every gradient are unchanged), trimming the right padding or the input's right end to
  match. Where that leaves equal padding on both sides the convolution pads by itself
  (no padded copy of the input). ``PromoterCNN``'s third conv at 60 bins computes 6 of its
  7 positions, its second 14 of 15.

- ``conv_by_phase(conv, x, k)`` and ``PhaseMax``: a stride-1 ``Conv1d`` followed by a
  non-overlapping max pool of ``k``, with the pool's windows laid out as planes: the conv
  is run once with stride ``k`` and ``k`` copies of its kernel, each shifted by one tap
  (``k`` times the channels, ``k - 1`` more taps: Epi-GraphReg's first conv, 25 taps, does
  4% more multiplications), which writes position ``i·k + p`` of channel c at plane p,
  column i: the same sums in the same order, so the same values. A BatchNorm over the
  planes (viewed as (B, C, L)) sees the same elements, its statistics summed in another
  order; the pool is then an elementwise max of contiguous planes (``PhaseMax``: the
  gradient to the first maximum, as the stock pool), where the interleaved windows cost
  a strided pass each way (Epi-GraphReg's first stage: 7.7 M elements).

Under ``torch.compile`` ``Dropout`` and ``MaxPool1d`` run the stock layer, which the compiler fuses and draws its own
random numbers for (``compute.compile=true``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_INT32_SPAN = 2**32


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``F.dropout(x, p, training)`` with ``Dropout``'s cheaper CPU mask (for layers that drop inside)."""
    if not training or x.device.type != "cpu" or not 0.0 < p < 1.0 or torch.compiler.is_compiling():
        return F.dropout(x, p, training)
    n = x.numel()
    # random_(from) fills [from, int64 max]: with from = int64 min, every 32-bit half is uniform
    bits = torch.empty((n + 1) // 2, dtype=torch.int64).random_(-(2**63), None).view(torch.int32)[:n]
    threshold = round(p * _INT32_SPAN) - _INT32_SPAN // 2
    mask = (bits >= threshold).view(x.shape).to(x.dtype).mul_(1.0 / (1.0 - p))
    return x * mask


class Dropout(nn.Dropout):
    """``nn.Dropout`` with a cheaper CPU mask (see the module docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: any shape -> the same shape."""
        if self.inplace:
            return super().forward(x)
        return dropout(x, self.p, self.training)


class PairMax(torch.autograd.Function):
    """Max of the two positions of each window (..., n, 2); the gradient goes to the first maximum."""

    @staticmethod
    def forward(ctx, windows: torch.Tensor) -> torch.Tensor:
        first, second = windows.unbind(-1)
        ctx.save_for_backward(windows)  # not the output, which a following in-place ReLU may change
        return torch.maximum(first, second)  # NaN-propagating, as the stock pool

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (windows,) = ctx.saved_tensors
        first, second = windows.unbind(-1)
        chosen = second > first  # ties: the first, as the stock pool
        # scattered into zeros as max(dim)'s backward does: writes interleaved by 2 are slow on
        # CPU whichever op makes them, and this is the cheapest of them
        return torch.zeros_like(windows).scatter_(-1, chosen.long().unsqueeze(-1), grad.unsqueeze(-1))


class MaxPool1d(nn.MaxPool1d):
    """``nn.MaxPool1d`` with a cheaper CPU path for non-overlapping windows (see the module docstring)."""

    def _is_reshape(self, x: torch.Tensor) -> bool:
        k = self.kernel_size
        return (
            x.device.type == "cpu" and x.dim() == 3 and self.stride == k and self.padding == 0
            and self.dilation == 1 and not self.return_indices and x.shape[-1] >= k
            and (x.shape[-1] % k == 0 or not self.ceil_mode) and not torch.compiler.is_compiling()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, L) -> (B, C, L // kernel_size)."""
        if not self._is_reshape(x):
            return super().forward(x)
        b, c, length = x.shape
        n = length // self.kernel_size
        if n * self.kernel_size != length:
            x = x[..., : n * self.kernel_size]  # the narrowed tensor still splits into windows as a view (no copy)
        windows = x.reshape(b, c, n, self.kernel_size)
        if self.kernel_size == 2:
            return PairMax.apply(windows)
        return windows.max(dim=-1).values


class PoolAlignedConv1d(nn.Conv1d):
    """``nn.Conv1d`` computing only the positions a following ``MaxPool1d(pool)`` reads (module docstring).

    Same parameters and ``state_dict`` as ``nn.Conv1d(c_in, c_out, kernel_size, padding=...)``.
    """

    def __init__(self, *args, pool: int, **kwargs):
        super().__init__(*args, **kwargs)
        if self.stride != (1,) or self.padding_mode != "zeros" or self.groups != 1:
            raise ValueError("PoolAlignedConv1d needs stride 1, zero padding and one group")
        self.pool = int(pool)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, pool={self.pool}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C_in, L) -> (B, C_out, (L_out // pool) * pool), L_out the full conv's length."""
        span = self.dilation[0] * (self.kernel_size[0] - 1)
        if self.padding == "same":
            left = span // 2
            right = span - left
        elif self.padding == "valid":
            left = right = 0
        else:
            left = right = self.padding[0]
        full = x.shape[-1] + left + right - span
        right -= full - full // self.pool * self.pool
        if left == right:
            return F.conv1d(x, self.weight, self.bias, padding=left, dilation=self.dilation)
        # a negative right pad cuts the input's end: positions no kept output reads
        return F.conv1d(F.pad(x, (left, right)), self.weight, self.bias, dilation=self.dilation)


def conv_by_phase(conv: nn.Conv1d, x: torch.Tensor, k: int, *, relu: bool = False) -> torch.Tensor:
    """``conv(x)`` regrouped by pooling window: x (B, C_in, L), L a multiple of k -> (B, C_out, k, L // k),
    ``[..., p, i]`` = position ``i * k + p`` of the full convolution (stride 1, one group, zero padding).

    ``relu``: ReLU in place on the conv's own output (its backward does not need it), before the
    regrouping view: in place on a view autograd would copy the whole gradient back and forth."""
    if conv.stride != (1,) or conv.groups != 1 or conv.padding_mode != "zeros" or conv.dilation != (1,):
        raise ValueError("conv_by_phase needs a stride-1, undilated, one-group, zero-padded Conv1d")
    span = conv.kernel_size[0] - 1
    if conv.padding == "same":
        left = span // 2
        right = span - left
    elif conv.padding == "valid":
        raise ValueError("conv_by_phase needs the output as long as the input ('same' or its padding)")
    else:
        left = right = conv.padding[0]
    batch, length = x.shape[0], x.shape[-1]
    if length % k or left + right != span:
        raise ValueError(f"conv_by_phase needs L a multiple of {k} and a length-preserving padding")
    c_out = conv.out_channels
    # output channel (c, p) is channel c's kernel placed p taps later: stride k then reads position i*k + p
    weight = torch.stack([F.pad(conv.weight, (p, k - 1 - p)) for p in range(k)], dim=1).reshape(c_out * k, conv.in_channels, span + k)
    bias = None if conv.bias is None else conv.bias.repeat_interleave(k)
    out = F.conv1d(F.pad(x, (left, right + k - 1)), weight, bias, stride=k)
    if relu:
        out.relu_()
    return out.view(batch, c_out, k, length // k)


class PhaseMax(torch.autograd.Function):
    """Max over the planes of (B, C, k, n); the gradient goes to the first maximum (the stock pool's choice)."""

    @staticmethod
    def forward(ctx, planes: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(planes)  # not the output, which a following in-place ReLU may change
        return PhaseMax._max(planes)

    @staticmethod
    def _max(planes: torch.Tensor) -> torch.Tensor:
        values = planes[:, :, 0]
        for p in range(1, planes.shape[2]):
            values = torch.maximum(values, planes[:, :, p])  # NaN-propagating, as the stock pool
        return values

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (planes,) = ctx.saved_tensors
        out = torch.empty_like(planes)
        last = planes.shape[2] - 1
        # two planes: the first is the window's first maximum where it is >= the second
        values = planes[:, :, 1] if last == 1 else PhaseMax._max(planes)
        left = grad  # what no earlier plane has taken: a window's first maximum takes it all
        for p in range(last):
            hit = planes[:, :, p] >= values if last == 1 else planes[:, :, p] == values
            torch.mul(left, hit, out=out[:, :, p])
            if p + 1 < last:
                left = left - out[:, :, p]
        torch.sub(left, out[:, :, last - 1], out=out[:, :, last])
        return out

