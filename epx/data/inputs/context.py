"""The context every input builder reads, and the shared target helper.

Input builders: how each model family's tensors are made from the in-memory tracks.

Contract: a builder is configured in ``conf/model/<name>.yaml`` under ``inputs`` and called
``builder(context, rows) -> Dataset`` where ``context`` is a ``DataContext`` (tracks, gene
table, contacts, cell, marks) and ``rows`` the gene-table row indices of one split.
Every item is a dict ``{"x": {net keyword inputs}, "y": target, "gene": row index}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from epx.data.tracks import SignalTracks


@dataclass
class DataContext:
    tracks: SignalTracks
    genes: pd.DataFrame
    interactions: pd.DataFrame  # the cell's contacts: BEDPE rows past the threshold, + strength
    cell: str
    marks: tuple[str, ...]
    target_column: str
    cage: Path | None = None  # per-bin count target (GraphReg), when the dataset has one


def target_array(genes: pd.DataFrame, column: str) -> np.ndarray:
    """The objective's target column: float32 for regression, int64 class labels otherwise."""
    y = genes[column].to_numpy()
    return y.astype(np.float32 if y.dtype.kind == "f" else np.int64)
