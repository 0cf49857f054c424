"""Candidate enhancer–gene pairs with labels: the element table of enhancer validation.

Contract: ``read_elements(path, genes, chrom_sizes, *, window=None, cell=None, scope=None,
exact_names=False) -> (table, ElementReport)``.

The file is read by ``epx.io.elements.read_element_table`` (its layout, header spellings and
errors are there); this module matches its rows to a dataset's genes, chromosomes and a
model's window.

Chromosome names are mapped to the dataset's naming per record (``epx.io.naming.
rename_column``: ``1`` ↔ ``chr1``). Nothing is dropped silently: every row of the file (of
``cell``, when the table has a ``cell`` column) is in ``table``, with ``unscorable`` "" or
the first reason that applies (``REASONS``, in this order):

- ``unknown_gene``: the gene is not in ``genes`` (the dataset's gene table);
- ``not_analysed``: the gene is known but not among ``scope`` (e.g. not a test gene of the
  job's fold);
- ``unknown_chrom``: the chromosome is in no spelling of ``chrom_sizes``;
- ``other_chrom``: the element lies on another chromosome than its gene's TSS;
- ``beyond_chrom_end``: the element ends past its chromosome's end (another assembly?);
- ``outside_window``: the element's midpoint lies outside the model's window for that gene.

``window`` is how far the model sees: None (no limit), an int (bp each side of the TSS:
the midpoint must lie in ``[tss - window, tss + window)``), or a callable ``window(genes) ->
(lo, hi)`` giving each gene's window in genomic bp (``graphreg_window`` for GraphReg's
6 Mb tiles). The validation scores rows ``outside_window`` at the scorer's floor (the model
could not see them) and leaves the other unscorable rows out, counted.

``table`` columns: ``element`` (row number in the file, 0-based, in file order), ``line``
(line number in the file), ``chrom`` (dataset naming), ``start``, ``end``, ``gene_id``,
``significant`` (bool), ``effect_size``, [``cell``], the extra columns, then ``gene_chrom``,
``tss``, ``strand`` (of the gene; missing for unknown genes), ``mid`` and ``distance_bp``
(midpoint − TSS) and ``unscorable``. An extra column whose name is taken is kept as
``file_<name>``.

A table none of whose rows can be evaluated (each has a reason other than
``outside_window``) is one ``InputError`` naming the file, each reason's count, examples and
fix; rows all ``outside_window`` are a warning (the model scores at its floor: the
promoter CNN's 6 kb window on distal elements). ``ElementReport`` counts the rows read, per reason, the scorable
ones and their positives, the renamed chromosomes and the rows of other cells left out;
``report.log()`` writes one line per reason (a warning; ``not_analysed``, a choice, as
information), ``report.to_dict()`` is what an output keeps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from epx.errors import InputError
from epx.io.elements import read_element_table
from epx.io.naming import Renaming, rename_column

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reason:
    text: str  # "<n> elements …"
    fix: str
    floor: bool = False  # scored at the floor (counted in AUPRC) rather than left out
    chosen: bool = False  # the analysis's choice (logged as information), not a problem of the file


REASONS: dict[str, Reason] = {
    "unknown_gene": Reason(
        "name a gene that is not in the dataset's gene table",
        "use the dataset's gene ids (the tss.bed names, e.g. Ensembl ids rather than gene symbols)",
    ),
    "not_analysed": Reason(
        "name a gene of the dataset that this analysis does not score (e.g. not a test gene of the fold)",
        "analyse the split that holds those genes, or the job of the fold that tests them",
        chosen=True,
    ),
    "unknown_chrom": Reason(
        "lie on a chromosome the dataset does not have (in any spelling, e.g. chr1 or 1)",
        "use the dataset's genome assembly and chromosome names",
    ),
    "other_chrom": Reason(
        "lie on another chromosome than their gene's TSS",
        "list cis pairs only: no model here sees another chromosome",
    ),
    "beyond_chrom_end": Reason(
        "end past their chromosome's end",
        "use coordinates of the dataset's genome assembly (lift them over)",
    ),
    "outside_window": Reason(
        "lie outside the model's window around their gene (scored at the floor)",
        "use a model with a wider window (GraphReg sees 2-4 Mb each side), or expect those elements unscored",
        floor=True,
    ),
}
N_EXAMPLES = 3
COMPUTED = ("gene_chrom", "tss", "strand", "mid", "distance_bp", "unscorable")


@dataclass
class ElementReport:
    path: str
    n_rows: int = 0  # rows of the file (of the chosen cell)
    n_other_cells: int = 0  # rows of other cells, left out by ``cell``
    counts: dict[str, int] = field(default_factory=dict)  # reason -> rows
    examples: dict[str, list[str]] = field(default_factory=dict)
    n_scorable: int = 0  # rows with no reason
    n_evaluated: int = 0  # scorable + floored (outside_window): the rows AUPRC counts
    n_positive: int = 0  # evaluated rows with significant = 1
    n_genes: int = 0  # distinct genes of the evaluated rows
    renaming: Renaming | None = None
    cell: str | None = None

    def lines(self) -> list[str]:
        out = []
        for reason, n in self.counts.items():
            why = REASONS[reason]
            out.append(f"{n} element(s) {why.text} (e.g. {'; '.join(self.examples.get(reason, []))}); fix: {why.fix}")
        return out

    def log(self) -> None:
        if self.renaming is not None:
            self.renaming.log()
        if self.n_other_cells:
            log.info("%s: %d row(s) of other cells than %s left out", self.path, self.n_other_cells, self.cell)
        for reason, line in zip(self.counts, self.lines()):
            (log.info if REASONS[reason].chosen else log.warning)("%s: %s", self.path, line)

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "cell": self.cell,
            "n_rows": self.n_rows,
            "n_other_cells": self.n_other_cells,
            "n_scorable": self.n_scorable,
            "n_evaluated": self.n_evaluated,
            "n_positive": self.n_positive,
            "n_genes": self.n_genes,
            "unscorable": dict(self.counts),
            "examples": {k: list(v) for k, v in self.examples.items()},
            "renaming": self.renaming.to_dict() if self.renaming is not None else None,
        }


# ----------------------------------------------------------------------------- reading


def _pick_cell(table: pd.DataFrame, cell: str | None, path: Path) -> tuple[pd.DataFrame, int]:
    if "cell" not in table.columns:
        return table, 0
    cells = list(dict.fromkeys(table["cell"]))
    if cell is None:
        if len(cells) == 1:
            return table, 0
        raise InputError(
            f"{path} holds elements of {len(cells)} cells ({', '.join(cells[:6])}{', …' if len(cells) > 6 else ''}); "
            "name the cell to validate (the job's cell is used by `epx explain`)"
        )
    keep = (table["cell"] == str(cell)).to_numpy()
    if not keep.any():
        raise InputError(
            f"{path} has no element of cell {cell} (its cells: {', '.join(cells[:11])}); "
            "validate a job of one of those cells, or give that cell's element table"
        )
    return table[keep].reset_index(drop=True), int((~keep).sum())


# ----------------------------------------------------------------------------- windows


WindowSpec = int | Callable[[pd.DataFrame], tuple[np.ndarray, np.ndarray]] | None


def graphreg_window(*, window_bp: int = 6_000_000, step_bp: int = 2_000_000) -> Callable[[pd.DataFrame], tuple[np.ndarray, np.ndarray]]:
    """GraphReg / Epi-CNN's window per gene: the 6 Mb tile whose 2 Mb middle holds its TSS, as
    the builder defines it (``GraphRegInputs.intervals``)."""
    from epx.data.inputs.graphreg.windows import GraphRegInputs

    builder = GraphRegInputs(window_bp=window_bp, step_bp=step_bp)
    return lambda genes: builder.intervals(genes).bounds()


def _window_bounds(window: WindowSpec, genes: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    if callable(window):
        lo, hi = window(genes)
        return np.asarray(lo, np.int64), np.asarray(hi, np.int64)
    tss = genes["tss"].to_numpy(np.int64)
    return tss - int(window), tss + int(window)


# ----------------------------------------------------------------------------- public API


def read_elements(
    path: str | Path,
    genes: pd.DataFrame,
    chrom_sizes: Mapping[str, int],
    *,
    window: WindowSpec = None,
    cell: str | None = None,
    scope: Iterable[str] | None = None,
    exact_names: bool = False,
) -> tuple[pd.DataFrame, ElementReport]:
    """The element table of ``path`` with an ``unscorable`` reason per row, and its report."""
    path = Path(path)
    table, n_other = _pick_cell(read_element_table(path, reserved=COMPUTED), cell, path)
    report = ElementReport(path=str(path), n_rows=len(table), n_other_cells=n_other, cell=cell)

    chroms, renaming = rename_column(table["chrom"], chrom_sizes, what=str(path), exact=exact_names)
    table["chrom"] = chroms
    report.renaming = renaming

    info = genes.drop_duplicates("gene_id").set_index("gene_id")
    known_gene = table["gene_id"].isin(info.index).to_numpy()
    ids = table["gene_id"].where(known_gene)
    table["gene_chrom"] = ids.map(info["chrom"]).to_numpy(dtype=object)
    table["tss"] = ids.map(info["tss"]).astype("Int64")
    table["strand"] = ids.map(info["strand"]).to_numpy(dtype=object)
    table["mid"] = (table["start"] + table["end"]) // 2
    table["distance_bp"] = (table["mid"] - table["tss"]).astype("Int64")

    in_scope = np.ones(len(table), bool) if scope is None else table["gene_id"].isin(set(map(str, scope))).to_numpy()
    known_chrom = np.array([c in chrom_sizes for c in table["chrom"]], bool)
    same_chrom = known_gene & (table["chrom"].to_numpy() == table["gene_chrom"].to_numpy())
    size = np.array([chrom_sizes.get(c, np.iinfo(np.int64).max) for c in table["chrom"]], np.int64)
    beyond = table["end"].to_numpy() > size
    outside = np.zeros(len(table), bool)
    if window is not None and same_chrom.any():
        rows = np.flatnonzero(same_chrom)
        lo, hi = _window_bounds(window, table.iloc[rows][["gene_id", "gene_chrom", "tss", "strand"]].rename(columns={"gene_chrom": "chrom"}).astype({"tss": np.int64}))
        mid = table["mid"].to_numpy()[rows]
        outside[rows] = (mid < lo) | (mid >= hi)

    checks = {
        "unknown_gene": ~known_gene,
        "not_analysed": ~in_scope,
        "unknown_chrom": ~known_chrom,
        "other_chrom": ~same_chrom,
        "beyond_chrom_end": beyond,
        "outside_window": outside,
    }
    reason = np.full(len(table), "", dtype=object)
    for name, hit in checks.items():
        new = hit & (reason == "")
        reason[new] = name
        if new.any():
            report.counts[name] = int(new.sum())
            report.examples[name] = [_example(table.iloc[i]) for i in np.flatnonzero(new)[:N_EXAMPLES]]
    table["unscorable"] = reason
    report.n_scorable = int((reason == "").sum())
    kept = evaluated(table)
    report.n_evaluated = int(kept.sum())
    report.n_positive = int(table["significant"].to_numpy()[kept].sum())
    report.n_genes = int(table["gene_id"][kept].nunique())
    if not report.n_evaluated:
        raise InputError(_none_scorable(path, report))
    return table, report


def _example(row: pd.Series) -> str:
    return f"line {row['line']}: {row['chrom']}:{row['start']}-{row['end']} {row['gene_id']}"


def _none_scorable(path: Path, report: ElementReport) -> str:
    head = f"{path}: none of its {report.n_rows} element(s) can be scored"
    if report.cell is not None:
        head += f" for cell {report.cell}"
    return head + ": " + " ".join(f"{line}." for line in report.lines())


def evaluated(table: pd.DataFrame) -> np.ndarray:
    """Rows the validation evaluates: scorable ones and those a scorer floors (``outside_window``)."""
    floor = [name for name, why in REASONS.items() if why.floor]
    return table["unscorable"].isin(["", *floor]).to_numpy()
