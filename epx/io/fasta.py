"""FASTA: a reference genome as uint8 base codes, read through its ``.fai`` index.

Encoding (one for every model and every cache): ``A=0 C=1 G=2 T=3``; ``N`` and every other
IUPAC code (R Y K M S W B D H V, any other byte) ``= 4``. Soft-masked (lowercase) bases are
read as their uppercase base, so repeats are not lost. ``encode(seq)`` turns a ``str`` or
``bytes`` of letters into codes (a uint8 array is taken as codes already); ``decode(codes)``
gives back ``ACGTN`` bytes; ``onehot(codes) -> float32 (4, L)`` (``(..., L)`` codes give
``(..., 4, L)``), code 4 an all-zero column; ``reverse_complement(codes)`` reverses the last
axis and swaps A↔T, C↔G (N stays N). All of them are NumPy lookup tables, never a Python
loop per base.

Reading:

- ``FastaFile(source)``: ``source`` is a FASTA path (plain text; ``.fai`` beside it) or an
  in-memory ``{chrom: str | bytes | uint8 codes}``. ``.sizes`` is ``{chrom: length}`` in file
  order; ``.codes(chrom, start=0, end=None) -> uint8 (end - start,)`` one chromosome or an
  interval (0-based, half-open; clipped to the chromosome); ``.close()`` / context manager.
- ``read_fasta_sizes(source) -> dict[str, int]``: the lengths, from the index alone.
- The index: a missing or stale ``.fai`` (older than the FASTA) is built with pyfaidx into a
  temp file and renamed into place (``epx.io.atomic``), so concurrent jobs never see half of
  one. A folder epx cannot write is one ``InputError`` naming the FASTA and the fix
  (``samtools faidx FILE`` or ``pyfaidx FILE`` where it can write, or copy the FASTA to a
  writable folder). A gzip FASTA, a malformed one (text before the first ``>``, ragged line
  lengths inside a record) or a name listed twice is one ``InputError`` naming the file.

Naming: ``match_chroms(fasta_sizes, chrom_sizes, what=, reference_what=, exact=False) ->
{dataset chrom: FASTA name}`` reconciles the FASTA's names to the dataset's chromosome sizes
(``1`` ↔ ``chr1``, as for bigWig headers) and refuses another assembly (shared chromosomes of
other lengths) with one ``InputError`` naming both files and a few differing chromosomes.

Writing: ``write_fasta(path, sequences, line_width=60) -> Path`` writes the records in
``sequences`` order, ``line_width`` bases a line, and its ``.fai`` (samtools' five columns,
computed from the layout, not re-read); both atomically, the FASTA first, so a ``.fai``
never describes a FASTA it was not written for (a killed write leaves an older ``.fai``,
which the reader sees as stale and rebuilds).

Why pyfaidx: it is pure Python (no htslib to build, unlike pysam), reads the samtools
``.fai`` format and builds it when missing; a region read is one seek and one read.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pyfaidx

from epx.errors import InputError
from epx.io.atomic import atomic_path, atomic_write
from epx.io.naming import check_naming, reconcile

log = logging.getLogger(__name__)

N_CODE = 4
LETTERS = b"ACGTN"  # code -> letter
# byte -> code: A/C/G/T in either case, every other byte (IUPAC codes, N, '-', '*') is N
_ENCODE = np.full(256, N_CODE, np.uint8)
for _code, _base in enumerate(b"ACGT"):
    _ENCODE[_base] = _ENCODE[_base + 32] = _code  # +32: the lowercase (soft-masked) letter
_DECODE = np.frombuffer(LETTERS, np.uint8)
_COMPLEMENT = np.array([3, 2, 1, 0, N_CODE], np.uint8)
GZIP_MAGIC = b"\x1f\x8b"
INDEX_FIX = "run `samtools faidx {path}` (or `pyfaidx {path}`) where it can be written, or copy the FASTA to a writable folder"

Sequence = str | bytes | np.ndarray


# ----------------------------------------------------------------------------- encoding


def encode(seq: Sequence) -> np.ndarray:
    """Letters (``str``/``bytes``, any case) → uint8 codes; a uint8 array is codes already."""
    if isinstance(seq, np.ndarray):
        codes = np.asarray(seq)
        if codes.dtype != np.uint8 or (codes.size and codes.max() > N_CODE):
            raise InputError(f"a sequence given as an array must be uint8 base codes 0-4 (A C G T N); got {codes.dtype}, max {codes.max() if codes.size else '-'}")
        return codes
    raw = seq.encode("latin-1") if isinstance(seq, str) else bytes(seq)
    return _ENCODE[np.frombuffer(raw, np.uint8)]


def decode(codes: np.ndarray) -> bytes:
    """uint8 codes → ``ACGTN`` bytes."""
    return _DECODE[np.asarray(codes, np.uint8)].tobytes()


def onehot(codes: np.ndarray) -> np.ndarray:
    """``(..., L)`` codes → float32 ``(..., 4, L)``; N (4) is an all-zero column."""
    codes = np.asarray(codes)
    out = np.empty((*codes.shape[:-1], 4, codes.shape[-1]), np.float32)
    for base in range(4):  # four vectorised compares: contiguous writes, no (L, 4) transpose
        np.equal(codes, base, out=out[..., base, :])
    return out


def reverse_complement(codes: np.ndarray) -> np.ndarray:
    """The reverse complement along the last axis (A↔T, C↔G, N stays N)."""
    return _COMPLEMENT[np.asarray(codes)[..., ::-1]]


# ----------------------------------------------------------------------------- index


def _check_plain(path: Path) -> None:
    if not path.is_file():
        raise InputError(f"FASTA not found: {path}")
    with path.open("rb") as handle:
        head = handle.read(2)
    if head == GZIP_MAGIC:
        raise InputError(f"{path} is gzip-compressed; decompress it (`gunzip -k {path}`) and point dataset.files.genome at the plain FASTA")


def _index_fresh(path: Path, fai: Path) -> bool:
    return fai.is_file() and fai.stat().st_mtime_ns >= path.stat().st_mtime_ns


def _faidx(path: Path, **options) -> pyfaidx.Faidx:
    """pyfaidx's index of ``path``, its errors turned into one ``InputError`` naming the file."""
    try:
        return pyfaidx.Faidx(str(path), **options)
    except (pyfaidx.FastaIndexingError, UnicodeDecodeError) as err:
        raise InputError(f"{path} is not a valid FASTA ({err}); every record must start with '>name' and keep one line length") from err
    except ValueError as err:  # pyfaidx: 'Duplicate key "chr1"'
        raise InputError(f"{path}: {err}; every record name (the first word after '>') must be unique") from err


