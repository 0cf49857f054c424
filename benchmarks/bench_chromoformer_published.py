"""Chromoformer's published layout at genome scale: the window store's build time and size,
and the cost of a batch, against epx's 100 bp layout in the same run.

Writes a synthetic dataset of ``--genes`` genes (default 19,000, human-like: 1,000 per 100 Mb
chromosome, TSSs 100 kb apart, per-bp signal in 200 bp runs over TSS ± 20 kb and over up to 8
pCREs of 1-20 kb within 200 kb of each TSS, 0 elsewhere) as ``--marks`` bigWigs, then:

- builds the window store (``epx.data.prepare.windows.WindowStore``) of every promoter and
  selected pCRE from the bigWigs at base resolution: wall time per mark, files' size on disk,
  the in-memory size of the loaded store (float32, all marks);
- times assembling batches of 64 genes (``PublishedChromoformerDataset.__getitems__``) against
  epx's layout (``ChromoformerDataset.__getitems__`` on in-memory 100 bp tracks of the same
  genes and pCREs), alternated batch by batch, medians, and prints the ratio.

    python benchmarks/bench_chromoformer_published.py [--genes 19000] [--marks 7] [--batches 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from epx.constants import MARKS
from epx.data.inputs.chromoformer import ChromoformerInputs
from epx.data.inputs.context import DataContext
from epx.data.prepare.contract import DatasetSpec
from epx.data.prepare.windows import WindowStore
from epx.data.tracks import SignalTracks
from epx.io.bigwig import open_bigwig

CHROM_BP = 100_000_000
GENES_PER_CHROM = 1000
RUN_BP = 200


def synthetic(n_genes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n_chroms = -(-n_genes // GENES_PER_CHROM)
    sizes = {f"chr{i + 1}": CHROM_BP for i in range(n_chroms)}
    k = np.arange(n_genes)
    chrom = np.array([f"chr{i // GENES_PER_CHROM + 1}" for i in k], object)
    tss = 50_000 + (k % GENES_PER_CHROM) * 100_000 + rng.integers(0, 1000, n_genes)
    genes = pd.DataFrame({"gene_id": [f"g{i}" for i in k], "chrom": chrom, "tss": tss, "strand": rng.choice(["+", "-"], n_genes),
                          "label": rng.integers(0, 2, n_genes), "target": rng.random(n_genes).astype(np.float32)})
    n_pcres = rng.integers(0, 9, n_genes)
    g = np.repeat(k, n_pcres)
    length = rng.integers(1000, 20_000, len(g))
    start = np.clip(tss[g] + rng.integers(-200_000, 200_000, len(g)), 0, CHROM_BP - 20_000)
    rows = pd.DataFrame({"chrom1": chrom[g], "start1": tss[g], "end1": tss[g] + 1, "chrom2": chrom[g], "start2": start,
                         "end2": start + length, "name": genes.gene_id.to_numpy()[g], "score": 1.5 + rng.random(len(g)) * 3})
    return sizes, genes, rows.assign(strength=rows["score"])


def covered(genes, rows, chrom: str) -> tuple[np.ndarray, np.ndarray]:
    """Sorted, merged [start, end) of what carries signal on ``chrom``, on the run grid."""
    g = genes[genes.chrom == chrom]
    r = rows[rows.chrom2 == chrom]
    s = np.concatenate([g.tss.to_numpy() - 20_000, r.start2.to_numpy()]) // RUN_BP * RUN_BP
    e = -(-np.concatenate([g.tss.to_numpy() + 20_000, r.end2.to_numpy()]) // RUN_BP) * RUN_BP
    order = np.argsort(s)
    s, e = s[order], e[order]
    out_s, out_e = [s[0]], [e[0]]
    for a, b in zip(s[1:], e[1:]):
        if a <= out_e[-1]:
            out_e[-1] = max(out_e[-1], b)
        else:
            out_s.append(a)
            out_e.append(b)
    return np.array(out_s), np.array(out_e)


def write_signals(root: Path, sizes, genes, rows, marks, seed: int = 1) -> float:
    rng = np.random.default_rng(seed)
    spans = {c: covered(genes, rows, c) for c in sizes}
    t0 = time.perf_counter()
    for mark in marks:
        with open_bigwig(root / "signals" / f"E003-{mark}.bigwig", sizes) as writer:
            for chrom, (s, e) in spans.items():
                starts = np.concatenate([np.arange(a, b, RUN_BP) for a, b in zip(s, e)])
                values = (rng.gamma(0.6, 4.0, len(starts))).astype(np.float64)
                writer.add(chrom, starts, starts + RUN_BP, values)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--genes", type=int, default=19_000)
    parser.add_argument("--marks", type=int, default=7)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    marks = MARKS[: args.marks]
    sizes, genes, rows = synthetic(args.genes)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        (root / "signals").mkdir(parents=True)
        wrote = write_signals(root, sizes, genes, rows, marks)
        print(f"{args.genes:,} genes, {len(rows):,} pCRE rows, {len(marks)} marks on {len(sizes)} chromosomes of 100 Mb "
              f"(bigWigs written in {wrote:.0f} s)")
        builder = ChromoformerInputs(layout="published")
        t0 = time.perf_counter()
        regions = builder.regions(genes, rows)
        t_select = time.perf_counter() - t0
        store = WindowStore(DatasetSpec(root=root), "E003", Path(tmp) / "cache", sizes, resolutions=builder.resolutions)
        t0 = time.perf_counter()
        paths = store.ensure(marks, regions)
        t_build = time.perf_counter() - t0
        disk = sum(p.stat().st_size for p in paths)
        t0 = time.perf_counter()
        binned = store.load(marks, regions)
        t_load = time.perf_counter() - t0
        memory = sum(v.nbytes for v in binned.values.values())
        span_bp = int((regions.end - regions.start).sum())
        print(f"store: {len(regions):,} regions ({span_bp / 1e6:.0f} Mb of bases), selection {t_select:.1f} s, "
              f"build {t_build:.0f} s ({t_build / len(marks):.1f} s per mark), "
              f"{disk / 1e6:.0f} MB on disk (lzf), {memory / 1e6:.0f} MB in memory, load {t_load:.1f} s")
        context = DataContext.of(genes, cell="E003", marks=marks, target_column="label", windows=binned, contacts=rows)
        ds = builder(context, np.arange(len(genes)))
        # the baseline: epx's layout of the same genes and pCREs on in-memory 100 bp tracks
        rng = np.random.default_rng(2)
        tracks = SignalTracks({c: rng.random((n // 100, len(marks)), dtype=np.float32) for c, n in sizes.items()}, marks)
        grid = ChromoformerInputs(tolerance_bp=0)(DataContext.of(genes, cell="E003", marks=marks, target_column="label",
                                                                 tracks=tracks, contacts=rows), np.arange(len(genes)))
        order = np.random.default_rng(3).permutation(len(genes))
        times = {"published": [], "epx": []}
        for b in range(args.batches):
            idx = order[b * args.batch_size : (b + 1) * args.batch_size]
            for name, dataset in (("published", ds), ("epx", grid)):
                t0 = time.perf_counter()
                dataset.__getitems__(idx)
                times[name].append(time.perf_counter() - t0)
        pub, base = statistics.median(times["published"]), statistics.median(times["epx"])
        print(f"batch of {args.batch_size} genes x {len(marks)} marks x 8 pCREs x 3 resolutions, median of {args.batches}, one core: "
              f"published {pub * 1e3:.1f} ms, epx layout {base * 1e3:.1f} ms (published/epx = {pub / base:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
