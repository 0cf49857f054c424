"""GraphReg inputs: 6 Mb windows of histone marks, their contact graph and per-5 kb-bin targets.

Contract: ``GraphRegInputs(*, window_bp, step_bp, node_bp, bin_bp, skip_empty, requires_contacts)`` is a model ``inputs`` builder (``conf/model/graphreg.yaml``; Epi-CNN, whose net has no graph and reads the contacts only to score the same "contact" bins as GraphReg, sets ``requires_contacts: false``, so a cell without interactions is not refused), called
``builder(context, rows) -> GraphRegWindows`` once per split. It tiles every chromosome of the
split's genes with ``tile_windows`` (window k's middle is ``[k * step_bp, (k + 1) * step_bp)``;
the chromosome ends are read as zeros) and keeps, when ``skip_empty``, only the windows with at
least one of the split's TSSs in the middle. Each gene therefore lies in exactly one window:
the one whose middle holds its TSS.

Per window, computed once at build time (small): the middle's per-bin target ``y`` (the summed
RPKM of the split's genes whose TSS lies in the 5 kb bin, or the summed CAGE signal of the bin
when the dataset has a CAGE bigWig for the cell, ``dataset.files.cage``), the masks ``has_tss`` and ``has_contact`` (>= 1 graph
edge inside the window), the window's edges in local node ids (``window_edges`` of the
chromosome's ``interaction_edges`` over the dataset's contacts)
and its genes. The histone marks are sliced from the in-memory tracks per batch, never copied
per window, because 60,000 x M floats per window would multiply the genome's memory by three.

A batch of B windows (``GraphRegWindows.__getitems__``; ``collate_fn`` passes it through):

- ``x``: ``{"x": (B, M, L) float32 ln(mean + 1), L = window_bp / bin_bp,
  "edge_index": (2, E) int64}`` — edges batched with PyG's ``Batch`` (node n of window b has
  id ``b * N + n``, N = window_bp / node_bp);
- ``y``: (B, S) float32 per-bin targets of the middles, S = step_bp / node_bp;
- ``has_tss``, ``has_contact``: (B, S) bool;
- ``gene``: (G,) int64 gene-table rows of the genes in these middles; ``gene_pos``: (G,)
  int64 index into the flattened (B * N) prediction; ``gene_target``: (G,) float32 the
  gene-table column ``context.target_column`` (log2(RPKM + 1)).

Targets come from the split's own genes only, so a fold scheme that splits one chromosome
between train and test (``column``) never leaks test expression into training bins.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset
from torch_geometric.data import Batch, Data

from epx.data.inputs.arrays import keep_batch
from epx.io.bigwig import read_binned
from epx.errors import InputError
from epx.io.naming import chrom_sort_key
from epx.data.inputs.graphreg.graph import interaction_edges, window_edges
from epx.data.inputs.context import DataContext
from epx.data.inputs.protocol import GeneIntervals, whole_dataset
from epx.data.inputs.graphreg.tiling import NODE_BP, STEP_BP, WINDOW_BP, middle_slice, tile_windows, tss_bin_index, window_of
from epx.data.tracks import SignalTracks, log_signal

log = logging.getLogger(__name__)


@dataclass
class WindowTable:
    """Per kept window (row-aligned, W rows), and the windows' genes in window order (G rows)."""

    chrom: list[str]  # (W,)
    start_bp: np.ndarray  # (W,) int64, may be negative (padded chromosome start)
    y: np.ndarray  # (W, S) float32
    has_tss: np.ndarray  # (W, S) bool
    has_contact: np.ndarray  # (W, S) bool
    edges: list[np.ndarray]  # W x (2, E_w) int64 local node ids
    n_genes: np.ndarray  # (W,) int64 genes per window
    gene: np.ndarray  # (G,) int64 gene-table rows
    gene_node: np.ndarray  # (G,) int64 local node of the gene's TSS bin
    gene_target: np.ndarray  # (G,) float32

    @property
    def gene_offsets(self) -> np.ndarray:
        """(W + 1,): window w's genes are ``[offsets[w], offsets[w + 1])``."""
        return np.concatenate([[0], np.cumsum(self.n_genes)]).astype(np.int64)

    @classmethod
    def concat(cls, parts: Sequence["WindowTable"], width: int) -> "WindowTable":
        if not parts:  # a split without genes (e.g. an empty validation set)
            none, rows = np.zeros(0, np.int64), np.zeros((0, width))
            return cls([], none, rows.astype(np.float32), rows.astype(bool), rows.astype(bool), [], none, none, none, none.astype(np.float32))
        return cls(
            chrom=[c for p in parts for c in p.chrom],
            start_bp=np.concatenate([p.start_bp for p in parts]),
            y=np.concatenate([p.y for p in parts]),
            has_tss=np.concatenate([p.has_tss for p in parts]),
            has_contact=np.concatenate([p.has_contact for p in parts]),
            edges=[e for p in parts for e in p.edges],
            n_genes=np.concatenate([p.n_genes for p in parts]),
            gene=np.concatenate([p.gene for p in parts]),
            gene_node=np.concatenate([p.gene_node for p in parts]),
            gene_target=np.concatenate([p.gene_target for p in parts]),
        )


