"""pyBigWig's own binning (``stats(..., nBins=N, exact=True)``) vs epx's NumPy binning
(``epx.io.bigwig.read_binned``): the same bin means, which is faster?

epx's semantics: the mean per-bp signal of each 100 bp bin with uncovered bases as 0, so the
library call is ``type="sum"`` divided by the bin width (``type="mean"`` averages over covered
bases only, a different number wherever a bin is partly covered). Both read the same files,
span by span (``span_bp``), in the same run:

- dense: every base covered, a new value every ~``run`` bp (a read-depth track);
- sparse: signal around a few thousand "genes" only (a peak-like fold-change track).

Prints seconds per file for each method, the ratio, and the largest difference between their
bins (float32 rounding only, if they agree).

    python benchmarks/bench_binning.py [--mb 40] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyBigWig

from epx.io.bigwig import read_binned, write_bigwig

BIN = 100
SPAN = 8_000_000  # read_binned's default span


def dense_track(length: int, rng: np.random.Generator, run: int = 25) -> np.ndarray:
    values = rng.gamma(1.5, 2.0, size=-(-length // run)).astype(np.float32)
    return np.repeat(values, run)[:length]


def sparse_track(length: int, rng: np.random.Generator, n_peaks: int) -> np.ndarray:
    values = np.zeros(length, np.float32)
    for centre in rng.integers(0, length - 5_000, size=n_peaks):
        width = int(rng.integers(200, 3_000))
        values[centre : centre + width] = rng.gamma(2.0, 5.0)
    return values


def pybigwig_binned(path: Path, chrom_sizes: dict[str, int]) -> dict[str, np.ndarray]:
    """The same bins from pyBigWig's exact per-bin sums (uncovered bases = 0)."""
    out = {}
    with pyBigWig.open(str(path)) as bw:
        for chrom, length in chrom_sizes.items():
            binned = np.zeros(-(-length // BIN), np.float32)
            full = length - length % BIN
            for start in range(0, full, SPAN):
                end = min(start + SPAN, full)
                sums = np.array(bw.stats(chrom, start, end, type="sum", nBins=(end - start) // BIN, exact=True), dtype=np.float64)
                binned[start // BIN : end // BIN] = np.nan_to_num(sums) / BIN
            if length % BIN:  # the last, partial bin: averaged over its real length, as epx does
                (last,) = bw.stats(chrom, full, length, type="sum", exact=True)
                binned[-1] = (last or 0.0) / (length % BIN)
            out[chrom] = binned
    return out


def _median_time(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=40, help="chromosome length in Mb (default 40)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per method (median)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    length = args.mb * 1_000_000 + 37  # a partial last bin
    chrom_sizes = {"chr1": length}
    tracks = {"dense": dense_track(length, rng), "sparse": sparse_track(length, rng, n_peaks=length // 100_000)}
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{args.mb} Mb, {BIN} bp bins, median of {args.repeat}")
        print(f"{'track':<8} {'numpy s':>8} {'pyBigWig exact s':>17} {'pyBigWig/numpy':>15} {'max |diff|':>11}")
        for name, values in tracks.items():
            path = Path(tmp) / f"{name}.bigwig"
            write_bigwig(path, chrom_sizes, {"chr1": values})
            t_np, ours = _median_time(lambda path=path: read_binned(path, chrom_sizes, bin_bp=BIN), args.repeat)
            t_lib, theirs = _median_time(lambda path=path: pybigwig_binned(path, chrom_sizes), args.repeat)
            diff = float(np.max(np.abs(ours["chr1"] - theirs["chr1"])))
            print(f"{name:<8} {t_np:8.2f} {t_lib:17.2f} {t_lib / t_np:15.2f} {diff:11.2e}")


if __name__ == "__main__":
    main()
