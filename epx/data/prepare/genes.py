"""The gene table of one cell, with both task targets, and the account of every gene.

Contract: ``account_genes(tss, expression, cell, chrom_sizes, *, signal_chroms=None,
exclude_chroms=(), flank_bp=0, exact_names=False) -> GeneAccount``. Every row of the TSS file
and every gene of the expression table ends in exactly one place: ``account.genes`` (the
usable genes: ``gene_id, chrom, tss, strand, rpkm, target, label``, TSS-file order) or
``account.dropped`` (``gene_id, reason, source, chrom, tss, detail``; ``source`` is ``tss`` or
``expression``). Reasons (``REASONS``), checked in this order, first match wins:

- ``duplicate_id``: a gene id seen again (the first row is kept);
- ``excluded_chrom``: on a chromosome matching ``exclude_chroms`` (chrM, unplaced/alt contigs);
- ``tss_not_1bp``: the row is not a 1-bp interval (``end != start + 1``: a gene body, a
  peak or a promoter region given as a TSS; which base is the TSS is unknown);
- ``chrom_not_in_signals``: the chromosome, in every spelling (``epx.io.naming.reconcile``;
  only as written with ``exact_names``), is absent from the chrom sizes or from every
  requested mark's bigWig (``signal_chroms``);
- ``tss_off_chrom``: the TSS lies beyond its chromosome's end (another assembly);
- ``near_chrom_end``: the TSS is closer than ``flank_bp`` to a chromosome end, so the model's
  window would read past the chromosome;
- ``no_expression``: the id is not in the expression table;
- ``non_finite_target``: its expression is missing, non-numeric, negative or infinite;
- ``no_fold`` (``account.drop_unassigned(split)``, after the fold scheme ran): the chromosome
  belongs to no fold;
- ``no_tss`` (expression side): in the expression table but not in the TSS file.

Chromosome names of the TSS file are mapped to the chrom sizes' naming per record
(``account.renaming``). ``account.check(max_fraction)`` raises one ``InputError`` when more
than ``max_fraction`` of the TSS file's rows are dropped for reasons that are not a choice
(all but ``excluded_chrom`` and the expression-side ones), naming the file, each reason with
its count and examples, and the fix. ``account.log()`` writes one warning per reason;
``account.summary(split)`` is the job record's ``genes``; ``write_dropped(accounts, path)``
the job's ``genes_dropped.tsv`` (one row per dropped gene and cell). ``load_genes(...)`` is ``account_genes(...).genes``.

The targets are defined here, once:

- ``regression_target(rpkm) = log2(RPKM + 1)``;
- ``classification_label(rpkm, all_rpkm)`` = RPKM ≥ the cell's median over ALL genes of the
  expression table with a finite value (not only the genes with a TSS).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from epx.errors import InputError
from epx.io.atomic import write_csv
from epx.io.expression import read_expression, read_expression_table
from epx.io.naming import Renaming, chrom_sort_key, rename_column
from epx.io.tss import read_tss

log = logging.getLogger(__name__)

# The chromosomes a gene-expression study leaves out by default (data.exclude_chroms).
DEFAULT_EXCLUDE = (r"^(chr)?(M|MT)$", r"_", r"^(chr)?Un", r"^(GL|KI|JH)\d", r"^(chr)?EBV$")


@dataclass(frozen=True)
class Reason:
    text: str  # "<n> genes …" reads as a sentence
    fix: str
    chosen: bool = False  # a choice of the configuration, not a loss: outside the share


REASONS: dict[str, Reason] = {
    "duplicate_id": Reason(
        "are listed again under an id already seen (the first row is kept)",
        "keep one TSS per gene (e.g. the canonical transcript) in the TSS file",
    ),
    "excluded_chrom": Reason(
        "lie on chromosomes excluded by data.exclude_chroms (mitochondrion, unplaced or alt contigs)",
        "set data.exclude_chroms=[] to keep them",
        chosen=True,
    ),
    "tss_not_1bp": Reason(
        "have a TSS row that is not a 1-bp interval (end != start + 1: a gene body or a region, not a TSS)",
        "give one base per gene (start = the 0-based TSS, end = start + 1), e.g. rebuild the file with `epx convert gtf`",
    ),
    "chrom_not_in_signals": Reason(
        "lie on chromosomes that the signals do not have",
        "rename those chromosomes to the signals' naming, or give signals/chrom sizes that include them",
    ),
    "tss_off_chrom": Reason(
        "have a TSS beyond their chromosome's end",
        "use a TSS annotation from the same genome assembly as the signals",
    ),
    "near_chrom_end": Reason(
        "have a TSS closer to a chromosome end than the model's window reaches",
        "use a model with a narrower window, or set data.min_end_distance_bp",
    ),
    "no_expression": Reason(
        "have no row in the expression table",
        "use the same gene id type (e.g. Ensembl gene ids) in the TSS file and the expression table",
    ),
    "non_finite_target": Reason(
        "have a missing, non-numeric, negative or infinite expression value",
        "fill or remove those values in the expression table",
    ),
    "no_fold": Reason(
        "lie on chromosomes that belong to no fold of the fold scheme",
        "use dataset.folds.scheme=balanced, or give those genes a fold (dataset.folds.scheme=column)",
    ),
    "no_tss": Reason(
        "are in the expression table but not in the TSS file",
        "add their TSS if they should be modelled",
        chosen=True,
    ),
}
DROPPED_COLUMNS = ["gene_id", "reason", "source", "chrom", "tss", "detail"]


def regression_target(rpkm) -> np.ndarray:
    return np.log2(np.asarray(rpkm, dtype=np.float64) + 1.0)


def classification_label(rpkm, all_rpkm) -> np.ndarray:
    finite = np.asarray(all_rpkm, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return (np.asarray(rpkm, dtype=np.float64) >= float(np.median(finite))).astype(np.int64)


@dataclass
class GeneAccount:
    cell: str
    tss_file: str
    expression_file: str
    n_tss: int  # rows of the TSS file
    n_expression: int  # genes (rows) of the expression table
    genes: pd.DataFrame
    dropped: pd.DataFrame
    renaming: Renaming | None = None
    fix_hints: dict[str, str] = field(default_factory=dict)  # reason -> a more specific fix

    # -- bookkeeping --------------------------------------------------------------------
    def drop_unassigned(self, unassigned: np.ndarray) -> None:
        """Account the genes (a boolean mask over ``genes``) that no fold holds."""
        rows = self.genes[np.asarray(unassigned, bool)]
        self.dropped = pd.concat([self.dropped, _dropped(rows, "no_fold", "tss")], ignore_index=True)

    def counts(self) -> dict[str, int]:
        counts = self.dropped["reason"].value_counts()
        return {r: int(counts[r]) for r in REASONS if r in counts.index}

    def lost(self) -> pd.DataFrame:
        """The TSS-file rows dropped for reasons that count against the share."""
        chosen = [r for r, why in REASONS.items() if why.chosen]
        return self.dropped[(self.dropped["source"] == "tss") & ~self.dropped["reason"].isin(chosen)]

    def summary(self, split: pd.Series | None = None) -> dict:
        out = {
            "tss": self.n_tss,
            "expression": self.n_expression,
            "used": len(self.genes) - int((self.dropped["reason"] == "no_fold").sum()),
            "dropped": self.counts(),
            "dropped_total": int(len(self.dropped)),
        }
        if split is not None:
            out["split"] = {s: int((split == s).sum()) for s in ("train", "val", "test")}
            out["used"] = sum(out["split"].values())
        if self.renaming is not None and self.renaming.n_renamed:
            out["renamed"] = {"records": self.renaming.n_renamed, "names": dict(self.renaming.renamed)}
        return out

    # -- reporting ----------------------------------------------------------------------
    def _line(self, reason: str, rows: pd.DataFrame) -> str:
        examples = ", ".join(map(repr, rows["gene_id"].astype(str).head(3)))  # quoted: whitespace shows
        detail = rows["detail"].dropna()
        detail = f"; {detail.value_counts().index[0]}" if len(detail) else ""
        return f"{len(rows)} {REASONS[reason].text} (e.g. {examples}{detail})"

    def log(self) -> None:
        for reason, rows in self.dropped.groupby("reason", sort=False):
            log.warning("%s: %s", self.cell, self._line(str(reason), rows))

    def check(self, max_fraction: float) -> None:
        lost = self.lost()
        if not len(lost) or len(lost) <= max_fraction * max(self.n_tss, 1):
            return
        lines = []
        for reason, rows in lost.groupby("reason", sort=False):
            reason = str(reason)
            source = self.expression_file if reason in ("no_expression", "non_finite_target") else self.tss_file
            fix = self.fix_hints.get(reason, REASONS[reason].fix)
            lines.append(f"  - {self._line(reason, rows)} [{source}]: {fix}")
        raise InputError(
            f"{len(lost)} of {self.n_tss} genes in {self.tss_file} ({len(lost) / max(self.n_tss, 1):.0%}) would be dropped "
            f"for cell {self.cell}, more than data.max_dropped_fraction={max_fraction:g}:\n" + "\n".join(lines) + "\n"
            f"Fix the input, or set data.max_dropped_fraction=1 to train on the {len(self.genes) - len(lost[lost.reason == 'no_fold'])} genes left. "
            "Every dropped gene and its reason: genes_dropped.tsv in the job dir."
        )


def write_dropped(accounts: Mapping[str, GeneAccount], path: str | Path) -> Path:
    """One ``genes_dropped.tsv`` for a job's cells: ``cell`` + ``DROPPED_COLUMNS``, by reason."""
    order = {r: k for k, r in enumerate(REASONS)}
    tables = [a.dropped.assign(cell=cell) for cell, a in accounts.items()]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["cell", *DROPPED_COLUMNS])
    table = table.iloc[np.argsort(table["reason"].map(order).to_numpy(), kind="stable")]
    return write_csv(path, table[["cell", *DROPPED_COLUMNS]], sep="\t")