class GraphRegWindows(Dataset):
    """Map-style Dataset of GraphReg windows; a whole batch is assembled in one call."""

    collate_fn = staticmethod(keep_batch)

    def __init__(self, *, tracks: SignalTracks, table: WindowTable, window_bp: int, node_bp: int, bin_bp: int):
        if bin_bp % tracks.base_bp:
            raise InputError(f"GraphReg bin_bp={bin_bp} is not a multiple of the cache's {tracks.base_bp} bp bins")
        self.tracks, self.table = tracks, table
        self.offsets = table.gene_offsets
        self.n_nodes = window_bp // node_bp
        self.bins_per_window = window_bp // bin_bp
        self.k = bin_bp // tracks.base_bp

    def __len__(self) -> int:
        return len(self.table.chrom)

    def _signal(self, chrom: str, start_bp: int, out: np.ndarray) -> None:
        """Write one window's marks into ``out`` (M, L): ln(mean + 1), zeros off the chromosome."""
        track = self.tracks.tracks.get(chrom)
        n_base = self.bins_per_window * self.k
        base = np.zeros((n_base, self.tracks.n_marks), np.float32)
        if track is not None:
            first = start_bp // self.tracks.base_bp
            lo, hi = max(first, 0), min(first + n_base, track.shape[0])
            if hi > lo:
                base[lo - first : hi - first] = track[lo:hi]
        if self.k > 1:
            base = base.reshape(self.bins_per_window, self.k, -1).mean(axis=1)
        log_signal(base, out=base)
        out[:] = base.T

    def __getitems__(self, indices: Sequence[int]) -> dict:
        t = self.table
        idx = np.asarray(indices, dtype=np.int64)
        x = np.empty((len(idx), self.tracks.n_marks, self.bins_per_window), np.float32)
        for b, w in enumerate(idx):
            self._signal(t.chrom[w], int(t.start_bp[w]), x[b])
        graphs = Batch.from_data_list([Data(edge_index=torch.from_numpy(t.edges[w]), num_nodes=self.n_nodes) for w in idx])
        genes = np.concatenate([np.arange(self.offsets[w], self.offsets[w + 1]) for w in idx])
        window_in_batch = np.repeat(np.arange(len(idx)), t.n_genes[idx])
        return {
            "x": {"x": torch.from_numpy(x), "edge_index": graphs.edge_index.long()},
            "y": torch.from_numpy(t.y[idx]),
            "has_tss": torch.from_numpy(t.has_tss[idx]),
            "has_contact": torch.from_numpy(t.has_contact[idx]),
            "gene": torch.from_numpy(t.gene[genes]),
            "gene_pos": torch.from_numpy(window_in_batch * self.n_nodes + t.gene_node[genes]),
            "gene_target": torch.from_numpy(t.gene_target[genes]),
        }

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])


