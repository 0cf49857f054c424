"""Chromosome names: one naming rule for every file and every ordering.

Roadmap/UCSC files say ``chr1``; Ensembl files say ``1``. Mixing them silently yields
all-zero signal, so every reader checks its names against the reference set here and
fails with a message that names both files and the fix.

Contract:
- ``strip_chr(name)``: the bare name, without a leading ``chr`` (any case): ``chrX`` → ``X``.
- ``chrom_sort_key(name)``: natural order, ``chr`` or not: 1..22 (numerically), then X, Y,
  M (``MT`` too), then every other name alphabetically. Every sorted list of chromosomes
  epx writes or iterates (folds, ``folds.json``, GraphReg windows) uses it, so the order
  never depends on set or hash order.
- ``ucsc_name(name)``: Ensembl → UCSC (``1`` → ``chr1``, ``MT`` → ``chrM``); names that
  already start with ``chr`` pass unchanged.
- ``check_naming(found, reference, what=, reference_what=)``: raise ``InputError`` when two
  files share no chromosome, naming the ``chr``-prefix mismatch when that is the cause.
- ``reconcile(names, reference, exact=False) -> {name: reference name | None}``: each
  distinct name mapped to the reference's name for the same chromosome — itself when the
  reference has it, else its UCSC/Ensembl twin (``1`` ↔ ``chr1``, ``MT`` ↔ ``chrM``,
  ``chrMT`` ↔ ``M``), else None (unknown). ``exact=True`` maps only identical names. Files
  are never assumed to share a naming: every reader of a chromosome column maps each record
  through this, so one file may even mix ``1`` and ``chr2``.
- ``rename_column(values, reference, what=, exact=False) -> (renamed values, Renaming)``:
  ``reconcile`` applied per record; unknown names are kept as given (the caller decides
  whether to drop or refuse them) and ``Renaming`` says what was renamed and what is unknown.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from epx.errors import InputError

log = logging.getLogger(__name__)

# After the numbered chromosomes; Ensembl's mitochondrion "MT" sorts as UCSC's "M".
_SEX_AND_MITO = {"X": 0, "Y": 1, "M": 2, "MT": 2}
_ENSEMBL_TO_UCSC = {"MT": "chrM"}
_MITO = ("M", "MT")


def strip_chr(name: str) -> str:
    return name[3:] if name[:3].lower() == "chr" else name


def chrom_sort_key(name: str) -> tuple[int, int, str]:
    bare = strip_chr(name)
    if bare.isdigit():
        return (0, int(bare), "")
    if bare.upper() in _SEX_AND_MITO:
        return (1, _SEX_AND_MITO[bare.upper()], "")
    return (2, 0, bare)


def ucsc_name(name: str) -> str:
    return name if name.startswith("chr") else _ENSEMBL_TO_UCSC.get(name, f"chr{name}")


def check_naming(found: Iterable[str], reference: Iterable[str], *, what: str, reference_what: str) -> None:
    """Raise if ``found`` shares no chromosome with ``reference`` but would after adding/removing 'chr'."""
    found, reference = set(found), set(reference)
    if not found or found & reference:
        return
    stripped = {strip_chr(c) for c in reference}
    if {strip_chr(c) for c in found} & stripped:
        example_found = sorted(found)[0]
        example_ref = sorted(reference)[0]
        raise InputError(
            f"chromosome naming mismatch: {what} names chromosomes like {example_found!r} but "
            f"{reference_what} uses {example_ref!r}. Use one convention in every file of the "
            "dataset folder (e.g. rewrite the BED/BEDPE/chrom.sizes with or without the 'chr' prefix)."
        )
    raise InputError(
        f"{what} shares no chromosome with {reference_what} "
        f"(e.g. {sorted(found)[:3]} vs {sorted(reference)[:3]}); are they from the same genome assembly?"
    )


def _twins(name: str) -> list[str]:
    """Other spellings of the same chromosome, most likely first."""
    bare = strip_chr(name)
    bares = list(_MITO) if bare.upper() in _MITO else [bare]
    out = []
    for b in bares:
        out += [b, f"chr{b}"]
    return [n for n in out if n != name]


def reconcile(names: Iterable[str], reference: Iterable[str], *, exact: bool = False) -> dict[str, str | None]:
    reference = set(reference)
    out: dict[str, str | None] = {}
    for name in dict.fromkeys(str(n) for n in names):
        if name in reference:
            out[name] = name
        elif exact:
            out[name] = None
        else:
            out[name] = next((t for t in _twins(name) if t in reference), None)
    return out


@dataclass
class Renaming:
    """What ``rename_column`` did to one file's chromosome column."""

    what: str
    renamed: dict[str, str] = field(default_factory=dict)  # name in the file -> reference name
    n_renamed: int = 0  # records renamed
    unknown: dict[str, int] = field(default_factory=dict)  # name -> records, in no reference spelling

    def log(self) -> None:
        if self.n_renamed:
            pairs = ", ".join(f"{a} → {b}" for a, b in list(self.renamed.items())[:4])
            more = ", …" if len(self.renamed) > 4 else ""
            log.warning("%s: %d record(s) renamed to the signals' chromosome naming (%s%s)", self.what, self.n_renamed, pairs, more)

    def to_dict(self) -> dict:
        return {"renamed": dict(self.renamed), "n_renamed": self.n_renamed, "unknown": dict(self.unknown)}


def rename_column(values, reference: Iterable[str], *, what: str, exact: bool = False) -> tuple[np.ndarray, Renaming]:
    values = pd.Series(np.asarray(values, dtype=object)).astype(str)
    mapping = reconcile(values.unique(), reference, exact=exact)
    target = values.map(mapping)
    known = target.notna().to_numpy()
    changed = known & (target.to_numpy() != values.to_numpy())
    report = Renaming(
        what=what,
        renamed={a: b for a, b in mapping.items() if b is not None and b != a},
        n_renamed=int(changed.sum()),
        unknown={str(k): int(v) for k, v in values[~known].value_counts().items()},
    )
    return np.where(known, target.to_numpy(), values.to_numpy()).astype(object), report
