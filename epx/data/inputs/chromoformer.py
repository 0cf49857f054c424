"""Chromoformer inputs: promoter + pCRE windows at three resolutions, assembled per batch.

Contract: ``ChromoformerInputs(window_bp=40_000, resolutions=(2000, 500, 100), i_max=8,
w_max=40_000, tolerance_bp=1000)`` is a builder ``(context, rows) -> ChromoformerDataset``.
pCREs come from the dataset's contacts (``context.interactions``, thresholded once by the
DataModule: the same edges GraphReg's graph uses); ``freq`` is the contact ``strength`` (a
frequency as is, a q-value as -log10 q), which ranks pCREs and biases attention.
A batch is ``{"x": {promoter: {r: (B, M, L_r)}, pcres: {r: (B, I, M, L_r)}, pcre_bin_mask:
{r: (B, I, L_r) bool}, pcre_mask: (B, I) bool, freq: (B, I)}, "y": (B,), "gene": (B,)}`` with
``L_r = window_bp / r`` and ``I = i_max`` — the ``Chromoformer`` forward contract.

What a batch holds is defined by ``windowed_batch``: the promoter is ``SignalTracks.tss_windows``
and each pCRE ``SignalTracks.region_windows`` at every resolution (for − strand genes the
promoter AND its pCRE windows are reversed, so a gene and its mirror image on the other strand
get identical inputs). ``ChromoformerDataset.__getitems__`` returns exactly those tensors
(bit for bit; ``tests/test_chromoformer_data.py`` checks it) but assembles them faster
(issue 14 part 5; ``benchmarks/bench_chromoformer.py``):

- at build time, per gene and pCRE slot, the integer layout of its windows is computed once
  (``WindowLayout``: chromosome code, first base bin, bins to read, and per resolution the
  read's anchor, real base bins, real coarse bins and left padding): 65 bytes per slot with
  three resolutions, 10 MB for 19,000 genes × 8 slots. Never the windows' values: a per-gene
  copy of 8 pCREs × 7 marks × (400 + 80 + 20) bins × 4 B is 112 kB per gene, 2.1 GB for 19,000
  genes (2.4 GB with the promoters), on top of the genome-wide tracks it would be cut from;
- per batch, the base bins the windows really cover (the promoters' 400 and each pCRE's own
  bins, not the zero padding around them) are read once from the tracks with one fancy index
  per chromosome in the batch, and each resolution is one fancy index into those bins, one
  mean over ``r / base_bp`` bins, one ``ln(x + 1)`` and one scatter into the zeroed output:
  no Python loop over genes or pCREs. Work is proportional to the signal in the windows, not
  to their padded size.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from epx.data.inputs.arrays import keep_batch
import pandas as pd

from epx.data.inputs.context import DataContext, target_array
from epx.data.inputs.protocol import GeneIntervals, Layout, oriented_window_layout, tss_intervals, whole_dataset
from epx.data.inputs.pcres import PcreSlots, _ragged_arange, select_pcres
from epx.data.tracks import SignalTracks, log_signal
from epx.errors import InputError


def windowed_batch(tracks: SignalTracks, chrom, tss, strand, slots: PcreSlots, *, window_bp: int,
                   resolutions: Sequence[int], w_max: int) -> dict:
    """The definition of a batch's ``x`` from the window API, one call per resolution (the
    assembly before issue 14; kept as the reference the fast path must equal)."""
    minus = np.asarray(strand) == "-"
    b, i_max = slots.mask.shape
    filled = np.flatnonzero(slots.mask.ravel())
    filled_minus = np.repeat(minus, i_max)[filled]
    promoter, pcres, bin_mask = {}, {}, {}
    for r in resolutions:
        promoter[r] = torch.from_numpy(tracks.tss_windows(chrom, tss, strand, window_bp=window_bp, bin_bp=r))
        n_bins = w_max // r
        x = np.zeros((b * i_max, tracks.n_marks, n_bins), np.float32)
        m = np.zeros((b * i_max, n_bins), bool)
        if filled.size:
            x[filled], m[filled] = tracks.region_windows(
                slots.chrom.ravel()[filled], slots.start.ravel()[filled], slots.end.ravel()[filled],
                length_bp=w_max, bin_bp=r, reverse=filled_minus,
            )
        pcres[r] = torch.from_numpy(x.reshape(b, i_max, -1, n_bins))
        bin_mask[r] = torch.from_numpy(m.reshape(b, i_max, n_bins))
    return {"promoter": promoter, "pcres": pcres, "pcre_bin_mask": bin_mask,
            "pcre_mask": torch.from_numpy(slots.mask), "freq": torch.from_numpy(slots.freq)}


def pcre_layout(slots: PcreSlots, minus: np.ndarray, r: int, w_max: int, base_bp: int) -> Layout:
    """Where each position of the pCRE windows at resolution ``r`` lies, as
    ``SignalTracks.region_windows`` bins a pCRE: from its start (from its end for − strand
    genes), centre-padded or centre-cropped to ``w_max // r`` bins; a position's span is
    clipped to the pCRE (the window holds zeros beyond it)."""
    k, n_out = r // base_bp, w_max // r
    first = slots.start // base_bp
    last = np.maximum((slots.end - 1) // base_bp, first)
    n_base = last - first + 1
    n_bins = np.minimum(-(-n_base // k), n_out)
    crop = (-(-n_base // k) - n_bins) // 2 * k
    pad_left = (n_out - n_bins) // 2
    j = np.arange(n_out)
    rel = (j[None, None, :] - pad_left[..., None]) * k  # base bins from the anchor
    lo_fwd = first[..., None] + crop[..., None] + rel
    hi_rev = last[..., None] - crop[..., None] - rel + 1
    start_bin = np.where(minus[..., None], hi_rev - k, lo_fwd)
    end_bin = np.where(minus[..., None], hi_rev, lo_fwd + k)
    start = np.clip(start_bin, first[..., None], last[..., None] + 1) * base_bp
    end = np.clip(end_bin, first[..., None], last[..., None] + 1) * base_bp
    valid = (j[None, None, :] >= pad_left[..., None]) & (j[None, None, :] < (pad_left + n_bins)[..., None]) & slots.mask[..., None]
    offset = np.broadcast_to((j - n_out // 2) * r, start.shape).copy()
    return Layout(chrom=slots.chrom, start=start.astype(np.int64), end=end.astype(np.int64), offset_bp=offset, valid=valid,
                  reverse=minus, bin_bp=r, anchor="pcre_centre", slot_axis=True)


@dataclass
class WindowLayout:
    """Where every window of a dataset reads from, computed once from the genes and slots.

    ``names``: chromosome names by code. Promoters (N,): ``p_code``, ``p_lo`` (first base bin,
    genomic order), ``p_minus``. pCRE slots (N, I): ``c_code`` (-1: empty slot), ``c_lo``,
    ``c_len`` (base bins read: the union of what every resolution reads), ``c_minus`` and per
    resolution r (N, I) arrays: ``base0[r]`` (the read's first bin relative to ``c_lo``; it
    walks back from there for − strand genes), ``n_real[r]`` (base bins with signal),
    ``n_bins[r]`` (coarse bins with signal) and ``pad[r]`` (empty coarse bins on the left).
    """

    names: list[str]
    window_bins: int
    p_code: np.ndarray
    p_lo: np.ndarray
    p_minus: np.ndarray
    c_code: np.ndarray
    c_lo: np.ndarray
    c_len: np.ndarray
    c_minus: np.ndarray
    base0: dict[int, np.ndarray]
    n_real: dict[int, np.ndarray]
    n_bins: dict[int, np.ndarray]
    pad: dict[int, np.ndarray]

    @classmethod
    def build(cls, chrom, tss, strand, slots: PcreSlots, *, window_bp: int, resolutions: Sequence[int],
              w_max: int, base_bp: int) -> "WindowLayout":
        chrom, tss = np.asarray(chrom), np.asarray(tss, np.int64)
        minus = np.asarray(strand) == "-"
        names = sorted(set(chrom.tolist()) | set(slots.chrom[slots.mask].tolist()))
        code_of = {name: i for i, name in enumerate(names)}
        n = window_bp // base_bp
        # tss_windows: base bins [centre - n/2 + minus, + n), read backwards on the − strand
        p_lo = tss // base_bp - n // 2 + minus
        c_code = np.full(slots.mask.shape, -1, np.int32)
        g, s = np.nonzero(slots.mask)
        c_code[g, s] = [code_of[c] for c in slots.chrom[g, s]]
        c_minus = np.broadcast_to(minus[:, None], slots.mask.shape)
        # region_windows, per resolution: crop / pad / anchor as it computes them
        first = slots.start // base_bp
        last = np.maximum((slots.end - 1) // base_bp, first)
        n_base = last - first + 1
        lo, hi = np.full_like(first, np.iinfo(np.int64).max), np.full_like(first, np.iinfo(np.int64).min)
        anchors, n_real, n_bins, pad = {}, {}, {}, {}
        for r in resolutions:
            k, n_out = r // base_bp, w_max // r
            bins = np.minimum(-(-n_base // k), n_out)
            crop = (-(-n_base // k) - bins) // 2 * k
            real = np.minimum(n_base - crop, bins * k)
            anchor = np.where(c_minus, last - crop, first + crop)
            read_lo = np.where(c_minus, anchor - real + 1, anchor)
            lo, hi = np.minimum(lo, read_lo), np.maximum(hi, read_lo + real)
            anchors[r], n_real[r], n_bins[r], pad[r] = anchor, real, bins, (n_out - bins) // 2
        empty = ~slots.mask
        lo[empty], hi[empty] = 0, 0
        base0 = {r: np.where(empty, 0, a - lo) for r, a in anchors.items()}
        small = np.int32
        return cls(
            names=names, window_bins=n,
            p_code=np.array([code_of[c] for c in chrom], small), p_lo=p_lo, p_minus=minus,
            c_code=c_code, c_lo=lo, c_len=(hi - lo).astype(small), c_minus=np.ascontiguousarray(c_minus),
            base0={r: v.astype(small) for r, v in base0.items()},
            n_real={r: np.where(empty, 0, v).astype(small) for r, v in n_real.items()},
            n_bins={r: np.where(empty, 0, v).astype(small) for r, v in n_bins.items()},
            pad={r: v.astype(small) for r, v in pad.items()},
        )


def _read_runs(tracks: SignalTracks, names: list[str], code: np.ndarray, lo: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Base bins ``[lo, lo + length)`` of each run, in genomic order, as one ``(R + 1, M)`` array
    (the last row is zero: the index of 'no signal') and each run's offset in it. Bins off the
    chromosome, or on a chromosome the tracks lack, are 0. One fancy index per chromosome."""
    order = np.argsort(code, kind="stable")
    length_sorted = length[order].astype(np.int64)
    starts = np.cumsum(length_sorted) - length_sorted
    total = int(length_sorted.sum())
    offset = np.empty(len(code), np.int64)
    offset[order] = starts
    out = np.empty((total + 1, tracks.n_marks), np.float32)
    out[total] = 0.0
    pos = np.arange(total, dtype=np.int64) + np.repeat(lo[order] - starts, length_sorted)
    code_sorted = code[order]
    bounds = np.flatnonzero(np.diff(code_sorted)) + 1
    for a, z in zip(np.concatenate([[0], bounds]), np.concatenate([bounds, [len(code)]])):
        r0, r1 = starts[a], starts[z - 1] + length_sorted[z - 1]
        if r1 == r0:
            continue
        track = tracks.tracks.get(names[code_sorted[a]])
        if track is None:
            out[r0:r1] = 0.0
            continue
        p = pos[r0:r1]
        if track.dtype == out.dtype:
            np.take(track, p, axis=0, mode="clip", out=out[r0:r1])
        else:  # float16 tracks: np.take's out= will not widen
            out[r0:r1] = np.take(track, p, axis=0, mode="clip")
        off = (p < 0) | (p >= track.shape[0])
        if off.any():
            out[r0:r1][off] = 0.0
    return out, offset


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
        self.layout = WindowLayout.build(self.chrom, self.tss, self.strand, slots, window_bp=window_bp,
                                         resolutions=self.resolutions, w_max=w_max, base_bp=self.tracks.base_bp)

    def __len__(self) -> int:
        return len(self.rows)

    def reference_x(self, indices) -> dict:
        """``x`` of a batch as ``windowed_batch`` defines it (slow; for tests and benchmarks)."""
        idx = np.asarray(indices, np.int64)
        return windowed_batch(self.tracks, self.chrom[idx], self.tss[idx], self.strand[idx], self.slots.take(idx),
                              window_bp=self.window_bp, resolutions=self.resolutions, w_max=self.w_max)

    def assemble_x(self, indices) -> dict:
        """``x`` of a batch: equal to ``reference_x``, with no per-gene or per-pCRE Python work."""
        idx = np.asarray(indices, np.int64)
        lay, tracks = self.layout, self.tracks
        b, i_max = len(idx), lay.c_code.shape[1]
        n, n_marks = lay.window_bins, tracks.n_marks
        code = lay.c_code[idx].ravel()
        filled = np.flatnonzero(code >= 0)  # flat (gene, slot) of the batch's pCREs
        g, s = filled // i_max, filled % i_max
        at = idx[g]  # dataset positions of the batch's pCREs
        # one read of every base bin the batch's windows cover: promoters first, then pCREs
        bins, offset = _read_runs(
            tracks, lay.names,
            np.concatenate([lay.p_code[idx], code[filled]]),
            np.concatenate([lay.p_lo[idx], lay.c_lo[at, s]]),
            np.concatenate([np.full(b, n, np.int32), lay.c_len[at, s]]),
        )
        zero = len(bins) - 1
        p_off, c_off = offset[:b], offset[b:]
        c_step = np.where(lay.c_minus[at, s], -1, 1)
        # promoters: the same base bins at every resolution, reversed on the − strand
        walk = np.arange(n)
        p_idx = p_off[:, None] + np.where(lay.p_minus[idx][:, None], n - 1 - walk, walk)
        p_base = bins[p_idx]  # (B, n, M)
        promoter, pcres, bin_mask = {}, {}, {}
        for r in self.resolutions:
            k, n_out = r // tracks.base_bp, self.w_max // r
            x = p_base if k == 1 else p_base.reshape(-1, k, n_marks).mean(axis=1)
            promoter[r] = torch.from_numpy(log_signal(x.reshape(b, -1, n_marks)).transpose(0, 2, 1).copy())
            # pCREs: each real coarse bin is the mean of its k base bins (0 past the region's end)
            n_bins = lay.n_bins[r][at, s]
            pad = lay.pad[r][at, s]
            item = np.repeat(np.arange(len(filled)), n_bins)
            coarse = _ragged_arange(n_bins)
            rel = coarse[:, None] * k + np.arange(k)  # (C, k) base bins from the read's anchor
            c_idx = np.where(
                rel < lay.n_real[r][at, s][item, None],
                (c_off + lay.base0[r][at, s])[item, None] + c_step[item, None] * rel,
                zero,
            )
            vals = bins[c_idx]  # (C, k, M)
            vals = vals[:, 0] if k == 1 else vals.mean(axis=1)
            out = np.zeros((b * i_max, n_marks, n_out), np.float32)
            slot_of = pad[item] + coarse
            out[filled[item], :, slot_of] = log_signal(vals)
            slot = np.arange(n_out)
            m = np.zeros((b * i_max, n_out), bool)
            m[filled] = (slot >= pad[:, None]) & (slot < (pad + n_bins)[:, None])
            pcres[r] = torch.from_numpy(out.reshape(b, i_max, n_marks, n_out))
            bin_mask[r] = torch.from_numpy(m.reshape(b, i_max, n_out))
        return {
            "promoter": promoter,
            "pcres": pcres,
            "pcre_bin_mask": bin_mask,
            "pcre_mask": torch.from_numpy(self.slots.mask[idx]),
            "freq": torch.from_numpy(self.slots.freq[idx]),
        }

    def __getitems__(self, indices) -> dict:
        idx = np.asarray(indices, np.int64)
        return {"x": self.assemble_x(idx), "y": self.y[idx], "gene": torch.from_numpy(self.rows[idx])}

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])


