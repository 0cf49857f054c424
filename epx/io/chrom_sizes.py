"""Chromosome sizes: from a 2-column ``chrom.sizes`` file, a bigWig header, or a dict.

Contract: ``read_chrom_sizes(source) -> dict[str, int]`` in file order. ``source`` is a
path to a ``chrom.sizes`` file, a path to a bigWig (its header is used), or an in-memory
``{chrom: length}`` mapping (returned as a copy). A text file may be plain or gzip (LF/CRLF,
BOM, ``#`` comments fine); the two fields may be separated by tabs or spaces. An empty or
truncated file, a binary file, a line without two fields, a length that is not a positive
integer, or a chromosome listed twice is one ``InputError`` naming the file and the line.

``write_chrom_sizes(sizes, path)`` writes ``chrom<TAB>length`` lines in ``sizes`` order,
atomically.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from epx.errors import InputError
from epx.io.bigwig import open_for_reading
from epx.io.atomic import write_text
from epx.io.tables import read_rows

BIGWIG_SUFFIXES = (".bw", ".bigwig", ".bigWig")
HINT = (
    "a chrom sizes file has one 'chrom<TAB>length' line per chromosome (UCSC's hg19.chrom.sizes); fix or delete "
    "that line, or re-download it"
)


def read_chrom_sizes(source: str | Path | Mapping[str, int]) -> dict[str, int]:
    if isinstance(source, Mapping):
        return {str(k): int(v) for k, v in source.items()}
    path = Path(source)
    if not path.exists():
        what = "bigWig (its header is the chrom sizes)" if path.name.endswith(BIGWIG_SUFFIXES) else "chrom sizes file"
        raise InputError(f"{what} not found: {path}; check dataset.root (relative paths are read from the working directory)")
    if path.name.endswith(BIGWIG_SUFFIXES):
        bw = open_for_reading(path)
        try:
            sizes = dict(bw.chroms())
        except RuntimeError as err:  # pyBigWig cannot decode the chromosome list (a corrupt name)
            raise InputError(f"{path}: its chromosome list is corrupt ({err}); re-download or re-convert the bigWig") from err
        finally:
            bw.close()
        if not sizes or not all(isinstance(n, int) and n > 0 for n in sizes.values()):
            raise InputError(f"{path}: its header lists no chromosome or a chromosome without length; re-download or re-convert the bigWig")
        return sizes
    rows = read_rows(path, what="chrom sizes file", hint=HINT, header=False)
    for row in rows.fields:  # 'chrom length' separated by any whitespace, as UCSC's fetchChromSizes writes
        row[:] = " ".join(row).split() or [""]
    rows.check_width(2, expected="2 (chrom<TAB>length)")
    names = rows.texts(0, "chromosome")
    lengths = rows.integers(1, "length", minimum=1)
    sizes: dict[str, int] = {}
    first: dict[str, int] = {}
    for i, (chrom, length) in enumerate(zip(names, lengths)):
        if chrom in sizes:
            raise rows.fail(i, f"chromosome {chrom!r} listed again (first on line {rows.lines[first[chrom]]})")
        sizes[chrom], first[chrom] = int(length), i
    return sizes


def write_chrom_sizes(sizes: Mapping[str, int], path: str | Path) -> Path:
    return write_text(path, "".join(f"{chrom}\t{int(length)}\n" for chrom, length in sizes.items()))
