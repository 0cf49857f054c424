"""Seq-GraphReg's bottleneck cache: a trained base model's 64-dim bottleneck per 100 bp bin, on disk.

Contract: ``BottleneckCache(path, *, chunk_bp, channels=64, bin_bp=100, dtype="float16")``
holds, per chromosome, the base model's bottleneck of every ``chunk_bp`` chunk of the
chromosome (the base runs on chunks, as it was trained), computed once and kept in one HDF5
file (h5py). ``ensure(genome, chrom, chunks, compute)`` computes the chunks not yet stored
(``compute(onehot (K, 4, chunk_bp)) -> (K, channels, chunk_bp / bin_bp)``, batched by the
caller's function) and writes them; ``read(chrom, chunks) -> (K, channels, bins)`` float32
reads them back, chunks off the chromosome (a window's padded ends) reading the bottleneck
of an all-N chunk (``ensure`` stores it once, under ``/N``).

Keys, so that a stale entry can never be read: the file is named by the caller after the
base checkpoint's digest (other weights, another file); inside it, a chromosome's group is
named after the digest of its base codes (``epx.data.genome.GenomeSequence``), so another
assembly or an edited FASTA is another group. A chunk is marked done only after its values
are written; writers hold a file lock (``filelock``), so jobs of a grid that share a base
compute each chunk once (HDF5's own file locking is off, ``locking=False``: the file lock
orders the writers, and a reader opens the file only after its own ``ensure``). A file that h5py cannot open (a killed writer's) is deleted and
rebuilt, with a warning: it only ever holds what can be computed again.

Why per chunk and not per window: GraphReg's windows overlap three-fold (6 Mb windows
stepping 2 Mb), and are chunk-aligned, so a window is 60 consecutive chunks of the store and
each chunk of the genome is computed once, not three times.
"""

from __future__ import annotations

import hashlib
import logging
import weakref
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
from filelock import FileLock

from epx.errors import InputError

log = logging.getLogger(__name__)

# every cache object of this process, by file: HDF5 refuses to open a file for writing while
# the same process holds it open for reading, so a writer first closes the others' handles
# (they reopen on their next read)
_OPEN: dict[Path, weakref.WeakSet] = {}

N_GROUP = "N"  # the bottleneck of an all-N chunk: what a window's padding past the chromosome ends reads


def sequence_digest(codes: np.ndarray) -> str:
    """A short digest of one chromosome's base codes (uint8 (L,))."""
    return hashlib.blake2b(np.ascontiguousarray(codes, np.uint8).data, digest_size=10).hexdigest()