def _dropped(rows: pd.DataFrame, reason: str, source: str, detail=None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "gene_id": rows["gene_id"].to_numpy(),
            "reason": reason,
            "source": source,
            "chrom": rows["chrom"].to_numpy() if "chrom" in rows else None,
            "tss": rows["tss"].to_numpy() if "tss" in rows else pd.array([pd.NA] * len(rows), dtype="Int64"),
            "detail": detail if detail is not None else None,
        },
        columns=DROPPED_COLUMNS,
    )


def _excluded(chroms: pd.Series, patterns: Iterable[str]) -> np.ndarray:
    regex = [re.compile(p) for p in patterns]
    if not regex:
        return np.zeros(len(chroms), bool)
    hit = {c: any(r.search(c) for r in regex) for c in chroms.unique()}
    return chroms.map(hit).to_numpy(bool)


def _missing_chrom_hint(unknown: dict[str, int], chrom_sizes: Mapping[str, int], exact: bool) -> str:
    names = ", ".join(f"`{c}`" for c in sorted(unknown, key=chrom_sort_key)[:4])
    known = ", ".join(sorted(chrom_sizes, key=chrom_sort_key)[:3])
    hint = f"on {names}, which the signals do not have (they have {known}, …)"
    if exact:
        hint += "; dataset.chrom_names=exact is set, so `1` and `chr1` are not matched"
    return hint


