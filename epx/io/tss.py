"""TSS annotation: a BED6 file (chrom, 0-based TSS, TSS+1, gene_id, score, strand).

Contract: ``read_tss(source) -> DataFrame[gene_id, chrom, tss, strand]`` indexed 0..N-1 in
file order, every row of the file kept, gene ids normalised (``epx.io.gene_ids``).
``source`` is a path (plain or gzip; LF/CRLF line ends, an optional UTF-8 BOM and ``#``
comment lines are fine) or a DataFrame with those columns. The reader checks the FORMAT
only: at least six tab-separated columns, integer start and end with 0 ≤ start ≤ end,
strand ``+`` or ``-``, non-empty chromosome and gene id, at least one line; any violation
(and a truncated gzip, a binary file) is one ``InputError`` naming the file, the line and
the fix (``epx.io.tables``). Duplicate gene ids, chromosomes the
signals lack and TSSs outside (or too close to the end of) their chromosome are NOT the
reader's business: they are per-gene drop reasons, accounted for in
``epx.data.prepare.genes`` — and so is a row that is not a 1-bp interval (``end != tss + 1``:
a gene body or a peak given as a TSS), for which ``with_end=True`` adds the ``end`` column
(a DataFrame source without one is taken as 1-bp).

``write_tss(df, path)`` writes a ``DataFrame[gene_id, chrom, tss, strand]`` as BED6
(score 0, no header, rows in the frame's order), atomically.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from epx.errors import InputError
from epx.io.atomic import write_csv
from epx.io.gene_ids import normalise_gene_ids
from epx.io.tables import read_rows

COLUMNS = ["gene_id", "chrom", "tss", "strand"]


BED6 = "6 (chrom, tss, tss+1, gene_id, score, strand)"
HINT = (
    "a TSS file is tab-separated BED6 (chrom, 0-based tss, tss+1, gene_id, score, strand +/-); fix or delete "
    "that line (a header line must start with '#'), or rebuild the file with `epx convert gtf`"
)


def read_tss(source: str | Path | pd.DataFrame, *, with_end: bool = False) -> pd.DataFrame:
    where = "the TSS table"
    if isinstance(source, pd.DataFrame):
        df = source[COLUMNS].copy()
        _check_frame(df, where)
        if with_end:
            df["end"] = source["end"].to_numpy() if "end" in source else df["tss"].to_numpy() + 1
    else:
        path = Path(source)
        where = str(path)
        if not path.exists():
            raise InputError(f"TSS file not found: {path} (expected BED6: chrom, tss, tss+1, gene_id, score, strand)")
        rows = read_rows(path, what="TSS file (BED6)", hint=HINT)
        rows.check_width(6, expected=BED6)
        chrom = rows.texts(0, "chromosome")
        tss = rows.integers(1, "start")
        end = rows.integers(2, "end")
        rows.ordered(tss, end, "start", "end")
        gene_id = rows.texts(3, "gene id")
        strand = rows.choice(5, "strand", ["+", "-"])
        df = pd.DataFrame({"gene_id": gene_id, "chrom": chrom, "tss": tss, "strand": strand})
        if with_end:
            df["end"] = end
    df["gene_id"] = normalise_gene_ids(df["gene_id"].astype(str))
    return df.reset_index(drop=True)


def _check_frame(df: pd.DataFrame, where: str) -> None:
    bad_strand = ~df["strand"].isin(["+", "-"])
    if bad_strand.any():
        raise InputError(f"{where}: strand must be '+' or '-' (gene {df.gene_id[bad_strand].iloc[0]} has {df.strand[bad_strand].iloc[0]!r})")
    tss = pd.to_numeric(df["tss"], errors="coerce")
    if tss.isna().any() or (tss < 0).any() or (tss != tss.round()).any():
        raise InputError(f"{where}: TSS positions must be non-negative integers (gene {df.gene_id[tss.isna() | (tss < 0) | (tss != tss.round())].iloc[0]})")
    empty = df["gene_id"].isna() | (df["gene_id"].astype(str).str.strip() == "")
    if empty.any():
        raise InputError(f"{where}: {int(empty.sum())} rows have no gene id")


def write_tss(df: pd.DataFrame, path: str | Path) -> Path:
    tss = df["tss"].to_numpy()
    bed = pd.DataFrame(
        {"chrom": df["chrom"].to_numpy(), "start": tss, "end": tss + 1, "gene_id": df["gene_id"].to_numpy(), "score": 0, "strand": df["strand"].to_numpy()}
    )
    return write_csv(path, bed, sep="\t", header=False)
