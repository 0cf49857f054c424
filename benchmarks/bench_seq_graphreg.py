"""Seq-GraphReg benchmark (issue 20): separate mode's cache build and step, end-to-end step and memory.

With the configured nets (``SeqCNNBase`` dilated, 2 tracks; ``SeqGraphReg`` d 128, 2 GAT
layers of 4 x 32; a random graph of ``--edges`` edges per window), random weights (the cost
does not depend on them) and a random genome in memory:

1. separate mode, bottleneck cache build: the base's bottleneck of ``--chunks`` chunks of
   100 kb computed and written to a fresh HDF5 cache (``BottleneckCache.ensure``), scaled to
   the 60 chunks of a 6 Mb window; beside it, reading a cached 6 Mb window back
   (``BottleneckCache.read``, what every epoch pays instead) and the ratio of the two;
2. separate mode, training step per 6 Mb window: forward + backward + Adam of ``SeqGraphReg``
   on one window's (1, 64, 60,000) bottleneck, median of ``--steps``; beside it Epi-GraphReg's
   step on (1, 3 marks, 60,000), as the ratio of the two;
3. end-to-end: one training step (forward + backward + Adam, joint loss) of
   ``SeqGraphRegEndToEnd`` per window size in ``--e2e-bp`` (each a multiple of 100 kb: its
   chunks form the base's batch), for each ``checkpoint_chunks`` in ``--groups`` (0: off; k:
   groups of k chunks checkpointed), each in a fresh
   process whose peak resident memory above its state before the step is the step's peak;
   then the per-chunk slope of time and memory, extrapolated to a 6 Mb window (60 chunks) —
   the GPU estimate when no GPU is lent (fp32; bf16 autocast roughly halves activations).

    python benchmarks/bench_seq_graphreg.py [--chunks 2] [--steps 3] [--e2e-bp 100000,300000] [--groups 0,1] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from epx.data.genome import GenomeSequence  # noqa: E402
from epx.data.inputs.bottleneck_cache import BottleneckCache  # noqa: E402
from epx.models.graphreg import EpiGraphReg  # noqa: E402
from epx.models.seq_cnn import SeqCNNBase  # noqa: E402
from epx.models.seq_graphreg import SeqGraphReg, SeqGraphRegEndToEnd  # noqa: E402
from epx.train.counts import PoissonCounts  # noqa: E402
from epx.train.joint import JointPoissonCounts  # noqa: E402

CHUNK, WINDOW, NODE = 100_000, 6_000_000, 5_000
CHUNKS_PER_WINDOW = WINDOW // CHUNK


def _median(fn, steps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _graph(n_nodes: int, n_edges: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n_nodes, n_edges)
    b = np.clip(a + rng.integers(-400, 400, n_edges), 0, n_nodes - 1)
    return torch.from_numpy(np.stack([np.concatenate([a, b]), np.concatenate([b, a])])).long()


def cache_build(n_chunks: int) -> dict:
    rng = np.random.default_rng(0)
    genome = GenomeSequence({"chr1": rng.integers(0, 4, CHUNKS_PER_WINDOW * CHUNK).astype(np.uint8)})
    base = SeqCNNBase(n_tracks=2, dilated=True).eval()

    @torch.no_grad()
    def compute(onehot):
        return base.bottleneck(torch.from_numpy(onehot)).numpy()

    with tempfile.TemporaryDirectory() as tmp:
        cache = BottleneckCache(Path(tmp) / "b.h5", chunk_bp=CHUNK)
        t0 = time.perf_counter()
        cache.ensure(genome, "chr1", np.arange(n_chunks), compute)
        build = (time.perf_counter() - t0) / n_chunks * CHUNKS_PER_WINDOW
        # a whole window's worth of stored chunks to read back (values do not matter to the read)
        cache.ensure(genome, "chr1", np.arange(CHUNKS_PER_WINDOW), lambda x: np.zeros((len(x), 64, 1000), np.float32))
        read = _median(lambda: cache.read(genome, "chr1", 0, CHUNKS_PER_WINDOW), 5)
        size = cache.path.stat().st_size / 1e6
        cache.close()
    return {"build_s_per_window": build, "read_s_per_window": read, "build_over_read": build / read, "file_mb_per_window": size}


def separate_step(steps: int, n_edges: int) -> dict:
    n_nodes = WINDOW // NODE
    edges = _graph(n_nodes, n_edges)
    y = torch.rand(1, n_nodes // 3) * 5
    objective = PoissonCounts()
    results = {}
    for name, net, inputs in (
        ("seq_graphreg", SeqGraphReg(), {"bottleneck": torch.randn(1, 64, WINDOW // 100), "edge_index": edges}),
        ("epi_graphreg", EpiGraphReg(n_marks=3), {"x": torch.rand(1, 3, WINDOW // 100), "edge_index": edges}),
    ):
        opt = torch.optim.Adam(net.parameters(), lr=1e-4)
        net.train()

        def step(net=net, inputs=inputs, opt=opt):
            opt.zero_grad()
            objective.loss(net(**inputs), {"y": y}).backward()
            opt.step()

        results[name] = _median(step, steps)
    return {"seq_graphreg_step_s": results["seq_graphreg"], "epi_graphreg_step_s": results["epi_graphreg"],
            "ratio": results["seq_graphreg"] / results["epi_graphreg"]}


def e2e_one(window_bp: int, group: int, n_edges: int) -> dict:
    """One end-to-end training step in this process: seconds and peak RSS above the state before it."""
    torch.manual_seed(0)
    n_nodes = window_bp // NODE
    net = SeqGraphRegEndToEnd(n_tracks=2, checkpoint_chunks=group).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    objective = JointPoissonCounts(n_tracks=2)
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (1, window_bp)), 4).float().transpose(1, 2).contiguous()
    batch = {"y": torch.rand(1, n_nodes // 3) * 5, "y_tracks": torch.rand(1, 2, window_bp // 100) * 3}
    edges = _graph(n_nodes, min(n_edges, 4 * n_nodes))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    t0 = time.perf_counter()
    opt.zero_grad()
    objective.loss(net(x=x, edge_index=edges), batch).backward()
    opt.step()
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"window_bp": window_bp, "group": group, "step_s": seconds, "peak_mb": (peak - before) / 1024}


def e2e(windows: list[int], groups: list[int], n_edges: int, threads: int) -> list[dict]:
    rows = []
    for group in groups:
        for window_bp in windows:
            cmd = [sys.executable, __file__, "--e2e-one", str(window_bp), "--group", str(group),
                   "--edges", str(n_edges), "--threads", str(threads)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            rows.append(json.loads(out))
            print(f"  e2e window {window_bp // 1000} kb ({window_bp // CHUNK} chunks), checkpoint_chunks={group}: "
                  f"step {rows[-1]['step_s']:.1f} s, peak +{rows[-1]['peak_mb']:.0f} MB", flush=True)
    return rows


def extrapolate(rows: list[dict]) -> None:
    for group in sorted({r["group"] for r in rows}):
        pts = sorted((r["window_bp"] // CHUNK, r["step_s"], r["peak_mb"]) for r in rows if r["group"] == group)
        if len(pts) < 2:
            continue
        (k0, t0, m0), (k1, t1, m1) = pts[0], pts[-1]
        dt, dm = (t1 - t0) / (k1 - k0), (m1 - m0) / (k1 - k0)
        t60, m60 = t1 + dt * (CHUNKS_PER_WINDOW - k1), m1 + dm * (CHUNKS_PER_WINDOW - k1)
        print(f"  checkpoint_chunks={group}: {dt:.2f} s and {dm:.0f} MB per added 100 kb chunk -> 6 Mb window (60 chunks): "
              f"~{t60 / 60:.1f} min per CPU step, peak ~{m60 / 1024:.1f} GB fp32 (bf16 autocast: about half the activations)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--chunks", type=int, default=2, help="100 kb chunks the cache build times (scaled to 60)")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--edges", type=int, default=5000, help="graph edges per 6 Mb window (each way)")
    p.add_argument("--e2e-bp", default="100000,300000", help="end-to-end window sizes (multiples of 100 kb)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--e2e-one", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--groups", default="0,1", help="checkpoint_chunks values to compare (0: no checkpointing)")
    p.add_argument("--group", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.e2e_one:
        print(json.dumps(e2e_one(args.e2e_one, args.group, args.edges)))
        return
    print(f"torch {torch.__version__}, {args.threads} threads, CUDA: {torch.cuda.is_available()}")
    c = cache_build(args.chunks)
    print(f"separate, bottleneck cache build: {c['build_s_per_window']:.1f} s per 6 Mb window (from {args.chunks} chunks x 60); "
          f"cached read {c['read_s_per_window'] * 1000:.0f} ms per window -> caching saves {c['build_over_read']:.0f}x per window "
          f"per epoch; {c['file_mb_per_window']:.1f} MB on disk per window (float16)")
    s = separate_step(args.steps, args.edges)
    print(f"separate, training step per 6 Mb window: {s['seq_graphreg_step_s']:.2f} s (Epi-GraphReg, 3 marks: "
          f"{s['epi_graphreg_step_s']:.2f} s; ratio {s['ratio']:.2f})")
    print("end-to-end, one training step per window (fresh process each):")
    rows = e2e([int(w) for w in args.e2e_bp.split(",")], [int(g) for g in args.groups.split(",")], args.edges, args.threads)
    extrapolate(rows)


if __name__ == "__main__":
    main()
