"""The Seq-GraphReg family's adapters: separate mode and Seq-CNN (bottlenecks), end-to-end (one-hot).

Contract: both extend ``GraphRegAdapter`` (the same windows, graph, TSS node, per-gene score
log2(count + 1) of the TSS node, and regions ``promoter``, ``flanks``, ``neighbours``); only
the attributed input differs:

- ``SeqGraphRegAdapter`` (registered for ``SeqGraphRegInputs``: ``model=seq_graphreg`` and
  ``model=seq_cnn``): ``bottleneck`` (N, 64, L), the base model's bottleneck per 100 bp bin of
  the gene's window (genomic, ``Layout.bin_bp`` 100): attribution w.r.t. the bottleneck bins,
  as GraphReg attributes its sequence model;
- ``SeqGraphRegEndToEndAdapter`` (``SeqGraphRegEndToEndInputs``): ``x`` (N, 4, W), the
  window's one-hot DNA per base (``Layout.bin_bp`` 1); one window per forward pass by
  default (a 6 Mb window is 60 chunks through the base).

Scaling a bottleneck or a one-hot is not a mutation: in-silico mutagenesis and motif
knockouts are analyses of their own.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from epx.data.inputs.seq_graphreg import SeqGraphRegEndToEndInputs, SeqGraphRegInputs
from epx.explain.adapters.base import Layout, register
from epx.explain.adapters.graphreg import GraphRegAdapter


class _SeqWindows(GraphRegAdapter):
    input_key = ""

    def _fetch(self, dataset, positions):
        t = dataset.table
        window = self._gene_window(dataset)[positions]
        windows, inverse = np.unique(window, return_inverse=True)
        x = dataset.inputs(windows)["x"][self.input_key]
        edges = [t.edges[w] for w in window]
        padded = np.zeros((len(positions), 2, max([e.shape[1] for e in edges] + [1])), np.int64)
        for i, e in enumerate(edges):
            padded[i, :, : e.shape[1]] = e
        extra = {
            "edges": torch.from_numpy(padded),
            "n_edges": torch.as_tensor([e.shape[1] for e in edges], dtype=torch.long),
            "tss_node": torch.from_numpy(t.gene_node[positions].astype(np.int64)),
        }
        return {self.input_key: x[torch.from_numpy(inverse)]}, extra

    def _counts(self, inputs, extra) -> Tensor:
        raise NotImplementedError

    def forward_genes(self, inputs, extra) -> Tensor:
        counts = self._counts(inputs, extra)  # (n, N)
        return torch.log2(counts.gather(1, extra["tss_node"][:, None])[:, 0] + 1)


@register(SeqGraphRegInputs)
class SeqGraphRegAdapter(_SeqWindows):
    """Separate mode / Seq-CNN: ``bottleneck`` (N, 64, L) per 100 bp bin of the gene's window."""

    input_names = ("bottleneck",)
    input_key = "bottleneck"

    @property
    def sees(self) -> str:
        return "a trained base model's sequence bottleneck per 100 bp bin of " + super().sees

    def _counts(self, inputs, extra) -> Tensor:
        return self.net(bottleneck=inputs["bottleneck"], edge_index=self.edge_index(extra))

    def layouts(self, rows) -> dict[str, Layout]:
        return {"bottleneck": super().layouts(rows)["x"]}


@register(SeqGraphRegEndToEndInputs)
class SeqGraphRegEndToEndAdapter(_SeqWindows):
    """End-to-end: ``x`` (N, 4, W) one-hot DNA of the gene's window, per base."""

    input_names = ("x",)
    input_key = "x"
    default_batch = 1

    @property
    def sees(self) -> str:
        return "the DNA sequence (one-hot) of " + super().sees

    def _counts(self, inputs, extra) -> Tensor:
        return self.net(x=inputs["x"], edge_index=self.edge_index(extra))["counts"]

    def layouts(self, rows) -> dict[str, Layout]:
        rows = self.check_rows(rows)
        g = self.gene_table(rows)
        chrom, start, _ = self.windows(rows)
        j = np.arange(self.dm.inputs.window_bp, dtype=np.int64)
        lo = start[:, None] + j[None, :]
        tss = g["tss"].to_numpy(np.int64)[:, None]
        minus = g["strand"].to_numpy() == "-"
        offset = np.where(minus[:, None], tss - lo, lo - tss)
        return {"x": Layout(chrom=chrom, start=lo, end=lo + 1, offset_bp=offset, valid=np.ones(lo.shape, bool),
                            reverse=np.zeros(len(rows), bool), bin_bp=1)}
