"""Genome cache: the reference sequence as base codes, built once per FASTA, for every cell.

Contract: ``GenomeCache(spec, cache_dir, chrom_sizes=None)``; ``.ensure() -> path`` makes sure
``{cache_dir}/genome-{fingerprint}/genome.h5`` holds one uint8 code array per chromosome
(``epx.io.fasta``'s encoding: A C G T = 0 1 2 3, N and other IUPAC codes = 4, soft-masking
dropped) and returns its path; ``.load(chroms=None) -> {chrom: uint8 (length,)}`` reads them
into memory (``chroms=None``: every cached chromosome). The sequence does not depend on the
cell, so one cache serves every cell and mark of a grid.

Naming: the cache is keyed in the dataset's naming: ``chrom_sizes`` when given, else the
dataset's ``chrom.sizes`` file, else the FASTA's own names. The FASTA is matched to it by
``DatasetSpec.check_genome`` (``1`` ↔ ``chr1`` reconciled, another assembly refused);
chromosomes the FASTA lacks are left out (``GenomeSequence`` reads them as N). ``load``
reconciles the names it is asked for too, so a job whose naming comes from ``chr1`` bigWig
headers reads a cache built from a ``1`` FASTA.

Invariants (those of ``CellCache``, ``epx/data/prepare/cache.py``):
- the fingerprint covers the FASTA's content (``epx.io.fingerprint``: its resolved path, size
  and XXH3-128 of every byte, about 0.2 s per GB: a same-size in-place edit that keeps the
  mtime gets a new cache, a ``touch`` does not), the naming (the chromosome sizes it is keyed
  to, ``dataset.chrom_names``) and the cache format; a changed FASTA gets a new directory, an
  unchanged one is never rebuilt;
- one file lock: concurrent jobs of a grid build it once, the others log that they wait;
- written atomically (``epx.io.atomic.atomic_path``) and marked complete last; temp files of
  a killed build are deleted by the next build, which holds the lock;
- every chromosome is chunked (1 Mb), gzip-compressed (level 1: ~0.33 bytes per base on
  random sequence, ~2.6 bits, at about the speed of lzf's 0.60) and Fletcher-32 checksummed;
  a file that fails its header check is rebuilt with a warning, one whose data fail while
  ``load`` reads them is rebuilt once, and if it still cannot be read ``load`` raises one
  ``InputError`` naming the file and the fix.
- the build reads the FASTA ``SPAN_BP`` bases per call, so its memory is one chromosome of codes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import h5py
import numpy as np
from filelock import FileLock, Timeout

from epx.data.prepare.cache import file_identity, short_error
from epx.data.prepare.contract import DatasetSpec
from epx.errors import InputError
from epx.io.atomic import atomic_path, stale_temps
from epx.io.chrom_sizes import read_chrom_sizes
from epx.io.fasta import FastaFile, iter_spans
from epx.io.fingerprint import ALGORITHM, reading
from epx.io.fingerprint import fingerprint as content_fingerprint
from epx.io.naming import reconcile

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
FILE_NAME = "genome.h5"
CHUNK_BP = 1 << 20
SPAN_BP = 8_000_000  # bases per FASTA read while building
# What a damaged HDF5 file raises while it is opened or read (h5py maps HDF5 errors onto these).
READ_ERRORS = (OSError, RuntimeError, KeyError, ValueError)


def fasta_signature(path: Path) -> dict:
    """The FASTA's identity: path, size and content hash (the mtime is not trusted)."""
    found = content_fingerprint(path)
    return {"path": str(path.resolve()), "size": found["size"], ALGORITHM: found[ALGORITHM]}


def genome_fingerprint(source: dict, chrom_sizes: Mapping[str, int] | None, exact: bool) -> str:
    key = {"fasta": source, "chrom_sizes": dict(chrom_sizes) if chrom_sizes else None, "exact": exact, "format": FORMAT_VERSION}
    return hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


