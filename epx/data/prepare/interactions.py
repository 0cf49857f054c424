"""Which interactions are contacts: the dataset's score threshold, applied once per cell.

Contract: ``ContactFilter(score_kind="frequency", threshold=1.5)`` (``dataset.interactions``)
``.apply(df)`` keeps the rows the threshold admits (``frequency >= t`` or ``qvalue <= t``;
NaN scores never pass; ``threshold=None`` keeps every row with a finite score) and adds a
``strength`` column, "larger = stronger contact" (a frequency as is, a q-value as -log10 q).
The DataModule applies it when it reads a cell's BEDPE, so every distal model (Chromoformer's
pCREs, GraphReg's graph) sees the same contacts and no input builder filters on its own.

``prepare_contacts(raw, contact_filter, chroms, what=, exact=False) -> (contacts,
InteractionAccount)``: both anchors' chromosome names mapped to the signals' naming per row
(``epx.io.naming.rename_column``), rows whose chromosome is in no spelling of ``chroms``
left out and counted (``unknown_chrom``); when ``chroms`` is a mapping of chromosome sizes,
rows with an anchor that ends past its chromosome's end (another assembly, a shifted file)
left out, counted (``off_chrom``) and logged with examples, never used; then the filter. ``account.link(genes, tolerance_bp)`` counts the
contacts with an anchor at a used gene's promoter (TSS ± tolerance, the partner elsewhere;
``epx.data.inputs.pcres.gene_links``) and the genes with at least one such link;
``account.check()`` refuses a file of which no row reaches any gene — a distal model would
silently run as a promoter-only model — naming the file, where the rows were lost, and the
fix. ``account.summary()`` is the job record's ``interactions``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from epx.errors import InputError
from epx.io.naming import Renaming, rename_column

log = logging.getLogger(__name__)

SCORE_FILTERS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "frequency": np.greater_equal,
    "qvalue": np.less_equal,
}
# A q-value of 0 (reported by some callers) would give an infinite strength.
MIN_QVALUE = 1e-300
SCORE_STRENGTH: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "frequency": lambda s: s,
    "qvalue": lambda s: -np.log10(np.maximum(s, MIN_QVALUE)),
}


def check_score_kind(score_kind: str) -> None:
    if score_kind not in SCORE_FILTERS:
        raise InputError(
            f"unknown interaction score_kind {score_kind!r}; choose one of {sorted(SCORE_FILTERS)} "
            "(dataset.interactions.score_kind)"
        )


def significant(df: pd.DataFrame, *, score_kind: str, threshold: float) -> pd.DataFrame:
    check_score_kind(score_kind)
    scores = pd.to_numeric(df["score"], errors="coerce").to_numpy(dtype=np.float64)
    return df.loc[SCORE_FILTERS[score_kind](scores, threshold)].reset_index(drop=True)


def strength(scores: np.ndarray, score_kind: str) -> np.ndarray:
    check_score_kind(score_kind)
    return SCORE_STRENGTH[score_kind](np.asarray(scores, np.float64))


@dataclass(frozen=True)
class ContactFilter:
    score_kind: str = "frequency"
    threshold: float | None = 1.5

    def __post_init__(self) -> None:
        check_score_kind(self.score_kind)

    def apply(self, df: pd.DataFrame) -> pd.DataFrame:
        """Rows of a BEDPE table that are contacts, with their ``strength``."""
        if self.threshold is None:
            kept = df[np.isfinite(pd.to_numeric(df["score"], errors="coerce").to_numpy(np.float64))].reset_index(drop=True)
        else:
            kept = significant(df, score_kind=self.score_kind, threshold=float(self.threshold))
        return kept.assign(strength=strength(kept["score"].to_numpy(), self.score_kind))


@dataclass
class InteractionAccount:
    file: str
    rule: str  # the threshold, as the user sets it
    read: int = 0
    unknown_chrom: int = 0
    off_chrom: int = 0  # rows with an anchor past its chromosome's end
    kept: int = 0
    matched: int | None = None
    genes_linked: int | None = None
    genes: int | None = None
    tolerance_bp: int | None = None
    renaming: list[Renaming] = field(default_factory=list)

    def link(self, genes: pd.DataFrame, contacts: pd.DataFrame, *, tolerance_bp: int) -> "InteractionAccount":
        from epx.data.inputs.pcres import gene_links  # inputs import prepare, not the reverse, at import time

        links = gene_links(genes, contacts, tolerance_bp=tolerance_bp)
        self.matched, self.genes_linked = int(links["row"].nunique()), int(links["gene"].nunique())
        self.genes, self.tolerance_bp = len(genes), tolerance_bp
        return self

    def summary(self) -> dict:
        out = {"file": self.file, "read": self.read, "kept": self.kept, "matched": self.matched, "genes_linked": self.genes_linked}
        if self.unknown_chrom:
            out["unknown_chrom"] = self.unknown_chrom
        if self.off_chrom:
            out["off_chrom"] = self.off_chrom
        renamed = sum(r.n_renamed for r in self.renaming)
        if renamed:
            out["renamed"] = renamed
        return out

    def check(self) -> None:
        if self.matched is None or self.matched > 0:
            return
        if self.read == 0:
            raise InputError(
                f"{self.file}: no interactions (missing or empty file), but this model reads them; give the cell's "
                "promoter-capture Hi-C / HiChIP contacts (dataset.files.interactions), or choose a promoter-only model "
                "(model=promoter_cnn or model=linear)"
            )
        lost = []
        if self.unknown_chrom:
            lost.append(f"{self.unknown_chrom} on chromosomes the signals do not have")
        if self.off_chrom:
            lost.append(f"{self.off_chrom} with an anchor beyond its chromosome's end")
        if self.read - self.unknown_chrom - self.off_chrom > self.kept:
            lost.append(f"{self.read - self.unknown_chrom - self.off_chrom - self.kept} below the threshold ({self.rule})")
        lost.append(f"{self.kept} kept, none with an anchor within {self.tolerance_bp:,} bp of the TSS of any of the {self.genes} genes")
        raise InputError(
            f"{self.file}: none of its {self.read} interactions reaches a gene ({'; '.join(lost)}). A distal model would run "
            "as a promoter-only model. Check that the file is for the same genome assembly and cell, that its score "
            "matches dataset.interactions (score_kind, threshold), and that one anchor of each row is a promoter."
        )


def prepare_contacts(
    raw: pd.DataFrame, contact_filter: ContactFilter, chroms, *, what: str, exact: bool = False
) -> tuple[pd.DataFrame, InteractionAccount]:
    account = InteractionAccount(file=what, rule=f"{contact_filter.score_kind} {'>=' if contact_filter.score_kind == 'frequency' else '<='} {contact_filter.threshold}", read=len(raw))
    if chroms is not None and len(raw):
        raw = raw.copy()
        known = np.ones(len(raw), bool)
        for side in ("chrom1", "chrom2"):
            names, renaming = rename_column(raw[side], chroms, what=f"{what} ({side})", exact=exact)
            raw[side] = names
            known &= raw[side].isin(list(chroms)).to_numpy()
            renaming.log()
            account.renaming.append(renaming)
        account.unknown_chrom = int((~known).sum())
        raw = raw[known].reset_index(drop=True)
        if isinstance(chroms, Mapping) and len(raw):
            raw = _drop_off_chrom(raw, chroms, account)
    contacts = contact_filter.apply(raw)
    account.kept = len(contacts)
    return contacts, account


def _drop_off_chrom(raw: pd.DataFrame, sizes: Mapping[str, int], account: InteractionAccount) -> pd.DataFrame:
    """``raw`` without the rows of which an anchor ends past its chromosome's end (counted in
    ``account.off_chrom`` and logged): such a contact is from another assembly and would
    point at bins that do not exist."""
    off, sizes = np.zeros(len(raw), bool), dict(sizes)
    for side in ("1", "2"):
        length = raw[f"chrom{side}"].map(sizes).to_numpy(np.int64)
        off |= raw[f"end{side}"].to_numpy(np.int64) > length
    account.off_chrom = int(off.sum())
    if not off.any():
        return raw
    examples = "; ".join(
        f"{row.chrom1}:{row.start1:,}-{row.end1:,} / {row.chrom2}:{row.start2:,}-{row.end2:,}" for row in raw[off].head(3).itertuples()
    )
    log.warning(
        "%s: %d of %d interactions have an anchor beyond its chromosome's end (e.g. %s); left out. "
        "Use an interactions file of the same genome assembly as the signals",
        account.file, account.off_chrom, account.read, examples,
    )  # fmt: skip
    return raw[~off].reset_index(drop=True)
