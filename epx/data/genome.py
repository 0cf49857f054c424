"""In-memory reference sequence and the window API sequence models read from (the ``genome`` source).

Contract: ``GenomeSequence(codes)`` with ``codes = {chrom: uint8 (length,)}`` in
``epx.io.fasta``'s encoding (A C G T = 0 1 2 3, N = 4), as ``GenomeCache.load`` returns it.

- ``lengths``: ``{chrom: length}``; a chromosome it lacks has no sequence (reads as N).
- ``codes(chroms, starts, length) -> uint8 (B, length)``: window ``b`` is
  ``chroms[b]:[starts[b], starts[b] + length)``; positions outside the chromosome (before 0,
  past its end, or an unknown chromosome) are 4 (N).
- ``onehot(chroms, starts, length, reverse=None) -> float32 (B, 4, length)``: the same windows
  one-hot (rows A C G T; N all-zero); ``reverse`` (bool per window) gives that window's
  reverse complement (the − strand read 5'→3'), so position ``i`` is the complement of base
  ``starts[b] + length - 1 - i``.

Speed: windows that lie inside their chromosome are gathered in one NumPy call per
chromosome (rows of a strided sliding-window view: one contiguous copy per window, no
per-base index array, so a 6 Mb window costs a memcpy); only windows that cross a
chromosome end are cut one by one. Plain class, no Hydra.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from epx.io.fasta import N_CODE


class GenomeSequence:
    def __init__(self, codes: Mapping[str, np.ndarray]):
        self.sequences = {str(c): np.ascontiguousarray(a, dtype=np.uint8) for c, a in codes.items()}
        for chrom, seq in self.sequences.items():
            if seq.ndim != 1:
                raise ValueError(f"sequence {chrom} has shape {seq.shape}, expected (length,) base codes")
        self.lengths = {c: int(s.shape[0]) for c, s in self.sequences.items()}

    def __contains__(self, chrom: str) -> bool:
        return chrom in self.sequences

    def codes(self, chroms, starts, length: int) -> np.ndarray:
        chroms = np.asarray(chroms, dtype=object)
        starts = np.asarray(starts, dtype=np.int64)
        length = int(length)
        out = np.full((starts.shape[0], length), N_CODE, np.uint8)
        if length <= 0:
            return out
        for chrom in pd.unique(chroms):
            seq = self.sequences.get(chrom)
            if seq is None:
                continue
            rows = np.flatnonzero(chroms == chrom)
            s = starts[rows]
            inside = (s >= 0) & (s + length <= seq.shape[0])
            if inside.any():
                windows = np.lib.stride_tricks.sliding_window_view(seq, length)
                out[rows[inside]] = windows[s[inside]]
            for row, start in zip(rows[~inside], s[~inside]):  # windows crossing a chromosome end
                lo, hi = max(start, 0), min(start + length, seq.shape[0])
                if hi > lo:
                    out[row, lo - start : hi - start] = seq[lo:hi]
        return out

    def onehot(self, chroms, starts, length: int, reverse=None, dtype=np.float32) -> np.ndarray:
        codes = self.codes(chroms, starts, length)
        rev = np.zeros(codes.shape[0], bool) if reverse is None else np.asarray(reverse, dtype=bool)
        if rev.any():
            codes[rev] = codes[rev, ::-1]  # reversed here (uint8, cheap), complemented in the compare below
        out = np.empty((codes.shape[0], 4, codes.shape[1]), dtype)
        for base in range(4):
            # A reversed row matches the complement (3 - base): the one-hot of the reverse
            # complement without a lookup-table pass over the codes. N (4) matches nothing.
            target = np.where(rev, 3 - base, base).astype(np.uint8)[:, None]
            np.equal(codes, target, out=out[:, base, :])
        return out
