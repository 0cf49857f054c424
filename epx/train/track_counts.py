"""Poisson objective of the Seq-CNN base: T epigenome tracks per 100 bp bin, scored per bin and per gene.

Contract (the ``epx.train.objectives`` interface; ``conf/model/seq_cnn_base.yaml`` names it
under ``objective``): ``PoissonTracks(*, n_tracks=None, track_names=None)`` is regression on
counts (``name = "poisson_tracks"``; the job's task stays ``regression``, ``target_column =
"target"``, ``primary = "bin_pearson"``; ``out_dim`` = the number of tracks when known, which
the net does not read). It reads batches made by ``epx.data.inputs.sequence.SequenceChunks``:
``out`` (B, T, N) predicted counts >= 0 (``epx.models.seq_cnn.SeqCNNBase``), ``batch["y"]``
(B, T, N) observed counts >= 0 per bin, and per gene ``gene``, ``gene_pos`` (index into the
B * N bins, i.e. into ``out[:, 0].reshape(-1)``) and ``gene_target`` (log2(track-0 count at
the TSS bin + 1), computed by the builder).

- ``loss``: ``torch.nn.PoissonNLLLoss(log_input=False)`` (mean of pred - y * log(pred + eps),
  without the constant log(y!) that the original TensorFlow loss adds) over every bin of every
  track (the original averages the tracks' means, the same number for equal-length tracks).
- ``gene_outputs``: (log2(pred[track 0] at gene_pos + 1), gene_target, gene), so
  ``predictions.csv`` is written as for every other job.

Metrics (test values end up in ``metrics.json["test"]``):

- ``bin_pearson_{name}``: per track, Pearson r of log2(pred + 1) vs log2(y + 1) over every bin
  seen (all held-out bins of the split, not a mean of per-batch values); ``name`` is the
  track's entry in ``track_names``, else its index 0, 1, ...;
- ``bin_pearson``: the mean of the tracks' r (the primary metric);
- ``bin_nll``: mean Poisson NLL (as the loss) over every bin and track;
- ``pearson``, ``spearman``, ``mse``: per gene, on the ``gene_outputs`` pair.

Every metric is guarded (``epx.train.undefined``): never updated, or (the bin correlations,
per track, on the logged values) constant targets or predictions, it reads NaN with its
reason and the job records it as null; ``bin_pearson`` is undefined when any track's r is. When the number of tracks is not given (the config may
leave it to the data), ``bin_pearson`` sizes itself on its first batch and the per-track
metrics are added to the collection then; given ``n_tracks`` or ``track_names``, they exist
from the start and a batch with another number of tracks is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchmetrics import Metric, MetricCollection

from epx.train.counts import BinPoissonNLL
from epx.train.undefined import CORRELATION, MSE, NAN, Pearson, Spearman, Spread, first_reason

_SUMS = ("n", "sx", "sy", "sxx", "syy", "sxy")
# per-track ranges of the logged values, for the undefined check: (name, start, reduction)
_RANGES = (("pmin", float("inf"), "min"), ("pmax", float("-inf"), "max"), ("tmin", float("inf"), "min"), ("tmax", float("-inf"), "max"))


class TrackLogPearson(Metric):
    """Pearson r of log2(pred + 1) vs log2(target + 1) over every bin seen, per track.

    ``track=k``: r of track k. ``track=None``: the mean of every track's r (sized by
    ``n_tracks``, or by the first batch when that is None). Running sums in float64, reduced
    by summing across processes, so r covers every bin of the split exactly. Undefined
    (``epx.train.undefined.CORRELATION``, per track, on the logged values): NaN from
    ``compute`` and ``undefined_reason`` naming the track.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, *, track: int | None = None, n_tracks: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.track = track
        size = 1 if track is not None else (n_tracks or 0)
        for name in _SUMS:
            self.add_state(name, default=torch.zeros(size, dtype=torch.float64), dist_reduce_fx="sum")
        for name, start, reduce in _RANGES:
            self.add_state(name, default=torch.full((size,), start, dtype=torch.float64), dist_reduce_fx=reduce)
        self.undefined_reason: str | None = None

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:  # type: ignore[override]
        """pred, target: (B, T, N) counts >= 0."""
        if pred.shape != target.shape or pred.dim() != 3:
            raise ValueError(f"pred and target must both be (B, T, N), got {tuple(pred.shape)} and {tuple(target.shape)}")
        if self.track is not None:
            if self.track >= pred.shape[1]:
                raise ValueError(f"track {self.track} asked for, but the batch has {pred.shape[1]} tracks")
            pred, target = pred[:, self.track : self.track + 1], target[:, self.track : self.track + 1]
        n_tracks = pred.shape[1]
        if self.n.numel() == 0:  # sized by the first batch
            for name in _SUMS:
                setattr(self, name, torch.zeros(n_tracks, dtype=torch.float64, device=pred.device))
            for name, start, _ in _RANGES:
                setattr(self, name, torch.full((n_tracks,), start, dtype=torch.float64, device=pred.device))
        if self.n.numel() != n_tracks:
            raise ValueError(f"this metric was sized for {self.n.numel()} tracks, the batch has {n_tracks}")
        p = torch.log2(pred.detach().double() + 1).transpose(0, 1).reshape(n_tracks, -1)  # (T, B * N)
        t = torch.log2(target.detach().double() + 1).transpose(0, 1).reshape(n_tracks, -1)
        self.n += p.shape[1]
        self.sx += p.sum(1)
        self.sy += t.sum(1)
        self.sxx += (p * p).sum(1)
        self.syy += (t * t).sum(1)
        self.sxy += (p * t).sum(1)
        self.pmin, self.pmax = torch.minimum(self.pmin, p.min(1).values), torch.maximum(self.pmax, p.max(1).values)
        self.tmin, self.tmax = torch.minimum(self.tmin, t.min(1).values), torch.maximum(self.tmax, t.max(1).values)

    def reason(self) -> str | None:
        """Why r is undefined (the first track whose values fail a rule), or None."""
        if self.n.numel() == 0:
            return "no bins seen"
        for i in range(self.n.numel()):
            spread = Spread(int(self.n[i]), float(self.pmin[i]), float(self.pmax[i]), float(self.tmin[i]), float(self.tmax[i]))
            why = first_reason(CORRELATION, spread)
            if why is not None:
                return f"track {self.track if self.track is not None else i}: {why} (log2(count + 1))"
        return None

    def compute(self) -> torch.Tensor:
        self.undefined_reason = self.reason()
        if self.undefined_reason:
            return torch.tensor(NAN)
        cov = self.sxy - self.sx * self.sy / self.n
        var_x = self.sxx - self.sx**2 / self.n
        var_y = self.syy - self.sy**2 / self.n
        r = cov / torch.sqrt(var_x * var_y)
        return r.mean().float()

    def reset(self) -> None:
        super().reset()
        self.undefined_reason = None


