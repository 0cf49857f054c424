"""Promoter inputs: TSS-centred windows for the promoter CNN and the linear baseline.

Contract: ``PromoterInputs(window_bp=6000, bin_bp=100)`` is a builder ``(context, rows) ->
ArrayDataset`` of ``{"x": {"x": (N, M, window_bp / bin_bp)}, "y": (N,), "gene": (N,)}``,
strand-oriented (− strand windows mirrored), ln(mean + 1) per bin. ``flank_bp`` (window_bp / 2)
is how far the window reaches from the TSS; it reads no contacts (``contact_tolerance_bp`` None).
"""

from __future__ import annotations

import numpy as np

from epx.data.inputs.arrays import ArrayDataset
from epx.data.inputs.context import DataContext, target_array


class PromoterInputs:
    """TSS-centred windows ``x: (N, M, window_bp/bin_bp)``, strand-oriented."""

    def __init__(self, *, window_bp: int = 6000, bin_bp: int = 100):
        self.window_bp, self.bin_bp = window_bp, bin_bp
        self.flank_bp = window_bp // 2
        self.contact_tolerance_bp = None

    def __call__(self, context: DataContext, rows: np.ndarray) -> ArrayDataset:
        genes = context.genes.iloc[rows]
        x = context.tracks.tss_windows(genes["chrom"], genes["tss"], genes["strand"], window_bp=self.window_bp, bin_bp=self.bin_bp)
        return ArrayDataset({"x": {"x": x}, "y": target_array(genes, context.target_column), "gene": np.asarray(rows, dtype=np.int64)})
