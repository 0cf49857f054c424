"""Chromoformer inputs: promoter + pCRE windows at three resolutions, assembled per batch.

Contract: ``ChromoformerInputs(window_bp=40_000, resolutions=(2000, 500, 100), i_max=8,
w_max=40_000, tolerance_bp=1000)`` is a builder ``(context, rows) -> ChromoformerDataset``.
pCREs come from the dataset's contacts (``context.interactions``, thresholded once by the
DataModule: the same edges GraphReg's graph uses); ``freq`` is the contact ``strength`` (a
frequency as is, a q-value as -log10 q), which ranks pCREs and biases attention.
A batch is ``{"x": {promoter: {r: (B, M, L_r)}, pcres: {r: (B, I, M, L_r)}, pcre_bin_mask:
{r: (B, I, L_r) bool}, pcre_mask: (B, I) bool, freq: (B, I)}, "y": (B,), "gene": (B,)}`` with
``L_r = window_bp / r`` and ``I = i_max`` — the ``Chromoformer`` forward contract.

Everything is gathered from the in-memory tracks with the vectorised window API at
``__getitems__`` time (one call per resolution per batch; no per-item or file work). For −
strand genes the promoter AND its pCRE windows are reversed, so a gene and its mirror image
on the other strand get identical inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from epx.data.inputs.arrays import keep_batch
from epx.data.inputs.context import DataContext, target_array
from epx.data.inputs.pcres import PcreSlots, select_pcres


class ChromoformerDataset(Dataset):
    collate_fn = staticmethod(keep_batch)

    def __init__(self, context: DataContext, rows: np.ndarray, slots: PcreSlots, *, window_bp: int, resolutions: Sequence[int], w_max: int):
        genes = context.genes.iloc[rows]
        self.tracks = context.tracks
        self.rows = np.asarray(rows, np.int64)
        self.chrom = genes["chrom"].to_numpy()
        self.tss = genes["tss"].to_numpy()
        self.strand = genes["strand"].to_numpy()
        self.y = torch.as_tensor(target_array(genes, context.target_column))
        self.slots = slots
        self.window_bp, self.resolutions, self.w_max = window_bp, tuple(resolutions), w_max

    def __len__(self) -> int:
        return len(self.rows)

    def __getitems__(self, indices) -> dict:
        idx = np.asarray(indices, np.int64)
        slots = self.slots.take(idx)
        minus = self.strand[idx] == "-"
        b, i_max = slots.mask.shape
        filled = np.flatnonzero(slots.mask.ravel())
        filled_minus = np.repeat(minus, i_max)[filled]
        promoter, pcres, bin_mask = {}, {}, {}
        for r in self.resolutions:
            promoter[r] = torch.from_numpy(
                self.tracks.tss_windows(self.chrom[idx], self.tss[idx], self.strand[idx], window_bp=self.window_bp, bin_bp=r)
            )
            n_bins = self.w_max // r
            x = np.zeros((b * i_max, self.tracks.n_marks, n_bins), np.float32)
            m = np.zeros((b * i_max, n_bins), bool)
            if filled.size:
                x[filled], m[filled] = self.tracks.region_windows(
                    slots.chrom.ravel()[filled],
                    slots.start.ravel()[filled],
                    slots.end.ravel()[filled],
                    length_bp=self.w_max,
                    bin_bp=r,
                    reverse=filled_minus,
                )
            pcres[r] = torch.from_numpy(x.reshape(b, i_max, -1, n_bins))
            bin_mask[r] = torch.from_numpy(m.reshape(b, i_max, n_bins))
        return {
            "x": {
                "promoter": promoter,
                "pcres": pcres,
                "pcre_bin_mask": bin_mask,
                "pcre_mask": torch.from_numpy(slots.mask),
                "freq": torch.from_numpy(slots.freq),
            },
            "y": self.y[idx],
            "gene": torch.from_numpy(self.rows[idx]),
        }

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])


class ChromoformerInputs:
    def __init__(
        self,
        *,
        window_bp: int = 40_000,
        resolutions: Sequence[int] = (2000, 500, 100),
        i_max: int = 8,
        w_max: int = 40_000,
        tolerance_bp: int = 1000,
    ):
        self.window_bp, self.resolutions = window_bp, tuple(int(r) for r in resolutions)
        self.i_max, self.w_max, self.tolerance_bp = i_max, w_max, tolerance_bp
        self.flank_bp = window_bp // 2  # the promoter window's reach from the TSS
        self.contact_tolerance_bp = tolerance_bp  # what links a gene to an interaction (the accounting's rule too)

    def __call__(self, context: DataContext, rows: np.ndarray) -> ChromoformerDataset:
        slots = select_pcres(context.genes.iloc[rows], context.interactions.assign(score=context.interactions["strength"]), tolerance_bp=self.tolerance_bp, i_max=self.i_max)
        # slots are indexed by position within `rows`
        return ChromoformerDataset(context, rows, slots, window_bp=self.window_bp, resolutions=self.resolutions, w_max=self.w_max)
