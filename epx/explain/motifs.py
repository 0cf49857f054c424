"""Motif scanning: PWM log-odds over one-hot DNA, both strands, with FIMO-like p-values.

Contract:

- ``MotifSet.load(path, names=None, *, pvalue=1e-4)`` reads a MEME file (``epx.io.motifs``:
  one ``InputError`` naming the file and line when it does not parse) and keeps ``names``
  (all when None; a name the file lacks is one ``InputError`` listing those it has).
  ``MotifSet(motifs, background=None, pvalue=1e-4)`` is the same from ``{name: (W, 4)}``;
  ``subset(names)`` keeps some of them.
- Scores are log2-odds against the background (the file's letter frequencies, else
  uniform) after FIMO's pseudocount (0.1 spread by the background over 20 sites, so a zero
  probability is a finite penalty): ``matrices[name]`` (W, 4). A window holding an N (an
  all-zero one-hot column) is never a hit.
- P-values are exact for i.i.d. background bases: the score distribution of each motif is
  computed by convolution over the positions, with scores rounded to ``SCORE_STEP`` bits
  (FIMO does the same at a coarser grid). ``thresholds[name]`` is the lowest score whose
  p-value (P(score >= s)) is <= ``pvalue``; ``pvalue_of(name, scores)`` gives any score's.
- ``scan_onehot(x) -> Hits``: every hit of every motif on either strand in ``x`` (B, 4, L)
  one-hot (torch or NumPy, float), as flat arrays ``batch``, ``start`` (column of the
  motif's first base), ``width``, ``motif`` (index into ``names``), ``strand`` (+1 reads the
  PWM on the given strand, -1 its reverse complement), ``score``. One ``conv1d`` over all
  motifs and both strands at once (PWMs left-aligned and zero-padded to the widest); the N
  check is a running count of N columns; a hit lies wholly inside ``x``.
- ``scan_codes(codes_by_chrom) -> DataFrame[chrom, start, end, strand, motif, score,
  pvalue]`` scans whole chromosomes (uint8 codes, ``epx.io.fasta``'s encoding) in 1 Mb
  pieces overlapping by the widest motif - 1, so every hit is found once.
  ``benchmarks/bench_motif_scan.py`` measures its Mb/s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from epx.errors import InputError
from epx.io.fasta import onehot as onehot_codes
from epx.io.motifs import read_meme, read_meme_background

PSEUDOCOUNT, PSEUDO_SITES = 0.1, 20  # FIMO's --motif-pseudo and MEME's default nsites
SCORE_STEP = 0.01  # bits: the grid of the exact score distribution
PIECE_BP = 1_000_000  # scan_codes reads chromosomes in pieces of this many bases
HIT_COLUMNS = ["chrom", "start", "end", "strand", "motif", "score", "pvalue"]


@dataclass
class Hits:
    """Flat arrays, one entry per hit (see the module docstring)."""

    batch: np.ndarray
    start: np.ndarray
    width: np.ndarray
    motif: np.ndarray
    strand: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.start)

    def take(self, keep) -> Hits:
        return Hits(*(getattr(self, f.name)[keep] for f in fields(self)))

    def as_batch(self, b: int) -> Hits:
        """These hits, all in row ``b`` of a batch."""
        return replace(self, batch=np.full(len(self), b, np.int64))

    @staticmethod
    def concat(parts: Sequence[Hits]) -> Hits:
        return Hits(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Hits)))


def _tail(lo: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, int]:
    """P(score >= (k + offset) * SCORE_STEP) for k = 0.. of i.i.d. background windows."""
    steps = np.round(lo / SCORE_STEP).astype(np.int64)
    floor = steps.min(axis=1)
    shift = steps - floor[:, None]
    dist = np.ones(1)
    for row in shift:
        grown = np.zeros(len(dist) + int(row.max()))
        for base in range(4):
            grown[row[base] : row[base] + len(dist)] += background[base] * dist
        dist = grown
    return np.minimum(np.cumsum(dist[::-1])[::-1], 1.0), int(floor.sum())


class MotifSet:
    def __init__(self, motifs: Mapping[str, np.ndarray], background: np.ndarray | None = None, pvalue: float = 1e-4):
        if not motifs:
            raise InputError("no motif to scan")
        if not 0 < float(pvalue) <= 1:
            raise InputError(f"motif p-value threshold must lie in (0, 1], got {pvalue}")
        bg = np.full(4, 0.25) if background is None else np.asarray(background, np.float64)
        self.background = bg / bg.sum()
        self.pvalue = float(pvalue)
        self.names = list(motifs)
        self.motifs = {name: np.asarray(pwm, np.float64) for name, pwm in motifs.items()}
        self.matrices: dict[str, np.ndarray] = {}
        self.thresholds: dict[str, float] = {}
        self._tails: dict[str, tuple[np.ndarray, int]] = {}
        for name, pwm in motifs.items():
            pwm = np.asarray(pwm, np.float64)
            smoothed = (pwm * PSEUDO_SITES + PSEUDOCOUNT * self.background) / (PSEUDO_SITES + PSEUDOCOUNT)
            lo = np.log2(smoothed / self.background)
            tail, offset = _tail(lo, self.background)
            passing = np.flatnonzero(tail <= self.pvalue)
            k = int(passing[0]) if passing.size else len(tail)  # past the best score: no hit at all
            self.matrices[name], self._tails[name] = lo, (tail, offset)
            self.thresholds[name] = (k + offset) * SCORE_STEP - SCORE_STEP / 2  # scores round to the grid
        self.widths = np.array([len(m) for m in self.matrices.values()], np.int64)
        self._weights = None

    @classmethod
    def load(cls, path: str | Path, names: Sequence[str] | None = None, *, pvalue: float = 1e-4) -> MotifSet:
        motifs = read_meme(path)
        if names:
            missing = [n for n in names if n not in motifs]
            if missing:
                raise InputError(f"{path}: no motif {', '.join(missing)}; it has {', '.join(motifs)}")
            motifs = {n: motifs[n] for n in names}
        return cls(motifs, read_meme_background(path), pvalue)

    def subset(self, names: Sequence[str]) -> MotifSet:
        return MotifSet({n: self.motifs[n] for n in names}, self.background, self.pvalue)

    def pvalue_of(self, name: str, scores) -> np.ndarray:
        tail, offset = self._tails[name]
        k = np.round(np.asarray(scores, np.float64) / SCORE_STEP).astype(np.int64) - offset
        # per-position rounding can put the best score a step or two past the grid's end
        return tail[np.clip(k, 0, len(tail) - 1)]

    def _kernels(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._weights is None:
            width = int(self.widths.max())
            w = np.zeros((2 * len(self.names), 4, width), np.float32)
            for m, lo in enumerate(self.matrices.values()):
                n = len(lo)
                w[2 * m, :, :n] = lo.T
                w[2 * m + 1, :, :n] = lo[::-1, ::-1].T  # the reverse complement read on this strand
            thr = np.repeat(np.array([self.thresholds[n] for n in self.names], np.float32), 2)
            self._weights = (torch.from_numpy(w), torch.from_numpy(thr))
        return self._weights

    def scan_onehot(self, x) -> Hits:
        """Every hit in ``x`` (B, 4, L) one-hot; see the module docstring."""
        x = torch.as_tensor(x, dtype=torch.float32)
        weight, thr = (t.to(x.device) for t in self._kernels())
        width, narrowest = weight.shape[-1], int(self.widths.min())
        length = x.shape[-1]
        if length < narrowest:
            return Hits(*(np.zeros(0, np.int64) for _ in range(5)), np.zeros(0))
        # zero-pad on the right so a narrow motif is scanned up to the end; the N check
        # below rules out windows that run into the padding
        padded = F.pad(x, (0, width - narrowest))
        with torch.no_grad():
            score = F.conv1d(padded, weight)  # (B, 2M, L - narrowest + 1)
            n_out = score.shape[-1]
            # N bases per window from a running count (cheaper than a second convolution)
            missing = F.pad(torch.cumsum((padded.sum(1) < 0.5).to(torch.int32), dim=1), (1, 0))
            clean = {int(w): (missing[:, w : w + n_out] - missing[:, :n_out]) == 0 for w in np.unique(self.widths)}
            valid = torch.stack([clean[int(w)] for w in np.repeat(self.widths, 2)], dim=1)
        hit = (score >= thr[None, :, None]) & valid
        b, channel, start = (t.cpu().numpy() for t in torch.nonzero(hit, as_tuple=True))
        motif = channel // 2
        return Hits(b.astype(np.int64), start.astype(np.int64), self.widths[motif], motif.astype(np.int64),
                    np.where(channel % 2 == 0, 1, -1), score[hit].double().cpu().numpy())

    def scan_codes(self, codes_by_chrom: Mapping[str, np.ndarray]) -> pd.DataFrame:
        """Every hit on whole chromosomes (see the module docstring)."""
        overlap = int(self.widths.max()) - 1
        frames = []
        for chrom, codes in codes_by_chrom.items():
            codes = np.asarray(codes, np.uint8)
            for lo in range(0, max(len(codes) - overlap, 1), PIECE_BP):
                piece = codes[lo : lo + PIECE_BP + overlap]
                hits = self.scan_onehot(onehot_codes(piece)[None])
                # a hit starting in the overlap is the next piece's (found there again)
                hits = hits.take(hits.start < PIECE_BP)
                if len(hits):
                    frames.append(self._table(chrom, lo + hits.start, hits))
        if not frames:
            return pd.DataFrame(columns=HIT_COLUMNS)
        out = pd.concat(frames, ignore_index=True)
        return out.sort_values(["chrom", "start", "motif"], kind="stable", ignore_index=True)

    def _table(self, chrom: str, start: np.ndarray, hits: Hits) -> pd.DataFrame:
        names = np.array(self.names, dtype=object)[hits.motif]
        pvalues = np.empty(len(hits))
        for m, name in enumerate(self.names):
            at = hits.motif == m
            pvalues[at] = self.pvalue_of(name, hits.score[at])
        return pd.DataFrame({"chrom": chrom, "start": start, "end": start + hits.width, "strand": np.where(hits.strand > 0, "+", "-"),
                             "motif": names, "score": hits.score, "pvalue": pvalues})
