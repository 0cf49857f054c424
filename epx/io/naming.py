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
"""

from __future__ import annotations

from collections.abc import Iterable

from epx.errors import InputError

# After the numbered chromosomes; Ensembl's mitochondrion "MT" sorts as UCSC's "M".
_SEX_AND_MITO = {"X": 0, "Y": 1, "M": 2, "MT": 2}
_ENSEMBL_TO_UCSC = {"MT": "chrM"}


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
