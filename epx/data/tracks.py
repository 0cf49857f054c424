"""In-memory binned tracks and the window API every model reads from (DESIGN §2.2, issue 2.3).

Contract: ``SignalTracks(tracks, marks, base_bp=100)`` with ``tracks = {chrom: float32
(n_bins, M)}`` of MEAN per-bp signal at ``base_bp`` (as the cache stores it; float16 arrays
from a half-precision cache are kept as they are, and every read widens them to float32, so
the windows are those of the float32-decoded cache). All window
methods aggregate base bins to ``bin_bp`` (a multiple of ``base_bp``) by their mean and
return ``log_signal(mean) = ln(mean + 1)``, the one model-input transform (GraphReg's windows
use it too):

- ``tss_windows(chroms, tss, strands, window_bp, bin_bp) -> (N, M, L)``, L = window_bp/bin_bp,
  oriented 5'→3': the base bin holding the TSS sits at base index n/2 (so at coarse index
  L/2) on both strands; − strand windows are mirrored. Off-chromosome bins are 0.
- ``region_windows(chroms, starts, ends, length_bp, bin_bp, reverse=None) -> (x (N, M, L),
  mask (N, L))``: arbitrary regions (pCREs) binned from their own start (from their end when
  ``reverse``), centre-padded (or centre-cropped) to L bins; ``mask`` is True on real bins.
- ``chrom_track(chrom, bin_bp) -> (M, n)``: a whole chromosome, for GraphReg windows.

Everything is NumPy fancy indexing over arrays already in memory: no per-gene loops over files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def log_signal(mean: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """ln(mean + 1) of binned mean signal: what every model sees (``out``: write in place)."""
    return np.log1p(mean, out=out)


class SignalTracks:
    def __init__(self, tracks: Mapping[str, np.ndarray], marks: Sequence[str], base_bp: int = 100):
        # float16 tracks (a half-precision cache) stay float16: half the memory; each read
        # below widens to float32 before any arithmetic
        self.tracks = {c: np.ascontiguousarray(a, dtype=np.float16 if a.dtype == np.float16 else np.float32) for c, a in tracks.items()}
        self.marks = tuple(marks)
        self.base_bp = base_bp
        for chrom, arr in self.tracks.items():
            if arr.ndim != 2 or arr.shape[1] != len(self.marks):
                raise ValueError(f"track {chrom} has shape {arr.shape}, expected (n_bins, {len(self.marks)})")

    @property
    def n_marks(self) -> int:
        return len(self.marks)

    def _factor(self, bin_bp: int) -> int:
        if bin_bp % self.base_bp:
            raise ValueError(f"bin size {bin_bp} is not a multiple of the cache's {self.base_bp} bp bins")
        return bin_bp // self.base_bp

    def _gather(self, chrom: str, idx: np.ndarray) -> np.ndarray:
        """Base bins at ``idx`` (any shape) → (*idx.shape, M); 0 outside the chromosome."""
        track = self.tracks.get(chrom)
        if track is None:
            return np.zeros((*idx.shape, self.n_marks), np.float32)
        inside = (idx >= 0) & (idx < track.shape[0])
        out = track[np.clip(idx, 0, track.shape[0] - 1)].astype(np.float32, copy=False)
        out[~inside] = 0.0
        return out

    def base_bins(self, chrom: str, idx: np.ndarray) -> np.ndarray:
        """Mean per-bp signal of the base bins at ``idx`` (any shape) → (*idx.shape, M) float32,
        not log-transformed (a per-bin target, e.g. the sequence model's); 0 outside the chromosome."""
        return self._gather(chrom, np.asarray(idx, np.int64))

    @staticmethod
    def _finish(x: np.ndarray, k: int) -> np.ndarray:
        """(N, n, M) base bins → (N, M, n/k) ln(mean+1)."""
        n_items, n, m = x.shape
        if k > 1:
            x = x.reshape(n_items, n // k, k, m).mean(axis=2)
        return log_signal(x).transpose(0, 2, 1).copy()

    def tss_windows(self, chroms, tss, strands, *, window_bp: int, bin_bp: int) -> np.ndarray:
        k = self._factor(bin_bp)
        if window_bp % bin_bp:
            raise ValueError(f"window {window_bp} bp is not a multiple of bin {bin_bp} bp")
        n = window_bp // self.base_bp
        chroms, tss, strands = np.asarray(chroms), np.asarray(tss, dtype=np.int64), np.asarray(strands)
        minus = strands == "-"
        centre = tss // self.base_bp
        start = centre - n // 2 + minus  # mirrored so the TSS bin lands at n/2 after reversal
        offsets = np.arange(n)
        base = np.zeros((len(tss), n, self.n_marks), np.float32)
        for chrom in np.unique(chroms):
            rows = np.flatnonzero(chroms == chrom)
            base[rows] = self._gather(chrom, start[rows, None] + offsets)
        base[minus] = base[minus, ::-1]
        return self._finish(base, k)

    def region_windows(self, chroms, starts, ends, *, length_bp: int, bin_bp: int, reverse=None) -> tuple[np.ndarray, np.ndarray]:
        """``reverse`` (bool per region): read the region 3'→5' (for − strand genes), binned
        from its end and padded mirror-wise, so a mirrored genome gives identical windows."""
        k = self._factor(bin_bp)
        n_out = length_bp // bin_bp
        chroms = np.asarray(chroms)
        starts, ends = np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)
        rev = np.zeros(len(starts), bool) if reverse is None else np.asarray(reverse, bool)
        first = starts // self.base_bp
        last = np.maximum((ends - 1) // self.base_bp, first)
        n_base = last - first + 1
        n_bins = np.minimum(-(-n_base // k), n_out)
        crop = (-(-n_base // k) - n_bins) // 2 * k  # base bins dropped at the read start when too long
        pad_left = (n_out - n_bins) // 2
        anchor = np.where(rev, last - crop, first + crop)
        rel = np.arange(n_out * k)[None, :] - pad_left[:, None] * k
        idx = np.where(rev[:, None], anchor[:, None] - rel, anchor[:, None] + rel)
        real_base = (rel >= 0) & (rel < np.minimum(n_base - crop, n_bins * k)[:, None])
        base = np.zeros((len(starts), n_out * k, self.n_marks), np.float32)
        for chrom in np.unique(chroms):
            rows = np.flatnonzero(chroms == chrom)
            base[rows] = self._gather(chrom, idx[rows])
        base[~real_base] = 0.0
        out_slot = np.arange(n_out)
        mask = (out_slot[None, :] >= pad_left[:, None]) & (out_slot[None, :] < (pad_left + n_bins)[:, None])
        return self._finish(base, k), mask

    def chrom_track(self, chrom: str, *, bin_bp: int) -> np.ndarray:
        k = self._factor(bin_bp)
        track = self.tracks[chrom]
        n = -(-track.shape[0] // k) * k
        padded = np.zeros((n, self.n_marks), np.float32)
        padded[: track.shape[0]] = track
        return self._finish(padded[None], k)[0]