# model.inputs.layout -> the builder class: epx's 100 bp grid, or the published dataset's exact bins
LAYOUTS = {"epx": "epx.data.inputs.chromoformer:ChromoformerInputs",
           "published": "epx.data.inputs.chromoformer_published:PublishedChromoformerInputs"}


class ChromoformerInputs:
    layout = "epx"
    default_tolerance_bp = 1000  # tolerance_bp=None: an anchor within TSS ± 1 kb, either BEDPE orientation

    def __new__(cls, *args, layout: str = "epx", **kwargs):
        """``ChromoformerInputs(layout=...)`` builds the layout's class (``LAYOUTS``)."""
        if layout not in LAYOUTS:
            raise InputError(f"model.inputs.layout={layout!r} is not a Chromoformer input layout; choose one of {', '.join(LAYOUTS)}")
        built = cls
        if cls is ChromoformerInputs and layout != cls.layout:
            module, name = LAYOUTS[layout].split(":")
            built = getattr(importlib.import_module(module), name)
        return object.__new__(built)

    def __init__(
        self,
        *,
        window_bp: int = 40_000,
        resolutions: Sequence[int] = (2000, 500, 100),
        i_max: int = 8,
        w_max: int = 40_000,
        tolerance_bp: int | None = None,
        layout: str = "epx",  # chosen by __new__: the instance's class says it (``self.layout``)
    ):
        tolerance_bp = self.default_tolerance_bp if tolerance_bp is None else tolerance_bp
        self.window_bp, self.resolutions = int(window_bp), tuple(int(r) for r in resolutions)
        self.i_max, self.w_max, self.tolerance_bp = int(i_max), int(w_max), int(tolerance_bp)
        self.reach_bp = self.window_bp // 2  # the promoter window's reach from the TSS
        self.contact_tolerance_bp = self.tolerance_bp  # what links a gene to an interaction (the accounting's rule too)

    # the InputBuilder contract (epx.data.inputs.protocol)
    sources = ("tracks", "contacts")
    requires_contacts = True
    distal = True  # pCREs are linked at any distance: no window bounds what a gene sees
    collate_fn = staticmethod(keep_batch)
    gene_dataset = staticmethod(whole_dataset)

    def channels(self, marks) -> tuple[str, ...]:
        return tuple(marks)

    def intervals(self, genes: pd.DataFrame, *, base_bp: int = 100) -> GeneIntervals:
        """The promoter window of each gene (its pCREs lie anywhere: ``distal``)."""
        return tss_intervals(genes, self.window_bp // 2, base_bp)

    def layouts(self, genes: pd.DataFrame, slots: PcreSlots, *, base_bp: int = 100) -> dict[str, Layout]:
        """``{promoter_{r}, pcres_{r}: Layout}`` for ``genes`` and their pCRE ``slots``, as
        ``windowed_batch`` reads them (promoters oriented 5'->3'; pCREs binned from their start,
        from their end for − strand genes, centre-padded or centre-cropped to ``w_max / r``)."""
        out = {
            f"promoter_{r}": oriented_window_layout(genes["chrom"], genes["tss"], genes["strand"], window_bp=self.window_bp,
                                                    bin_bp=r, base_bp=base_bp)
            for r in self.resolutions
        }
        minus = np.repeat((genes["strand"].to_numpy() == "-")[:, None], slots.mask.shape[1], axis=1)
        for r in self.resolutions:
            out[f"pcres_{r}"] = pcre_layout(slots, minus, r, self.w_max, base_bp)
        return out

    def __call__(self, context: DataContext, rows: np.ndarray, *, split: str = "train") -> ChromoformerDataset:
        slots = select_pcres(context.genes.iloc[rows], context.interactions.assign(score=context.interactions["strength"]), tolerance_bp=self.tolerance_bp, i_max=self.i_max)
        # slots are indexed by position within `rows`
        return ChromoformerDataset(context, rows, slots, window_bp=self.window_bp, resolutions=self.resolutions, w_max=self.w_max)
