"""Chromosome sizes: from a 2-column ``chrom.sizes`` file, a bigWig header, or a dict.

Contract: ``read_chrom_sizes(source) -> dict[str, int]`` in file order. ``source`` is a
path to a ``chrom.sizes`` file, a path to a bigWig (its header is used), or an in-memory
``{chrom: length}`` mapping (returned as a copy).

``write_chrom_sizes(sizes, path)`` writes ``chrom<TAB>length`` lines in ``sizes`` order,
atomically.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from epx.errors import InputError
from epx.io.bigwig import open_for_reading
from epx.io.atomic import write_text

BIGWIG_SUFFIXES = (".bw", ".bigwig", ".bigWig")


def read_chrom_sizes(source: str | Path | Mapping[str, int]) -> dict[str, int]:
    if isinstance(source, Mapping):
        return {str(k): int(v) for k, v in source.items()}
    path = Path(source)
    if not path.exists():
        raise InputError(f"chrom sizes file not found: {path}")
    if path.name.endswith(BIGWIG_SUFFIXES):
        bw = open_for_reading(path)
        try:
            return dict(bw.chroms())
        finally:
            bw.close()
    sizes: dict[str, int] = {}
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            raise InputError(f"{path}:{n}: expected 'chrom<TAB>length', got {line!r}")
        sizes[parts[0]] = int(parts[1])
    if not sizes:
        raise InputError(f"{path} lists no chromosomes")
    return sizes


def write_chrom_sizes(sizes: Mapping[str, int], path: str | Path) -> Path:
    return write_text(path, "".join(f"{chrom}\t{int(length)}\n" for chrom, length in sizes.items()))
