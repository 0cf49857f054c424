"""Joint training of epigenome and expression: end-to-end Seq-GraphReg's objective and module.

Contract (the ``epx.train.objectives`` interface; ``conf/model/seq_graphreg_e2e.yaml`` names
both):

- ``JointPoissonCounts(*, n_tracks=None)``: ``out`` is ``SeqGraphRegEndToEnd``'s
  ``{"counts": (B, N), "tracks": (B, T, L)}``; the batch is ``SeqGraphRegEndToEndInputs``'
  (GraphReg's ``y``/masks/genes and ``y_tracks`` (B, T, L)). The loss is, as published,
  ``alpha * expression + (1 - alpha) * epigenome`` with ``alpha = max(0.01, sigmoid(epoch -
  10))``: the expression term is ``PoissonCounts``' (Poisson NLL on the middle nodes), the
  epigenome term ``PoissonTracks``' (Poisson NLL over every bin of every track). ``epoch``
  is set by ``JointModule`` at the start of every training epoch (0 until then, e.g. in
  ``epx predict``). Per-gene outputs and metrics are ``PoissonCounts``' (``primary`` pearson),
  plus ``epi_bin_pearson`` (mean over tracks of Pearson r of log2(pred + 1) vs log2(y + 1)
  over every bin) and ``epi_bin_nll``.
- ``JointModule``: ``epx.train.module.EpxModule`` that tells its objective the epoch
  (``on_train_epoch_start``); a resumed job restores the epoch, so alpha too. Validation
  runs after the epoch's training and uses the same alpha, so ``val/loss`` moves its weight
  from the epigenome to expression over the first ~15 epochs; to select checkpoints by
  expression alone, monitor ``val/pearson`` (``callbacks.*.monitor=val/pearson
  callbacks.*.mode=max``).
"""

from __future__ import annotations

import math

import torch
from torchmetrics import MetricCollection

from epx.train.counts import BinPoissonNLL, PoissonCounts
from epx.train.module import EpxModule
from epx.train.track_counts import PoissonTracks, TrackLogPearson


def alpha(epoch: int) -> float:
    """The expression loss's weight at ``epoch`` (0-based), as published: max(0.01, sigmoid(epoch - 10))."""
    return max(0.01, 1.0 / (1.0 + math.exp(-(epoch - 10))))


class JointPoissonCounts:
    """alpha * PoissonCounts (expression) + (1 - alpha) * PoissonTracks (epigenome)."""

    name = "joint_poisson_counts"
    out_dim = 1
    target_column = "target"
    primary = "pearson"

    def __init__(self, *, n_tracks: int | None = None) -> None:
        self.expression = PoissonCounts()
        self.epigenome = PoissonTracks(n_tracks=n_tracks)
        self.n_tracks = n_tracks
        self.epoch = 0

    def __repr__(self) -> str:
        return f"JointPoissonCounts(n_tracks={self.n_tracks}, epoch={self.epoch})"

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def alpha(self) -> float:
        return alpha(self.epoch)

    def loss(self, out: dict, batch: dict) -> torch.Tensor:
        """out: {"counts": (B, N), "tracks": (B, T, L)}; batch: y (B, S), y_tracks (B, T, L) -> scalar."""
        a = self.alpha
        expression = self.expression.loss(out["counts"], batch)
        epigenome = self.epigenome.loss(out["tracks"], {"y": batch["y_tracks"]})
        return a * expression + (1.0 - a) * epigenome

    def gene_outputs(self, out: dict, batch: dict):
        """-> (log2(pred + 1) (G,), gene_target (G,), gene (G,)) of the TSS nodes, as PoissonCounts."""
        return self.expression.gene_outputs(out["counts"], batch)

    def metrics(self) -> MetricCollection:
        counts = dict(self.expression.metrics().items())
        epi = {"epi_bin_pearson": TrackLogPearson(n_tracks=self.n_tracks), "epi_bin_nll": BinPoissonNLL()}
        return MetricCollection({**counts, **epi}, compute_groups=False)

    def update_metrics(self, metrics: MetricCollection, out: dict, batch: dict) -> None:
        self.expression.update_metrics(metrics, out["counts"], batch)
        tracks, y = out["tracks"], batch["y_tracks"]
        metrics["epi_bin_pearson"].update(tracks, y)
        metrics["epi_bin_nll"].update(tracks, y, torch.ones_like(y, dtype=torch.bool))


class JointModule(EpxModule):
    """``EpxModule`` whose objective learns the epoch (for the loss weight alpha)."""

    def on_train_epoch_start(self) -> None:
        self.objective.set_epoch(self.current_epoch)
