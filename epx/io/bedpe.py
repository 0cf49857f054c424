"""BEDPE, the interactions file: read and write with 8 columns (chrom1 start1 end1 chrom2 start2 end2 name score).

Contract: ``read_interactions(source) -> DataFrame[chrom1,start1,end1,chrom2,start2,end2,name,score]``.
``source`` is a path, a DataFrame with those columns, or None (no file → empty table: a cell
without interactions is allowed; the distal models then see no pCREs / an empty graph).

``write_interactions(df, path, float_format=None)`` writes those 8 columns of ``df`` in
that order, no header, atomically. What
counts as a contact (the score threshold) is the dataset's business:
``epx.data.prepare.interactions``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from epx.errors import InputError
from epx.io.atomic import write_csv

COLUMNS = ["chrom1", "start1", "end1", "chrom2", "start2", "end2", "name", "score"]
DTYPES = {"chrom1": str, "start1": "int64", "end1": "int64", "chrom2": str, "start2": "int64", "end2": "int64", "name": str, "score": "float64"}


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


def write_interactions(df: pd.DataFrame, path: str | Path, *, float_format: str | None = None) -> Path:
    return write_csv(path, df[COLUMNS], sep="\t", header=False, float_format=float_format)
