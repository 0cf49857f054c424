"""``epx download hg19``: the reference genome FASTA of a dataset folder, fetched and unpacked.

Contract: ``download_genome(dest, genome="hg19", base_urls=(), retries=5, ...) -> Path`` puts
the dataset contract's ``genome.fa`` (+ ``genome.fa.fai``) in ``dest`` and returns its path.

- What and where come from the manifest (``genomes: {hg19: genome_hg19}``, the file kind
  ``genome_hg19``: UCSC's ``hg19.fa.gz`` in ``goldenPath/hg19/bigZips``, the original 2009
  hg19 that Roadmap was mapped to, verified against that directory's ``md5sum.txt``).
- The archive goes through ``epx.roadmap.download.fetch``, so it is resumable (``.part`` +
  Range), verified (size, gzip magic, the published md5) and recorded in
  ``dest/.epx-download.json``, as every Roadmap file is; it stays in ``raw/``.
- It is then decompressed into ``genome.fa`` atomically (``epx.io.atomic``: a killed run
  leaves no half FASTA under that name; the next run decompresses again, with no new
  transfer) and indexed by pyfaidx (``epx.io.fasta.ensure_index``; ~6 s per Gb in
  ``benchmarks/bench_genome.py``).
  The unpacked FASTA is recorded in the ledger with its size and the archive's md5, so a
  second call returns at once, opening no connection; a FASTA that no longer matches its
  record (or an archive with another md5) is unpacked again.
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import zlib
from collections.abc import Iterable
from pathlib import Path

from epx.io.atomic import atomic_path
from epx.io.fasta import ensure_index
from epx.roadmap.download import Ledger, RemoteFile, fetch, load_manifest, resolve_sources

log = logging.getLogger(__name__)

GENOME_DEST = "genome.fa"  # the dataset contract's default files.genome
_COPY_BLOCK = 16 << 20


def genome_remote(genome: str = "hg19", *, base_urls: Iterable[str] = (), manifest: dict | None = None) -> RemoteFile:
    """The archive to fetch for ``genome`` (a key of the manifest's ``genomes``)."""
    manifest = manifest or load_manifest()
    genomes = manifest["genomes"]
    if genome not in genomes:
        raise ValueError(f"unknown genome {genome!r}; epx downloads {', '.join(sorted(genomes))}")
    spec = manifest["files"][genomes[genome]]
    base = resolve_sources(manifest, base_urls)[spec["source"]]
    checksums = spec.get("checksums")
    return RemoteFile(url=f"{base}/{spec['path']}", dest=Path(spec["dest"]), fmt=spec["format"],
                      checksums_url=f"{base}/{checksums}" if checksums else None)


def _unpacked(ledger: Ledger, fasta: Path, archive_rel: str) -> bool:
    """``genome.fa`` is the recorded, complete unpacking of the archive as it was verified."""
    entry, archive = ledger.files.get(GENOME_DEST), ledger.files.get(archive_rel)
    return (
        entry is not None
        and fasta.is_file()
        and fasta.stat().st_size == entry["size"]
        and (archive is None or entry.get("from_md5") == archive.get("md5"))
    )


def _decompress(archive: Path, fasta: Path) -> int:
    """``archive`` (gzip) → ``fasta``, atomically; the number of bytes written."""
    log.info("decompressing %s -> %s", archive, fasta)
    with atomic_path(fasta) as tmp:
        try:
            with gzip.open(archive, "rb") as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, _COPY_BLOCK)
        except (EOFError, zlib.error, gzip.BadGzipFile) as err:
            raise ValueError(f"{archive} is not a complete gzip file ({err}); delete it and rerun `epx download hg19`") from err
        with open(tmp, "rb") as check:
            if check.read(1) != b">":
                raise ValueError(f"{archive} does not hold a FASTA (no '>' header first); delete it and rerun `epx download hg19`")
    return fasta.stat().st_size


def download_genome(
    dest: str | os.PathLike,
    genome: str = "hg19",
    *,
    base_urls: Iterable[str] = (),
    retries: int = 5,
    backoff_s: float = 2.0,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    root = Path(dest)
    remote = genome_remote(genome, base_urls=base_urls)
    ledger = Ledger(root)
    fasta = root / GENOME_DEST
    archive_rel = remote.dest.as_posix()
    if _unpacked(ledger, fasta, archive_rel):
        ensure_index(fasta)  # a deleted .fai is rebuilt, offline
        return fasta
    archive = fetch(remote, root, ledger, retries=retries, backoff_s=backoff_s, timeout=timeout, progress=progress)
    size = _decompress(archive, fasta)
    ensure_index(fasta)
    ledger.files[GENOME_DEST] = {"from": archive_rel, "from_md5": ledger.files[archive_rel].get("md5"), "size": size, "genome": genome}
    ledger.save()
    return fasta
