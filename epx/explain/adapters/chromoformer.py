"""The Chromoformer family's adapter (``ChromoformerInputs``).

Contract: ``ChromoformerAdapter`` (registered for ``ChromoformerInputs``): inputs
``promoter_{r}`` (N, M, L_r) and ``pcres_{r}`` (N, I, M, L_r) per resolution, extras the
masks and frequencies; layouts are the builder's (``ChromoformerInputs.layouts`` over the
genes' pCRE slots); regions ``promoter``, ``flanks`` and ``pcres`` (each slot, and all).
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

from epx.data.inputs.chromoformer import ChromoformerInputs
from epx.explain.adapters.base import Adapter, GeneBatch, Layout, RegionIntervals, register, stack_elements


@register(ChromoformerInputs)
class ChromoformerAdapter(Adapter):
    """Chromoformer: ``promoter_{r}`` (N, M, L_r) and ``pcres_{r}`` (N, I, M, L_r) per resolution."""

    regions = ("promoter", "flanks", "pcres")
    default_batch = 64

    def __init__(self, *args, **kwargs):
        b = args[1].inputs
        self.resolutions = tuple(b.resolutions)
        self.input_names = tuple(f"promoter_{r}" for r in self.resolutions) + tuple(f"pcres_{r}" for r in self.resolutions)
        super().__init__(*args, **kwargs)

    @property
    def sees(self) -> str:
        b = self.dm.inputs
        return f"TSS ± {b.window_bp // 2} bp and up to {b.i_max} linked pCREs at {'/'.join(map(str, self.resolutions))} bp"

    def _dataset_rows(self, dataset) -> np.ndarray:
        return dataset.rows

    def _fetch(self, dataset, positions):
        x = dataset.__getitems__(positions)["x"]
        inputs = {f"promoter_{r}": x["promoter"][r] for r in self.resolutions}
        inputs |= {f"pcres_{r}": x["pcres"][r] for r in self.resolutions}
        extra = {f"pcre_bin_mask_{r}": x["pcre_bin_mask"][r] for r in self.resolutions}
        extra |= {"pcre_mask": x["pcre_mask"], "freq": x["freq"]}
        return inputs, extra

    def net_inputs(self, inputs, extra) -> dict:
        rs = self.resolutions
        return dict(
            promoter={r: inputs[f"promoter_{r}"] for r in rs}, pcres={r: inputs[f"pcres_{r}"] for r in rs},
            pcre_bin_mask={r: extra[f"pcre_bin_mask_{r}"] for r in rs}, pcre_mask=extra["pcre_mask"], freq=extra["freq"],
        )

    def forward_genes(self, inputs, extra) -> Tensor:
        return self.gene_score(self.net(**self.net_inputs(inputs, extra)))

    def slots(self, rows: np.ndarray):
        """``PcreSlots`` of ``rows`` (chrom, start, end, freq, mask: (N, I))."""
        rows = self.check_rows(rows)
        split = self._split_of[rows]
        out = None
        for s in np.unique(split):
            at = np.flatnonzero(split == s)
            part = self.dm.datasets[self._splits[s]].slots.take(self._pos_of[rows[at]])
            if out is None:
                out = type(part)(*(np.empty((len(rows), *a.shape[1:]), a.dtype) for a in (part.chrom, part.start, part.end, part.freq, part.mask)))
            for name in ("chrom", "start", "end", "freq", "mask"):
                getattr(out, name)[at] = getattr(part, name)
        return out

    def layouts(self, rows) -> dict[str, Layout]:
        rows = self.check_rows(rows)
        return self.dm.inputs.layouts(self.gene_table(rows), self.slots(rows), base_bp=self.base_bp)

    def _element_intervals(self, batch: GeneBatch, region: str) -> RegionIntervals:
        s = self.slots(batch.rows)
        return stack_elements(s.chrom, s.start, s.end, s.mask)
