"""Sequence inputs: one-hot DNA chunks and their per-bin epigenome targets (Seq-GraphReg's base).

Contract: ``SequenceChunks(*, chunk_bp=100_000, bin_bp=100, max_n_fraction=0.5,
rc_augment=False)`` is an ``InputBuilder`` (``epx.data.inputs.protocol``) reading the
``genome`` source (the reference as base codes) and the ``tracks`` source (the cell's marks:
the job's ``mark`` selects the tracks to predict, e.g. ``mark=H3K4me3+H3K27ac``). Called
``builder(context, rows, split=...) -> SequenceChunkDataset`` once per split.

Chunks tile every chromosome of the split's genes from position 0 in steps of ``chunk_bp``
(the last chunk runs past the end, read as N and zero signal), so every 100 bp bin of a
held-out chromosome is predicted once, gene or no gene; chunks with more than
``max_n_fraction`` N bases and no TSS (assembly gaps, centromeres) are left out (counted in the log). Folds hold
out whole chromosomes, which is what keeps test sequence out of training (a ``column`` fold
scheme that splits a chromosome would put its chunks in two splits: use a whole-chromosome
scheme for sequence models).

A batch of B chunks (``__getitems__``, assembled in memory; ``collate_fn`` passes it through):

- ``x``: ``{"x": (B, 4, chunk_bp) float32}`` one-hot A C G T (N and other IUPAC codes all
  zero), read from the genome source in one call;
- ``y``: (B, T, chunk_bp / bin_bp) float32, each track's mean per-bp signal per bin (the
  cache's value, not its log: the Poisson target of the base model), T = the job's marks;
- ``gene``: (G,) int64 gene-table rows of the split's genes whose TSS lies in these chunks,
  ``gene_pos``: (G,) int64 index of the TSS bin in the flattened (B * n_bins) bins,
  ``gene_target``: (G,) float32 log2(observed track-0 value at the TSS bin + 1) — what
  ``predictions.csv``'s ``target`` holds for this model (the base model predicts tracks,
  not expression).

``rc_augment`` (training split only): each chunk is reverse-complemented with probability
1/2 per batch (sequence reversed and complemented, targets and gene bins mirrored), drawn
from torch's global generator, so a seeded job is reproducible.
"""

from __future__ import annotations

import logging

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, Subset

from epx.data.inputs.arrays import keep_batch
from epx.data.inputs.context import DataContext
from epx.data.inputs.protocol import GeneIntervals
from epx.errors import InputError
from epx.io.naming import chrom_sort_key

N_CODE = 4  # the genome source's code for N and every other IUPAC letter
BASES = ("A", "C", "G", "T")

log = logging.getLogger(__name__)


@dataclass
class ChunkTable:
    """Per chunk (K rows): ``chrom`` (K,) object, ``start`` (K,) int64 bp; and the chunks' genes
    in chunk order: ``gene`` (G,) rows, ``gene_bin`` (G,) the TSS's bin within its chunk,
    ``n_genes`` (K,)."""

    chrom: np.ndarray
    start: np.ndarray
    gene: np.ndarray
    gene_bin: np.ndarray
    n_genes: np.ndarray

    @property
    def gene_offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.n_genes)]).astype(np.int64)


class SequenceChunkDataset(Dataset):
    """The chunks of one split; see the module docstring for a batch's fields."""

    collate_fn = staticmethod(keep_batch)

    def __init__(self, context: DataContext, table: ChunkTable, *, chunk_bp: int, bin_bp: int, rc_augment: bool):
        self.genome, self.tracks = context.genome, context.tracks
        self.table, self.chunk_bp, self.bin_bp, self.rc_augment = table, chunk_bp, bin_bp, rc_augment
        self.n_bins = chunk_bp // bin_bp
        self.k = bin_bp // self.tracks.base_bp

    def __len__(self) -> int:
        return len(self.table.chrom)

    def onehot(self, idx: np.ndarray, reverse: np.ndarray | None = None) -> np.ndarray:
        """(B, 4, chunk_bp) one-hot of chunks ``idx`` (``reverse``: per chunk, reverse complement)."""
        return self.genome.onehot(self.table.chrom[idx], self.table.start[idx], self.chunk_bp, reverse=reverse)

    def gene_chunk(self) -> np.ndarray:
        """(G,) the chunk of each of the dataset's genes (``table.gene`` order)."""
        return np.repeat(np.arange(len(self.table.chrom)), self.table.n_genes)

    def targets(self, idx: np.ndarray) -> np.ndarray:
        """(B, T, n_bins) mean per-bp signal of each track per bin; 0 past the chromosome end."""
        t = self.table
        base = np.arange(self.n_bins * self.k)
        out = np.zeros((len(idx), self.tracks.n_marks, self.n_bins), np.float32)
        chroms = t.chrom[idx]
        for chrom in pd.unique(chroms):
            at = np.flatnonzero(chroms == chrom)
            first = t.start[idx[at]] // self.tracks.base_bp
            bins = self.tracks.base_bins(chrom, first[:, None] + base)  # (b, n*k, T), zeros outside
            if self.k > 1:
                bins = bins.reshape(len(at), self.n_bins, self.k, -1).mean(axis=2)
            out[at] = bins.transpose(0, 2, 1)
        return out

    def __getitems__(self, indices) -> dict:
        idx = np.asarray(indices, np.int64)
        t = self.table
        offsets = t.gene_offsets
        counts = t.n_genes[idx]
        gene_idx = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in idx]) if len(idx) else np.zeros(0, np.int64)
        gene_idx = gene_idx.astype(np.int64)
        batch_of_gene = np.repeat(np.arange(len(idx)), counts)
        gene_bin = t.gene_bin[gene_idx]
        reverse = np.zeros(len(idx), bool)
        if self.rc_augment:
            reverse = (torch.rand(len(idx)) < 0.5).numpy()
        x = self.onehot(idx, reverse)
        y = self.targets(idx)
        y[reverse] = y[reverse, :, ::-1]
        gene_bin = np.where(reverse[batch_of_gene], self.n_bins - 1 - gene_bin, gene_bin)
        gene_pos = batch_of_gene * self.n_bins + gene_bin
        gene_target = np.log2(y[:, 0, :].reshape(-1)[gene_pos] + 1.0)
        return {
            "x": {"x": torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))},
            "y": torch.from_numpy(np.ascontiguousarray(y)),
            "gene": torch.from_numpy(t.gene[gene_idx]),
            "gene_pos": torch.from_numpy(gene_pos.astype(np.int64)),
            "gene_target": torch.from_numpy(np.asarray(gene_target, np.float32)),
        }

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])


