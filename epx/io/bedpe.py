"""BEDPE, the interactions file: read and write with 8 columns (chrom1 start1 end1 chrom2 start2 end2 name score).

Contract: ``read_interactions(source) -> DataFrame[chrom1,start1,end1,chrom2,start2,end2,name,score]``.
``source`` is a path, a DataFrame with those columns, or None (no file → empty table: a cell
without interactions is allowed; the distal models then see no pCREs / an empty graph). A
path may be plain or gzip (LF/CRLF, UTF-8 BOM, ``#`` comments fine); an empty, blank or
comments-only file is an empty table too. Coordinates must be integers with
0 ≤ start ≤ end, the score a number (``NaN``/``NA`` allowed); any other broken line, a
truncated gzip or a binary file is one ``InputError`` naming the file and the line.

``write_interactions(df, path, float_format=None)`` writes those 8 columns of ``df`` in
that order, no header, atomically. What
counts as a contact (the score threshold) is the dataset's business:
``epx.data.prepare.interactions``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from epx.io.atomic import write_csv
from epx.io.tables import MAX_INTEGER, MISSING, fast_table, read_rows, read_text

COLUMNS = ["chrom1", "start1", "end1", "chrom2", "start2", "end2", "name", "score"]
DTYPES = {"chrom1": str, "start1": "int64", "end1": "int64", "chrom2": str, "start2": "int64", "end2": "int64", "name": str, "score": "float64"}


def empty_interactions() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t if t is not str else object) for c, t in DTYPES.items()})


HINT = (
    "a BEDPE interactions file is tab-separated: chrom1, start1, end1, chrom2, start2, end2, name, score "
    "(0-based, start <= end); fix or delete that line (a header line must start with '#'), or rebuild it with "
    "`epx convert interactions`"
)


def read_interactions(source: str | Path | pd.DataFrame | None) -> pd.DataFrame:
    if source is None:
        return empty_interactions()
    if isinstance(source, pd.DataFrame):
        return source[COLUMNS].astype(DTYPES).reset_index(drop=True)
    path = Path(source)
    if not path.exists():
        return empty_interactions()
    text = read_text(path, what="BEDPE interactions file")
    fast = fast_table(text, 8, {0: str, 1: "int64", 2: "int64", 3: str, 4: "int64", 5: "int64", 6: str, 7: "float64"})
    if fast is not None:
        fast.columns = COLUMNS
        ints = fast[["start1", "end1", "start2", "end2"]].to_numpy()
        chroms = fast[["chrom1", "chrom2"]]
        if (
            (ints >= 0).all()
            and (ints <= MAX_INTEGER).all()
            and (fast["start1"] <= fast["end1"]).all()
            and (fast["start2"] <= fast["end2"]).all()
            and (chroms.apply(lambda c: c.str.strip() != "")).all(axis=None)
        ):
            return fast.astype(DTYPES)
    rows = read_rows(path, what="BEDPE interactions file", hint=HINT, allow_empty=True, text=text)
    if not len(rows):  # empty, blank or comments only: a cell without interactions
        return empty_interactions()
    rows.check_width(8, expected="8 (chrom1 start1 end1 chrom2 start2 end2 name score)")
    columns = {}
    for pair in ("1", "2"):
        k = 0 if pair == "1" else 3
        columns[f"chrom{pair}"] = rows.texts(k, f"chrom{pair}")
        columns[f"start{pair}"] = rows.integers(k + 1, f"start{pair}")
        columns[f"end{pair}"] = rows.integers(k + 2, f"end{pair}")
        rows.ordered(columns[f"start{pair}"], columns[f"end{pair}"], f"start{pair}", f"end{pair}")
    columns["name"] = rows.texts(6, "name", allow_empty=True)
    columns["score"] = rows.floats(7, "score", missing=MISSING - {""})
    return pd.DataFrame(columns)[COLUMNS].astype(DTYPES)


def write_interactions(df: pd.DataFrame, path: str | Path, *, float_format: str | None = None) -> Path:
    return write_csv(path, df[COLUMNS], sep="\t", header=False, float_format=float_format)
