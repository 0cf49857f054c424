"""bigWig: per-bp signal read as mean signal per fixed-size bin, and written from runs.

Reading. ``read_binned(source, chrom_sizes, bin_bp=100) -> {chrom: float32 (n_bins,)}``,
``n_bins = ceil(length / bin_bp)``; bin value = mean per-bp signal over the bin (the last,
partial bin is averaged over its real length); uncovered bases (NaN in bigWig) count as 0.
``source`` is a bigWig path or an in-memory ``{chrom: per-bp array}``. Chromosomes that the
bigWig lacks are all-zero (bigWig leaves uncovered chromosomes out). The bigWig's own naming
is reconciled to ``chrom_sizes``' per chromosome (``epx.io.naming.reconcile``: a ``1``/``MT``
bigWig fills ``chr1``/``chrM``), with one warning per renamed file; a bigWig that shares no
chromosome with ``chrom_sizes`` in any spelling is refused.

``per_base(path, chrom_sizes)`` reads per-bp values of given spans (for stores binned from
exact base positions, e.g. Chromoformer's published TSS-anchored windows).

Speed: each span of ``span_bp`` is decoded with one ``values(..., numpy=True)`` call and
binned with a reshape; spans that the bigWig's zoom levels report as empty are skipped, and
sparsely covered spans are binned straight from their intervals, so a sparse genome (data only
around a few genes) costs seconds, not a dense genome-wide decode.

Writing (every bigWig epx writes — converters, the synthetic dataset, test fixtures,
benchmarks — goes through here, atomically via ``epx.io.atomic``):

- ``open_bigwig(path, chrom_sizes)`` is a context manager yielding a ``BigWigWriter`` whose
  header lists ``chrom_sizes`` in order; ``writer.add(chrom, starts, ends, values)`` adds
  bedGraph-like entries (sorted, non-overlapping, 0-based half-open), chromosomes in header
  order (pyBigWig's requirement). The file appears under ``path`` only when the block ends
  normally; on an exception the old file (if any) is left as it was.
- ``write_bigwig(path, chrom_sizes, values)`` writes per-bp arrays ``{chrom: (length,)}``
  as one entry per run of equal non-zero values (``value_runs``); zeros are left uncovered,
  which readers treat as 0.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pyBigWig

from epx.errors import InputError
from epx.io.atomic import atomic_path
import logging

from epx.io.naming import check_naming, reconcile

log = logging.getLogger(__name__)

# Spans below this covered fraction are binned from intervals instead of decoded per bp.
SPARSE_FRACTION = 0.02
# Entries per pyBigWig.addEntries call: large enough to amortise the call, small enough
# that the per-call list of chromosome names stays a few MB.
WRITE_BATCH = 1_000_000


def bin_mean(values: np.ndarray, bin_bp: int) -> np.ndarray:
    """Mean of consecutive ``bin_bp`` blocks of a per-bp array (NaN → 0; last block partial)."""
    return _bin_sum_mean(np.asarray(values, dtype=np.float32), bin_bp)


def _bin_sum_mean(values: np.ndarray, bin_bp: int) -> np.ndarray:
    """One pass of plain sums; only bins that came out NaN (partly uncovered) are redone
    with nansum, so dense tracks pay nothing for NaN handling."""
    n = values.shape[0]
    n_bins = -(-n // bin_bp)
    if n % bin_bp:
        values = np.concatenate([values, np.zeros(n_bins * bin_bp - n, np.float32)])
    blocks = values.reshape(n_bins, bin_bp)
    sums = blocks @ np.ones(bin_bp, np.float32)  # BLAS row sums: ~3x numpy's axis-1 reduce
    partial = np.flatnonzero(np.isnan(sums))
    if partial.size:
        sums[partial] = np.nansum(blocks[partial], axis=1)
    out = sums / bin_bp
    if n % bin_bp:
        out[-1] = sums[-1] / (n % bin_bp)
    return out


def bin_intervals(starts, ends, values, span_start: int, span_end: int, bin_bp: int) -> np.ndarray:
    """Bin means over [span_start, span_end) of a piecewise-constant signal given as sorted,
    non-overlapping intervals (bigWig's own representation) — no per-bp array is made."""
    starts = np.clip(np.asarray(starts, np.int64), span_start, span_end)
    ends = np.clip(np.asarray(ends, np.int64), span_start, span_end)
    values = np.nan_to_num(np.asarray(values, np.float64))
    cum = np.concatenate([[0.0], np.cumsum(values * (ends - starts))])
    edges = np.minimum(np.arange(span_start, span_end + bin_bp, bin_bp), span_end)
    k = np.searchsorted(ends, edges, side="right")  # intervals fully left of each edge
    inside = np.minimum(k, len(starts) - 1)
    partial = np.where(k < len(starts), values[inside] * np.clip(edges - starts[inside], 0, None), 0.0)
    integral = cum[k] + partial
    widths = np.diff(edges)
    return (np.diff(integral) / widths).astype(np.float32)


def _check_values(binned: np.ndarray, where: str) -> None:
    if not np.isfinite(binned).all():
        raise InputError(
            f"{where}: signal contains +/-inf. Re-export the track without infinite values "
            "(e.g. cap fold-enrichment) before running epx."
        )
    if (binned < 0).any():
        raise InputError(
            f"{where}: signal has negative values (min {binned.min():.3g}). epx expects a "
            "non-negative per-bp signal (read depth or fold-enrichment); convert log-ratio tracks first."
        )


def _read_span(bw, chrom: str, start: int, end: int, bin_bp: int) -> np.ndarray | None:
    """Bin means of [start, end), or None when the span holds no data."""
    coverage = bw.stats(chrom, start, end, type="coverage")[0]
    if not coverage:
        return None
    if coverage < SPARSE_FRACTION:
        intervals = bw.intervals(chrom, start, end)
        if not intervals:
            return None
        s, e, v = (np.array(col) for col in zip(*intervals))
        return bin_intervals(s, e, v, start, end, bin_bp)
    return _bin_sum_mean(bw.values(chrom, start, end, numpy=True), bin_bp)


BROKEN_FIX = "re-download it (epx download resumes and verifies sizes) or re-convert it (epx convert)"


BIGWIG_MAGIC = 0x888FFC26
_HEADER = struct.Struct("<IHHQQQHHQQIQ")  # the 64-byte bigWig header (UCSC's bbiFile layout)
_ZOOM = struct.Struct("<IIQQ")  # one zoom-level header: reduction, reserved, data and index offsets
CHROM_TREE_MAGIC = 0x78CA8C91
_TREE = struct.Struct("<IIIIQQ")  # chromosome B+ tree header: magic, block size, key size, value size, items, reserved
_NODE = struct.Struct("<BBH")  # node header: is-leaf, reserved, item count
MAX_KEY = 255  # chromosome names; libBigWig trusts the key size to size its buffers


def _check_chrom_tree(handle, offset: int, size: int, path: Path) -> None:
    """Walk the chromosome B+ tree as libBigWig will, refusing anything it would trust blindly
    (key size, node counts, child offsets, chromosome ids): a corrupt tree crashes it."""

    def broken(what: str) -> InputError:
        return InputError(f"{path}: corrupt chromosome index ({what}): {BROKEN_FIX}")

    handle.seek(offset)
    head = handle.read(_TREE.size)
    if len(head) < _TREE.size:
        raise broken("cut short")
    magic, block, key_size, value_size, n_items, _ = _TREE.unpack(head)
    if magic != CHROM_TREE_MAGIC or value_size != 8 or not 0 < key_size <= MAX_KEY or block == 0 or n_items > size:
        raise broken("bad header")
    seen: set[int] = set()
    leaves = 0
    pending, visited = [offset + _TREE.size], set()
    while pending:
        node = pending.pop()
        if node in visited or node + _NODE.size > size:
            raise broken("a node outside the file or reached twice")
        visited.add(node)
        handle.seek(node)
        is_leaf, _, count = _NODE.unpack(handle.read(_NODE.size))
        item = key_size + 8
        body = handle.read(count * item)
        if count == 0 or count > block or len(body) < count * item or is_leaf > 1:
            raise broken("bad node")
        for k in range(count):
            value = body[k * item + key_size : (k + 1) * item]
            if is_leaf:
                chrom_id, length = struct.unpack("<II", value)
                if chrom_id >= n_items or chrom_id in seen or length == 0:
                    raise broken("bad chromosome id or length")
                seen.add(chrom_id)
                leaves += 1
            else:
                pending.append(struct.unpack("<Q", value)[0])
    if leaves != n_items:
        raise broken(f"{leaves} chromosomes listed, {n_items} declared")


def check_structure(path: Path) -> None:
    """Refuse a file whose header points past its end, or whose chromosome index is corrupt:
    libBigWig may crash the process (not raise) on either, so this is checked before pyBigWig
    sees the file."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(_HEADER.size)
        if len(head) < _HEADER.size:
            raise InputError(f"{path}: {size} bytes, shorter than a bigWig header; it is truncated or empty: {BROKEN_FIX}")
        magic, _, n_zoom, chrom_tree, data, index, _, _, autosql, summary, _, _ = _HEADER.unpack(head)
        if magic != BIGWIG_MAGIC:
            raise InputError(f"{path} is not a bigWig (wrong magic number; bigBed, bedGraph or another format?): {BROKEN_FIX}")
        offsets = [chrom_tree, data, index, autosql, summary]
        zooms = handle.read(_ZOOM.size * n_zoom)
        if len(zooms) < _ZOOM.size * n_zoom:
            raise InputError(f"{path}: cut short inside its zoom headers ({size} bytes): {BROKEN_FIX}")
        for k in range(n_zoom):
            offsets += _ZOOM.unpack_from(zooms, k * _ZOOM.size)[2:]
        if max(offsets) >= size:
            raise InputError(f"{path}: {size} bytes, but its header points to byte {max(offsets)}; the file is truncated: {BROKEN_FIX}")
        _check_chrom_tree(handle, chrom_tree, size, path)


def open_for_reading(path: str | os.PathLike):
    """An open pyBigWig handle, or one ``InputError`` naming the file and the fix: pyBigWig's
    own error for a truncated or foreign file ("Unknown error during file opening") names neither."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"bigWig not found: {path}")
    check_structure(path)
    try:
        bw = pyBigWig.open(str(path))
    except RuntimeError as err:
        raise InputError(f"{path} is not a readable bigWig ({err}); it is truncated or another format: {BROKEN_FIX}") from err
    if bw is None or not bw.isBigWig():
        raise InputError(f"{path} is not a readable bigWig file (truncated download or another format?): {BROKEN_FIX}")
    return bw


def _spellings(present, chrom_sizes: Mapping[str, int], what: str) -> dict[str, str | None]:
    """Each chromosome of ``chrom_sizes`` → its name in the source (None: not in it)."""
    spelling = reconcile(chrom_sizes, present)
    if present and not any(spelling.values()):
        check_naming(present, chrom_sizes, what=what, reference_what="the dataset's chromosome sizes")
        raise InputError(f"{what} shares no chromosome with the dataset's chromosome sizes")  # check_naming raised already
    renamed = {a: b for a, b in spelling.items() if b is not None and a != b}
    if renamed:
        pairs = ", ".join(f"{b} → {a}" for a, b in list(renamed.items())[:4])
        log.warning("%s: %d chromosome(s) read under the dataset's naming (%s%s)", what, len(renamed), pairs, ", …" if len(renamed) > 4 else "")
    return spelling


def _read_bigwig(path: Path, chrom_sizes: Mapping[str, int], bin_bp: int, span_bp: int) -> dict[str, np.ndarray]:
    bw = open_for_reading(path)
    try:
        try:
            present = bw.chroms()
        except RuntimeError as err:  # a damaged chromosome name
            raise InputError(f"{path}: cannot list its chromosomes ({err}); the file is damaged: {BROKEN_FIX}") from err
        spelling = _spellings(present, chrom_sizes, str(path))
        span_bp -= span_bp % bin_bp
        out = {}
        for chrom, length in chrom_sizes.items():
            binned = np.zeros(-(-length // bin_bp), dtype=np.float32)
            name = spelling.get(chrom)
            if name is not None:
                stop = min(length, present[name])
                for start in range(0, stop, span_bp):
                    end = min(start + span_bp, stop)
                    try:
                        part = _read_span(bw, name, start, end, bin_bp)
                    except RuntimeError as err:  # a header that opens but data blocks cut short
                        raise InputError(f"{path}: cannot read {chrom}:{start}-{end} ({err}); the file is damaged: {BROKEN_FIX}") from err
                    if part is not None:
                        binned[start // bin_bp : start // bin_bp + part.shape[0]] = part
                _check_values(binned, f"{path} ({chrom})")
            out[chrom] = binned
        return out
    finally:
        bw.close()


def read_binned(
    source: str | Path | Mapping[str, np.ndarray],
    chrom_sizes: Mapping[str, int],
    *,
    bin_bp: int = 100,
    span_bp: int = 8_000_000,
) -> dict[str, np.ndarray]:
    if isinstance(source, Mapping):
        spelling = _spellings(source, chrom_sizes, "the in-memory signal")
        out = {}
        for chrom, length in chrom_sizes.items():
            values = np.zeros(length, np.float32)
            if spelling.get(chrom) is not None:
                given = np.asarray(source[spelling[chrom]], dtype=np.float32)[:length]
                values[: given.shape[0]] = given
            binned = bin_mean(values, bin_bp)
            _check_values(binned, f"in-memory signal ({chrom})")
            out[chrom] = binned
        return out
    return _read_bigwig(Path(source), chrom_sizes, bin_bp, span_bp)


@contextlib.contextmanager
def per_base(path: str | os.PathLike, chrom_sizes: Mapping[str, int]) -> Iterator:
    """``with per_base(path, chrom_sizes) as read: read(chrom, start, end)`` -> float32
    ``(end - start,)`` per-bp values, one ``values(..., numpy=True)`` call per read (give it
    large spans); uncovered bases, bases off the chromosome and chromosomes the bigWig lacks
    are 0; names reconciled to ``chrom_sizes`` as ``read_binned`` does."""
    path = Path(path)
    bw = open_for_reading(path)
    try:
        try:
            present = bw.chroms()
        except RuntimeError as err:
            raise InputError(f"{path}: cannot list its chromosomes ({err}); the file is damaged: {BROKEN_FIX}") from err
        spelling = _spellings(present, chrom_sizes, str(path))

        def read(chrom: str, start: int, end: int) -> np.ndarray:
            out = np.zeros(end - start, np.float32)
            name = spelling.get(chrom)
            lo, hi = max(start, 0), min(end, present[name]) if name is not None else 0
            if hi > lo:
                try:
                    values = bw.values(name, lo, hi, numpy=True)
                except RuntimeError as err:  # a header that opens but data blocks cut short
                    raise InputError(f"{path}: cannot read {chrom}:{lo}-{hi} ({err}); the file is damaged: {BROKEN_FIX}") from err
                out[lo - start : hi - start] = np.nan_to_num(values, nan=0.0)
                _check_values(out, f"{path} ({chrom}:{lo}-{hi})")
            return out

        yield read
    finally:
        bw.close()


# ----------------------------------------------------------------------------- writing


class BigWigWriter:
    """Adds entries to an open bigWig (see ``open_bigwig``); ``entries`` counts them."""

    def __init__(self, bw):
        self._bw = bw
        self.entries = 0

    def add(self, chrom: str, starts, ends, values) -> int:
        """Add intervals ``[starts[i], ends[i])`` of value ``values[i]`` on ``chrom``; return how many."""
        n = len(starts)
        for lo in range(0, n, WRITE_BATCH):
            hi = min(lo + WRITE_BATCH, n)
            self._bw.addEntries([chrom] * (hi - lo), starts[lo:hi], ends=ends[lo:hi], values=values[lo:hi])
        self.entries += n
        return n


@contextlib.contextmanager
def open_bigwig(path: str | os.PathLike, chrom_sizes: Mapping[str, int]) -> Iterator[BigWigWriter]:
    with atomic_path(path) as tmp:
        bw = pyBigWig.open(str(tmp), "w")
        if bw is None:
            raise OSError(f"cannot write a bigWig at {tmp}")
        try:
            bw.addHeader(list(chrom_sizes.items()))
            yield BigWigWriter(bw)
        finally:
            bw.close()  # flushes the index; atomic_path then renames (or removes) the file


def value_runs(values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximal runs of equal non-zero values of a per-bp array: starts, ends, values."""
    v = np.asarray(values, dtype=np.float64)
    if not v.size:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    change = np.flatnonzero(v[1:] != v[:-1]) + 1  # not np.diff: inf - inf is NaN, a false change
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [v.size]])
    keep = v[starts] != 0
    # float32, bigWig's value type: pyBigWig refuses float64 arrays holding +/-inf
    return starts[keep], ends[keep], v[starts][keep].astype(np.float32)


def write_bigwig(path: str | os.PathLike, chrom_sizes: Mapping[str, int], values: Mapping[str, np.ndarray]) -> Path:
    with open_bigwig(path, chrom_sizes) as out:
        for chrom in chrom_sizes:
            if chrom in values:
                out.add(chrom, *value_runs(values[chrom]))
    return Path(path)
