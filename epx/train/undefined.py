"""Metrics that are undefined on the data: null with a reason, never a number (issue 23).

Contract: a metric that mixes in ``Undefinable`` records, from the very inputs it is updated
with (after its own masking and transforms), how many values it saw and the range of its
predictions and targets (``n``, ``pred_min/max``, ``target_min/max``; summed / min / max
across processes, so every rank reaches the same verdict). Its ``rules`` (functions of those
ranges) say when the metric has no meaning:

- ``SEEN`` — no value seen (an empty split, a bin subset without bins);
- ``CORRELATION`` — fewer than two values, constant targets, or constant predictions
  (Pearson r and Spearman ρ divide by a standard deviation of zero; torchmetrics then returns
  a rounding residue such as -3.5e-08, or 0.0);
- ``RANKING`` — targets of one class only (AUROC and AUPRC rank positives against negatives;
  torchmetrics returns 0.0 and 1.0).

``compute()`` of such a metric returns NaN when a rule fails, and sets ``undefined_reason``
(the first failing rule's sentence, e.g. ``"targets are constant (all 3.2) over 4 values"``;
None when defined) — set inside ``compute``, on the state as synchronised across processes.
``undefined_reasons(collection)`` gathers them for a computed ``MetricCollection``:
``{key: reason}``. ``EpxModule`` logs only the defined metrics, and the job record holds the
others as ``null`` with the reasons in ``undefined_metrics`` (``epx.record``).

Accuracy and MSE only need a value (``SEEN``): they are defined on one class or a constant
target, even if trivially so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryAveragePrecision,
)
from torchmetrics.regression import MeanSquaredError, PearsonCorrCoef, SpearmanCorrCoef

NAN = float("nan")


class Spread:
    """What the rules read: the number of values and the ranges of predictions and targets."""

    def __init__(self, n: int, pred_min: float, pred_max: float, target_min: float, target_max: float) -> None:
        self.n, self.pred_min, self.pred_max, self.target_min, self.target_max = n, pred_min, pred_max, target_min, target_max


Rule = Callable[[Spread], str | None]


def seen(spread: Spread) -> str | None:
    return None if spread.n >= 1 else "no values seen (an empty split or subset)"


def two_values(spread: Spread) -> str | None:
    return None if spread.n >= 2 else f"{spread.n} value(s) seen; a correlation needs at least 2"


def varying_targets(spread: Spread) -> str | None:
    if spread.target_max > spread.target_min:
        return None
    return f"targets are constant (all {spread.target_min:.6g}) over {spread.n} values"


def varying_predictions(spread: Spread) -> str | None:
    if spread.pred_max > spread.pred_min:
        return None
    return f"predictions are constant (all {spread.pred_min:.6g}) over {spread.n} values"


def two_classes(spread: Spread) -> str | None:
    if spread.target_max > spread.target_min:
        return None
    return f"targets are one class only (all {spread.target_min:.0f}) over {spread.n} values"


SEEN: tuple[Rule, ...] = (seen,)
CORRELATION: tuple[Rule, ...] = (seen, two_values, varying_targets, varying_predictions)
RANKING: tuple[Rule, ...] = (seen, two_classes)


def first_reason(rules: Sequence[Rule], spread: Spread) -> str | None:
    return next((why for why in (rule(spread) for rule in rules) if why is not None), None)


class Undefinable(Metric):
    """Mixin placed before a torchmetrics metric: ``see(pred, target)`` in ``update``; NaN and a
    reason from ``compute`` when one of ``rules`` fails (module doc)."""

    rules: tuple[Rule, ...] = SEEN

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        inf = torch.tensor(float("inf"), dtype=torch.float64)
        self.add_state("seen_n", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("seen_pred_min", default=inf.clone(), dist_reduce_fx="min")
        self.add_state("seen_pred_max", default=-inf.clone(), dist_reduce_fx="max")
        self.add_state("seen_target_min", default=inf.clone(), dist_reduce_fx="min")
        self.add_state("seen_target_max", default=-inf.clone(), dist_reduce_fx="max")
        self.undefined_reason: str | None = None

    def see(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Record the inputs this update scores (already masked and transformed)."""
        if pred.numel() == 0:
            return
        pred, target = pred.detach().double(), target.detach().double()
        self.seen_n += pred.numel()
        self.seen_pred_min = torch.minimum(self.seen_pred_min, pred.min())
        self.seen_pred_max = torch.maximum(self.seen_pred_max, pred.max())
        self.seen_target_min = torch.minimum(self.seen_target_min, target.min())
        self.seen_target_max = torch.maximum(self.seen_target_max, target.max())

    def spread(self) -> Spread:
        values = (self.seen_pred_min, self.seen_pred_max, self.seen_target_min, self.seen_target_max)
        return Spread(int(self.seen_n), *(float(v) for v in values))

    def compute(self) -> torch.Tensor:
        self.undefined_reason = first_reason(self.rules, self.spread())
        return torch.tensor(NAN) if self.undefined_reason else super().compute()

    def reset(self) -> None:
        super().reset()
        self.undefined_reason = None


def undefined_reasons(collection: MetricCollection) -> dict[str, str]:
    """``{key: reason}`` of the members of a computed collection that were undefined."""
    return {key: metric.undefined_reason for key, metric in collection.items() if getattr(metric, "undefined_reason", None)}


# -- the guarded metrics every objective uses --------------------------------------------------


class _SeesInputs:
    """``update(pred, target)``: see the pair, then update the wrapped torchmetrics metric."""

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:  # type: ignore[override]
        self.see(pred, target)  # type: ignore[attr-defined]
        super().update(pred, target)  # type: ignore[misc]


class Pearson(_SeesInputs, Undefinable, PearsonCorrCoef):
    rules = CORRELATION


class Spearman(_SeesInputs, Undefinable, SpearmanCorrCoef):
    rules = CORRELATION


class MSE(_SeesInputs, Undefinable, MeanSquaredError):
    rules = SEEN


class AUROC(_SeesInputs, Undefinable, BinaryAUROC):
    rules = RANKING


class AUPRC(_SeesInputs, Undefinable, BinaryAveragePrecision):
    rules = RANKING


class Accuracy(_SeesInputs, Undefinable, BinaryAccuracy):
    rules = SEEN
