"""The gene table of one cell: TSS joined with expression, with both task targets.

Contract: ``load_genes(tss, expression_table, cell, chrom_sizes) -> DataFrame`` with columns
``gene_id, chrom, tss, strand, rpkm, target`` and ``label``, one row per gene present in
both files. The targets are defined here, once:

- ``regression_target(rpkm) = log2(RPKM + 1)``;
- ``classification_label(rpkm, all_rpkm)`` = RPKM ≥ the cell's median over ALL genes of the
  expression table (not only the genes with a TSS).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from epx.errors import InputError
from epx.io.expression import read_expression
from epx.io.tss import read_tss

log = logging.getLogger(__name__)


def regression_target(rpkm) -> np.ndarray:
    return np.log2(np.asarray(rpkm, dtype=np.float64) + 1.0)


def classification_label(rpkm, all_rpkm) -> np.ndarray:
    return (np.asarray(rpkm, dtype=np.float64) >= float(np.median(all_rpkm))).astype(np.int64)


def load_genes(tss_source, expression_source, cell: str, chrom_sizes) -> pd.DataFrame:
    tss = read_tss(tss_source, chrom_sizes)
    rpkm = read_expression(expression_source, cell)
    genes = tss[tss["gene_id"].isin(rpkm.index)].reset_index(drop=True)
    if genes.empty:
        raise InputError(
            f"no gene id of the TSS file matches the expression table (e.g. {tss.gene_id.iloc[0] if len(tss) else '—'} "
            f"vs {rpkm.index[0] if len(rpkm) else '—'}); use the same id type (e.g. Ensembl gene ids) in both."
        )
    dropped = len(tss) - len(genes)
    if dropped:
        log.info("%d of %d TSS genes have no expression value for %s and are left out", dropped, len(tss), cell)
    genes["rpkm"] = rpkm.reindex(genes["gene_id"]).to_numpy()
    genes["target"] = regression_target(genes["rpkm"])
    genes["label"] = classification_label(genes["rpkm"], rpkm.to_numpy())
    return genes
