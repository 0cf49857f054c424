"""Chromosome-name conventions: detect ``chr1`` vs ``1`` mismatches between files.

Roadmap/UCSC files say ``chr1``; Ensembl files say ``1``. Mixing them silently yields
all-zero signal, so every reader checks its names against the reference set here and
fails with a message that names both files and the fix.
"""

from __future__ import annotations

from collections.abc import Iterable

from epx.errors import InputError


def _strip(name: str) -> str:
    return name[3:] if name.lower().startswith("chr") else name


def check_naming(found: Iterable[str], reference: Iterable[str], *, what: str, reference_what: str) -> None:
    """Raise if ``found`` shares no chromosome with ``reference`` but would after adding/removing 'chr'."""
    found, reference = set(found), set(reference)
    if not found or found & reference:
        return
    stripped = {_strip(c) for c in reference}
    if {_strip(c) for c in found} & stripped:
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