def ensure_index(path: str | os.PathLike) -> Path:
    """``path``'s ``.fai``, built (atomically) when missing or older than the FASTA."""
    path = Path(path)
    _check_plain(path)
    fai = path.with_name(path.name + ".fai")
    if _index_fresh(path, fai):
        return fai
    if not os.access(path.parent, os.W_OK):
        why = "is older than the FASTA" if fai.exists() else "is missing"
        raise InputError(f"FASTA index {fai} {why} and {path.parent} is not writable; {INDEX_FIX.format(path=path)}")
    try:
        with atomic_path(fai) as tmp:
            _faidx(path, indexname=str(tmp), rebuild=True, build_index=True).close()
    except PermissionError as err:
        raise InputError(f"cannot write the FASTA index {fai} ({err}); {INDEX_FIX.format(path=path)}") from err
    return fai


def _open(path: Path) -> pyfaidx.Faidx:
    ensure_index(path)
    return _faidx(path, as_raw=True, rebuild=False, build_index=False)


# ----------------------------------------------------------------------------- reading


class FastaFile:
    """One FASTA (or an in-memory ``{chrom: sequence}``) read as base codes; see the module docstring."""

    def __init__(self, source: str | os.PathLike | Mapping[str, Sequence]):
        self._memory: dict[str, np.ndarray] | None = None
        self._faidx: pyfaidx.Faidx | None = None
        if isinstance(source, Mapping):
            self.what = "the in-memory genome"
            self._memory = {str(k): encode(v) for k, v in source.items()}
            self.sizes = {k: int(v.shape[0]) for k, v in self._memory.items()}
        else:
            self.path = Path(source)
            self.what = str(self.path)
            self._faidx = _open(self.path)
            self.sizes = {name: int(rec.rlen) for name, rec in self._faidx.index.items()}

    def codes(self, chrom: str, start: int = 0, end: int | None = None) -> np.ndarray:
        """uint8 codes of ``chrom[start:end]`` (0-based, half-open, clipped to the chromosome)."""
        if chrom not in self.sizes:
            raise InputError(f"{self.what} has no chromosome {chrom!r} (it has {', '.join(list(self.sizes)[:6])}{', …' if len(self.sizes) > 6 else ''})")
        length = self.sizes[chrom]
        start, end = max(0, int(start)), min(length, length if end is None else int(end))
        if end <= start:
            return np.zeros(0, np.uint8)
        if self._memory is not None:
            return self._memory[chrom][start:end].copy()
        text = self._faidx.fetch(chrom, start + 1, end)  # pyfaidx is 1-based, inclusive
        return encode(str(text))

    def close(self) -> None:
        if self._faidx is not None:
            self._faidx.close()
            self._faidx = None

    def __enter__(self) -> "FastaFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_fasta_sizes(source: str | os.PathLike | Mapping[str, Sequence]) -> dict[str, int]:
    with FastaFile(source) as fasta:
        return dict(fasta.sizes)


