"""Converters from the formats labs publish into the dataset contract (DESIGN §2.1).

One module per source format: ``tagalign`` (reads → per-bp read-depth bigWig), ``gtf``
(GENCODE/Ensembl annotation → ``tss.bed``), ``interactions`` (pcHi-C / HiChIP /
HiCDCPlus tables → BEDPE), ``expression`` (Roadmap RPKM matrix → ``expression.tsv``).

This package module holds the two helpers they share:

- ``strip_version(ids)``: Ensembl ids lose their version suffix
  (``ENSG00000116213.11`` → ``ENSG00000116213``) so annotation and expression join.
- ``read_chrom_sizes(path)``: a UCSC ``chrom.sizes`` file → ``{chrom: length}`` in file order.

Every converter writes its output atomically (a ``.part`` file renamed at the end), so an
interrupted conversion never leaves a half-written file under the final name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from epx.io.chrom_sizes import read_chrom_sizes  # noqa: F401  (re-exported for the converters)

# A version is ".<digits>" at the end or before GENCODE's "_PAR_Y" tag; keeping the tag
# stops chrY pseudo-autosomal copies from colliding with their chrX twins.
_VERSION = re.compile(r"\.\d+(?=$|_)")


def strip_version(ids: Iterable[str] | pd.Series) -> pd.Series:
    """``ENSG00000116213.11`` → ``ENSG00000116213``; ids without a version pass unchanged."""
    series = ids if isinstance(ids, pd.Series) else pd.Series(list(ids), dtype=object)
    return series.astype(str).str.replace(_VERSION, "", regex=True)


def atomic_target(out: str | os.PathLike) -> tuple[Path, Path]:
    """Return ``(final, part)`` paths, creating the parent folder; write ``part`` then
    ``os.replace(part, final)`` so readers never see a half-written output."""
    final = Path(out)
    final.parent.mkdir(parents=True, exist_ok=True)
    return final, final.with_name(final.name + ".part")
