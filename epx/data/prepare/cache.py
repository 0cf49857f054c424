"""Binned-signal cache: prepare once per cell, train many (DESIGN §2.2).

Contract: ``CellCache(spec, cell, cache_dir, bin_bp=100, dtype="float32")``; ``.ensure(marks)``
makes sure ``{cache_dir}/{fingerprint}/{cell}.h5`` holds every requested mark at ``bin_bp``
genome-wide (mean per-bp signal, chunked, compressed, Fletcher-32 checksummed) and returns its
path; ``.load(marks)`` returns ``{chrom: float32 (n_bins, M)}`` in memory, whatever the storage
(``half=True``: a float16 cache stays float16 in memory, as the DataModule loads it).

Storage precision (``dtype``, issue 14 part 2): the cache stores, models compute in float32.

- ``float32`` (default): the bin means exactly as read.
- ``float16``: half the size. 11 significant bits: every value in float16's normal range
  [2^-14 ≈ 6.1e-5, 65504] is kept within a relative error of 2^-11 ≈ 4.9e-4, and the models'
  input ln(mean + 1) within an absolute 4.9e-4 at any value up to 65504. A mark is refused
  (``InputError`` naming the bigWig, the cell and mark, the value and where it is, and the fix)
  when any bin mean exceeds 65504 (it would become inf, and the loss NaN), or when more than
  ``FLOAT16_MAX_SUBNORMAL`` (1%) of its non-zero bins sit below 2^-14, where float16 keeps
  fewer than 11 bits (a track on a tiny scale, e.g. per-bp probabilities: rescale it or store
  it as bfloat16 or float32). Fold-enrichment and read-depth tracks pass in practice: 65504
  is a mean depth of 65,504 reads on every base of a 100 bp bin (collapsed repeats in a deep,
  unfiltered library can reach it: that is the error's case).
- ``bfloat16``: half the size, float32's range (no overflow below 3.4e38, no subnormal loss
  above 1.2e-38) at 8 significant bits: relative error ≤ 2^-8 ≈ 3.9e-3, ln(mean + 1) within
  an absolute 3.9e-3. HDF5 has no bfloat16 type, so a bfloat16 dataset is stored as ``uint16``
  holding the upper 16 bits of each IEEE float32 value (rounded to nearest, ties to even), with
  the dataset attribute ``encoding = "bfloat16"``; ``decode`` turns it back into float32 by a
  16-bit shift. Other HDF5 readers see the integers: decode them the same way.

float16 is the better half format for ChIP-seq bin means (8× finer than bfloat16 where the
signal lives) and a plain HDF5 float; bfloat16 is the fallback for tracks beyond 65504. Both
halve the file and the build's write time is the same or less (``benchmarks/bench_cache.py``).
Marks a build only prefetches (not requested by the job) that a half format refuses are left
out with a warning; a job that asks for one gets the error.

Invariants:
- the directory fingerprint covers the dataset root, chromosome sizes, bin size, dtype and
  the cache format, so caches of different precision sit side by side; the file records its
  dtype too, and a file of another dtype is rebuilt, never read; each mark inside records its
  source bigWig's content fingerprint (``epx.io.fingerprint``: size and XXH3-128 of every
  byte, with path and mtime for the reader), so a changed input rebuilds that mark — even a
  same-size in-place edit that restores the mtime — and an unchanged one never does (a
  ``touch`` no longer rebuilds); a bigWig replaced or rewritten while the build reads it is
  one ``InputError`` naming it, never recorded with one file's hash over the other's data;
- writes are atomic (``epx.io.atomic.atomic_path``: a hidden temp file in the same
  directory, renamed into place) and the file is marked complete last: a truncated, foreign
  or half-written file is rebuilt (with a warning), never read; temp files of a killed build
  (SIGKILL, out of memory) are deleted by the next build, which holds the cell's lock;
- a file lock per cell makes concurrent jobs of one grid build a cell once: the others log
  that they wait, then read what the first built. By default the first build takes every
  mark the cell has on disk so later jobs with other marks reuse it;
- every dataset is written with a Fletcher-32 checksum, so bytes damaged after the build
  fail the read instead of returning wrong values (files built before the checksum have
  none and read as before). A file that opens but fails while ``load`` reads it is rebuilt
  once with a warning; if it still cannot be read, ``load`` raises one ``InputError`` naming
  the file and the fix (delete it; epx rebuilds it) — never a raw h5py error;
- a build that runs out of room (no space, file-size limit, quota) raises
  ``epx.errors.StorageError`` naming the cache file and the fix, in every dtype; a mark a half
  format refuses raises ``InputError``; either way the previous cache file is untouched and
  still valid.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np
from filelock import FileLock, Timeout

from epx.constants import MARKS
from epx.data.prepare.contract import DatasetSpec
from epx.errors import InputError
from epx.ids import check_id
from epx.io.atomic import atomic_path, stale_temps, write_text
from epx.io.bigwig import read_binned
from epx.io.fingerprint import fingerprint as content_fingerprint
from epx.io.fingerprint import reading, same_content

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
DTYPES = ("float32", "float16", "bfloat16")
FLOAT16_MAX = float(np.finfo(np.float16).max)  # 65504
FLOAT16_TINY = float(np.finfo(np.float16).smallest_normal)  # 2^-14: below it, fewer than 11 bits
FLOAT16_MAX_SUBNORMAL = 0.01  # the share of non-zero bins allowed below FLOAT16_TINY
BFLOAT16_MAX = float(np.frombuffer(np.uint32(0x7F7F0000).tobytes(), np.float32)[0])  # 3.39e38
HALF_FIX = "set data.cache_dtype=bfloat16 (float32's range, 8 significant bits) or data.cache_dtype=float32 (exact)"


def encode(values: np.ndarray, dtype: str) -> np.ndarray:
    """float32 bin means → what the cache stores for ``dtype`` (bfloat16: uint16 bit patterns,
    the upper half of the float32 rounded to nearest, ties to even)."""
    values = np.asarray(values, np.float32)
    if dtype == "bfloat16":
        bits = values.view(np.uint32)
        return ((bits + (np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1)))) >> 16).astype(np.uint16)
    return values.astype(dtype, copy=False)


def decode(stored: np.ndarray, encoding: str | None) -> np.ndarray:
    """What the cache stored → float32."""
    if encoding == "bfloat16":
        return (stored.astype(np.uint32) << 16).view(np.float32)
    return stored.astype(np.float32, copy=False)


def half_problem(binned: dict[str, np.ndarray], dtype: str, bin_bp: int) -> str | None:
    """Why ``dtype`` cannot hold a mark's bin means (``{chrom: float32}``) and the fix, or None."""
    if dtype == "float32":
        return None
    top_chrom = max(binned, key=lambda c: binned[c].max(initial=0.0))
    top = binned[top_chrom].max(initial=0.0)
    at = int(np.argmax(binned[top_chrom])) * bin_bp
    if dtype == "float16" and top > FLOAT16_MAX:
        n_over = sum(int(np.count_nonzero(v > FLOAT16_MAX)) for v in binned.values())
        return (f"its largest {bin_bp} bp bin mean is {top:.6g} ({top_chrom}:{at}-{at + bin_bp}; {n_over} bin(s) above "
                f"{FLOAT16_MAX:g}, float16's largest value: they would be stored as inf); {HALF_FIX}")
    if dtype == "bfloat16" and top > BFLOAT16_MAX:
        return (f"its largest {bin_bp} bp bin mean is {top:.6g} ({top_chrom}:{at}-{at + bin_bp}), above bfloat16's largest "
                f"value {BFLOAT16_MAX:.4g}; set data.cache_dtype=float32")
    if dtype == "float16":
        nonzero = sum(int(np.count_nonzero(v)) for v in binned.values())
        tiny = sum(int(np.count_nonzero((v > 0) & (v < FLOAT16_TINY))) for v in binned.values())
        if nonzero and tiny > FLOAT16_MAX_SUBNORMAL * nonzero:
            return (f"{tiny} of its {nonzero} non-zero {bin_bp} bp bin means ({100 * tiny / nonzero:.1f}%, largest "
                    f"{top:.3g}) are below {FLOAT16_TINY:.3g}, where float16 keeps fewer than 11 significant bits "
                    f"(relative error up to 100%); rescale the track (e.g. to reads or CPM per bp), or {HALF_FIX}")
    return None


