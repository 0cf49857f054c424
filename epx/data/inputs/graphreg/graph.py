"""GraphReg's contact graph: interactions binned to 5 kb nodes, and its restriction to a window.

``interaction_edges`` turns one chromosome's interactions (the BEDPE reader's DataFrame,
columns ``chrom1 start1 end1 chrom2 start2 end2 name score``) into a directed edge list of
global node ids (node = anchor midpoint // node_bp): rows on other chromosomes or between
chromosomes are ignored (the rows are the dataset's contacts, already thresholded by
``epx.data.prepare.interactions.ContactFilter``; GraphReg recommends FDR 0.1), both
directions are kept, duplicates collapse to one edge and self-loops are removed (GATConv
adds its own). The result is sorted by source, then target.

``window_edges`` cuts that list down to one window, in local node ids. Because the edges are
sorted by source, the edges leaving the window's nodes are one contiguous block found by
binary search; only that block is filtered by target, so edges far from the window (more
than 2 Mb outside it for the defaults) are never looked at beyond one vectorised check
that the list is sorted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from epx.errors import InputError
from epx.io.bedpe import COLUMNS as INTERACTION_COLUMNS


def interaction_edges(
    df: pd.DataFrame,
    chrom: str,
    *,
    node_bp: int = 5000,
) -> np.ndarray:
    """Symmetric, deduplicated, loop-free edges among ``chrom``'s nodes: (2, E) int64 global ids."""
    missing = [c for c in INTERACTION_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(
            f"interactions table lacks columns {missing}; expected the 8 BEDPE columns "
            f"{list(INTERACTION_COLUMNS)} (read the file with the project's BEDPE reader)"
        )
    if node_bp <= 0:
        raise InputError(f"node_bp must be positive, got {node_bp}")

    keep = (df["chrom1"] == chrom).to_numpy() & (df["chrom2"] == chrom).to_numpy()
    rows = df.loc[keep]
    a = (rows["start1"].to_numpy(np.int64) + rows["end1"].to_numpy(np.int64)) // 2 // node_bp
    b = (rows["start2"].to_numpy(np.int64) + rows["end2"].to_numpy(np.int64)) // 2 // node_bp
    a, b = a[a != b], b[a != b]
    both = np.stack([np.concatenate([a, b]), np.concatenate([b, a])])
    # np.unique over columns sorts lexicographically: by source, then target.
    return np.unique(both, axis=1).astype(np.int64, copy=False).reshape(2, -1)


def window_edges(edges: np.ndarray, node_start: int, n_nodes: int = 1200) -> np.ndarray:
    """Edges with both ends in nodes ``[node_start, node_start + n_nodes)``, as local ids.

    edges: (2, E) int64 global ids sorted by source (as ``interaction_edges`` returns them).
    node_start: the window's first global node (window start bp // node_bp; may be negative).
    returns: (2, E_w) int64 local ids in ``[0, n_nodes)``.
    """
    edges = np.asarray(edges)
    if edges.ndim != 2 or edges.shape[0] != 2:
        raise InputError(f"edges must have shape (2, E), got {edges.shape}")
    source = edges[0]
    if np.any(source[1:] < source[:-1]):
        raise InputError("edges must be sorted by source node; build them with interaction_edges()")
    stop = node_start + n_nodes
    lo, hi = np.searchsorted(source, [node_start, stop], side="left")
    candidates = edges[:, lo:hi]
    inside = (candidates[1] >= node_start) & (candidates[1] < stop)
    return (candidates[:, inside] - node_start).astype(np.int64, copy=False)