class GenomeCache:
    def __init__(
        self,
        spec: DatasetSpec,
        cache_dir: str | Path,
        *,
        chrom_sizes: Mapping[str, int] | None = None,
        compression: str | None = "gzip",
        compression_opts: int | None = 1,
    ):
        self.spec, self.cache_dir = spec, Path(cache_dir)
        self._chrom_sizes = dict(chrom_sizes) if chrom_sizes is not None else None
        self.compression, self.compression_opts = compression, (compression_opts if compression == "gzip" else None)

    # -- identity -------------------------------------------------------------------------
    def fasta(self) -> Path:
        """The dataset's FASTA, or the contract's ``InputError`` naming it and the download."""
        path = self.spec.genome_path()
        if path is None:
            self.spec.check_genome()  # raises: names the expected path, the pattern and the download
        return path

    def chrom_sizes(self) -> dict[str, int] | None:
        """The naming the cache is keyed to (None: the FASTA's own)."""
        if self._chrom_sizes is None:
            sizes_path = self.spec.path("chrom_sizes")
            self._chrom_sizes = read_chrom_sizes(sizes_path) if sizes_path.exists() else {}
        return self._chrom_sizes or None

    @property
    def path(self) -> Path:
        """``{cache_dir}/genome-{fingerprint}/genome.h5`` of the FASTA as it is on disk now."""
        sig = fasta_signature(self.fasta())
        return self.cache_dir / f"genome-{genome_fingerprint(sig, self.chrom_sizes(), self.spec.exact_names)}" / FILE_NAME

    def valid(self, path: Path | None = None) -> bool:
        path = path or self.path
        if not path.exists():
            return False
        try:
            with h5py.File(path, "r") as f:
                ok = f.attrs.get("format") == FORMAT_VERSION and bool(f.attrs.get("complete", False))
                ok = ok and json.loads(f.attrs.get("source", "{}")) == fasta_signature(self.fasta())
        except READ_ERRORS as err:
            log.warning("genome cache %s is unreadable (%s); rebuilding it", path, short_error(err))
            return False
        if not ok:
            log.warning("genome cache %s is incomplete or from another FASTA; rebuilding it", path)
        return ok

    # -- build ----------------------------------------------------------------------------
    def ensure(self) -> Path:
        path = self.path
        if self.valid(path):
            return path
        with self._lock(path):
            if not self.valid(path):  # another job may have built it while we waited
                self._write(path)
        return path

    @contextlib.contextmanager
    def _lock(self, path: Path) -> Iterator[None]:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path) + ".lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            log.info("waiting for another process building genome cache %s", path)
            lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def _write(self, path: Path) -> None:
        for stale in stale_temps(path):  # a killed build's; safe to delete, we hold the lock
            stale.unlink(missing_ok=True)
        fasta_path = self.fasta()
        sizes = self.chrom_sizes()
        spelling = self.spec.check_genome(sizes)  # {dataset chrom: FASTA name}; refuses another assembly
        log.info("caching the genome sequence of %s in %s", fasta_path, path)
        with (
            FastaFile(fasta_path) as fasta,
            atomic_path(path) as tmp,
            h5py.File(tmp, "w", track_order=True) as out,
            reading(fasta_path),  # innermost: a FASTA replaced while it is read discards the temp file
        ):
            out.attrs["format"] = FORMAT_VERSION
            out.attrs["source"] = json.dumps(fasta_signature(fasta_path))
            out.attrs["names"] = json.dumps(spelling)  # dataset name -> FASTA record
            for chrom, name in spelling.items():
                length = fasta.sizes[name]
                if length == 0:
                    continue  # nothing to store; read as N like a missing chromosome
                data = out.create_dataset(
                    chrom, shape=(length,), dtype=np.uint8, chunks=(min(length, CHUNK_BP),),
                    compression=self.compression, compression_opts=self.compression_opts,
                    fletcher32=True,  # damaged bytes fail the read, never return wrong bases
                )
                for start, end in iter_spans(length, SPAN_BP):
                    data[start:end] = fasta.codes(name, start, end)
            out.attrs["complete"] = True  # last: a file without it is never trusted

    # -- read -----------------------------------------------------------------------------
    def load(self, chroms: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """``{chrom: uint8 codes}`` under the names asked for (reconciled to the cache's);
        chromosomes the cache lacks are left out."""
        path = self.ensure()
        try:
            return self._read(path, chroms)
        except READ_ERRORS as err:
            # ensure() checked the header; damage inside the data shows only now (checksum,
            # decompression, a truncated chunk). Rebuild once, then give up with one message.
            log.warning("genome cache %s is corrupt (%s: %s); rebuilding it", path, type(err).__name__, short_error(err))
            seen = file_identity(path)
            with self._lock(path):
                if file_identity(path) == seen:
                    self._write(path)
        try:
            return self._read(path, chroms)
        except READ_ERRORS as err:
            raise InputError(
                f"genome cache {path} cannot be read even after rebuilding it ({type(err).__name__}: {short_error(err)}); "
                f"delete {path.parent} (epx rebuilds it on the next run) and check the disk it is on"
            ) from err

    def _read(self, path: Path, chroms: Iterable[str] | None) -> dict[str, np.ndarray]:
        with h5py.File(path, "r") as f:
            cached = list(f.keys())
            wanted = cached if chroms is None else [str(c) for c in chroms]
            spelling = reconcile(wanted, cached, exact=self.spec.exact_names)
            return {chrom: f[name][:] for chrom, name in spelling.items() if name is not None}
