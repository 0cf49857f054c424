"""TSS annotation: a BED6 file (chrom, 0-based TSS, TSS+1, gene_id, score, strand).

Contract: ``read_tss(source, chrom_sizes=None) -> DataFrame[gene_id, chrom, tss, strand]``
indexed 0..N-1 in file order, gene ids normalised (``epx.io.gene_ids``). ``source`` is a
path or a DataFrame with those columns. Rejects duplicate gene ids, strands other than +/-,
and (given ``chrom_sizes``) TSSs outside their chromosome or on chromosomes the signals do
not have (naming mismatch).

``write_tss(df, path)`` writes a ``DataFrame[gene_id, chrom, tss, strand]`` as BED6
(score 0, no header, rows in the frame's order), atomically.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from epx.errors import InputError
from epx.io.atomic import write_csv
from epx.io.gene_ids import normalise_gene_ids
from epx.io.naming import check_naming

COLUMNS = ["gene_id", "chrom", "tss", "strand"]


def read_tss(source: str | Path | pd.DataFrame, chrom_sizes: Mapping[str, int] | None = None) -> pd.DataFrame:
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
    dup = df["gene_id"][df["gene_id"].duplicated()]
    if len(dup):
        raise InputError(
            f"{where}: {len(dup)} duplicate gene ids (e.g. {', '.join(dup.unique()[:3])}); keep one TSS per gene "
            "(e.g. the canonical transcript) before running epx."
        )
    bad_strand = ~df["strand"].isin(["+", "-"])
    if bad_strand.any():
        raise InputError(f"{where}: strand must be '+' or '-' (gene {df.gene_id[bad_strand].iloc[0]} has {df.strand[bad_strand].iloc[0]!r})")
    if chrom_sizes is not None:
        check_naming(df["chrom"].unique(), chrom_sizes, what=where, reference_what="the signal/chrom sizes")
        unknown = ~df["chrom"].isin(list(chrom_sizes))
        if unknown.any():
            df = df[~unknown]
        length = df["chrom"].map(chrom_sizes)
        outside = (df["tss"] < 0) | (df["tss"] >= length)
        if outside.any():
            row = df[outside].iloc[0]
            raise InputError(
                f"{where}: {int(outside.sum())} TSS outside their chromosome (e.g. {row.gene_id} at "
                f"{row.chrom}:{row.tss}, chromosome length {chrom_sizes[row.chrom]}); is the annotation "
                "from the same genome assembly as the signals?"
            )
    return df.reset_index(drop=True)


def write_tss(df: pd.DataFrame, path: str | Path) -> Path:
    tss = df["tss"].to_numpy()
    bed = pd.DataFrame(
        {"chrom": df["chrom"].to_numpy(), "start": tss, "end": tss + 1, "gene_id": df["gene_id"].to_numpy(), "score": 0, "strand": df["strand"].to_numpy()}
    )
    return write_csv(path, bed, sep="\t", header=False)
