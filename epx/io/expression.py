"""Expression matrix in Roadmap's RPKM layout: ``gene_id`` + one column per cell id.

Contract: ``read_expression(source, cell) -> Series`` of RPKM indexed by gene_id (version
suffixes stripped, e.g. ``ENSG00000116213.11`` → ``ENSG00000116213``). Targets:
``regression_target(rpkm) = log2(RPKM + 1)``; ``classification_label(rpkm, all_rpkm)`` =
RPKM ≥ the cell's median over all genes of the table (not only the genes with a TSS).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from epx.errors import InputError


def read_expression_table(source: str | Path | pd.DataFrame) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        df = source.copy()
        where = "the expression table"
    else:
        path = Path(source)
        where = str(path)
        if not path.exists():
            raise InputError(f"expression table not found: {path} (expected TSV with gene_id + one column per cell)")
        df = pd.read_csv(path, sep="\t", dtype={"gene_id": str})
    if "gene_id" not in df.columns:
        raise InputError(f"{where}: no 'gene_id' column (columns: {list(df.columns)[:8]})")
    df["gene_id"] = df["gene_id"].astype(str).str.replace(r"\.\d+$", "", regex=True)
    dup = df["gene_id"][df["gene_id"].duplicated()]
    if len(dup):
        raise InputError(f"{where}: duplicate gene ids (e.g. {', '.join(dup.unique()[:3])}); keep one row per gene.")
    df.attrs["source"] = where
    return df.set_index("gene_id")


def read_expression(source: str | Path | pd.DataFrame, cell: str) -> pd.Series:
    table = source if isinstance(source, pd.DataFrame) and source.index.name == "gene_id" else read_expression_table(source)
    where = table.attrs.get("source", "the expression table")
    if cell not in table.columns:
        raise InputError(f"{where} has no column for cell {cell!r}; it has: {', '.join(map(str, table.columns))}")
    rpkm = pd.to_numeric(table[cell], errors="coerce")
    bad = ~np.isfinite(rpkm) | (rpkm < 0)
    if bad.any():
        raise InputError(
            f"{where}: column {cell} has {int(bad.sum())} missing/negative/non-numeric RPKM values "
            f"(e.g. gene {rpkm.index[bad][0]}); fill or drop those rows."
        )
    return rpkm.astype("float64")


def regression_target(rpkm) -> np.ndarray:
    return np.log2(np.asarray(rpkm, dtype=np.float64) + 1.0)


def classification_label(rpkm, all_rpkm) -> np.ndarray:
    return (np.asarray(rpkm, dtype=np.float64) >= float(np.median(all_rpkm))).astype(np.int64)
