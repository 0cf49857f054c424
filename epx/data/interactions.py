"""Chromatin interactions: BEDPE with 8 columns (chrom1 start1 end1 chrom2 start2 end2 name score).

Contract: ``read_interactions(source) -> DataFrame[chrom1,start1,end1,chrom2,start2,end2,name,score]``.
``source`` is a path, a DataFrame with those columns, or None (no file → empty table: a cell
without interactions is allowed; the distal models then see no pCREs / an empty graph).

``significant(df, score_kind=, threshold=)`` keeps the rows the dataset's threshold admits
(``frequency >= t`` or ``qvalue <= t``; NaN scores never pass) and ``strength(scores,
score_kind)`` maps scores to "larger = stronger contact" (a frequency as is, a q-value as
-log10 q), so every distal model reads one dataset setting the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from epx.data.errors import InputError

COLUMNS = ["chrom1", "start1", "end1", "chrom2", "start2", "end2", "name", "score"]
DTYPES = {"chrom1": str, "start1": "int64", "end1": "int64", "chrom2": str, "start2": "int64", "end2": "int64", "name": str, "score": "float64"}


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


def empty_interactions() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t if t is not str else object) for c, t in DTYPES.items()})


def read_interactions(source: str | Path | pd.DataFrame | None) -> pd.DataFrame:
    if source is None:
        return empty_interactions()
    if isinstance(source, pd.DataFrame):
        return source[COLUMNS].astype(DTYPES).reset_index(drop=True)
    path = Path(source)
    if not path.exists():
        return empty_interactions()
    if path.stat().st_size == 0:
        return empty_interactions()
    raw = pd.read_csv(path, sep="\t", header=None, comment="#", dtype={0: str, 3: str, 6: str})
    if raw.shape[1] < 8:
        raise InputError(f"{path}: expected 8 BEDPE columns (chrom1 start1 end1 chrom2 start2 end2 name score), found {raw.shape[1]}")
    raw = raw.iloc[:, :8]
    raw.columns = COLUMNS
    try:
        return raw.astype(DTYPES)
    except (TypeError, ValueError) as err:
        raise InputError(f"{path}: non-numeric coordinates or score ({err}); is there a header line? Prefix it with '#'.") from err
