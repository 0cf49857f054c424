"""Which interactions are contacts: the dataset's score threshold, applied once per cell.

Contract: ``ContactFilter(score_kind="frequency", threshold=1.5)`` (``dataset.interactions``)
``.apply(df)`` keeps the rows the threshold admits (``frequency >= t`` or ``qvalue <= t``;
NaN scores never pass; ``threshold=None`` keeps every row with a finite score) and adds a
``strength`` column, "larger = stronger contact" (a frequency as is, a q-value as -log10 q).
The DataModule applies it when it reads a cell's BEDPE, so every distal model (Chromoformer's
pCREs, GraphReg's graph) sees the same contacts and no input builder filters on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from epx.errors import InputError

SCORE_FILTERS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "frequency": np.greater_equal,
    "qvalue": np.less_equal,
}
# A q-value of 0 (reported by some callers) would give an infinite strength.
MIN_QVALUE = 1e-300
SCORE_STRENGTH: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "frequency": lambda s: s,
    "qvalue": lambda s: -np.log10(np.maximum(s, MIN_QVALUE)),
}


def check_score_kind(score_kind: str) -> None:
    if score_kind not in SCORE_FILTERS:
        raise InputError(
            f"unknown interaction score_kind {score_kind!r}; choose one of {sorted(SCORE_FILTERS)} "
            "(dataset.interactions.score_kind)"
        )


def significant(df: pd.DataFrame, *, score_kind: str, threshold: float) -> pd.DataFrame:
    check_score_kind(score_kind)
    scores = pd.to_numeric(df["score"], errors="coerce").to_numpy(dtype=np.float64)
    return df.loc[SCORE_FILTERS[score_kind](scores, threshold)].reset_index(drop=True)


def strength(scores: np.ndarray, score_kind: str) -> np.ndarray:
    check_score_kind(score_kind)
    return SCORE_STRENGTH[score_kind](np.asarray(scores, np.float64))




@dataclass(frozen=True)
class ContactFilter:
    score_kind: str = "frequency"
    threshold: float | None = 1.5

    def __post_init__(self) -> None:
        check_score_kind(self.score_kind)

    def apply(self, df: pd.DataFrame) -> pd.DataFrame:
        """Rows of a BEDPE table that are contacts, with their ``strength``."""
        if self.threshold is None:
            kept = df[np.isfinite(pd.to_numeric(df["score"], errors="coerce").to_numpy(np.float64))].reset_index(drop=True)
        else:
            kept = significant(df, score_kind=self.score_kind, threshold=float(self.threshold))
        return kept.assign(strength=strength(kept["score"].to_numpy(), self.score_kind))
