"""Sequence-analysis speed (issue 20): motif scan Mb/s and variants scored per second.

(a) Motif scan: ``epx.explain.motifs.MotifSet.scan_codes`` (one conv1d over every motif and
both strands) over ``--mb`` Mb of the synthetic genome's DNA with its ``motifs.meme`` (or
random i.i.d. DNA and random PWMs without ``--folder``), against the baseline in the same
run: a per-motif NumPy table-lookup scan (``epx.synthetic.sequence.scan``'s method: W
fancy-indexed adds per strand). Reports Mb/s of each and the ratio.

(b) Variant scoring: SNV edits put into copies of a gene's one-hot chunk and predicted by a
``SeqCNNBase`` (published architecture, random weights: the cost does not depend on
training) through ``epx.explain.onehot.predict_edited``, ``--batch`` copies per forward pass
(what ``epx.explain.variants.score_variants`` does per (variant, gene) pair), against one
copy per pass in the same run. Reports (variant, gene) pairs scored per second.

    python benchmarks/bench_motif_scan.py [--folder SYNTH_DIR] [--mb 20] [--chunk-bp 100000] [--variants 48] [--batch 16] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from epx.explain.adapters import GeneBatch
from epx.explain.motifs import MotifSet
from epx.explain.onehot import predict_edited, substitute
from epx.io.fasta import FastaFile, onehot
from epx.models.seq_cnn import SeqCNNBase


def baseline_scan(motifs: MotifSet, codes: np.ndarray) -> int:
    """Table-lookup scan, one motif and strand at a time (the synthetic generator's method)."""
    n_hits = 0
    for name, lo in motifs.matrices.items():
        w = len(lo)
        n = len(codes) - w + 1
        for m in (lo, lo[::-1, ::-1]):
            table = np.concatenate([m, np.full((w, 1), -np.inf)], axis=1)
            score = np.zeros(n)
            for j in range(w):
                score += table[j, codes[j : j + n]]
            n_hits += int((score >= motifs.thresholds[name]).sum())
    return n_hits


def bench_scan(args) -> None:
    rng = np.random.default_rng(0)
    if args.folder:
        motifs = MotifSet.load(Path(args.folder) / "motifs.meme")
        with FastaFile(Path(args.folder) / "genome.fa") as fasta:
            codes, left = {}, int(args.mb * 1e6)
            for chrom, size in fasta.sizes.items():
                if left <= 0:
                    break
                codes[chrom] = fasta.codes(chrom, 0, min(size, left))
                left -= len(codes[chrom])
    else:
        pwms = {f"M{i}": rng.dirichlet(np.full(4, 0.3), size=int(rng.integers(10, 13))) for i in range(10)}
        motifs = MotifSet(pwms)
        codes = {"chrR": rng.integers(0, 4, size=int(args.mb * 1e6)).astype(np.uint8)}
    mb = sum(len(c) for c in codes.values()) / 1e6
    t = time.perf_counter()
    hits = motifs.scan_codes(codes)
    ours = time.perf_counter() - t
    t = time.perf_counter()
    base_hits = sum(baseline_scan(motifs, c) for c in codes.values())
    base = time.perf_counter() - t
    print(f"motif scan: {len(motifs.names)} motifs x 2 strands over {mb:.1f} Mb, p <= {motifs.pvalue:g}")
    print(f"  conv1d scan (epx.explain.motifs): {mb / ours:8.2f} Mb/s  ({len(hits)} hits)")
    print(f"  table-lookup baseline           : {mb / base:8.2f} Mb/s  ({base_hits} hits)")
    print(f"  ratio: {base / ours:.2f}x")


class _Adapter:
    """The part of an adapter ``predict_edited`` uses: the net at the gene's TSS bin."""

    def __init__(self, net):
        self.net, self.device = net, torch.device("cpu")

    def forward_genes(self, inputs, extra):
        pred = self.net(x=inputs["x"])
        return torch.log2(pred[torch.arange(pred.shape[0]), 0, extra["gene_bin"]] + 1)


def bench_variants(args) -> None:
    torch.manual_seed(0)
    net = SeqCNNBase(n_tracks=2).eval()
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 4, size=args.chunk_bp).astype(np.uint8)
    batch = GeneBatch(np.zeros(1, np.int64), {"x": torch.from_numpy(onehot(codes)[None])},
                      {"gene_bin": torch.tensor([args.chunk_bp // 200])})
    cols = rng.integers(0, args.chunk_bp, size=args.variants)
    alts = (codes[cols] + rng.integers(1, 4, size=args.variants)) % 4
    edit = substitute(cols, alts)
    gene = np.zeros(args.variants, np.int64)
    adapter = _Adapter(net)
    predict_edited(adapter, batch, "x", gene[:2], edit, 2)  # warm-up
    t = time.perf_counter()
    batched = predict_edited(adapter, batch, "x", gene, edit, args.batch)
    ours = time.perf_counter() - t
    t = time.perf_counter()
    single = predict_edited(adapter, batch, "x", gene, edit, 1)
    base = time.perf_counter() - t
    assert np.allclose(batched, single, atol=1e-4)
    print(f"variant scoring: SeqCNNBase (random weights) on {args.chunk_bp // 1000} kb chunks, {args.variants} (variant, gene) pairs")
    print(f"  batched ({args.batch} copies / pass): {args.variants / ours:8.2f} variants/s")
    print(f"  one copy per pass (baseline)  : {args.variants / base:8.2f} variants/s")
    print(f"  ratio: {base / ours:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folder", help="a synthetic dataset folder (genome.fa, motifs.meme); default: random DNA and PWMs")
    parser.add_argument("--mb", type=float, default=20.0)
    parser.add_argument("--chunk-bp", type=int, default=100_000)
    parser.add_argument("--variants", type=int, default=48)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-variants", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bench_scan(args)
    if not args.skip_variants:
        bench_variants(args)


if __name__ == "__main__":
    main()
