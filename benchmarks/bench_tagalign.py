"""Benchmark: tagAlign.gz → per-bp read-depth bigWig throughput and peak memory.

Generates a Roadmap-like tagAlign.gz (36 bp reads as in the consolidated Roadmap files,
hg19 chromosome lengths, reads spread over chromosomes in proportion to length, sorted
by chromosome then start, half on each strand; a quarter of the reads piled into 2 kb
"peaks" so depth varies like ChIP-seq), then converts it in a fresh child process and
reports reads/s and the child's peak resident memory (``resource.getrusage`` ru_maxrss),
so the generator's own memory is not counted.

    python benchmarks/bench_tagalign.py                  # 10 M reads (the issue's size)
    python benchmarks/bench_tagalign.py --reads 2000000  # quicker on a small machine
    python benchmarks/bench_tagalign.py --extend 200     # fragment-extended coverage

Generating 10 M reads takes a few minutes on 2 cores (gzip dominates); the file is kept in
``--workdir`` and reused by later runs with the same ``--reads`` and ``--seed``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from epx.io.atomic import atomic_path
from epx.io.chrom_sizes import write_chrom_sizes

# hg19 chr1..22, X, Y lengths (UCSC hg19.chrom.sizes).
HG19 = {
    "chr1": 249250621, "chr2": 243199373, "chr3": 198022430, "chr4": 191154276,
    "chr5": 180915260, "chr6": 171115067, "chr7": 159138663, "chr8": 146364022,
    "chr9": 141213431, "chr10": 135534747, "chr11": 135006516, "chr12": 133851895,
    "chr13": 115169878, "chr14": 107349540, "chr15": 102531392, "chr16": 90354753,
    "chr17": 81195210, "chr18": 78077248, "chr19": 59128983, "chr20": 63025520,
    "chr21": 48129895, "chr22": 51304566, "chrX": 155270560, "chrY": 59373566,
}
READ_LEN = 36


def generate(path: Path, n_reads: int, seed: int) -> None:
    """Write ``n_reads`` sorted 36 bp reads to ``path`` (gzip, tagAlign BED6)."""
    rng = np.random.default_rng(seed)
    lengths = np.array(list(HG19.values()), dtype=np.float64)
    per_chrom = rng.multinomial(n_reads, lengths / lengths.sum())
    with atomic_path(path) as tmp, gzip.open(tmp, "wb", compresslevel=6) as fh:
        for (chrom, length), n in zip(HG19.items(), per_chrom):
            n_peak = n // 4
            centres = rng.integers(0, length - 2000, size=max(1, n // 400))
            starts = np.concatenate([
                rng.integers(0, length - READ_LEN, size=n - n_peak),
                rng.choice(centres, size=n_peak) + rng.integers(0, 2000, size=n_peak),
            ])
            starts.sort()
            strands = np.where(rng.random(n) < 0.5, "+", "-")
            lines = np.char.add(
                np.char.add(f"{chrom}\t", starts.astype(str)),
                np.char.add("\t", (starts + READ_LEN).astype(str)),
            )
            lines = np.char.add(np.char.add(lines, "\tN\t1000\t"), strands)
            fh.write(("\n".join(lines.tolist()) + "\n").encode())


def convert_in_child(tagalign: Path, out: Path, sizes: Path, extend: int | None) -> dict:
    code = (
        "import json, resource, sys, time\n"
        "from epx.convert.tagalign import tagalign_to_bigwig\n"
        "t = time.perf_counter()\n"
        f"st = tagalign_to_bigwig({str(tagalign)!r}, {str(sizes)!r}, {str(out)!r}, extend={extend!r})\n"
        "wall = time.perf_counter() - t\n"
        "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(json.dumps({'reads': st.reads, 'intervals': st.intervals, 'seconds': wall,"
        " 'peak_rss_mb': rss / 1024}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=10_000_000)
    parser.add_argument("--extend", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("outputs/bench_tagalign"))
    args = parser.parse_args(argv)

    args.workdir.mkdir(parents=True, exist_ok=True)
    sizes = args.workdir / "hg19.chrom.sizes"
    write_chrom_sizes(HG19, sizes)
    tagalign = args.workdir / f"reads{args.reads}_seed{args.seed}.tagAlign.gz"
    if not tagalign.exists():
        t = time.perf_counter()
        generate(tagalign, args.reads, args.seed)
        print(f"generated {tagalign} ({tagalign.stat().st_size / 1e6:.0f} MB) "
              f"in {time.perf_counter() - t:.0f} s")
    result = convert_in_child(tagalign, args.workdir / "out.bigwig", sizes, args.extend)
    result["reads_per_s"] = result["reads"] / result["seconds"]
    result["gz_bytes_per_read"] = tagalign.stat().st_size / result["reads"]
    result["bigwig_mb"] = (args.workdir / "out.bigwig").stat().st_size / 1e6
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
