"""Data-path benchmarks (issue 2), printed as ratios against baselines run in this process.

1. cache build vs raw decode: building a cell's cache from a dense bigWig against the bare
   ``values(..., numpy=True)`` decode of the same spans (the floor; target ratio ≤ 1.5);
2. window extraction: 20,000 genes × 7 marks × 40 kb at 100 bp from in-memory cached tracks
   (target ≤ 2 s on CPU);
3. sparse genome: the real E003 slice (hg19 sizes, data only around 100 genes), 7 marks
   (target: seconds) — skipped where ../shared is absent.

    python benchmarks/bench_data.py [--mb 200] [--genes 20000]   (each figure: best of 3)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyBigWig

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from epx.constants import MARKS  # noqa: E402
from epx.data.prepare.cache import CellCache  # noqa: E402
from epx.data.prepare.contract import DatasetSpec  # noqa: E402
from epx.data.tracks import SignalTracks  # noqa: E402
from epx.io.bigwig import open_bigwig  # noqa: E402
from epx.io.chrom_sizes import write_chrom_sizes  # noqa: E402
from epx.io.expression import write_expression  # noqa: E402
from epx.io.tss import write_tss  # noqa: E402


def dense_bigwig(path: Path, sizes: dict[str, int], seed: int = 0) -> None:
    """Fold-change-like dense track as MACS2/bedGraphToBigWig writes it: variable-length
    intervals (10-200 bp) covering every base."""
    rng = np.random.default_rng(seed)
    with open_bigwig(path, sizes) as out:
        for chrom, n in sizes.items():
            ends = np.cumsum(rng.integers(10, 200, size=n // 50))
            ends = np.append(ends[ends < n], n)
            starts = np.concatenate([[0], ends[:-1]])
            out.add(chrom, starts, ends, rng.gamma(0.5, 2.0, size=starts.size))


def bench_build(mb: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ds"
        sizes = {"chr1": mb * 1_000_000 // 2, "chr2": mb * 1_000_000 // 2}
        write_chrom_sizes(sizes, root / "chrom.sizes")
        write_tss(pd.DataFrame({"gene_id": ["g"], "chrom": ["chr1"], "tss": [100], "strand": ["+"]}), root / "tss.bed")
        write_expression(pd.DataFrame({"gene_id": ["g"], "X": [1]}), root / "expression.tsv")
        src = root / "signals" / "X-H3K4me3.bigwig"
        dense_bigwig(src, sizes)

        span = 8_000_000

        def decode_only():
            bw = pyBigWig.open(str(src))
            for chrom, n in sizes.items():
                for s in range(0, n, span):
                    bw.values(chrom, s, min(s + span, n), numpy=True)
            bw.close()

        def build_cache(i=iter(range(100))):
            CellCache(DatasetSpec(root=root), "X", Path(tmp) / f"cache{next(i)}", prefetch_all_marks=False).ensure(["H3K4me3"])

        # alternate the two, best of 3 each: robust to other load on the machine
        decode, build = float("inf"), float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            decode_only()
            decode = min(decode, time.perf_counter() - t0)
            t0 = time.perf_counter()
            build_cache()
            build = min(build, time.perf_counter() - t0)
    print(f"[build]   {mb} Mb dense bigWig: raw decode {decode:.2f} s, cache build {build:.2f} s, ratio {build / decode:.2f} (target <= 1.5)")


def bench_windows(n_genes: int) -> None:
    rng = np.random.default_rng(0)
    n_chroms, length = 23, 130_000_000
    tracks = {f"chr{i}": rng.random((length // 100, len(MARKS)), dtype=np.float32) for i in range(1, n_chroms + 1)}
    st = SignalTracks(tracks, MARKS)
    chroms = rng.choice(list(tracks), n_genes)
    tss = rng.integers(0, length, n_genes)
    strands = rng.choice(["+", "-"], n_genes)
    st.tss_windows(chroms[:100], tss[:100], strands[:100], window_bp=40_000, bin_bp=100)  # warm-up
    took = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        x = st.tss_windows(chroms, tss, strands, window_bp=40_000, bin_bp=100)
        took = min(took, time.perf_counter() - t0)
    print(f"[windows] {n_genes} genes x {len(MARKS)} marks x 40 kb at 100 bp -> {tuple(x.shape)} in {took:.2f} s (target <= 2 s)")


def bench_sparse() -> None:
    demo = REPO.parent / "shared" / "data" / "roadmap_e003_demo"
    if not demo.exists():
        print(f"[sparse]  skipped: {demo} not found")
        return
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        CellCache(DatasetSpec(root=demo), "E003", tmp).ensure(list(MARKS))
        took = time.perf_counter() - t0
    print(f"[sparse]  E003 slice, hg19 sizes (3.1 Gb), 7 marks: cache build {took:.2f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="size of the dense test genome in Mb")
    parser.add_argument("--genes", type=int, default=20_000)
    args = parser.parse_args()
    bench_build(args.mb)
    bench_windows(args.genes)
    bench_sparse()
