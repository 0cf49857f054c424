"""Conversion speed of the 3D inputs: a GSE86189-layout pcHi-C table → BEDPE, and the Hi-C
significance filter on a generated 5 kb map, with its recall of planted contacts.

    python benchmarks/bench_3d.py [--pchic-rows 1000000] [--hic-mb 20]

Both inputs are generated (no real table or map is available here); the figures extrapolate to a
real table by rows and to a real map by chromosome length × tested distance range. Printed
against a baseline in the same run: reading the same table with pandas alone (pcHi-C) and
cooler's own pixel fetch (Hi-C).
"""

from __future__ import annotations

import argparse
import bz2
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def pchic(rows: int, root: Path) -> None:
    from epx.roadmap.interactions import pchic_to_bedpe

    rng = np.random.default_rng(0)
    bait = rng.integers(1_000_000, 240_000_000, rows)
    other = bait + rng.integers(5_000, 2_000_000, rows)
    text = "frag1\tfrag2\tdist\tscore\n" + "".join(
        f"chr1.{b}.{b + 4000}\tchr1.{o}.{o + 3000}\t{o - b}\t{s:.3f}\n" for b, o, s in zip(bait, other, rng.gamma(2, 1, rows), strict=True))
    src = root / "GSE86189_h1.po.all.txt.bz2"
    src.write_bytes(bz2.compress(text.encode()))
    started = time.perf_counter()
    with bz2.open(src, "rt") as fh:
        pd.read_csv(fh, sep="\t", dtype=str)
    base = time.perf_counter() - started
    started = time.perf_counter()
    stats = pchic_to_bedpe(src, root / "E003.bedpe", score_column="score")
    took = time.perf_counter() - started
    print(f"pcHi-C: {rows} rows ({src.stat().st_size / 1e6:.1f} MB bz2) -> {stats.rows} BEDPE rows in {took:.2f} s "
          f"({rows / took / 1e3:.0f} k rows/s); pandas read alone {base:.2f} s (convert / read = {took / base:.1f}x)")


def hic(mb: int, root: Path) -> None:
    import cooler

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import test_hic as th

    from epx.hic.maps import open_map
    from epx.hic.significance import call_significant

    th.CHROMS = {"chr1": mb * 1_000_000}
    th.N_PLANTED = max(40, mb * 10)
    bins, pixels, planted = th.synthetic_pixels()
    path = root / "map.cool"
    cooler.create_cooler(str(path), bins, pixels, ordered=True)
    started = time.perf_counter()
    open_map(path).pixels("chr1")
    base = time.perf_counter() - started
    started = time.perf_counter()
    bedpe, stats = call_significant(open_map(path), fdr=0.1, max_distance=800_000)
    took = time.perf_counter() - started
    called = {(r.chrom1, r.start1 // th.RES, r.start2 // th.RES) for r in bedpe.itertuples()}
    hits = len(called & planted)
    print(f"Hi-C filter: {mb} Mb at 5 kb, {stats.nonzero_pixels} nonzero pixels, {stats.tested_pairs} tested pairs: {took:.2f} s; "
          f"pixel fetch alone {base:.2f} s ({took / base:.1f}x). Planted-contact recall {hits / len(planted):.3f}, "
          f"precision {hits / max(len(called), 1):.3f} at FDR 0.1 ({len(called)} called, {len(planted)} planted)")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pchic-rows", type=int, default=1_000_000)
    parser.add_argument("--hic-mb", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pchic(args.pchic_rows, Path(tmp))
        hic(args.hic_mb, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
