"""Chromoformer's inputs as the published dataset builds them (``model.inputs.layout=published``).

The published pipeline (github.com/dohlee/chromoformer, ``chromoformer/data.py`` and
``preprocessing/``) bins exact genomic positions, which the 100 bp grid of the cell cache
cannot express, so this layout reads the ``windows`` source (``epx.data.prepare.windows``: a
per-region store binned once per cell from the bigWigs at base resolution). Per gene and
resolution r (L_r = window_bp / r promoter bins, n_out = w_max / r pCRE bins):

- promoter: [TSS - window_bp / 2, TSS + window_bp / 2) binned from its first base (bin =
  mean per-bp signal over the bin's bases, then ln(x + 1)); reversed for − strand genes
  (so their TSS base falls in bin L_r / 2 - 1, as published);
- pCREs: each binned from its own first base, partial last bin averaged over its real bases,
  never reversed (whatever the gene's strand), centre-padded with left pad
  ceil((n_out - n) / 2); ``pcre_bin_mask`` True on the n real bins;
- selection: a gene's pCREs are the second anchors of BEDPE rows whose FIRST anchor lies
  within TSS ± ``tolerance_bp`` (0, the published rule: the anchor contains the TSS); never
  through a row's reversed orientation; a partner that contains the gene's own TSS is kept;
  a partner seen twice keeps its best score; the top ``i_max`` by score, ties by the
  partner's ``chrom:start-end`` text (the published PriorityQueue order); ``freq`` is the
  contact ``strength`` (the score for frequencies);
- a linked partner longer than ``w_max`` is one ``InputError`` naming the interactions file
  (the published metadata never holds one; it would not fit the window).

Batches have the ``Chromoformer`` forward contract of ``ChromoformerInputs`` (channels first:
the published (L, M) feature layout transposed), built per batch by fancy indexing into the
store, with no Python loop over genes or pCREs. ``PublishedChromoformerInputs`` subclasses
``ChromoformerInputs``, so explain's Chromoformer adapter serves it; its ``layouts`` place every
position on the genome with this geometry.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from epx.data.inputs.arrays import keep_batch
from epx.data.inputs.chromoformer import ChromoformerInputs
from epx.data.inputs.context import DataContext, target_array
from epx.data.inputs.pcres import PcreSlots, _links, fill_slots
from epx.data.inputs.protocol import GeneIntervals, Layout, whole_dataset
from epx.data.prepare.windows import BinnedRegions, Regions, ragged_arange
from epx.errors import InputError


def published_links(genes: pd.DataFrame, interactions: pd.DataFrame, *, tolerance_bp: int) -> pd.DataFrame:
    """(gene row, partner) pairs where a row's FIRST anchor is at the gene's TSS (± tolerance)."""
    if interactions.empty or genes.empty:
        return pd.DataFrame(columns=["gene", "row", "chrom", "start", "end", "freq"])
    anchor = interactions[["chrom1", "start1", "end1"]].set_axis(["chrom", "start", "end"], axis=1)
    partner = interactions[["chrom2", "start2", "end2"]].set_axis(["chrom", "start", "end"], axis=1)
    links = _links(genes, anchor, partner, interactions["strength"].to_numpy(np.float64), tolerance_bp)
    return links.astype({"gene": np.int64, "row": np.int64, "start": np.int64, "end": np.int64, "freq": np.float64})


def select_published_pcres(genes: pd.DataFrame, interactions: pd.DataFrame, *, tolerance_bp: int = 0, i_max: int = 8,
                           w_max: int = 40_000, where: str | Path = "the interactions") -> PcreSlots:
    """``PcreSlots`` (N, i_max) by the published rules (module doc)."""
    n = len(genes)
    slots = PcreSlots(chrom=np.full((n, i_max), "", dtype=object), start=np.zeros((n, i_max), np.int64),
                      end=np.ones((n, i_max), np.int64), freq=np.zeros((n, i_max), np.float32), mask=np.zeros((n, i_max), bool))
    links = published_links(genes, interactions, tolerance_bp=tolerance_bp)
    if links.empty:
        return slots
    long = links[(links["end"] - links["start"]) > w_max]
    if len(long):
        first = long.iloc[0]
        raise InputError(
            f"{where}: {long[['chrom', 'start', 'end']].drop_duplicates().shape[0]} linked pCRE(s) are longer than "
            f"model.inputs.w_max={w_max} bp (e.g. {first['chrom']}:{first['start']}-{first['end']}, "
            f"{first['end'] - first['start']} bp); the published layout bins a pCRE whole and never crops it. "
            f"Drop such rows from the file (the published pipeline skips them) or raise model.inputs.w_max"
        )
    links["key"] = links["chrom"].astype(str) + ":" + links["start"].astype(str) + "-" + links["end"].astype(str)
    links = links.sort_values(["gene", "freq", "key"], ascending=[True, False, True], kind="stable")
    links = links.drop_duplicates(["gene", "key"], keep="first")
    return fill_slots(slots, links, i_max)


def promoter_regions(genes: pd.DataFrame, window_bp: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tss = genes["tss"].to_numpy(np.int64)
    return genes["chrom"].to_numpy(object), tss - window_bp // 2, tss - window_bp // 2 + window_bp


class PublishedChromoformerDataset(Dataset):
    """Items of the published layout; ``__getitems__`` assembles a whole batch (module doc)."""

    collate_fn = staticmethod(keep_batch)

    def __init__(self, context: DataContext, rows: np.ndarray, slots: PcreSlots, store: BinnedRegions, *, window_bp: int,
                 resolutions: Sequence[int], w_max: int):
        genes = context.genes.iloc[rows]
        self.rows = np.asarray(rows, np.int64)
        self.y = torch.as_tensor(target_array(genes, context.target_column))
        self.slots, self.store = slots, store
        self.window_bp, self.resolutions, self.w_max = int(window_bp), tuple(int(r) for r in resolutions), int(w_max)
        self.minus = genes["strand"].to_numpy() == "-"
        self.promoter = store.regions.index(*promoter_regions(genes, self.window_bp))
        g, s = np.nonzero(slots.mask)
        self.pcre = np.full(slots.mask.shape, -1, np.int64)
        self.pcre[g, s] = store.regions.index(slots.chrom[g, s], slots.start[g, s], slots.end[g, s])
        missing = (self.promoter < 0).sum() + ((self.pcre < 0) & slots.mask).sum()
        if missing:
            raise InputError(f"the window store of cell {context.cell} lacks {missing} of this split's windows; "
                             "it was built for other genes or interactions (rebuild: delete its files under <cache_dir>/windows)")

    def __len__(self) -> int:
        return len(self.rows)

    def assemble_x(self, indices) -> dict:
        idx = np.asarray(indices, np.int64)
        b, i_max = len(idx), self.slots.mask.shape[1]
        store = self.store
        n_marks = len(store.marks)
        filled = np.flatnonzero(self.slots.mask[idx].ravel())  # flat (gene, slot) of the batch's pCREs
        region = self.pcre[idx].ravel()[filled]
        promoter, pcres, bin_mask = {}, {}, {}
        for r in self.resolutions:
            values, offsets = store.values[r], store.offsets[r]
            n_p, n_out = self.window_bp // r, self.w_max // r
            walk = np.arange(n_p)
            at = offsets[self.promoter[idx]][:, None] + np.where(self.minus[idx][:, None], n_p - 1 - walk, walk)
            promoter[r] = torch.from_numpy(np.ascontiguousarray(values[at].transpose(0, 2, 1)))  # (B, M, L)
            n = offsets[region + 1] - offsets[region]
            pad = (n_out - n + 1) // 2  # ceil((n_out - n) / 2)
            j = ragged_arange(n)
            item = np.repeat(np.arange(len(filled)), n)
            out = np.zeros((b * i_max, n_out, n_marks), np.float32)
            mask = np.zeros((b * i_max, n_out), bool)
            out[filled[item], pad[item] + j] = values[offsets[region][item] + j]
            mask[filled[item], pad[item] + j] = True
            pcres[r] = torch.from_numpy(np.ascontiguousarray(out.reshape(b, i_max, n_out, n_marks).transpose(0, 1, 3, 2)))
            bin_mask[r] = torch.from_numpy(mask.reshape(b, i_max, n_out))
        return {"promoter": promoter, "pcres": pcres, "pcre_bin_mask": bin_mask,
                "pcre_mask": torch.from_numpy(self.slots.mask[idx]), "freq": torch.from_numpy(self.slots.freq[idx])}

    def __getitems__(self, indices) -> dict:
        idx = np.asarray(indices, np.int64)
        return {"x": self.assemble_x(idx), "y": self.y[idx], "gene": torch.from_numpy(self.rows[idx])}

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])


class PublishedChromoformerInputs(ChromoformerInputs):
    """The published layout's builder (module doc); built by ``ChromoformerInputs(layout="published", ...)``."""

    layout = "published"
    sources = ("windows", "contacts")
    requires_contacts = True
    distal = True
    collate_fn = staticmethod(keep_batch)
    gene_dataset = staticmethod(whole_dataset)
    default_tolerance_bp = 0  # the published rule: the promoter anchor contains the TSS

    def regions(self, genes: pd.DataFrame, interactions: pd.DataFrame, *, where: str | Path = "the interactions") -> Regions:
        """Every window the store must hold for ``genes``: their promoters and selected pCREs."""
        slots = self.select(genes, interactions, where=where)
        pc, ps, pe = promoter_regions(genes, self.window_bp)
        return Regions.of(np.concatenate([pc, slots.chrom[slots.mask]]), np.concatenate([ps, slots.start[slots.mask]]),
                          np.concatenate([pe, slots.end[slots.mask]]))

    def select(self, genes: pd.DataFrame, interactions: pd.DataFrame, *, where: str | Path = "the interactions") -> PcreSlots:
        return select_published_pcres(genes, interactions, tolerance_bp=self.tolerance_bp, i_max=self.i_max, w_max=self.w_max, where=where)

    def intervals(self, genes: pd.DataFrame, *, base_bp: int = 100) -> GeneIntervals:
        """The promoter window of each gene, base-exact (its pCREs lie anywhere: ``distal``)."""
        chrom, start, end = promoter_regions(genes, self.window_bp)
        return GeneIntervals(chrom, start, end)

    def layouts(self, genes: pd.DataFrame, slots: PcreSlots, *, base_bp: int = 100) -> dict[str, Layout]:
        """``{promoter_{r}, pcres_{r}: Layout}``: promoter position j holds genomic bin j (+
        strand) or L - 1 - j (− strand) of the TSS-anchored window, its offset j r - window / 2;
        pCRE position j holds bin j - pad from the pCRE's start (never reversed), its offset
        from the window centre (j - n_out / 2) r."""
        out = {}
        chrom, lo, _ = promoter_regions(genes, self.window_bp)
        minus = genes["strand"].to_numpy() == "-"
        n_genes, i_max = slots.mask.shape
        for r in self.resolutions:
            n_p = self.window_bp // r
            j = np.arange(n_p)
            genomic = np.where(minus[:, None], n_p - 1 - j, j)
            start = lo[:, None] + genomic * r
            out[f"promoter_{r}"] = Layout(chrom=chrom, start=start, end=start + r, offset_bp=np.broadcast_to(j * r - self.window_bp // 2, start.shape).copy(),
                                          valid=np.ones(start.shape, bool), reverse=minus, bin_bp=r)
        for r in self.resolutions:
            n_out = self.w_max // r
            n = np.where(slots.mask, -(-(slots.end - slots.start) // r), 0)
            pad = (n_out - n + 1) // 2
            j = np.arange(n_out)
            k = j[None, None, :] - pad[..., None]
            start = np.minimum(slots.start[..., None] + k * r, slots.end[..., None])
            end = np.minimum(start + r, slots.end[..., None])
            valid = (k >= 0) & (k < n[..., None]) & slots.mask[..., None]
            start, end = np.where(valid, start, slots.start[..., None]), np.where(valid, end, slots.start[..., None])
            out[f"pcres_{r}"] = Layout(chrom=slots.chrom, start=start.astype(np.int64), end=end.astype(np.int64),
                                       offset_bp=np.broadcast_to((j - n_out // 2) * r, start.shape).copy(), valid=valid,
                                       reverse=np.zeros((n_genes, i_max), bool), bin_bp=r, anchor="pcre_centre", slot_axis=True)
        return out

    def __call__(self, context: DataContext, rows: np.ndarray, *, split: str = "train") -> PublishedChromoformerDataset:
        genes = context.genes.iloc[rows]
        slots = self.select(genes, context.interactions)
        return PublishedChromoformerDataset(context, rows, slots, context.source("windows"), window_bp=self.window_bp,
                                            resolutions=self.resolutions, w_max=self.w_max)
