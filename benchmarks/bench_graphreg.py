"""GraphReg benchmarks (issue 5): one 6 Mb window, 7 marks, the GraphReg models side by side.

For each model (Epi-GraphReg with GATConv, with GATv2Conv, Epi-CNN), in its own subprocess
so peak memory is its own:

1. forward + backward (Poisson loss on the middle 400 nodes) of one window on CPU: median of
   ``--steps`` steps after one warm-up step;
2. peak resident memory of that process (``resource.getrusage(...).ru_maxrss``);
3. window assembly (``GraphRegWindows.__getitems__``: marks sliced from the in-memory tracks,
   ln(mean + 1), edges batched) as a ratio of the step (target < 10%);
4. the same step on the GPU when torch sees one (peak = ``torch.cuda.max_memory_allocated``);
   otherwise "GPU: not available".

    python benchmarks/bench_graphreg.py [--steps 5] [--batch 1]
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from epx.constants import MARKS  # noqa: E402
from epx.data.inputs.graphreg.windows import GraphRegInputs  # noqa: E402
from epx.data.inputs.context import DataContext  # noqa: E402
from epx.data.prepare.genes import regression_target  # noqa: E402
from epx.data.prepare.interactions import ContactFilter  # noqa: E402
from epx.io.bedpe import read_interactions  # noqa: E402
from epx.data.tracks import SignalTracks  # noqa: E402
from epx.models.epi_cnn import EpiCNN  # noqa: E402
from epx.models.graphreg import EpiGraphReg  # noqa: E402
from epx.train.counts import PoissonCounts  # noqa: E402

MODELS = {
    "graphreg": EpiGraphReg,
    "graphreg_gatv2": functools.partial(EpiGraphReg, attention="gatv2", dropout=0.1),
    "epi_cnn": EpiCNN,
}
CHROM_BP = 20_000_000


def windows(seed: int = 0):
    """A 20 Mb chromosome of 7 gamma-distributed marks, 400 genes, 3,000 contacts."""
    rng = np.random.default_rng(seed)
    n_bins = CHROM_BP // 100
    tracks = SignalTracks({"chr1": rng.gamma(0.5, 2.0, size=(n_bins, len(MARKS))).astype(np.float32)}, MARKS)
    tss = np.sort(rng.integers(0, CHROM_BP, 400))
    rpkm = rng.gamma(0.5, 20.0, 400)
    genes = pd.DataFrame({"gene_id": [f"g{i}" for i in range(400)], "chrom": "chr1", "tss": tss, "strand": "+", "rpkm": rpkm, "target": regression_target(rpkm)})
    a = rng.integers(0, CHROM_BP, 3000)
    b = np.clip(a + rng.integers(-2_000_000, 2_000_000, 3000), 0, CHROM_BP - 1)
    bedpe = read_interactions(pd.DataFrame({"chrom1": "chr1", "start1": a, "end1": a + 1, "chrom2": "chr1", "start2": b, "end2": b + 1, "name": ".", "score": 2.0}))
    return GraphRegInputs()(DataContext.of(genes, marks=MARKS, tracks=tracks, contacts=ContactFilter().apply(bedpe)), np.arange(len(genes)))


def _median_seconds(fn, steps: int, sync=lambda: None) -> float:
    fn()  # warm-up (allocator, kernels)
    sync()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def one_model(name: str, steps: int, batch_size: int) -> dict:
    torch.manual_seed(0)
    dataset = windows()
    indices = list(range(batch_size))
    assembly = _median_seconds(lambda: dataset.__getitems__(indices), steps)
    batch = dataset.__getitems__(indices)
    objective = PoissonCounts()
    result = {"model": name, "windows": len(dataset), "edges": int(batch["x"]["edge_index"].shape[1]), "assembly_s": assembly}

    def timed_step(net, device):
        x = {k: v.to(device) for k, v in batch["x"].items()}
        target = {"y": batch["y"].to(device)}

        def step():
            net.zero_grad(set_to_none=True)
            objective.loss(net(**x), target).backward()

        return step

    net = MODELS[name](n_marks=len(MARKS)).train()
    result["params"] = sum(p.numel() for p in net.parameters())
    result["cpu_step_s"] = _median_seconds(timed_step(net, "cpu"), steps)
    result["cpu_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if torch.cuda.is_available():
        net = net.cuda()
        torch.cuda.reset_peak_memory_stats()
        result["gpu"] = torch.cuda.get_device_name()
        result["gpu_step_s"] = _median_seconds(timed_step(net, "cuda"), steps, sync=torch.cuda.synchronize)
        result["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1, help="windows per step")
    parser.add_argument("--one", choices=sorted(MODELS), help=argparse.SUPPRESS)  # child process
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one_model(args.one, args.steps, args.batch)))
        return 0

    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; {args.batch} x 6 Mb window, {len(MARKS)} marks, 60,000 x 100 bp bins -> 1,200 nodes")
    for name in MODELS:
        child = subprocess.run([sys.executable, __file__, "--one", name, "--steps", str(args.steps), "--batch", str(args.batch)], capture_output=True, text=True, check=True)
        r = json.loads(child.stdout.strip().splitlines()[-1])
        ratio = r["assembly_s"] / r["cpu_step_s"]
        print(
            f"{name:14s} params {r['params']:,}  CPU fwd+bwd {r['cpu_step_s'] * 1e3:8.1f} ms (median of {args.steps})  "
            f"peak RSS {r['cpu_peak_rss_mb']:7.0f} MB  assembly {r['assembly_s'] * 1e3:6.1f} ms = {ratio:5.1%} of the step "
            f"({'OK' if ratio < 0.10 else 'ABOVE'} target < 10%; {r['edges']} edges)"
        )
        if "gpu_step_s" in r:
            print(f"{'':14s} GPU {r['gpu']}: fwd+bwd {r['gpu_step_s'] * 1e3:.1f} ms, peak {r['gpu_peak_mb']:.0f} MB allocated; assembly = {r['assembly_s'] / r['gpu_step_s']:.1%} of the GPU step")
    if not torch.cuda.is_available():
        print("GPU: not available")
    return 0


if __name__ == "__main__":
    sys.exit(main())
