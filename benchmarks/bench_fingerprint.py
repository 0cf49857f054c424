"""Content fingerprints (issue 23, part 2): the cost of hashing every input, per GB and as a
share of a cache build at hg19 scale, measured side by side in one process.

1. Hash speed: one ``--gb`` GB file of random bytes (written once, then read from the page
   cache, the usual case right after a download or a previous job) hashed with XXH3-128 (what
   ``epx.io.fingerprint`` uses), SHA-256 and BLAKE2b in 16 MiB blocks; ``--repeats`` rounds,
   algorithms alternated, medians. Printed: s per GB of each and its ratio to XXH3-128.
2. Share of a cache build: the dense fold-enrichment-like mark of ``bench_cache.py``
   (variable 10-200 bp intervals on every base, as MACS2 writes them) at ``--mb`` Mb; the
   cell cache of that mark is built (``CellCache.ensure``, which now hashes the bigWig
   before it reads it) and the bigWig hashed alone; both scale linearly with the genome, so
   the share is the hg19 share; also extrapolated to hg19 (3.1 Gb) x 7 marks.

    python benchmarks/bench_fingerprint.py [--gb 1] [--mb 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import xxhash

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_cache import dense_folder  # noqa: E402
from epx.data.prepare.cache import CellCache  # noqa: E402
from epx.data.prepare.contract import DatasetSpec  # noqa: E402
from epx.io import fingerprint as fp  # noqa: E402

HG19_GB = 3.1
BLOCK = fp.BLOCK
ALGORITHMS = {"xxh3_128": xxhash.xxh3_128, "sha256": hashlib.sha256, "blake2b": hashlib.blake2b}


def hash_file(path: Path, make) -> float:
    digest = make()
    block = bytearray(BLOCK)
    view = memoryview(block)
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as handle:
        while n := handle.readinto(block):
            digest.update(view[:n])
    digest.hexdigest()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        blob = tmp / "blob.bin"
        with open(blob, "wb") as out:
            for _ in range(int(args.gb * 1024)):
                out.write(os.urandom(1 << 20))
        gb = blob.stat().st_size / 1e9
        times = {name: [] for name in ALGORITHMS}
        for _ in range(args.repeats):
            for name, make in ALGORITHMS.items():
                times[name].append(hash_file(blob, make))
        base = statistics.median(times["xxh3_128"]) / gb
        print(f"[hash] {gb:.2f} GB from the page cache, {args.repeats} rounds, medians:")
        for name in ALGORITHMS:
            per_gb = statistics.median(times[name]) / gb
            print(f"  {name:9s} {per_gb:7.3f} s/GB  ({1 / per_gb:5.2f} GB/s)  x{per_gb / base:5.1f} of xxh3_128")
        blob.unlink()

        root, marks = dense_folder(tmp, args.mb)
        src = root / "signals" / "E003-H3K4me3.bigwig"
        size_gb = src.stat().st_size / 1e9
        builds, hashes = [], []
        for k in range(args.repeats):
            fp._MEMO.clear()  # each build hashes the file again, as a new job's process does
            cache = CellCache(DatasetSpec(root=root), "E003", tmp / f"cache{k}")
            t0 = time.perf_counter()
            cache.ensure(marks)
            builds.append(time.perf_counter() - t0)
            hashes.append(hash_file(src, xxhash.xxh3_128))
        build, hashed = statistics.median(builds), statistics.median(hashes)
        scale = HG19_GB * 1000 / args.mb
        print(f"[cache] dense mark, {args.mb} Mb, bigWig {size_gb * 1e3:.1f} MB: cache build {build:.2f} s "
              f"(hash included), XXH3-128 of the bigWig {hashed:.3f} s = {100 * hashed / build:.1f}% of the build")
        print(f"  hg19 x 7 marks (x{scale:.1f} per mark): bigWigs {7 * size_gb * scale:.1f} GB, build ~{7 * build * scale:.0f} s, "
              f"hashing ~{7 * hashed * scale:.1f} s; every later job re-checks its marks in ~{7 * hashed * scale:.1f} s")


if __name__ == "__main__":
    main()
