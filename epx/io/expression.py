"""Expression matrix in Roadmap's RPKM layout: ``gene_id`` + one column per cell id (TSV).

Contract: ``read_expression_table(source) -> DataFrame`` indexed by ``gene_id``, one column
per cell; ``read_expression(source, cell) -> Series`` of RPKM indexed by gene_id. Gene ids
are normalised (``epx.io.gene_ids``: ``ENSG00000116213.11`` → ``ENSG00000116213``) so they
join the TSS file. A path may be plain or gzip (LF/CRLF, UTF-8 BOM fine); a file that is
empty, truncated, binary, has lines with a different number of columns than its header, a
header without ``gene_id``, a column named twice or an empty gene id is one ``InputError``
naming the file and the line (``epx.io.tables``). Values that are not numbers read as NaN.
A gene id listed twice (after normalising) keeps its first row; the
dropped ids are listed, in file order, in ``df.attrs["duplicate_ids"]`` (a gene drop reason
"duplicate_id" downstream, ``epx.data.prepare.genes``). ``read_expression`` returns float64
with NaN for every missing, non-numeric, negative or infinite value (the gene is dropped
downstream as "non_finite_target"); a cell without a column is an ``InputError``. Both keep
``attrs["source"]`` (the file, for messages).

``write_expression(df, path, float_format=None)`` writes a table (``gene_id`` as a column
or as the index, then the cells) as TSV with a header, atomically.

What the models predict from RPKM (log2(RPKM+1), the median label) is a target definition:
``epx.data.prepare.genes``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from epx.errors import InputError
from epx.io.atomic import write_csv
from epx.io.gene_ids import normalise_gene_ids
from epx.io.tables import read_rows


def read_expression_table(source: str | Path | pd.DataFrame) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        df = source.copy()
        where = "the expression table"
    else:
        path = Path(source)
        where = str(path)
        if not path.exists():
            raise InputError(f"expression table not found: {path} (expected TSV with gene_id + one column per cell)")
        df = _read_file(path)
    if "gene_id" not in df.columns:
        raise InputError(f"{where}: no 'gene_id' column (columns: {list(df.columns)[:8]})")
    df["gene_id"] = normalise_gene_ids(df["gene_id"].astype(str))
    duplicated = df["gene_id"].duplicated()
    duplicate_ids = df["gene_id"][duplicated].tolist()
    df = df[~duplicated].set_index("gene_id")
    df.attrs["source"] = where
    df.attrs["duplicate_ids"] = duplicate_ids
    return df


HINT = (
    "an expression table is tab-separated: a header line 'gene_id<TAB>cell...' then one line per gene with "
    "one value per cell; fix or delete that line, or rebuild the table with `epx convert expression`"
)


def _read_file(path: Path) -> pd.DataFrame:
    rows = read_rows(path, what="expression table", hint=HINT, comment=None, header=True)
    header = rows.header
    while len(header) > 1 and header[-1].strip() == "":  # a trailing tab is not a column
        header.pop()
    if "gene_id" not in header:
        raise InputError(
            f"{path}: no 'gene_id' column in the header (line {rows.header_line}: {header[:8]}); the first line must "
            "name the columns, e.g. 'gene_id<TAB>E003<TAB>E004'"
        )
    seen = set()
    for k, name in enumerate(header):
        if not name.strip():
            raise InputError(f"{path}: column {k + 1} of the header (line {rows.header_line}) has no name; name it or delete it")
        if name in seen:
            raise InputError(f"{path}: column {name!r} appears twice in the header (line {rows.header_line}); keep one")
        seen.add(name)
    rows.check_width(len(header), len(header), expected=f"{len(header)} (as many as the header has)")
    columns = {}
    for k, name in enumerate(header):
        if name == "gene_id":
            columns[name] = rows.texts(k, "gene id")
        elif rows.column(k).str.fullmatch(r"-?[0-9]{1,18}").all():  # whole numbers stay integers, as pandas reads them
            columns[name] = rows.integers(k, f"value of {name}", minimum=None)
        else:  # anything not a number reads as NaN: dropped downstream as "non_finite_target"
            columns[name] = rows.floats(k, f"value of {name}", coerce=True)
    return pd.DataFrame(columns)


def read_expression(source: str | Path | pd.DataFrame, cell: str) -> pd.Series:
    table = source if isinstance(source, pd.DataFrame) and source.index.name == "gene_id" else read_expression_table(source)
    where = table.attrs.get("source", "the expression table")
    if cell not in table.columns:
        raise InputError(f"{where} has no column for cell {cell!r}; it has: {', '.join(map(str, table.columns))}")
    rpkm = pd.to_numeric(table[cell], errors="coerce").astype("float64")
    rpkm = rpkm.where(np.isfinite(rpkm) & (rpkm >= 0))
    rpkm.attrs["source"] = where
    return rpkm


def write_expression(df: pd.DataFrame, path: str | Path, *, float_format: str | None = None) -> Path:
    table = df.reset_index() if df.index.name == "gene_id" else df
    return write_csv(path, table, sep="\t", float_format=float_format)
