"""The sequence family's adapter: the Seq-GraphReg base model (``SequenceChunks``).

Contract: ``SequenceAdapter`` (registered for ``SequenceChunks``): the input ``x`` (N, 4, L) is
the one-hot 100 kb chunk holding each gene's TSS, in genomic orientation, never augmented
(explain reads the reference as it is); ``extra["gene_bin"]`` (N,) the TSS's bin in the chunk.
The per-gene score is log2(predicted first track + 1) at the TSS bin, the scale of
``predictions.csv``. Positions are single bases (``Layout.bin_bp`` 1), so attribution w.r.t.
the one-hot is per base; the only perturbation region is ``promoter`` (scaling a one-hot is
not a mutation: in-silico mutagenesis is its own analysis).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from epx.data.inputs.sequence import SequenceChunks
from epx.explain.adapters.base import Adapter, Layout, register


@register(SequenceChunks)
class SequenceAdapter(Adapter):
    """Seq-CNN base: ``x`` (N, 4, chunk_bp) one-hot, the gene's chunk, genomic orientation."""

    input_names = ("x",)
    regions = ("promoter",)
    default_batch = 16  # 100 kb one-hot chunks: 1.6 MB each

    @property
    def sees(self) -> str:
        return f"the {self.dm.inputs.chunk_bp // 1000} kb of DNA sequence around the TSS (one-hot)"

    def _dataset_rows(self, dataset) -> np.ndarray:
        return dataset.table.gene

    def _fetch(self, dataset, positions):
        chunk = dataset.gene_chunk()[positions]
        x = torch.from_numpy(np.ascontiguousarray(dataset.onehot(chunk), dtype=np.float32))
        return {"x": x}, {"gene_bin": torch.from_numpy(dataset.table.gene_bin[positions].astype(np.int64))}

    def forward_genes(self, inputs, extra) -> Tensor:
        pred = self.net(x=inputs["x"])  # (N, T, n_bins)
        at = extra["gene_bin"].to(pred.device)
        return torch.log2(pred[torch.arange(pred.shape[0], device=pred.device), 0, at] + 1)

    def layouts(self, rows) -> dict[str, Layout]:
        rows = self.check_rows(rows)
        genes = self.gene_table(rows)
        spans = self.dm.inputs.intervals(genes, base_bp=self.base_bp)
        length = self.dm.inputs.chunk_bp
        start = spans.start[:, None] + np.arange(length, dtype=np.int64)[None, :]
        tss = genes["tss"].to_numpy(np.int64)[:, None]
        minus = genes["strand"].to_numpy() == "-"
        offset = np.where(minus[:, None], tss - start, start - tss)
        return {"x": Layout(chrom=spans.chrom, start=start, end=start + 1, offset_bp=offset, valid=np.ones(start.shape, bool),
                            reverse=np.zeros(len(rows), bool), bin_bp=1)}
