"""Seq-CNN base benchmark (issue 19): kb of DNA per second in training, and the data path beside it.

On a random genome and random tracks held in memory (the sources as the DataModule loads
them), with the published net (``SeqCNNBase``, 2 tracks) and its Poisson objective:

1. training throughput: forward + backward + Adam step of a batch of ``--batch`` chunks of
   ``--chunk-bp`` bp, median of ``--steps`` steps after one warm-up, as kb of sequence per
   second (CPU; the GPU too when torch sees one, with and without bf16 autocast);
2. batch assembly (``SequenceChunkDataset.__getitems__``: one-hot from the genome source,
   targets from the tracks, genes) in the same process, and its time as a ratio of the
   training step (the data path must not be the bottleneck: target < 10%);
3. with ``--rc``: the same assembly with reverse-complement augmentation.

    python benchmarks/bench_seq.py [--steps 3] [--batch 4] [--chunk-bp 100000] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from epx.data.genome import GenomeSequence  # noqa: E402
from epx.data.inputs.context import DataContext  # noqa: E402
from epx.data.inputs.sequence import SequenceChunks  # noqa: E402
from epx.data.tracks import SignalTracks  # noqa: E402
from epx.models.seq_cnn import SeqCNNBase  # noqa: E402
from epx.train.track_counts import PoissonTracks  # noqa: E402

MARKS = ("H3K4me3", "H3K27ac")


def _sources(chrom_bp: int, n_genes: int):
    rng = np.random.default_rng(0)
    genome = GenomeSequence({"chr1": rng.integers(0, 4, chrom_bp).astype(np.uint8)})
    tracks = SignalTracks({"chr1": rng.gamma(0.5, 2.0, (chrom_bp // 100, len(MARKS))).astype(np.float32)}, MARKS)
    genes = pd.DataFrame({"gene_id": [f"g{i}" for i in range(n_genes)], "chrom": "chr1",
                          "tss": np.sort(rng.integers(0, chrom_bp, n_genes)), "strand": "+", "target": 0.0})
    return DataContext.of(genes, marks=MARKS, tracks=tracks, genome=genome)


def _median_seconds(fn, steps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--chunk-bp", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--rc", action="store_true")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    context = _sources(chrom_bp=args.chunk_bp * max(8, 2 * args.batch), n_genes=200)
    builder = SequenceChunks(chunk_bp=args.chunk_bp, rc_augment=args.rc)
    dataset = builder(context, np.arange(len(context.genes)), split="train")
    idx = np.arange(args.batch)
    assemble = _median_seconds(lambda: dataset.__getitems__(idx), args.steps)
    batch = dataset.__getitems__(idx)
    objective = PoissonTracks()
    kb = args.batch * args.chunk_bp / 1000
    print(f"Seq-CNN base, batch {args.batch} x {args.chunk_bp:,} bp, {torch.get_num_threads()} CPU threads")
    for device, dtypes in [("cpu", [None])] + ([("cuda", [None, torch.bfloat16])] if torch.cuda.is_available() else []):
        for dtype in dtypes:
            torch.manual_seed(0)
            net = SeqCNNBase(n_tracks=len(MARKS)).to(device).train()
            opt = torch.optim.Adam(net.parameters(), lr=2e-4)
            on = {"x": {"x": batch["x"]["x"].to(device)}, **{k: v.to(device) for k, v in batch.items() if k != "x"}}

            def step():
                opt.zero_grad(set_to_none=True)
                with torch.autocast(device_type=device, dtype=dtype, enabled=dtype is not None):
                    out = net(**on["x"])
                loss = objective.loss(out.float(), on)
                loss.backward()
                opt.step()
                if device == "cuda":
                    torch.cuda.synchronize()

            seconds = _median_seconds(step, args.steps)
            label = f"{device}{' bf16' if dtype is not None else ''}"
            print(f"  train {label:<9} {seconds * 1000:9.1f} ms/step   {kb / seconds:9.1f} kb of sequence / s")
            if device == "cpu":
                print(f"  batch assembly   {assemble * 1000:9.1f} ms/batch  = {assemble / seconds:.2%} of a CPU training step"
                      f"{' (rc augmentation on)' if args.rc else ''}")
    if not torch.cuda.is_available():
        print("  GPU: not available (the GPU figure is still open)")


if __name__ == "__main__":
    main()
