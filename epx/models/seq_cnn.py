"""Seq-CNN base: one-hot DNA -> epigenome tracks per 100 bp bin, Seq-GraphReg's first stage.

Karbalayghareh et al., Genome Research 2022. A 100 kb chunk of one-hot DNA (A C G T, an
all-zero column = N) goes through five convolution stages to a 64-dim bottleneck per 100 bp
bin; optionally six dilated residual blocks widen the view; then one count head per track
(H3K4me3, H3K27ac[, DNase] in the paper) predicts a non-negative count per bin. The
bottleneck is what Seq-GraphReg's graph stage reads (``bottleneck(x)``).

Layer order, as in the original Keras code (``karbalayghareh/GraphReg``,
``train/Seq-CNN_base.py`` at commit df5c832, model definition at lines ~216-255; the same
layers in ``train/Seq-CNN_base_fft.py``, one line lower). Each ``Conv1D`` there has
``activation='relu'`` and is followed by ``BatchNormalization`` and then ``MaxPool1D``,
so the order is **Conv -> ReLU -> BN -> MaxPool**, with ``Dropout`` before every
conv but the first:

=====  ==========================================  ======  ===================
stage  layer                                       pool    Keras source line
=====  ==========================================  ======  ===================
1      Conv1d 4->256, k 21, ReLU, BN               max 2   ~216-218
2      Dropout, Conv1d 256->128, k 3, ReLU, BN     max 2   ~220-223
3      Dropout, Conv1d 128->128, k 3, ReLU, BN     max 5   ~225-228
4      Dropout, Conv1d 128->128, k 3, ReLU, BN     max 5   ~230-233
5      Dropout, Conv1d 128->64, k 3, ReLU, BN      --      ~235-237 (``h``)
=====  ==========================================  ======  ===================

2 * 2 * 5 * 5 = 100 bp per output bin, so ``bin_bp`` must be 100. With ``dilated=True``,
``n_dilated`` residual blocks follow (lines ~240-243): Dropout -> Conv1d 64->64, k 3,
dilation 2^i (i = 1..n_dilated: 2, 4, ..., 64), ReLU -> added to the block's input -> BN;
this is ``epx.models.epi_cnn.DilatedResidualBlock`` exactly. The published
``Seq-CNN_base.py`` has the dilated blocks; ``dilated=False`` puts the heads straight on the
bottleneck (the original's ``Seq-CNN_base_nodilation.py`` is a different arrangement, three
plain conv blocks per track, and is not reproduced). Each head (lines ~245-252) is a
Conv1d 64->1 with **kernel 5** (``Conv1D(1, 5, activation='exponential', padding='same')``;
``head_kernel``), then the output link (``OUTPUT_LINKS``: ``exp`` as in the paper, or
``softplus``). Convolutions are ``padding="same"`` as in Keras; pools are floor pools, exact
because L is a multiple of 100. BatchNorm keeps PyTorch's defaults (eps 1e-5, momentum 0.1;
Keras uses 1e-3 and 0.99, i.e. momentum 0.01 here), as the other epx ports do; the original's
L2 factor is 0, so there is no ``penalty()``.

``rc_average=True``: in eval mode, ``forward`` averages the prediction of ``x`` and the
bin-reversed prediction of ``reverse_complement_onehot(x)`` (a test-time symmetrisation; in
training mode the plain forward runs, so reverse-complement augmentation stays the builder's
job). ``bottleneck`` is never averaged. ``reset_parameters()`` redraws every layer with
PyTorch's default initialisation (BatchNorm statistics included), in construction order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from epx.models.epi_cnn import DilatedResidualBlock
from epx.models.fast_layers import Dropout, MaxPool1d
from epx.models.graphreg_blocks import output_link
from epx.models.reset import reset_submodules

N_BASES = 4  # one-hot channels, in the order A C G T (epx.io.fasta)
# (out_channels, kernel, pool after the stage); pool 1 = none
STAGES: tuple[tuple[int, int, int], ...] = ((256, 21, 2), (128, 3, 2), (128, 3, 5), (128, 3, 5), (64, 3, 1))
BIN_BP = math.prod(pool for _, _, pool in STAGES)  # 100 bp per output bin
BOTTLENECK = STAGES[-1][0]  # 64
# Channels of stages 1-4 as published. Narrower stages (``widths``) are an epx option for a base a
# CPU can train: the synthetic genome has ~9 motifs, and stage 2 alone (256 -> 128 at 50 kb) costs
# more than half the published tower's FLOPs.
PUBLISHED_WIDTHS: tuple[int, ...] = tuple(c for c, _, _ in STAGES[:-1])


def reverse_complement_onehot(x: torch.Tensor) -> torch.Tensor:
    """The reverse complement of one-hot DNA: (..., 4, L) in A C G T order -> (..., 4, L).

    Complementing swaps A<->T and C<->G, which in A C G T order reverses the channel axis;
    reversing the positions reverses the last axis. An all-zero (N) column stays N.
    """
    if x.dim() < 2 or x.shape[-2] != N_BASES:
        raise ValueError(f"expected one-hot DNA of shape (..., {N_BASES}, L), got {tuple(x.shape)}")
    return x.flip(-2).flip(-1)


def _stage(*, in_channels: int, out_channels: int, kernel_size: int, pool: int, dropout: float | None) -> nn.Sequential:
    """[Dropout ->] Conv1d -> ReLU -> BatchNorm [-> MaxPool], the original's order."""
    layers: list[nn.Module] = [] if dropout is None else [Dropout(dropout)]
    layers += [
        nn.Conv1d(in_channels, out_channels, kernel_size, padding="same"),
        nn.ReLU(),
        nn.BatchNorm1d(out_channels),
    ]
    if pool > 1:
        layers.append(MaxPool1d(pool))
    return nn.Sequential(*layers)


