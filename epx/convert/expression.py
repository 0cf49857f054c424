"""Roadmap RPKM matrix → ``expression.tsv`` of the dataset contract (DESIGN §2.1).

Contract:

- Input: Roadmap's ``57epigenomes.RPKM.pc`` (plain or ``.gz``) or any tab-separated
  matrix whose first column holds Ensembl gene ids and whose other columns are cells
  (EIDs), one header line. Trailing tabs at line ends (a common quirk of such matrices)
  are tolerated: they are not columns. CRLF line ends and a UTF-8 BOM read correctly.
- Output: the same matrix with the first column renamed ``gene_id`` and its ids stripped
  of versions (``ENSG00000116213.11`` → ``ENSG00000116213``, ``epx.io.gene_ids``) so they
  join ``tss.bed``; written by ``epx.io.expression.write_expression``.
- Two rows whose ids are equal once stripped raise one ``InputError`` (a ``ValueError``)
  naming the file, the line and the id: which value is the gene's is not ours to guess.
- Missing values (``NA``, empty, ``NaN``...) read as NaN; other non-numeric values, a line
  with more or fewer values than the header, an empty or truncated file (plain or gzip) or
  a binary file raise one ``InputError`` naming the file and the line (``epx.io.tables``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from epx.errors import InputError
from epx.io.expression import write_expression
from epx.io.gene_ids import normalise_gene_ids
from epx.io.tables import MISSING, read_rows


HINT = (
    "an RPKM matrix is tab-separated: one header line (gene id column, then one cell id per column), then one "
    "line per gene with one number per cell; fix or delete that line, or re-download the matrix"
)


def read_rpkm(path: str | os.PathLike) -> pd.DataFrame:
    """Read an RPKM matrix: ``gene_id`` (versions stripped) + one float column per cell."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"expression matrix {path} does not exist; Roadmap's is "
            "57epigenomes.RPKM.pc.gz (`epx download roadmap` fetches it)"
        )
    rows = read_rows(path, what="RPKM matrix", hint=HINT, comment=None, header=True)
    header = rows.header
    while len(header) > 1 and not header[-1].strip():  # trailing tabs are not cells
        header.pop()
    if len(header) < 2:
        raise InputError(
            f"{path} has {len(header)} column(s) in its header (line {rows.header_line}); expected tab-separated gene "
            "ids followed by one RPKM column per cell"
        )
    cells = header[1:]
    for k, cell in enumerate(cells, start=2):
        if not cell.strip():
            raise InputError(f"{path}: column {k} of the header (line {rows.header_line}) has no name; it should be a cell id")
        if cells.index(cell) != k - 2:
            raise InputError(f"{path}: cell {cell!r} appears twice in the header (line {rows.header_line}); keep one column per cell")
    rows.check_width(len(header), len(header), expected=f"{len(header)} (as many as the header has)")
    ids = normalise_gene_ids(rows.texts(0, "gene id"))
    table = pd.DataFrame({"gene_id": ids.to_numpy()})
    for k, cell in enumerate(cells, start=1):
        if rows.column(k).str.fullmatch(r"-?[0-9]{1,18}").all():  # whole numbers stay integers, as pandas reads them
            table[cell] = rows.integers(k, f"RPKM of {cell}", minimum=None)
        else:
            table[cell] = rows.floats(k, f"RPKM of {cell}", missing=MISSING)
    duplicated = table["gene_id"].duplicated().to_numpy()
    if duplicated.any():
        i = int(np.argmax(duplicated))
        first = int(np.argmax((table["gene_id"] == table["gene_id"][i]).to_numpy()))
        raise InputError(
            f"{path}, line {rows.lines[i]}: gene id {table['gene_id'][i]!r} occurs again once versions are stripped "
            f"(first on line {rows.lines[first]}; {int(duplicated.sum())} such row(s)); keep one row per gene"
        )
    return table


def rpkm_to_expression(src: str | os.PathLike, out: str | os.PathLike) -> int:
    """Write ``read_rpkm(src)`` as ``expression.tsv`` at ``out``; return the gene count."""
    table = read_rpkm(src)
    write_expression(table, out)
    return len(table)
