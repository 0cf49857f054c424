"""Roadmap RPKM matrix → ``expression.tsv`` of the dataset contract (DESIGN §2.1).

Contract:

- Input: Roadmap's ``57epigenomes.RPKM.pc`` (plain or ``.gz``) or any tab-separated
  matrix whose first column holds Ensembl gene ids and whose other columns are cells
  (EIDs), one header line. Trailing tabs at line ends (a common quirk of such matrices)
  are tolerated: columns beyond the header are ignored.
- Output: the same matrix with the first column renamed ``gene_id`` and its ids stripped
  of versions (``ENSG00000116213.11`` → ``ENSG00000116213``, ``epx.io.gene_ids``) so they
  join ``tss.bed``; written by ``epx.io.expression.write_expression``.
- Two rows whose ids are equal once stripped raise one ``ValueError`` naming the file and
  the ids: which value is the gene's is not ours to guess.
- Non-numeric expression values raise one ``ValueError`` naming the file and column.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from epx.io.expression import write_expression
from epx.io.gene_ids import normalise_gene_ids


def read_rpkm(path: str | os.PathLike) -> pd.DataFrame:
    """Read an RPKM matrix: ``gene_id`` (versions stripped) + one float column per cell."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"expression matrix {path} does not exist; Roadmap's is "
            "57epigenomes.RPKM.pc.gz (`epx download roadmap` fetches it)"
        )
    # index_col=False: rows with a trailing tab must not shift the ids into the index.
    table = pd.read_csv(path, sep="\t", index_col=False, dtype={0: str})
    if table.shape[1] < 2:
        raise ValueError(
            f"{path} has {table.shape[1]} column(s); expected tab-separated gene ids "
            "followed by one RPKM column per cell"
        )
    ids = normalise_gene_ids(table.iloc[:, 0])
    table = table.iloc[:, 1:]
    for column in table.columns:
        try:
            table[column] = pd.to_numeric(table[column])
        except (ValueError, TypeError) as err:
            raise ValueError(f"{path}: column {column!r} is not numeric ({err})") from err
    table.insert(0, "gene_id", ids.to_numpy())
    duplicated = table["gene_id"][table["gene_id"].duplicated()]
    if not duplicated.empty:
        raise ValueError(
            f"{path}: {duplicated.nunique()} gene id(s) occur more than once once versions "
            f"are stripped, e.g. {duplicated.iloc[0]!r}; keep one row per gene"
        )
    return table


def rpkm_to_expression(src: str | os.PathLike, out: str | os.PathLike) -> int:
    """Write ``read_rpkm(src)`` as ``expression.tsv`` at ``out``; return the gene count."""
    table = read_rpkm(src)
    write_expression(table, out)
    return len(table)
