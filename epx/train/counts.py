"""Poisson count objective of GraphReg / Epi-CNN: counts per 5 kb bin, scored per gene and per bin.

Contract (the ``epx.train.objectives`` interface; ``conf/model/{graphreg,epi_cnn}.yaml`` name it
under ``objective``): ``PoissonCounts`` is regression on counts (``name = "poisson_counts"``; the job's task stays ``regression``,
``out_dim = 1``, ``target_column = "target"``, ``primary = "pearson"``). It reads batches made
by ``epx.data.inputs.graphreg.windows``: ``out`` (B, N) predicted counts >= 0 for every node of each
window, ``batch["y"]`` (B, S) targets of the S middle nodes (the middle is centred, so it is
``out[:, (N - S) // 2 : (N + S) // 2]``), ``has_tss``/``has_contact`` (B, S) bool, and per gene
``gene``, ``gene_pos`` (index into ``out.reshape(-1)``), ``gene_target`` (log2(RPKM + 1)).

- ``loss``: ``torch.nn.PoissonNLLLoss(log_input=False)`` (mean of pred - y * log(pred + eps),
  without the constant log(y!) that the original TensorFlow loss adds) over all middle bins.
- ``gene_outputs``: (log2(pred[gene_pos] + 1), gene_target, gene): a gene's prediction is its
  TSS bin's, so genes sharing a bin share a prediction (as in the paper).

Metrics (test values end up in ``metrics.json["test"]``):

- ``pearson``, ``spearman``, ``mse``: per gene, log2(pred + 1) vs log2(RPKM + 1) — the same
  gene-level metrics as every other model, over the same test genes;
- ``bin_nll_{subset}``: mean Poisson NLL (as the loss) over the subset's bins;
- ``bin_pearson_{subset}``: Pearson r of log2(pred + 1) vs log2(y + 1) over the subset's bins;

with subsets (middle bins only, each bin counted once since middles do not overlap):
``tss`` = bins holding >= 1 TSS; ``expressed`` = TSS bins with y > 0; ``expressed_contact`` =
expressed bins with >= 1 graph edge inside the window. Every metric is guarded
(``epx.train.undefined``), checked on the values it scores after masking and the log: a subset
never seen, constant targets or predictions of a correlation read NaN with their reason, and
the job records them as null.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric, MetricCollection

from epx.train.undefined import MSE, SEEN, Pearson, Spearman, Undefinable


def middle_nodes(out: torch.Tensor, n_middle: int) -> torch.Tensor:
    """The centred ``n_middle`` nodes of ``out`` (B, N) -> (B, n_middle)."""
    first = (out.shape[1] - n_middle) // 2
    return out[:, first : first + n_middle]


class BinPoissonNLL(Undefinable, MeanMetric):
    """Mean Poisson NLL (log_input=False) over the bins where ``mask`` is True."""

    rules = SEEN

    def update(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> None:  # type: ignore[override]
        """pred, target, mask: (B, S)."""
        if mask.any():
            self.see(pred[mask], target[mask])
            super().update(F.poisson_nll_loss(pred[mask].float(), target[mask].float(), log_input=False, reduction="none"))


class BinLogPearson(Pearson):
    """Pearson r of log2(pred + 1) vs log2(target + 1) over the bins where ``mask`` is True."""

    def update(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> None:  # type: ignore[override]
        """pred, target, mask: (B, S)."""
        if mask.any():  # Pearson.update sees the logged values it scores
            super().update(torch.log2(pred[mask].float() + 1), torch.log2(target[mask].float() + 1))


# subset name -> its (B, S) bool mask from a batch
BIN_SUBSETS: dict[str, Callable[[dict], torch.Tensor]] = {
    "tss": lambda batch: batch["has_tss"],
    "expressed": lambda batch: batch["has_tss"] & (batch["y"] > 0),
    "expressed_contact": lambda batch: batch["has_tss"] & (batch["y"] > 0) & batch["has_contact"],
}
# statistic name -> metric class, each updated as metric(pred, target, mask)
BIN_STATS: dict[str, type] = {"nll": BinPoissonNLL, "pearson": BinLogPearson}
GENE_METRICS: dict[str, type] = {"pearson": Pearson, "spearman": Spearman, "mse": MSE}


class PoissonCounts:
    """Poisson NLL on the middle bins; gene-level and GraphReg's per-bin metrics."""

    name = "poisson_counts"
    out_dim = 1
    target_column = "target"
    primary = "pearson"

    def __init__(self) -> None:
        self.criterion = nn.PoissonNLLLoss(log_input=False)

    def loss(self, out: torch.Tensor, batch: dict) -> torch.Tensor:
        """out: (B, N) counts; batch["y"]: (B, S) middle-bin targets."""
        return self.criterion(middle_nodes(out, batch["y"].shape[1]).float(), batch["y"].float())

    def gene_outputs(self, out: torch.Tensor, batch: dict):
        """-> (log2(pred + 1) (G,), gene_target (G,), gene (G,))."""
        pred = out.reshape(-1)[batch["gene_pos"]].float()
        return torch.log2(pred + 1), batch["gene_target"].float(), batch["gene"]

    def metrics(self) -> MetricCollection:
        # members are updated one by one (each with its own inputs), so no compute groups
        gene = {name: cls() for name, cls in GENE_METRICS.items()}
        bins = {f"bin_{stat}_{subset}": cls() for stat, cls in BIN_STATS.items() for subset in BIN_SUBSETS}
        return MetricCollection({**gene, **bins}, compute_groups=False)

    def update_metrics(self, metrics: MetricCollection, out: torch.Tensor, batch: dict) -> None:
        pred, target, _ = self.gene_outputs(out, batch)
        if pred.numel():
            for name in GENE_METRICS:
                metrics[name].update(pred, target)
        middle = middle_nodes(out, batch["y"].shape[1])
        for subset, mask_of in BIN_SUBSETS.items():
            mask = mask_of(batch)
            for stat in BIN_STATS:
                metrics[f"bin_{stat}_{subset}"].update(middle, batch["y"], mask)
