"""Objectives: what a task trains on and how its per-gene predictions are scored.

Contract: an objective has ``name``, ``out_dim`` (the net's output width), ``target_column``
(column of the gene table used as ``batch["y"]``), ``primary`` metric, ``loss(out, batch)``,
``gene_outputs(out, batch) -> (prediction, target, gene_index)`` (1-D tensors, one entry per
gene in the batch), ``metrics() -> MetricCollection`` and ``update_metrics(metrics, out,
batch)`` (default: per-gene update; an objective with extra per-bin metrics routes them here). Metrics are torchmetrics states,
so a test metric is computed once over every gene of the test set, not averaged over batches.
Every metric is one of ``epx.train.undefined``'s guarded metrics: where the data leave it
undefined (constant targets or predictions for a correlation, one class for AUROC/AUPRC) it
reads NaN with its reason, and the job records it as null (``epx.record``), never as a number.

``conf/task/*.yaml`` is the registry (``task=regression|classification``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection

from epx.train.undefined import AUPRC, AUROC, MSE, Accuracy, Pearson, Spearman


class GeneObjective:
    """Shared behaviour: metrics are updated with one (prediction, target) pair per gene."""

    def update_metrics(self, metrics: MetricCollection, out: torch.Tensor, batch: dict) -> None:
        pred, target, _ = self.gene_outputs(out, batch)
        metrics.update(pred, target)


class Regression(GeneObjective):
    """MSE on log2(RPKM+1); Pearson r, Spearman ρ and MSE per gene."""

    name = "regression"
    out_dim = 1
    target_column = "target"
    primary = "pearson"

    def loss(self, out: torch.Tensor, batch: dict) -> torch.Tensor:
        return F.mse_loss(out.squeeze(-1).float(), batch["y"].float())

    def gene_outputs(self, out: torch.Tensor, batch: dict):
        return out.squeeze(-1).float(), batch["y"].float(), batch["gene"]

    def metrics(self) -> MetricCollection:
        return MetricCollection({"pearson": Pearson(), "spearman": Spearman(), "mse": MSE()})


class Classification(GeneObjective):
    """High vs low expression (RPKM ≥ the cell's median): 2 logits, cross-entropy; AUROC, AUPRC, accuracy."""

    name = "classification"
    out_dim = 2
    target_column = "label"
    primary = "auroc"

    def loss(self, out: torch.Tensor, batch: dict) -> torch.Tensor:
        return F.cross_entropy(out.float(), batch["y"].long())

    def gene_outputs(self, out: torch.Tensor, batch: dict):
        return torch.softmax(out.float(), dim=-1)[:, 1], batch["y"].long(), batch["gene"]

    def metrics(self) -> MetricCollection:
        return MetricCollection({"auroc": AUROC(), "auprc": AUPRC(), "accuracy": Accuracy()})