class SequenceChunks:
    """Builder of ``SequenceChunkDataset`` for one split (see the module docstring)."""

    # the InputBuilder contract (epx.data.inputs.protocol)
    sources = ("genome", "tracks")
    contact_tolerance_bp = None
    requires_contacts = False
    distal = False
    reach_bp = 0  # chromosomes are tiled with N-padded ends: every gene has a chunk
    collate_fn = staticmethod(keep_batch)

    @staticmethod
    def gene_dataset(dataset: "SequenceChunkDataset") -> Subset:
        """The chunks that hold a TSS: all ``predictions.csv`` needs (most of a genome's
        chunks hold none, and predicting them would cost most of a job's time)."""
        return Subset(dataset, np.flatnonzero(dataset.table.n_genes > 0).tolist())

    def __init__(self, *, chunk_bp: int = 100_000, bin_bp: int = 100, max_n_fraction: float = 0.5, rc_augment: bool = False):
        self.chunk_bp, self.bin_bp = int(chunk_bp), int(bin_bp)
        if self.bin_bp <= 0 or self.chunk_bp % self.bin_bp:
            raise InputError(f"sequence chunk_bp={chunk_bp} must be a positive multiple of bin_bp={bin_bp}")
        if not 0.0 <= float(max_n_fraction) <= 1.0:
            raise InputError(f"sequence max_n_fraction={max_n_fraction} must lie in [0, 1]")
        self.max_n_fraction, self.rc_augment = float(max_n_fraction), bool(rc_augment)

    def channels(self, marks) -> tuple[str, ...]:
        return BASES

    def intervals(self, genes: pd.DataFrame, *, base_bp: int = 100) -> GeneIntervals:
        """The chunk holding each gene's TSS."""
        start = genes["tss"].to_numpy(np.int64) // self.chunk_bp * self.chunk_bp
        return GeneIntervals(genes["chrom"].to_numpy(object), start, start + self.chunk_bp)

    def chunk_table(self, context: DataContext, rows: np.ndarray) -> ChunkTable:
        genes = context.genes.iloc[rows]
        genome = context.genome
        chroms, starts, gene_parts, bin_parts, counts, left_out = [], [], [], [], [], 0
        for chrom in sorted(pd.unique(genes["chrom"]), key=chrom_sort_key):
            on = genes["chrom"].to_numpy() == chrom
            tss = genes["tss"].to_numpy(np.int64)[on]
            length = max(int(genome.lengths.get(chrom, 0)), int(tss.max()) + 1)
            n_chunks = -(-length // self.chunk_bp)
            chunk_of = tss // self.chunk_bp
            n_genes = np.bincount(chunk_of, minlength=n_chunks)
            keep = (n_genes > 0) | (self._n_fraction(genome, chrom, n_chunks) <= self.max_n_fraction)
            kept = np.flatnonzero(keep)
            left_out += n_chunks - len(kept)
            order = np.argsort(chunk_of, kind="stable")
            chroms += [chrom] * len(kept)
            starts.append(kept * self.chunk_bp)
            gene_parts.append(np.asarray(rows)[on][order])
            bin_parts.append((tss[order] - chunk_of[order] * self.chunk_bp) // self.bin_bp)
            counts.append(n_genes[kept])
        if left_out:
            log.info("sequence chunks: %d of %d left out (more than %.0f%% N, no TSS: assembly gaps, centromeres, chromosome ends)",
                     left_out, left_out + len(chroms), 100 * self.max_n_fraction)
        cat = lambda parts, dtype: np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)  # noqa: E731
        return ChunkTable(np.asarray(chroms, dtype=object), cat(starts, np.int64), cat(gene_parts, np.int64),
                          cat(bin_parts, np.int64), cat(counts, np.int64))

    def _n_fraction(self, genome, chrom: str, n_chunks: int) -> np.ndarray:
        """(n_chunks,) fraction of N bases per chunk (the padding past the end counts as N)."""
        codes = genome.codes(np.array([chrom], dtype=object), np.zeros(1, np.int64), n_chunks * self.chunk_bp)[0]
        return (codes.reshape(n_chunks, self.chunk_bp) == N_CODE).mean(axis=1)

    def __call__(self, context: DataContext, rows: np.ndarray, *, split: str = "train") -> SequenceChunkDataset:
        table = self.chunk_table(context, np.asarray(rows, np.int64))
        return SequenceChunkDataset(context, table, chunk_bp=self.chunk_bp, bin_bp=self.bin_bp,
                                    rc_augment=self.rc_augment and split == "train")
