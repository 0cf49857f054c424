"""Chromosome-held-out folds, identical for every model (DESIGN §2.3).

Contract: ``assign_splits(genes, fold, scheme=..., n_folds=4, val_fraction=0.1, ...) ->
Series['train'|'val'|'test']`` aligned to ``genes`` (columns ``gene_id``, ``chrom``).

Schemes (a registry, ``SCHEMES``): ``chromoformer`` — the published human grouping, for any
``chrN``/``N`` naming; ``balanced`` — chromosomes sorted by gene count (desc, ties in natural
order) each go to the fold with the fewest genes (ties: lowest fold); ``column`` — a table
(``gene_id`` + ``column``) gives each gene's fold. Test = fold k; validation = whole
chromosomes of the other folds, chosen deterministically (natural order rotated by k, greedily
up to ``val_fraction`` of the non-test genes); train = the rest. No set or hash order is used,
so every process and machine gets the same assignment. "Natural order" is
``epx.io.naming.chrom_sort_key`` (1..22, X, Y, M, others).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from epx.errors import InputError
from epx.io.gene_ids import normalise_gene_ids
from epx.io.naming import chrom_sort_key, strip_chr
from epx.io.tables import MISSING, read_rows

CHROMOFORMER_GROUPS = (
    ("1", "5", "6", "8", "14", "Y"),
    ("7", "10", "11", "12", "15", "21"),
    ("2", "3", "4", "16", "18", "20"),
    ("9", "13", "17", "19", "22", "X"),
)


def chromoformer_folds(genes: pd.DataFrame, n_folds: int = 4, **_) -> pd.Series:
    if n_folds != len(CHROMOFORMER_GROUPS):
        raise InputError(f"the chromoformer fold scheme has {len(CHROMOFORMER_GROUPS)} folds, not {n_folds}; use dataset.folds.scheme=balanced")
    lookup = {c: k for k, group in enumerate(CHROMOFORMER_GROUPS) for c in group}
    fold = genes["chrom"].map(lambda c: lookup.get(strip_chr(c), -1))
    if (fold < 0).all():
        raise InputError(
            "no gene is on a human chromosome (chr1..22, X, Y), so the chromoformer fold scheme does not apply; "
            "set dataset.folds.scheme=balanced"
        )
    return fold


def balanced_folds(genes: pd.DataFrame, n_folds: int = 4, **_) -> pd.Series:
    counts = genes["chrom"].value_counts()
    order = sorted(counts.index, key=lambda c: (-counts[c], chrom_sort_key(c)))
    if len(order) < n_folds:
        raise InputError(f"{len(order)} chromosomes carry genes, fewer than the {n_folds} folds requested; lower dataset.folds.n_folds")
    load = [0] * n_folds
    lookup = {}
    for chrom in order:
        k = int(np.argmin(load))
        lookup[chrom] = k
        load[k] += counts[chrom]
    return genes["chrom"].map(lookup)


def column_folds(genes: pd.DataFrame, n_folds: int = 4, table: str | Path | None = None, column: str = "fold", **_) -> pd.Series:
    if table is None:
        raise InputError("dataset.folds.scheme=column needs dataset.folds.table=/path/to/table.tsv (gene_id + a fold column)")
    path = Path(table)
    if not path.exists():
        raise InputError(f"fold table not found: {path}")
    folds = _read_fold_table(path, column)
    fold = genes["gene_id"].map(folds).fillna(-1).astype(int)
    if fold.max() >= n_folds:
        raise InputError(f"{path}: column {column!r} has fold {fold.max()} but n_folds={n_folds}")
    return fold


def _read_fold_table(path: Path, column: str) -> pd.Series:
    """``{gene_id: fold}`` from a TSV with a header naming ``gene_id`` and ``column`` (plain or
    gzip); an empty or NA fold field means "no fold" (-1). Broken files: one ``InputError``."""
    hint = f"a fold table is tab-separated with a header naming gene_id and {column!r}, then one line per gene with an integer fold; fix or delete that line"
    rows = read_rows(path, what="fold table", hint=hint, comment=None, header=True)
    while len(rows.header) > 1 and not rows.header[-1].strip():  # a trailing tab is not a column
        rows.header.pop()
    if column not in rows.header or "gene_id" not in rows.header:
        raise InputError(f"{path}: needs columns gene_id and {column!r}; has {rows.header}")
    rows.check_width(len(rows.header), len(rows.header), expected=f"{len(rows.header)} (as many as the header has)")
    ids = normalise_gene_ids(rows.texts(rows.header.index("gene_id"), "gene id"))
    k = rows.header.index(column)
    blank = rows.column(k).str.strip().isin(list(MISSING)).to_numpy()
    for i in np.flatnonzero(blank):
        rows.fields[i][k] = "-1"
    folds = pd.Series(rows.integers(k, f"fold ({column})", minimum=-1), index=ids.to_numpy())
    repeated = folds.index.duplicated()
    if repeated.any():
        i = int(np.argmax(repeated))
        raise rows.fail(i, f"gene {folds.index[i]!r} listed again; keep one fold per gene")
    return folds


SCHEMES: dict[str, Callable[..., pd.Series]] = {
    "chromoformer": chromoformer_folds,
    "balanced": balanced_folds,
    "column": column_folds,
}


def gene_folds(genes: pd.DataFrame, scheme: str = "chromoformer", n_folds: int = 4, **options) -> pd.Series:
    """Each gene's test fold (-1: on no fold's chromosome, never used)."""
    if scheme not in SCHEMES:
        raise InputError(f"unknown fold scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    return SCHEMES[scheme](genes, n_folds=n_folds, **options).astype(int)


def validation_chromosomes(genes: pd.DataFrame, folds: pd.Series, fold: int, val_fraction: float) -> list[str]:
    pool = genes.loc[(folds != fold) & (folds >= 0), "chrom"].value_counts()
    if pool.empty or val_fraction <= 0:
        return []
    order = sorted(pool.index, key=chrom_sort_key)
    shift = (fold * len(order)) // max(1 + int(folds.max()), 1)
    order = order[shift:] + order[:shift]
    target = val_fraction * pool.sum()
    chosen, size = [], 0
    for chrom in order:
        if size >= target:
            break
        if size + pool[chrom] <= 1.5 * target:
            chosen.append(chrom)
            size += pool[chrom]
    if not chosen:
        chosen = [min(order, key=lambda c: (pool[c], chrom_sort_key(c)))]
    if len(chosen) == len(order):
        raise InputError("validation would take every training chromosome; lower dataset.folds.val_fraction")
    return sorted(chosen, key=chrom_sort_key)


def assign_splits(
    genes: pd.DataFrame, fold: int, scheme: str = "chromoformer", n_folds: int = 4, val_fraction: float = 0.1, **options
) -> pd.Series:
    if not 0 <= fold < n_folds:
        raise InputError(f"fold={fold} is out of range; valid folds: {', '.join(map(str, range(n_folds)))}")
    folds = gene_folds(genes, scheme=scheme, n_folds=n_folds, **options)
    val_chroms = validation_chromosomes(genes, folds, fold, val_fraction)
    split = pd.Series("train", index=genes.index, dtype=object)
    split[genes["chrom"].isin(val_chroms) & (folds != fold)] = "val"
    split[folds == fold] = "test"
    split[folds < 0] = "unused"
    for name in ("train", "test"):
        if not (split == name).any():
            raise InputError(f"fold {fold} of scheme {scheme!r} leaves no {name} genes; use another scheme or more genes")
    return split


def fold_record(genes: pd.DataFrame, split: pd.Series, fold: int, scheme: str) -> dict:
    """What ``folds.json`` stores: the scheme, and each split's chromosomes and gene ids."""
    return {
        "fold": fold,
        "scheme": scheme,
        "chromosomes": {s: sorted(genes.loc[split == s, "chrom"].unique(), key=chrom_sort_key) for s in ("train", "val", "test")},
        "genes": {s: genes.loc[split == s, "gene_id"].tolist() for s in ("train", "val", "test")},
    }
