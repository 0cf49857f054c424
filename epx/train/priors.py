"""Attribution priors: training penalties on a net's input gradients.

``FourierAttributionPrior`` is the Fourier-based attribution prior of Tseng, Shrikumar &
Kundaje (NeurIPS 2020), which GraphReg's ``Seq-CNN_base_fft.py`` / ``Seq-GraphReg_e2e_fft.py``
(karbalayghareh/GraphReg) and BPNet-style models add to their loss. It asks the input
attributions to be smooth along the sequence, so that they highlight motif-sized stretches
rather than single-base noise:

1. attribution a = |sum over bases of (d sum(out) / d x) * x|, per position: (B, L);
2. smoothed with a Gaussian of ``smooth_sigma`` positions, truncated at one sigma (a window
   of 2 * round(sigma) + 1 taps, as both originals; 0 = no smoothing);
3. the magnitude of its real FFT along positions, DC term dropped (as GraphReg; so a flat
   attribution costs nothing), normalised to sum to 1 per sequence: m_hat (B, L // 2);
4. loss = mean over sequences of 1 - sum_k w_k m_hat_k, where w_k = 1 up to the cut-off
   F = freq_limit * L cycles per sequence and 1 / (1 + (k - F) ** limit_softness) above it
   (``limit_softness=None``: 0 above it, so the loss is exactly 1 - low-frequency power /
   total power).

``freq_limit`` is in cycles per position, so one number serves any length: 0.15 is Tseng's
150 of a 1 kb input and GraphReg's 60,000 of 4 x 100 kb (``T = 400 * 150``). The originals
differ in two details: Tseng normalises before dropping DC, GraphReg after (followed here);
GraphReg concatenates the batch into one signal and takes the gradient of the 64-dim
bottleneck ``h``, while this takes the gradient of the net's output, per sequence (Tseng's
form; no second forward pass).

Contract: ``prior(net, inputs, out) -> scalar`` = ``weight`` * loss, differentiable in the
net's parameters (``create_graph=True``); ``inputs`` is the net's keyword-input dict, whose
tensor ``inputs[prior.input_key]`` must have had ``requires_grad_(True)`` before the forward
that produced ``out``. ``EpxModule(prior=...)`` arranges that and logs the term as
``train/prior``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def gaussian_smooth(a: torch.Tensor, sigma: float) -> torch.Tensor:
    """a: (B, L) -> (B, L), convolved with a unit-sum Gaussian truncated at one sigma (zero-padded)."""
    radius = int(round(sigma))
    if sigma <= 0 or radius == 0:
        return a
    taps = torch.arange(-radius, radius + 1, dtype=a.dtype, device=a.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = (kernel / kernel.sum()).view(1, 1, -1)
    return F.conv1d(a.unsqueeze(1), kernel, padding=radius).squeeze(1)


def frequency_weights(n_freq: int, cutoff: float, softness: float | None, *, device=None) -> torch.Tensor:
    """(n_freq,) weights of frequencies k = 1..n_freq: 1 up to ``cutoff``, decaying (or 0) above."""
    k = torch.arange(1, n_freq + 1, dtype=torch.float32, device=device)
    above = (k - math.floor(cutoff)).clamp(min=0)
    if softness is None:
        return (above == 0).float()
    return torch.where(above == 0, torch.ones_like(k), 1 / (1 + above**softness))


def fourier_prior_loss(attribution: torch.Tensor, *, freq_limit: float, limit_softness: float | None, smooth_sigma: float) -> torch.Tensor:
    """attribution: (B, L) per-position attribution -> scalar in [0, 1]: the high-frequency share."""
    a = gaussian_smooth(attribution.float().abs(), smooth_sigma)
    mags = torch.fft.rfft(a, dim=-1).abs()[:, 1:]  # (B, L // 2), DC dropped
    total = mags.sum(-1, keepdim=True)
    m_hat = mags / torch.where(total > 0, total, torch.ones_like(total))  # all-zero stays zero
    length = attribution.shape[-1]
    w = frequency_weights(mags.shape[-1], freq_limit * length, limit_softness, device=a.device)
    return (1 - (m_hat * w).sum(-1)).mean()


class FourierAttributionPrior:
    """weight * Tseng et al.'s Fourier attribution prior on the gradient of the summed output."""

    def __init__(
        self,
        *,
        weight: float,
        freq_limit: float = 0.15,
        limit_softness: float | None = 0.2,
        smooth_sigma: float = 3.0,
        input_key: str = "x",
    ) -> None:
        if weight < 0:
            raise ValueError(f"weight must be >= 0, got {weight}")
        if not 0 < freq_limit <= 0.5:
            raise ValueError(f"freq_limit is in cycles per position and must be in (0, 0.5], got {freq_limit}")
        if limit_softness is not None and limit_softness <= 0:
            raise ValueError(f"limit_softness must be > 0 or None (a hard cut-off), got {limit_softness}")
        if smooth_sigma < 0:
            raise ValueError(f"smooth_sigma must be >= 0, got {smooth_sigma}")
        self.weight, self.freq_limit, self.limit_softness = float(weight), float(freq_limit), limit_softness
        self.smooth_sigma, self.input_key = float(smooth_sigma), input_key

    def __repr__(self) -> str:
        return (f"FourierAttributionPrior(weight={self.weight}, freq_limit={self.freq_limit}, "
                f"limit_softness={self.limit_softness}, smooth_sigma={self.smooth_sigma}, input_key={self.input_key!r})")

    def attribution(self, inputs: dict, out: torch.Tensor) -> torch.Tensor:
        """(B, C, L) input with grad, ``out`` computed from it -> (B, L) gradient x input summed over C.

        Differentiable in the net's parameters (the graph of the gradient is kept).
        """
        x = inputs[self.input_key]
        if not x.requires_grad:
            raise ValueError(
                f"the prior needs gradients w.r.t. inputs[{self.input_key!r}]: call requires_grad_(True) on it "
                "before the forward (EpxModule(prior=...) does this in training_step)"
            )
        (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
        return (grad * x).sum(1)

    def __call__(self, net: nn.Module, inputs: dict, out: torch.Tensor) -> torch.Tensor:
        """net: the net that made ``out`` from ``inputs`` (unused: the gradient flows through ``out``).

        inputs: the net's keyword inputs, ``inputs[input_key]`` (B, C, L) requiring grad;
        out: the net's output (any shape); returns: scalar weight * loss.
        """
        del net
        loss = fourier_prior_loss(self.attribution(inputs, out), freq_limit=self.freq_limit,
                                  limit_softness=self.limit_softness, smooth_sigma=self.smooth_sigma)
        return self.weight * loss
