"""The gene table of one cell: TSS joined with expression, with both task targets.

Contract: ``load_genes(tss, expression_table, cell, chrom_sizes) -> DataFrame`` with columns
``gene_id, chrom, tss, strand, rpkm, target`` (log2(RPKM+1)) and ``label`` (RPKM ≥ the cell's
median over ALL genes of the expression table), one row per gene present in both files.
"""

from __future__ import annotations

import logging

import pandas as pd

from epx.errors import InputError
from epx.io.expression import classification_label, read_expression, regression_target
from epx.io.tss import read_tss

log = logging.getLogger(__name__)


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