# ----------------------------------------------------------------------------- writing


def _lines(codes: np.ndarray, width: int) -> np.ndarray:
    """``ACGTN`` bytes of ``codes`` wrapped at ``width`` with a newline after every line."""
    n = codes.shape[0]
    n_lines = -(-n // width)
    letters = np.zeros(n_lines * width, np.uint8)
    letters[:n] = _DECODE[codes]
    grid = np.empty((n_lines, width + 1), np.uint8)
    grid[:, :width] = letters.reshape(n_lines, width)
    grid[:, width] = ord("\n")
    out = grid.reshape(-1)
    tail = n_lines * width - n  # the last line is short: drop its padding, keep its newline
    if tail:
        out = np.concatenate([out[: out.shape[0] - 1 - tail], out[-1:]])
    return out


def write_fasta(path: str | os.PathLike, sequences: Mapping[str, Sequence], *, line_width: int = 60) -> Path:
    path = Path(path)
    if line_width < 1:
        raise ValueError(f"line_width must be positive, got {line_width}")
    index: list[str] = []

    def write(handle) -> None:
        offset = 0
        for name, seq in sequences.items():
            name = str(name)
            if not name or any(c.isspace() for c in name):
                raise ValueError(f"FASTA record name {name!r} must be one word")
            codes = encode(seq)
            header = f">{name}\n".encode()
            handle.write(header)
            offset += len(header)
            body = _lines(codes, line_width)
            handle.write(body.tobytes())
            bases = min(line_width, codes.shape[0])  # samtools: a one-line record's own length
            index.append(f"{name}\t{codes.shape[0]}\t{offset}\t{bases}\t{bases + 1 if bases else 0}\n")
            offset += body.shape[0]

    atomic_write(path, write, binary=True)
    atomic_write(path.with_name(path.name + ".fai"), lambda h: h.write("".join(index)))
    return path


def iter_spans(length: int, span: int) -> Iterator[tuple[int, int]]:
    """``[start, end)`` pieces of ``span`` bases covering ``[0, length)``."""
    for start in range(0, length, span):
        yield start, min(start + span, length)


# ----------------------------------------------------------------------------- naming


def match_chroms(
    fasta_sizes: Mapping[str, int],
    chrom_sizes: Mapping[str, int],
    *,
    what: str,
    reference_what: str,
    exact: bool = False,
) -> dict[str, str]:
    """``{chrom of chrom_sizes: its name in the FASTA}`` for every chromosome both have, the
    FASTA's naming reconciled to ``chrom_sizes``' (``epx.io.naming.reconcile``, as the bigWig
    headers are). A FASTA sharing no chromosome, or whose shared chromosomes differ in length
    (another assembly), is one ``InputError`` naming both files; chromosomes it lacks are
    read as N, with a warning."""
    spelling = reconcile(chrom_sizes, fasta_sizes, exact=exact)
    found = {chrom: name for chrom, name in spelling.items() if name is not None}
    if not found:
        check_naming(fasta_sizes, chrom_sizes, what=what, reference_what=reference_what)
        raise InputError(f"{what} shares no chromosome with {reference_what}")  # check_naming raised already
    differ = [(chrom, chrom_sizes[chrom], fasta_sizes[name]) for chrom, name in found.items() if int(chrom_sizes[chrom]) != int(fasta_sizes[name])]
    if differ:
        listed = ", ".join(f"{c}: {a:,} bp vs {b:,} bp" for c, a, b in differ[:4]) + (", …" if len(differ) > 4 else "")
        raise InputError(
            f"{what} is another assembly than {reference_what}: {len(differ)} of {len(found)} shared chromosome(s) differ "
            f"in length ({reference_what} vs the FASTA: {listed}). Use the FASTA of the assembly the signals were mapped to "
            "(hg19 for Roadmap: epx download hg19), or fix the chromosome sizes"
        )
    renamed = {a: b for a, b in found.items() if a != b}
    if renamed:
        pairs = ", ".join(f"{b} → {a}" for a, b in list(renamed.items())[:4])
        log.warning("%s: %d chromosome(s) read under the dataset's naming (%s%s)", what, len(renamed), pairs, ", …" if len(renamed) > 4 else "")
    lacking = [c for c in chrom_sizes if c not in found]
    if lacking:
        log.warning("%s lacks %d chromosome(s) of %s (%s%s); their sequence reads as N", what, len(lacking), reference_what,
                    ", ".join(lacking[:4]), ", …" if len(lacking) > 4 else "")
    return found