class GraphRegInputs:
    """Builder of ``GraphRegWindows`` for one split (see the module docstring)."""

    def __init__(
        self,
        *,
        window_bp: int = WINDOW_BP,
        step_bp: int = STEP_BP,
        node_bp: int = NODE_BP,
        bin_bp: int = 100,
        skip_empty: bool = True,
        requires_contacts: bool = True,
    ):
        self.window_bp, self.step_bp, self.node_bp, self.bin_bp = window_bp, step_bp, node_bp, bin_bp
        self.middle = middle_slice(window_bp=window_bp, step_bp=step_bp, node_bp=node_bp)  # validates early
        if bin_bp <= 0 or node_bp % bin_bp:
            raise InputError(f"GraphReg node_bp={node_bp} must be a multiple of bin_bp={bin_bp}")
        self.skip_empty = skip_empty
        self.reach_bp = 0  # chromosomes are tiled with zero-padded ends: every gene has a window
        # a TSS node's edges: an anchor midpoint within about half a node of the TSS
        self.contact_tolerance_bp = int(node_bp) // 2
        self.requires_contacts = bool(requires_contacts)

    # the InputBuilder contract (epx.data.inputs.protocol)
    sources = ("tracks", "contacts")
    distal = False  # the 6 Mb tile bounds what a gene's prediction can see
    collate_fn = staticmethod(keep_batch)
    gene_dataset = staticmethod(whole_dataset)

    def channels(self, marks) -> tuple[str, ...]:
        return tuple(marks)

    def intervals(self, genes: pd.DataFrame, *, base_bp: int = 100) -> GeneIntervals:
        """Each gene's window: the tile whose middle holds its TSS (``tile_windows``' starts)."""
        lo = window_of(genes["tss"].to_numpy(np.int64), step_bp=self.step_bp) * self.step_bp - (self.window_bp - self.step_bp) // 2
        return GeneIntervals(genes["chrom"].to_numpy(object), lo, lo + self.window_bp)

    def _bin_targets(self, genes: pd.DataFrame, chrom: str, n_nodes: int, cage: Path | None) -> np.ndarray:
        """(n_nodes,) float32 per-5 kb-bin target over the whole (padded) chromosome."""
        if cage is not None:
            # a padded length makes every bin full-width, so mean * node_bp is the exact sum
            means = read_binned(cage, {chrom: n_nodes * self.node_bp}, bin_bp=self.node_bp)[chrom]
            return (means.astype(np.float64) * self.node_bp).astype(np.float32)
        node = genes["tss"].to_numpy(np.int64) // self.node_bp
        return np.bincount(node, weights=genes["rpkm"].to_numpy(np.float64), minlength=n_nodes).astype(np.float32)

    def _chromosome(self, context: DataContext, chrom: str, genes: pd.DataFrame, cage: Path | None) -> WindowTable:
        """The kept windows of one chromosome; ``genes`` are the split's genes on it."""
        tss = genes["tss"].to_numpy(np.int64)
        track = context.tracks.tracks.get(chrom)
        length = max(track.shape[0] * context.tracks.base_bp if track is not None else 0, int(tss.max()) + 1)
        starts = tile_windows(length, window_bp=self.window_bp, step_bp=self.step_bp, node_bp=self.node_bp)
        per_step, n_nodes = self.step_bp // self.node_bp, self.window_bp // self.node_bp
        n_chrom_nodes = len(starts) * per_step
        target = self._bin_targets(genes, chrom, n_chrom_nodes, cage)
        has_tss = np.bincount(tss // self.node_bp, minlength=n_chrom_nodes) > 0
        edges = interaction_edges(context.interactions, chrom, node_bp=self.node_bp)
        gene_window = window_of(tss, step_bp=self.step_bp)
        kept = np.unique(gene_window) if self.skip_empty else np.arange(len(starts))
        order = np.argsort(gene_window, kind="stable")  # genes grouped by window, windows ascending
        local = [window_edges(edges, int(starts[w]) // self.node_bp, n_nodes) for w in kept]
        middles = np.add.outer(kept * per_step, np.arange(per_step))
        return WindowTable(
            chrom=[chrom] * len(kept),
            start_bp=starts[kept],
            y=target[middles],
            has_tss=has_tss[middles],
            has_contact=np.stack([np.bincount(e[0], minlength=n_nodes)[self.middle] > 0 for e in local]),
            edges=local,
            n_genes=np.bincount(np.searchsorted(kept, gene_window), minlength=len(kept)).astype(np.int64),
            gene=genes["row"].to_numpy(np.int64)[order],
            gene_node=tss_bin_index(tss[order], starts[gene_window[order]], self.node_bp, window_bp=self.window_bp, step_bp=self.step_bp),
            gene_target=genes[context.target_column].to_numpy(np.float32)[order],
        )

    def __call__(self, context: DataContext, rows: np.ndarray, *, split: str = "train") -> GraphRegWindows:
        rows = np.asarray(rows, dtype=np.int64)
        genes = context.genes.iloc[rows].assign(row=rows)
        cage = context.cage
        log.info("GraphReg targets for %s: %s", context.cell, f"CAGE signal summed per bin ({cage})" if cage else "summed RPKM per 5 kb bin")
        parts = [self._chromosome(context, chrom, genes[genes["chrom"] == chrom], cage) for chrom in sorted(genes["chrom"].unique(), key=chrom_sort_key)]
        table = WindowTable.concat(parts, width=self.step_bp // self.node_bp)
        return GraphRegWindows(tracks=context.tracks, table=table, window_bp=self.window_bp, node_bp=self.node_bp, bin_bp=self.bin_bp)
