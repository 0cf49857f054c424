"""TSS annotation: a BED6 file (chrom, 0-based TSS, TSS+1, gene_id, score, strand).

Contract: ``read_tss(source) -> DataFrame[gene_id, chrom, tss, strand]`` indexed 0..N-1 in
file order, every row of the file kept, gene ids normalised (``epx.io.gene_ids``).
``source`` is a path or a DataFrame with those columns. The reader checks the FORMAT only:
six columns, an integer non-negative TSS, strand ``+`` or ``-``, a non-empty gene id; any
violation is one ``InputError`` naming the file. Duplicate gene ids, chromosomes the
signals lack and TSSs outside (or too close to the end of) their chromosome are NOT the
reader's business: they are per-gene drop reasons, accounted for in
``epx.data.prepare.genes``.

``write_tss(df, path)`` writes a ``DataFrame[gene_id, chrom, tss, strand]`` as BED6
(score 0, no header, rows in the frame's order), atomically.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from epx.errors import InputError
from epx.io.atomic import write_csv
from epx.io.gene_ids import normalise_gene_ids

COLUMNS = ["gene_id", "chrom", "tss", "strand"]


def read_tss(source: str | Path | pd.DataFrame) -> pd.DataFrame:
    where = "the TSS table"
    if isinstance(source, pd.DataFrame):
        df = source[COLUMNS].copy()
    else:
        path = Path(source)
        where = str(path)
        if not path.exists():
            raise InputError(f"TSS file not found: {path} (expected BED6: chrom, tss, tss+1, gene_id, score, strand)")
        raw = pd.read_csv(path, sep="\t", header=None, comment="#", dtype={0: str, 3: str})
        if raw.shape[1] < 6:
            raise InputError(f"{path}: expected 6 BED columns (chrom start end gene_id score strand), found {raw.shape[1]}")
        df = pd.DataFrame({"gene_id": raw[3], "chrom": raw[0], "tss": raw[1].astype("int64"), "strand": raw[5]})
    df["gene_id"] = normalise_gene_ids(df["gene_id"].astype(str))
    bad_strand = ~df["strand"].isin(["+", "-"])
    if bad_strand.any():
        raise InputError(f"{where}: strand must be '+' or '-' (gene {df.gene_id[bad_strand].iloc[0]} has {df.strand[bad_strand].iloc[0]!r})")
    return df.reset_index(drop=True)


def write_tss(df: pd.DataFrame, path: str | Path) -> Path:
    tss = df["tss"].to_numpy()
    bed = pd.DataFrame(
        {"chrom": df["chrom"].to_numpy(), "start": tss, "end": tss + 1, "gene_id": df["gene_id"].to_numpy(), "score": 0, "strand": df["strand"].to_numpy()}
    )
    return write_csv(path, bed, sep="\t", header=False)
