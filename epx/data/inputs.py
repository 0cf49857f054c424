"""Input builders: how each model family's tensors are made from the in-memory tracks.

Contract: a builder is configured in ``conf/model/<name>.yaml`` under ``inputs`` and called
``builder(context, rows) -> Dataset`` where ``context`` is a ``DataContext`` (tracks, gene
table, interactions, cell, marks) and ``rows`` the gene-table row indices of one split.
Every item is a dict ``{"x": {net keyword inputs}, "y": target, "gene": row index}``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from epx.data.arrays import ArrayDataset
from epx.data.tracks import SignalTracks


@dataclass
class DataContext:
    tracks: SignalTracks
    genes: pd.DataFrame
    interactions: pd.DataFrame
    cell: str
    marks: tuple[str, ...]
    target_column: str


def target_array(genes: pd.DataFrame, column: str) -> np.ndarray:
    """The objective's target column: float32 for regression, int64 class labels otherwise."""
    y = genes[column].to_numpy()
    return y.astype(np.float32 if y.dtype.kind == "f" else np.int64)


class PromoterInputs:
    """TSS-centred windows ``x: (N, M, window_bp/bin_bp)``, strand-oriented."""

    def __init__(self, *, window_bp: int = 6000, bin_bp: int = 100):
        self.window_bp, self.bin_bp = window_bp, bin_bp

    def __call__(self, context: DataContext, rows: np.ndarray) -> ArrayDataset:
        genes = context.genes.iloc[rows]
        x = context.tracks.tss_windows(genes["chrom"], genes["tss"], genes["strand"], window_bp=self.window_bp, bin_bp=self.bin_bp)
        return ArrayDataset({"x": {"x": x}, "y": target_array(genes, context.target_column), "gene": np.asarray(rows, dtype=np.int64)})
