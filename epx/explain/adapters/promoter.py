"""The promoter family's adapter: promoter CNN and the linear baseline (``PromoterInputs``).

Contract: ``PromoterAdapter`` (registered for ``PromoterInputs``): the input ``x`` (N, M, L) of
TSS ± window/2, oriented 5'->3'; its layout is the builder's (``PromoterInputs.layouts``);
regions ``promoter`` and, for windows of >= 40 kb, ``flanks``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from epx.data.inputs.promoter import PromoterInputs
from epx.explain.adapters.base import FLANK_WINDOW_BP, Adapter, Layout, register


@register(PromoterInputs)
class PromoterAdapter(Adapter):
    """Promoter CNN and the linear baseline: ``x`` (N, M, L), TSS ± window/2, 5'->3'."""

    input_names = ("x",)
    default_batch = 2048

    @property
    def sees(self) -> str:
        return f"TSS ± {self.dm.inputs.window_bp // 2} bp"

    @property
    def regions(self) -> tuple[str, ...]:
        return ("promoter", "flanks") if self.dm.inputs.window_bp >= FLANK_WINDOW_BP else ("promoter",)

    def _dataset_rows(self, dataset) -> np.ndarray:
        return dataset.fields["gene"].numpy()

    def _fetch(self, dataset, positions):
        return {"x": dataset.fields["x"]["x"][torch.from_numpy(positions)]}, {}

    def forward_genes(self, inputs, extra) -> Tensor:
        return self.gene_score(self.net(x=inputs["x"]))

    def layouts(self, rows) -> dict[str, Layout]:
        return self.dm.inputs.layouts(self.gene_table(self.check_rows(rows)), base_bp=self.base_bp)
