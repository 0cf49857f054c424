"""The GraphReg family's adapter: Epi-GraphReg and Epi-CNN (``GraphRegInputs``).

Contract: ``GraphRegAdapter`` (registered for ``GraphRegInputs``): each gene's 6 Mb window ``x``
(N, M, L), genomic, and its graph (``extra``: padded local edges, their count, the TSS node);
the per-gene score is log2(count + 1) of the TSS node; regions ``promoter``, ``flanks``,
``neighbours`` (each graph neighbour of the TSS node, and all).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from epx.data.inputs.graphreg.windows import GraphRegInputs
from epx.explain.adapters.base import Adapter, GeneBatch, Layout, RegionIntervals, register, stack_elements


@register(GraphRegInputs)
class GraphRegAdapter(Adapter):
    """GraphReg / Epi-CNN: each gene's 6 Mb window ``x`` (N, M, L), genomic, and its graph.

    ``extra``: ``edges`` (N, 2, E_max) the window's local edges (padded), ``n_edges`` (N,),
    ``tss_node`` (N,) the gene's TSS node; the forward batches each gene's window as one graph."""

    input_names = ("x",)
    regions = ("promoter", "flanks", "neighbours")
    BINS_PER_FORWARD = 240_000  # 4 windows of 6 Mb at 100 bp per forward pass; more when windows are smaller

    @property
    def default_batch(self) -> int:
        return max(1, self.BINS_PER_FORWARD // (self.dm.inputs.window_bp // self.dm.inputs.bin_bp))

    @property
    def sees(self) -> str:
        b = self.dm.inputs
        return f"{b.window_bp // 1_000_000 or b.window_bp / 1e6} Mb windows of {b.bin_bp} bp bins over a graph of {b.node_bp // 1000} kb nodes"

    def _dataset_rows(self, dataset) -> np.ndarray:
        return dataset.table.gene

    def _gene_window(self, dataset) -> np.ndarray:
        t = dataset.table
        return np.repeat(np.arange(len(t.chrom)), t.n_genes)

    def _fetch(self, dataset, positions):
        t = dataset.table
        window = self._gene_window(dataset)[positions]
        windows, inverse = np.unique(window, return_inverse=True)
        x = dataset.__getitems__(windows)["x"]["x"]
        edges = [t.edges[w] for w in window]
        e_max = max([e.shape[1] for e in edges] + [1])
        padded = np.zeros((len(positions), 2, e_max), np.int64)
        for i, e in enumerate(edges):
            padded[i, :, : e.shape[1]] = e
        extra = {
            "edges": torch.from_numpy(padded),
            "n_edges": torch.as_tensor([e.shape[1] for e in edges], dtype=torch.long),
            "tss_node": torch.from_numpy(t.gene_node[positions].astype(np.int64)),
        }
        return {"x": x[torch.from_numpy(inverse)]}, extra

    def batch(self, rows) -> GeneBatch:
        b = super().batch(rows)
        e_max = int(b.extra["n_edges"].max()) if len(b.rows) else 0
        b.extra["edges"] = b.extra["edges"][:, :, : max(e_max, 1)]  # splits may pad differently
        return b

    def n_nodes(self) -> int:
        return self.dm.inputs.window_bp // self.dm.inputs.node_bp

    def edge_index(self, extra) -> Tensor:
        """The genes' windows as one PyG batch: node n of gene b's window is b * N + n."""
        edges, n_edges = extra["edges"], extra["n_edges"]
        n, _, e_max = edges.shape
        keep = torch.arange(e_max, device=edges.device)[None, :] < n_edges[:, None]  # (n, E)
        shifted = edges + (torch.arange(n, device=edges.device) * self.n_nodes())[:, None, None]
        return shifted.permute(1, 0, 2)[:, keep]

    def forward_genes(self, inputs, extra) -> Tensor:
        counts = self.net(x=inputs["x"], edge_index=self.edge_index(extra))  # (n, N)
        pred = counts.gather(1, extra["tss_node"][:, None])[:, 0]
        return torch.log2(pred + 1)

    def windows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(chrom (N,), window start bp (N,), TSS node (N,)) of each gene's window."""
        rows = self.check_rows(rows)
        chrom = np.empty(len(rows), object)
        start = np.zeros(len(rows), np.int64)
        node = np.zeros(len(rows), np.int64)
        split = self._split_of[rows]
        for s in np.unique(split):
            at = np.flatnonzero(split == s)
            ds = self.dm.datasets[self._splits[s]]
            pos = self._pos_of[rows[at]]
            w = self._gene_window(ds)[pos]
            chrom[at] = np.asarray(ds.table.chrom, dtype=object)[w]
            start[at] = ds.table.start_bp[w]
            node[at] = ds.table.gene_node[pos]
        return chrom, start, node

    def layouts(self, rows) -> dict[str, Layout]:
        rows = self.check_rows(rows)
        g = self.gene_table(rows)
        chrom, start, _ = self.windows(rows)
        bin_bp = self.dm.inputs.bin_bp
        n_bins = self.dm.inputs.window_bp // bin_bp
        j = np.arange(n_bins, dtype=np.int64)
        lo = start[:, None] + j[None, :] * bin_bp
        centre = (g["tss"].to_numpy(np.int64) - start) // bin_bp
        minus = g["strand"].to_numpy() == "-"
        offset = np.where(minus[:, None], centre[:, None] - j[None, :], j[None, :] - centre[:, None]) * bin_bp
        return {"x": Layout(chrom=chrom, start=lo, end=lo + bin_bp, offset_bp=offset, valid=np.ones(lo.shape, bool),
                            reverse=np.zeros(len(rows), bool), bin_bp=bin_bp)}

    def neighbours(self, batch: GeneBatch) -> tuple[np.ndarray, np.ndarray]:
        """Graph neighbours of each gene's TSS node: (start bp (N, K), mask (N, K)), sorted along the window."""
        _, start, node = self.windows(batch.rows)
        edges, n_edges = batch.extra["edges"].cpu().numpy(), batch.extra["n_edges"].cpu().numpy()
        keep = (np.arange(edges.shape[2])[None, :] < n_edges[:, None]) & (edges[:, 1, :] == node[:, None])
        k = max(int(keep.sum(axis=1).max()) if len(keep) else 0, 1)
        nbr = np.where(keep, edges[:, 0, :], np.iinfo(np.int64).max)
        nbr = np.sort(nbr, axis=1)[:, :k]
        mask = nbr != np.iinfo(np.int64).max
        node_bp = self.dm.inputs.node_bp
        return np.where(mask, start[:, None] + nbr * node_bp, 0), mask

    def _element_intervals(self, batch: GeneBatch, region: str) -> RegionIntervals:
        chrom, _, _ = self.windows(batch.rows)
        start, mask = self.neighbours(batch)
        chroms = np.repeat(chrom[:, None], start.shape[1], axis=1)
        return stack_elements(chroms, start, start + self.dm.inputs.node_bp, mask)