def source_signature(path: Path) -> dict:
    """What a cached mark records of its bigWig: its path and content fingerprint."""
    return {"path": str(path.resolve()), **content_fingerprint(path)}


def fingerprint(spec: DatasetSpec, chrom_sizes: dict[str, int], bin_bp: int, dtype: str) -> str:
    key = {
        "root": str(spec.root.resolve()),
        "signal": spec.files["signal"],
        "chrom_sizes": chrom_sizes,
        "bin_bp": bin_bp,
        "dtype": dtype,
        "format": FORMAT_VERSION,
    }
    return hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


class CellCache:
    def __init__(
        self,
        spec: DatasetSpec,
        cell: str,
        cache_dir: str | Path,
        *,
        bin_bp: int = 100,
        dtype: str = "float32",
        compression: str | None = "lzf",
        prefetch_all_marks: bool = True,
        chrom_sizes: dict[str, int] | None = None,
    ):
        if dtype not in DTYPES:
            raise InputError(f"cache dtype {dtype!r} is not one of {', '.join(DTYPES)} (data.cache_dtype)")
        self.spec, self.cell, self.bin_bp, self.dtype = spec, check_id(cell, "cell"), bin_bp, dtype
        self.compression = compression
        self.prefetch_all_marks = prefetch_all_marks
        self.chrom_sizes = chrom_sizes or spec.chrom_sizes(cell, self._marks_on_disk() or MARKS)
        self.dir = Path(cache_dir) / fingerprint(spec, self.chrom_sizes, bin_bp, dtype)
        self.path = self.dir / f"{cell}.h5"
        self._required: set[str] | None = None  # the marks the current build was asked for

    # -- validity -------------------------------------------------------------------------
    def _marks_on_disk(self) -> list[str]:
        return [m for m in MARKS if self.spec.signal_path(self.cell, m).exists()]

    def valid_marks(self) -> dict[str, dict]:
        """Marks in the cache file whose recorded source matches the file on disk now."""
        if not self.path.exists():
            return {}
        try:
            with h5py.File(self.path, "r") as f:
                if (
                    f.attrs.get("format") != FORMAT_VERSION
                    or not f.attrs.get("complete", False)
                    or int(f.attrs.get("bin_bp", -1)) != self.bin_bp
                    or f.attrs.get("dtype", "float32") != self.dtype  # files before issue 14 are float32
                    or json.loads(f.attrs.get("chrom_sizes", "{}")) != self.chrom_sizes
                ):
                    log.warning("cache %s is incomplete or from other settings; rebuilding it", self.path)
                    return {}
                recorded = {m: json.loads(f[m].attrs["source"]) for m in f.keys()}
        except (OSError, RuntimeError, KeyError, ValueError) as err:
            log.warning("cache %s is unreadable (%s); rebuilding it", self.path, err)
            return {}
        valid = {}
        for mark, sig in recorded.items():
            src = self.spec.signal_path(self.cell, mark)
            if same_content(sig, src):  # the bytes, not path + size + mtime
                valid[mark] = sig
        return valid

    # -- build ----------------------------------------------------------------------------
    def ensure(self, marks: Sequence[str]) -> Path:
        if set(marks) <= set(self.valid_marks()):
            return self.path
        with self._lock():
            valid = self.valid_marks()  # another job may have built it while we waited
            todo = [m for m in self._wanted(marks) if m not in valid]
            if todo:
                self._required = set(marks)
                self._write(keep=sorted(valid), build=todo)
        return self.path

    def _wanted(self, marks: Sequence[str]) -> list[str]:
        """The marks a build takes: the requested ones, plus every mark on disk by default."""
        wanted = set(marks) | (set(self._marks_on_disk()) if self.prefetch_all_marks else set())
        return [m for m in MARKS if m in wanted] + sorted(wanted - set(MARKS))

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """The cell's build lock; says so in the log when another process holds it, so a job
        waiting on another job's build does not look hung."""
        self.dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.path) + ".lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            log.info("waiting for another process building cache %s", self.path)
            lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def _write(self, keep: list[str], build: list[str]) -> None:
        """A new file with the valid marks ``keep`` copied and ``build`` read from the bigWigs.
        A mark of ``build`` that the dtype cannot hold is an ``InputError`` when the caller
        asked for it (``self._required``, set by ``ensure``; None: every mark), else it is left
        out with a warning."""
        required = self._required
        # Temp files of a killed build: safe to delete, we hold the lock. The second pattern
        # is the name earlier epx versions used.
        for stale in [*stale_temps(self.path), *self.dir.glob(f"{self.cell}.h5.tmp-*")]:
            stale.unlink(missing_ok=True)
        with atomic_path(self.path) as tmp:
            with h5py.File(tmp, "w") as out:
                out.attrs["format"] = FORMAT_VERSION
                out.attrs["bin_bp"] = self.bin_bp
                out.attrs["cell"] = self.cell
                out.attrs["chrom_sizes"] = json.dumps(self.chrom_sizes)
                out.attrs["dtype"] = self.dtype
                if keep:
                    with h5py.File(self.path, "r") as old:
                        for mark in keep:
                            old.copy(old[mark], out, name=mark)
                for mark in build:
                    src = self.spec.signal_path(self.cell, mark)
                    if not src.exists():
                        raise InputError(f"missing bigWig for cell {self.cell}, mark {mark}: {src}")
                    log.info("caching %s %s from %s", self.cell, mark, src)
                    with reading(src) as signature:  # refused if the file changes while it is read
                        binned = read_binned(src, self.chrom_sizes, bin_bp=self.bin_bp)
                    problem = half_problem(binned, self.dtype, self.bin_bp)
                    if problem is not None:
                        message = f"cannot cache cell {self.cell}, mark {mark} in {self.dtype}: {src}: {problem}"
                        if required is None or mark in required:
                            raise InputError(message)
                        log.warning("%s; left out of %s (a job that needs it gets this error)", message, self.path)
                        continue
                    group = out.create_group(mark)
                    group.attrs["source"] = json.dumps({"path": str(src.resolve()), **signature})
                    for chrom, values in binned.items():
                        data = group.create_dataset(
                            chrom,
                            data=encode(values, self.dtype),
                            chunks=(min(values.shape[0], 1 << 16),),
                            compression=self.compression,
                            fletcher32=True,  # damaged bytes fail the read, never return wrong values
                        )
                        if self.dtype == "bfloat16":
                            data.attrs["encoding"] = "bfloat16"  # uint16: the upper half of a float32
                out.attrs["complete"] = True  # last: a file without it is never trusted
        write_text(
            self.dir / "dataset.json",
            json.dumps({"root": str(self.spec.root.resolve()), "bin_bp": self.bin_bp, "dtype": self.dtype}, indent=1),
        )

    # -- read -----------------------------------------------------------------------------
    def load(self, marks: Sequence[str], chroms: Iterable[str] | None = None, *, half: bool = False) -> dict[str, np.ndarray]:
        """``{chrom: float32 (n_bins, M)}`` for ``marks`` in the given order. ``half``: a float16
        cache comes back as float16, half the memory (``SignalTracks`` widens what a batch
        reads to float32, so the values a model sees are the same); bfloat16, which NumPy
        lacks, still comes back as float32."""
        chroms = list(self.chrom_sizes) if chroms is None else list(chroms)
        unknown = [c for c in chroms if c not in self.chrom_sizes]
        if unknown:
            raise InputError(
                f"cache {self.path}: chromosomes {', '.join(map(str, unknown[:5]))} are not in the chromosome sizes of "
                f"{self.spec.root}; read only chromosomes it lists"
            )
        self.ensure(marks)
        try:
            return self._read(marks, chroms, half)
        except READ_ERRORS as err:
            # ensure() checked the header; damage inside the data shows only now (checksum,
            # decompression, a truncated chunk). Rebuild once, then give up with one message.
            log.warning("cache %s is corrupt (%s: %s); rebuilding it", self.path, type(err).__name__, short_error(err))
            self._rebuild(marks, seen=file_identity(self.path))
        try:
            return self._read(marks, chroms, half)
        except READ_ERRORS as err:
            raise InputError(
                f"cache file {self.path} cannot be read even after rebuilding it ({type(err).__name__}: {short_error(err)}); "
                f"delete {self.path} (epx rebuilds it on the next run) and check the disk it is on"
            ) from err

    def _read(self, marks: Sequence[str], chroms: list[str], half: bool = False) -> dict[str, np.ndarray]:
        out = {}
        with h5py.File(self.path, "r") as f:
            for chrom in chroms:
                columns = [f[m][chrom] for m in marks]
                native = half and bool(columns) and all(c.dtype == np.float16 and not c.attrs.get("encoding") for c in columns)
                block = np.empty((columns[0].shape[0] if columns else 0, len(marks)), np.float16 if native else np.float32)
                for j, data in enumerate(columns):
                    block[:, j] = data[:] if native else decode(data[:], data.attrs.get("encoding"))
                out[chrom] = block
        return out

    def _rebuild(self, marks: Sequence[str], seen: tuple | None) -> None:
        """Rewrite the whole file from the bigWigs, unless another process replaced it since
        we found it damaged (then read theirs)."""
        with self._lock():
            if file_identity(self.path) == seen:
                self._required = set(marks)
                self._write(keep=[], build=self._wanted(marks))


# What a damaged HDF5 file raises while its data are read (h5py maps HDF5 errors onto these).
READ_ERRORS = (OSError, RuntimeError, KeyError, ValueError)


def file_identity(path: Path) -> tuple | None:
    """(inode, size, mtime) of ``path``, None when absent: tells whether another process replaced it."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def short_error(err: BaseException) -> str:
    """An exception's message on one line, at most 200 characters (for log lines and errors)."""
    return " ".join(str(err).split())[:200]
