"""Promoter inputs: TSS-centred windows for the promoter CNN and the linear baseline.

Contract: ``PromoterInputs(window_bp=6000, bin_bp=100)`` is a builder ``(context, rows) ->
ArrayDataset`` of ``{"x": {"x": (N, M, window_bp / bin_bp)}, "y": (N,), "gene": (N,)}``,
strand-oriented (− strand windows mirrored), ln(mean + 1) per bin. As an ``InputBuilder``
(``epx.data.inputs.protocol``): reads the ``tracks`` source only (no contacts), reaches
``window_bp / 2`` from the TSS, and ``intervals`` / ``layouts`` place each window on the genome.
"""

from __future__ import annotations

import numpy as np

import pandas as pd

from epx.data.inputs.arrays import ArrayDataset, keep_batch
from epx.data.inputs.context import DataContext, target_array
from epx.data.inputs.protocol import GeneIntervals, Layout, oriented_window_layout, tss_intervals, whole_dataset


class PromoterInputs:
    """TSS-centred windows ``x: (N, M, window_bp/bin_bp)``, strand-oriented."""

    sources = ("tracks",)
    contact_tolerance_bp = None
    requires_contacts = False
    distal = False
    collate_fn = staticmethod(keep_batch)
    gene_dataset = staticmethod(whole_dataset)

    def __init__(self, *, window_bp: int = 6000, bin_bp: int = 100):
        self.window_bp, self.bin_bp = int(window_bp), int(bin_bp)
        self.reach_bp = self.window_bp // 2

    def channels(self, marks) -> tuple[str, ...]:
        return tuple(marks)

    def intervals(self, genes: pd.DataFrame, *, base_bp: int = 100) -> GeneIntervals:
        return tss_intervals(genes, self.window_bp // 2, base_bp)

    def layouts(self, genes: pd.DataFrame, *, base_bp: int = 100) -> dict[str, Layout]:
        """``{"x": Layout}`` of the windows of ``genes`` (what ``__call__`` reads for them)."""
        return {"x": oriented_window_layout(genes["chrom"], genes["tss"], genes["strand"], window_bp=self.window_bp,
                                            bin_bp=self.bin_bp, base_bp=base_bp)}

    def __call__(self, context: DataContext, rows: np.ndarray, *, split: str = "train") -> ArrayDataset:
        genes = context.genes.iloc[rows]
        x = context.tracks.tss_windows(genes["chrom"], genes["tss"], genes["strand"], window_bp=self.window_bp, bin_bp=self.bin_bp)
        return ArrayDataset({"x": {"x": x}, "y": target_array(genes, context.target_column), "gene": np.asarray(rows, dtype=np.int64)})