class SeqCNNBase(nn.Module):
    """One-hot DNA of B chunks -> predicted counts of T tracks per 100 bp bin."""

    def __init__(
        self,
        *,
        n_tracks: int,
        bin_bp: int = 100,
        dropout: float = 0.5,
        dilated: bool = False,
        n_dilated: int = 6,
        output: str = "exp",
        rc_average: bool = False,
        head_kernel: int = 5,
        widths: Sequence[int] = PUBLISHED_WIDTHS,
    ) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) != len(STAGES) - 1 or min(widths) < 1:
            raise ValueError(
                f"widths are the channels of the first {len(STAGES) - 1} stages (the fifth is the {BOTTLENECK}-dim "
                f"bottleneck Seq-GraphReg reads), all >= 1; got {list(widths)} (published: {list(PUBLISHED_WIDTHS)})"
            )
        if bin_bp != BIN_BP:
            raise ValueError(
                f"SeqCNNBase pools 2*2*5*5 = {BIN_BP} bp into one bin, so bin_bp must be {BIN_BP}; "
                f"got bin_bp={bin_bp} (set the inputs' bin_bp to {BIN_BP})"
            )
        if n_tracks < 1:
            raise ValueError(f"n_tracks must be >= 1, got {n_tracks}")
        if n_dilated < 0:
            raise ValueError(f"n_dilated must be >= 0, got {n_dilated}")
        if head_kernel < 1 or head_kernel % 2 == 0:
            raise ValueError(f"head_kernel must be a positive odd number (the original uses 5), got {head_kernel}")
        self.link = output_link(output)
        self.n_tracks, self.bin_bp, self.dropout_p = n_tracks, bin_bp, dropout
        self.dilated, self.n_dilated, self.output = bool(dilated), n_dilated, output
        self.rc_average, self.head_kernel, self.widths = bool(rc_average), head_kernel, widths
        stages, c_in = [], N_BASES
        for i, ((_, kernel, pool), c_out) in enumerate(zip(STAGES, (*widths, BOTTLENECK), strict=True)):
            stages.append(_stage(in_channels=c_in, out_channels=c_out, kernel_size=kernel, pool=pool, dropout=None if i == 0 else dropout))
            c_in = c_out
        self.encoder = nn.Sequential(*stages)
        n_blocks = n_dilated if self.dilated else 0
        self.blocks = nn.Sequential(
            *(DilatedResidualBlock(channels=BOTTLENECK, dilation=2**i, dropout=dropout) for i in range(1, n_blocks + 1))
        )
        self.heads = nn.ModuleList(nn.Conv1d(BOTTLENECK, 1, head_kernel, padding="same") for _ in range(n_tracks))

    def reset_parameters(self) -> None:
        reset_submodules(self)

    def extra_repr(self) -> str:
        return (f"n_tracks={self.n_tracks}, bin_bp={self.bin_bp}, dropout={self.dropout_p}, "
                f"dilated={self.dilated}, n_dilated={self.n_dilated if self.dilated else 0}, "
                f"output={self.output!r}, rc_average={self.rc_average}, head_kernel={self.head_kernel}, "
                f"widths={list(self.widths)}")

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[1] != N_BASES or x.shape[2] % BIN_BP or x.shape[2] == 0:
            raise ValueError(
                f"expected one-hot DNA of shape (B, {N_BASES}, L) with L a positive multiple of {BIN_BP} bp, "
                f"got {tuple(x.shape)}; check the inputs' chunk_bp"
            )

    def bottleneck(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 4, L) one-hot, L a multiple of 100 -> (B, 64, L // 100), the BN'd 5th stage (``h``)."""
        self._check(x)
        return self.encoder(x)

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.bottleneck(x))  # (B, 64, N)
        return self.link(torch.cat([head(h) for head in self.heads], dim=1))  # (B, T, N)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict every track's count in every 100 bp bin.

        x: (B, 4, L) float one-hot DNA (A C G T; an all-zero column is N), L a multiple of 100.
        returns: (B, T, L // 100) predicted counts >= 0, T = n_tracks; with ``rc_average`` in
            eval mode, the mean of f(x) and f(reverse_complement_onehot(x)) reversed along bins.
        """
        pred = self._predict(x)
        if self.rc_average and not self.training:
            pred = 0.5 * (pred + self._predict(reverse_complement_onehot(x)).flip(-1))
        return pred