def account_genes(
    tss_source,
    expression_source,
    cell: str,
    chrom_sizes: Mapping[str, int],
    *,
    signal_chroms: Iterable[str] | None = None,
    exclude_chroms: Iterable[str] = (),
    flank_bp: int = 0,
    exact_names: bool = False,
) -> GeneAccount:
    tss_file = str(tss_source) if not isinstance(tss_source, pd.DataFrame) else "the TSS table"
    table = read_expression_table(expression_source)
    expression_file = table.attrs.get("source", "the expression table")
    rpkm = read_expression(table, cell)
    tss = read_tss(tss_source, with_end=True)
    n_tss = len(tss)
    in_tss = set(tss["gene_id"])
    parts: list[pd.DataFrame] = []

    def drop(mask: np.ndarray, reason: str, detail=None) -> None:
        nonlocal tss
        mask = np.asarray(mask, bool)
        if mask.any():
            parts.append(_dropped(tss[mask], reason, "tss", detail[mask] if isinstance(detail, np.ndarray) else detail))
            tss = tss[~mask].reset_index(drop=True)

    drop(tss["gene_id"].duplicated().to_numpy(), "duplicate_id")
    drop(_excluded(tss["chrom"], exclude_chroms), "excluded_chrom")
    wide = (tss["end"] - tss["tss"]).to_numpy(np.int64) != 1
    if wide.any():
        drop(wide, "tss_not_1bp", np.array([f"[{start:,}, {end:,}): {end - start:,} bp" for start, end in zip(tss["tss"], tss["end"])], dtype=object))
    tss = tss.drop(columns="end")

    names, renaming = rename_column(tss["chrom"], chrom_sizes, what=tss_file, exact=exact_names)
    renaming.log()
    tss["chrom"] = names
    available = set(chrom_sizes) if signal_chroms is None else set(chrom_sizes) & set(signal_chroms)
    missing = ~tss["chrom"].isin(available).to_numpy()
    hints = {}
    if missing.any():
        unknown = tss["chrom"][missing].value_counts().to_dict()
        hints["chrom_not_in_signals"] = f"{REASONS['chrom_not_in_signals'].fix} ({_missing_chrom_hint(unknown, chrom_sizes, exact_names)})"
        detail = np.where(tss["chrom"].isin(chrom_sizes), "chromosome in no requested bigWig", "chromosome not in the chrom sizes")
        drop(missing, "chrom_not_in_signals", detail)

    length = tss["chrom"].map(chrom_sizes).to_numpy(np.int64)
    position = tss["tss"].to_numpy(np.int64)
    off = position >= length
    near = ~off & ((position < flank_bp) | (length - position <= flank_bp)) if flank_bp > 0 else np.zeros_like(off)
    drop(off, "tss_off_chrom")
    drop(near[~off], "near_chrom_end", f"within {flank_bp:,} bp of a chromosome end")

    drop(~tss["gene_id"].isin(rpkm.index).to_numpy(), "no_expression")
    drop(~np.isfinite(rpkm.reindex(tss["gene_id"]).to_numpy()), "non_finite_target")

    expr_only = rpkm.index[~rpkm.index.isin(in_tss)]
    parts.append(_dropped(pd.DataFrame({"gene_id": expr_only, "chrom": None}), "no_tss", "expression"))
    dup_expr = list(table.attrs.get("duplicate_ids", []))
    parts.append(_dropped(pd.DataFrame({"gene_id": dup_expr, "chrom": None}), "duplicate_id", "expression", "row repeated in the expression table"))

    genes = tss.reset_index(drop=True)
    genes["rpkm"] = rpkm.reindex(genes["gene_id"]).to_numpy()
    genes["target"] = regression_target(genes["rpkm"])
    genes["label"] = classification_label(genes["rpkm"], rpkm.to_numpy())
    parts = [p for p in parts if len(p)]
    dropped = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=DROPPED_COLUMNS)
    return GeneAccount(
        cell=str(cell),
        tss_file=tss_file,
        expression_file=str(expression_file),
        n_tss=n_tss,
        n_expression=len(table) + len(dup_expr),
        genes=genes,
        dropped=dropped,
        renaming=renaming,
        fix_hints=hints,
    )


def load_genes(tss_source, expression_source, cell: str, chrom_sizes, **options) -> pd.DataFrame:
    """The usable genes alone (``account_genes(...).genes``); the account is logged."""
    account = account_genes(tss_source, expression_source, cell, chrom_sizes, **options)
    account.log()
    return account.genes