class BottleneckCache:
    """Per-chunk bottlenecks of one base model, in one HDF5 file (see the module docstring)."""

    def __init__(self, path: str | Path, *, chunk_bp: int, channels: int = 64, bin_bp: int = 100, dtype: str = "float16"):
        self.path = Path(path)
        self.chunk_bp, self.channels, self.bin_bp = int(chunk_bp), int(channels), int(bin_bp)
        self.bins = self.chunk_bp // self.bin_bp
        self.dtype = np.dtype(dtype)
        self._groups: dict[str, tuple[np.ndarray, str]] = {}  # chrom -> (its codes, group name)
        self._file: h5py.File | None = None
        _OPEN.setdefault(self.path.resolve(), weakref.WeakSet()).add(self)

    # -- identity
    def group(self, genome, chrom: str) -> str:
        codes = genome.sequences.get(chrom)
        if codes is None:
            raise InputError(f"chromosome {chrom} has no sequence in the genome source; check the dataset's genome.fa")
        known = self._groups.get(chrom)
        if known is None or known[0] is not codes:  # digested once per sequence array, not per read
            known = self._groups[chrom] = (codes, f"{chrom}__{sequence_digest(codes)}")
        return known[1]

    def n_chunks(self, genome, chrom: str) -> int:
        return -(-int(genome.lengths[chrom]) // self.chunk_bp)

    # -- building
    def _open_for_writing(self) -> h5py.File:
        for other in list(_OPEN.get(self.path.resolve(), ())):
            other.close()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return h5py.File(self.path, "a", locking=False)
        except OSError as err:
            if not self.path.exists() or h5py.is_hdf5(self.path):
                raise InputError(f"{self.path}: cannot write the bottleneck cache ({err}); set model.inputs.cache_dir to a writable dir") from err
            log.warning("bottleneck cache %s is not an HDF5 file (%s; a killed writer's?): deleting and rebuilding it", self.path, err)
            self.path.unlink()
            return h5py.File(self.path, "a", locking=False)

    def ensure(self, genome, chrom: str, chunks: np.ndarray, compute: Callable[[np.ndarray], np.ndarray]) -> int:
        """Compute and store the chunks of ``chrom`` in ``chunks`` (indices; off-chromosome
        ones are the N chunk) that are not stored yet. Returns how many were computed."""
        chunks = np.unique(np.asarray(chunks, np.int64))
        n = self.n_chunks(genome, chrom)
        inside = chunks[(chunks >= 0) & (chunks < n)]
        name = self.group(genome, chrom)
        if self._all_stored(name, inside, need_n=len(inside) < len(chunks)):
            return 0  # read-only: a complete cache in a read-only dir is fine
        computed = 0
        with FileLock(str(self.path) + ".lock"), self._open_for_writing() as f:
            if N_GROUP not in f and len(inside) < len(chunks):
                f.create_dataset(N_GROUP, data=compute(np.zeros((1, 4, self.chunk_bp), np.float32))[0].astype(self.dtype))
                computed += 1
            if name not in f:
                g = f.create_group(name)
                g.create_dataset("values", shape=(n, self.channels, self.bins), dtype=self.dtype,
                                 chunks=(1, self.channels, self.bins))
                g.create_dataset("done", data=np.zeros(n, bool))
            g = f[name]
            todo = inside[~g["done"][:][inside]] if len(inside) else inside
            for batch in np.array_split(todo, max(1, -(-len(todo) // 64))) if len(todo) else []:
                onehot = genome.onehot(np.full(len(batch), chrom, dtype=object), batch * self.chunk_bp, self.chunk_bp)
                values = compute(onehot).astype(self.dtype)
                g["values"][batch] = values
                done = g["done"][:]
                done[batch] = True
                f.flush()  # the values are on disk before the chunks are marked done
                g["done"][...] = done
                computed += len(batch)
        return computed

    def _all_stored(self, name: str, inside: np.ndarray, *, need_n: bool) -> bool:
        if not self.path.exists():
            return False
        try:
            f = self._reader()
        except OSError:
            return False  # the writer will say what is wrong with the file
        if (need_n and N_GROUP not in f) or (len(inside) and name not in f):
            return False
        return not len(inside) or bool(f[name]["done"][:][inside].all())

    # -- reading
    def _reader(self) -> h5py.File:
        if self._file is None:
            self._file = h5py.File(self.path, "r", locking=False)
        return self._file

    def read(self, genome, chrom: str, first_chunk: int, n_chunks: int) -> np.ndarray:
        """(channels, n_chunks * bins) float32: the bottlenecks of chunks ``first_chunk ..
        first_chunk + n_chunks - 1`` of ``chrom`` side by side (a window's), N past the ends."""
        f = self._reader()
        n = self.n_chunks(genome, chrom)
        out = np.empty((n_chunks, self.channels, self.bins), np.float32)
        lo, hi = max(first_chunk, 0), min(first_chunk + n_chunks, n)
        if lo > first_chunk or hi < first_chunk + n_chunks:
            out[:] = f[N_GROUP][:]
        if hi > lo:
            g = f[self.group(genome, chrom)]
            if not g["done"][lo:hi].all():
                raise RuntimeError(f"{self.path}: chunks {lo}..{hi - 1} of {chrom} were read before they were computed (ensure() first)")
            out[lo - first_chunk : hi - first_chunk] = g["values"][lo:hi]
        return out.transpose(1, 0, 2).reshape(self.channels, n_chunks * self.bins)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __getstate__(self) -> dict:  # DataLoader workers open their own handle
        state = dict(self.__dict__)
        state["_file"] = None
        return state
