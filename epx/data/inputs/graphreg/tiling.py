"""GraphReg window tiling: 6 Mb windows stepping 2 Mb whose 2 Mb middles tile the chromosome.

A window of ``window_bp`` is ``window_bp // node_bp`` nodes (1,200 of 5 kb). Only its middle
``step_bp`` (nodes 400:800) is trained on and predicted: there every node sees at least
2 Mb of context on each side. Window ``k`` starts at ``k * step_bp - flank`` with
``flank = (window_bp - step_bp) / 2``, so its middle is ``[k * step_bp, (k + 1) * step_bp)``:
the middles partition ``[0, n_windows * step_bp)``, every base of the chromosome lies in
exactly one middle, and the ends are padded (a negative start, or a window running past
the chromosome end, is read as zeros by the data layer).

All positions are 0-based bp; node ids are ``position // node_bp``.
"""

from __future__ import annotations

import numpy as np

from epx.errors import InputError

WINDOW_BP = 6_000_000
STEP_BP = 2_000_000
NODE_BP = 5_000


def _check_geometry(*, window_bp: int, step_bp: int, node_bp: int) -> None:
    if node_bp <= 0 or step_bp <= 0 or window_bp < step_bp:
        raise InputError(
            f"window geometry needs 0 < node_bp, 0 < step_bp <= window_bp; got "
            f"window_bp={window_bp}, step_bp={step_bp}, node_bp={node_bp}"
        )
    if window_bp % node_bp or step_bp % node_bp or (window_bp - step_bp) % (2 * node_bp):
        raise InputError(
            f"window_bp={window_bp} and step_bp={step_bp} must be multiples of node_bp={node_bp} "
            "with an even number of flank nodes on each side, e.g. 6_000_000 / 2_000_000 / 5_000"
        )


def tile_windows(
    chrom_length: int,
    *,
    window_bp: int = WINDOW_BP,
    step_bp: int = STEP_BP,
    node_bp: int = NODE_BP,
) -> np.ndarray:
    """Window starts (bp, int64, ascending; the first is negative) covering one chromosome.

    There are ``ceil(chrom_length / step_bp)`` windows, so the last middle reaches the
    chromosome end.
    """
    _check_geometry(window_bp=window_bp, step_bp=step_bp, node_bp=node_bp)
    if chrom_length <= 0:
        raise InputError(f"chrom_length must be positive, got {chrom_length}; check chrom.sizes")
    n_windows = -(-int(chrom_length) // step_bp)
    flank = (window_bp - step_bp) // 2
    return np.arange(n_windows, dtype=np.int64) * step_bp - flank


def middle_slice(*, window_bp: int = WINDOW_BP, step_bp: int = STEP_BP, node_bp: int = NODE_BP) -> slice:
    """Node slice of a window's middle (``slice(400, 800)`` for the defaults)."""
    _check_geometry(window_bp=window_bp, step_bp=step_bp, node_bp=node_bp)
    first = (window_bp - step_bp) // 2 // node_bp
    return slice(first, first + step_bp // node_bp)


def window_of(positions: np.ndarray, *, step_bp: int = STEP_BP) -> np.ndarray:
    """Index (into ``tile_windows``) of the window whose middle holds each position: (G,) int64."""
    return np.asarray(positions, dtype=np.int64) // step_bp


def tss_bin_index(
    tss_positions: np.ndarray,
    window_start: int,
    node_bp: int = NODE_BP,
    *,
    window_bp: int = WINDOW_BP,
    step_bp: int = STEP_BP,
) -> np.ndarray:
    """Window node index of each TSS's 5 kb bin, or -1 where the TSS is outside the middle.

    tss_positions: (G,) 0-based bp on the window's chromosome. Returns (G,) int64 in
    ``[400, 800)`` (the defaults) or -1, directly usable to index a (B, 1200) prediction.
    """
    middle = middle_slice(window_bp=window_bp, step_bp=step_bp, node_bp=node_bp)
    node = (np.asarray(tss_positions, dtype=np.int64) - window_start) // node_bp
    inside = (node >= middle.start) & (node < middle.stop)
    return np.where(inside, node, -1)
