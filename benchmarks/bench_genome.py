"""The genome source at scale (issue 19 part 4): one-hot extraction from the in-memory genome
cache next to a direct pyfaidx read of the same intervals, and the cache's size and build time.

On a synthetic random genome written in a temp dir (``--mb`` Mb over ``--chroms``
chromosomes; 4% of it N runs, half of it soft-masked as a real UCSC FASTA is) it measures, in
one process:

1. the FASTA write (``epx.io.fasta.write_fasta``), pyfaidx's ``.fai`` build (what a FASTA
   without one costs once) and the ``GenomeCache`` build, in seconds per Gb, and the cache file's bytes per Gb of genome;
2. the cache load (``GenomeCache.load``) into memory;
3. per window size (``--windows``, default 100 kb and 6 Mb: the sequence and GraphReg scales),
   one-hot extraction in ms per window: ``GenomeSequence.onehot`` on a batch of ``--batch``
   random windows (half reverse-complemented) against the baseline, pyfaidx's own read of the
   same intervals from the FASTA (page cache warm) + the same LUT encode and one-hot, window by
   window; medians over ``--repeats``, the two alternated, and the ratio printed.

    python benchmarks/bench_genome.py [--mb 200] [--chroms 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyfaidx

from epx.data.genome import GenomeSequence
from epx.data.prepare.contract import DatasetSpec
from epx.data.prepare.genome import GenomeCache
from epx.io.chrom_sizes import write_chrom_sizes
from epx.io.fasta import encode, ensure_index, onehot, reverse_complement, write_fasta

LETTERS = np.frombuffer(b"ACGTacgt", np.uint8)


def random_genome(sizes: dict[str, int], seed: int) -> dict[str, bytes]:
    """Letters with N runs (~4%) and soft-masked stretches (~half), as a real FASTA has."""
    rng = np.random.default_rng(seed)
    out = {}
    for chrom, n in sizes.items():
        letters = rng.integers(0, 4, n).astype(np.uint8)
        blocks = np.repeat(rng.random(-(-n // 10_000)) < 0.5, 10_000)[:n]  # 10 kb repeat blocks
        seq = LETTERS[letters + 4 * blocks]
        for start in rng.integers(0, n, max(1, n // 2_500_000)):
            seq[start : start + 100_000] = ord("N")
        out[chrom] = seq.tobytes()
    return out


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def baseline(fasta: pyfaidx.Faidx, chroms, starts, length: int, reverse) -> list[np.ndarray]:
    """pyfaidx's read of each interval + the house encode/one-hot: window by window."""
    out = []
    for chrom, start, rev in zip(chroms, starts, reverse):
        codes = encode(str(fasta.fetch(chrom, int(start) + 1, int(start) + length)))
        out.append(onehot(reverse_complement(codes) if rev else codes))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=200)
    parser.add_argument("--chroms", type=int, default=4)
    parser.add_argument("--windows", default="100000,6000000", help="window sizes in bp")
    parser.add_argument("--batch", default="128,4", help="windows per batch, per window size")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    windows = [int(w) for w in args.windows.split(",")]
    batches = [int(b) for b in args.batch.split(",")]
    per_chrom = int(args.mb * 1e6 / args.chroms)
    sizes = {f"chr{i + 1}": per_chrom for i in range(args.chroms)}
    gb = sum(sizes.values()) / 1e9

    with tempfile.TemporaryDirectory(prefix="bench-genome-") as tmp:
        root = Path(tmp) / "data"
        seqs = random_genome(sizes, args.seed)
        t_write = timed(lambda: write_fasta(root / "genome.fa", seqs))
        del seqs
        (root / "genome.fa.fai").unlink()  # what a downloaded FASTA needs: pyfaidx builds its index
        t_index = timed(lambda: ensure_index(root / "genome.fa"))
        write_chrom_sizes(sizes, root / "chrom.sizes")
        cache = GenomeCache(DatasetSpec(root=root, name="bench"), Path(tmp) / "cache")
        t_build = timed(cache.ensure)
        size = cache.path.stat().st_size
        loaded = {}
        t_load = timed(lambda: loaded.update(cache.load()))
        genome = GenomeSequence(loaded)
        print(f"genome: {gb * 1e3:.0f} Mb over {len(sizes)} chromosomes (synthetic random, 4% N, half soft-masked)")
        print(f"FASTA write        {t_write / gb:8.1f} s per Gb")
        print(f".fai build         {t_index / gb:8.1f} s per Gb  (pyfaidx, for a FASTA that comes without one)")
        print(f"cache build        {t_build / gb:8.1f} s per Gb  (FASTA -> genome.h5: pyfaidx read, encode, gzip-1)")
        print(f"cache size         {size / gb / 1e6:8.1f} MB per Gb  ({size / (gb * 1e9):.3f} bytes per base)")
        print(f"cache load         {t_load / gb:8.1f} s per Gb  (genome.h5 -> memory)")

        fasta = pyfaidx.Faidx(str(root / "genome.fa"), as_raw=True)
        rng = np.random.default_rng(args.seed + 1)
        for length, batch in zip(windows, batches):
            chroms = rng.choice(list(sizes), batch).astype(object)
            starts = rng.integers(0, per_chrom - length, batch)
            reverse = rng.random(batch) < 0.5
            run = {
                "cache": lambda: genome.onehot(chroms, starts, length, reverse=reverse),
                "pyfaidx": lambda: baseline(fasta, chroms, starts, length, reverse),
            }
            for fn in run.values():
                fn()  # warm-up: page cache, allocator
            times = {name: [] for name in run}
            for r in range(args.repeats):  # alternated, and the order swapped, so both see the same machine state
                for name in (list(run) if r % 2 == 0 else list(run)[::-1]):
                    times[name].append(timed(run[name]) / batch)
            ours, theirs = times["cache"], times["pyfaidx"]
            check = genome.onehot(chroms[:1], starts[:1], length, reverse=reverse[:1])[0]
            assert np.array_equal(check, baseline(fasta, chroms[:1], starts[:1], length, reverse[:1])[0])
            a, b = statistics.median(ours) * 1e3, statistics.median(theirs) * 1e3
            print(f"one-hot {length / 1e3:>6.0f} kb   cache {a:8.2f} ms/window   pyfaidx+encode {b:8.2f} ms/window   "
                  f"ratio {b / a:5.1f}x   (batch {batch}, median of {args.repeats})")
        fasta.close()


if __name__ == "__main__":
    main()