# guarded: a split without genes reads NaN with its reason (epx.train.undefined)
GENE_METRICS: dict[str, type] = {"pearson": Pearson, "spearman": Spearman, "mse": MSE}


def _check_names(names: Sequence[str]) -> list[str]:
    names = [str(n) for n in names]
    bad = [n for n in names if not n or "." in n or "/" in n]
    if bad or len(set(names)) != len(names):
        raise ValueError(f"track_names must be distinct, non-empty and free of '.' and '/' (metric keys); got {names}")
    return names


class PoissonTracks:
    """Poisson NLL over every bin of every track; per-track bin metrics and gene-level metrics."""

    name = "poisson_tracks"
    target_column = "target"
    primary = "bin_pearson"

    def __init__(self, *, n_tracks: int | None = None, track_names: Sequence[str] | None = None) -> None:
        names = None if track_names is None else _check_names(track_names)
        if names is not None and n_tracks is not None and len(names) != n_tracks:
            raise ValueError(f"n_tracks={n_tracks} but {len(names)} track_names {names}")
        if n_tracks is not None and n_tracks < 1:
            raise ValueError(f"n_tracks must be >= 1, got {n_tracks}")
        self.track_names = names
        self.n_tracks = len(names) if names is not None else n_tracks
        self.out_dim = self.n_tracks  # the tracks the net predicts; the net does not read it
        self.criterion = nn.PoissonNLLLoss(log_input=False)

    def __repr__(self) -> str:
        return f"PoissonTracks(n_tracks={self.n_tracks}, track_names={self.track_names})"

    def track_keys(self, n_tracks: int) -> list[str]:
        """The per-track metric names for a batch of ``n_tracks`` tracks."""
        if self.n_tracks is not None and n_tracks != self.n_tracks:
            raise ValueError(
                f"the objective was built for {self.n_tracks} tracks {self.track_names or ''}, the batch has "
                f"{n_tracks}; the net's n_tracks, the objective's and the job's marks must agree"
            )
        names = self.track_names or [str(i) for i in range(n_tracks)]
        return [f"bin_pearson_{name}" for name in names]

    @staticmethod
    def _check(out: torch.Tensor, batch: dict) -> torch.Tensor:
        y = batch["y"]
        if out.dim() != 3 or out.shape != y.shape:
            raise ValueError(
                f"PoissonTracks expects predictions (B, T, N) of the targets' shape, got out {tuple(out.shape)} "
                f"and y {tuple(y.shape)}"
            )
        return y

    def loss(self, out: torch.Tensor, batch: dict) -> torch.Tensor:
        """out: (B, T, N) counts; batch["y"]: (B, T, N) observed counts -> scalar."""
        y = self._check(out, batch)
        return self.criterion(out.float(), y.float())

    def gene_outputs(self, out: torch.Tensor, batch: dict):
        """-> (log2(pred[:, 0][gene_pos] + 1) (G,), gene_target (G,), gene (G,))."""
        pred = out[:, 0].reshape(-1)[batch["gene_pos"]].float()
        return torch.log2(pred + 1), batch["gene_target"].float(), batch["gene"]

    def metrics(self) -> MetricCollection:
        # members are updated one by one (each with its own inputs), so no compute groups
        gene = {name: cls() for name, cls in GENE_METRICS.items()}
        bins: dict[str, Metric] = {"bin_pearson": TrackLogPearson(n_tracks=self.n_tracks), "bin_nll": BinPoissonNLL()}
        if self.n_tracks is not None:
            bins.update({key: TrackLogPearson(track=i) for i, key in enumerate(self.track_keys(self.n_tracks))})
        return MetricCollection({**gene, **bins}, compute_groups=False)

    def update_metrics(self, metrics: MetricCollection, out: torch.Tensor, batch: dict) -> None:
        y = self._check(out, batch)
        pred, target, _ = self.gene_outputs(out, batch)
        if pred.numel():
            for name in GENE_METRICS:
                metrics[name].update(pred, target)
        keys = self.track_keys(out.shape[1])
        missing = {key: TrackLogPearson(track=i).to(out.device) for i, key in enumerate(keys) if key not in metrics}
        if missing:  # the number of tracks was left to the data: added on the first batch
            metrics.add_metrics(missing)
        metrics["bin_nll"].update(out, y, torch.ones_like(y, dtype=torch.bool))
        metrics["bin_pearson"].update(out, y)
        for key in keys:
            metrics[key].update(out, y)
