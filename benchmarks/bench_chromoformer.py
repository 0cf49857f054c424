"""Chromoformer speed (issue 4): training steps/s and whether the data side keeps up.

Measures, in one process on the same inputs: (a) assembling a batch of 64 genes × 7 marks ×
8 pCREs at three resolutions from in-memory cached tracks on one core, with the vectorised
assembly (``ChromoformerDataset.__getitems__``) and with the window-API definition it replaced
(``reference_x``, the assembly before issue 14 part 5), alternated batch by batch, medians
(target ≤ 20 ms); and (b) one training step (forward + backward + AdamW) at batch 64 on CPU —
and on CUDA with bf16 autocast when a GPU is present. Prints genes/s of the data side against
genes/s of a step, and assembly as a % of a step (target < 10%).

``--workers 0,2`` also times a shuffled epoch-like pass through ``DataLoader(num_workers=W)``
as the DataModule builds it (forked workers share the in-memory tracks copy-on-write; each
holds only the dataset's integer layout).

    python benchmarks/bench_chromoformer.py [--steps 5] [--batches 30] [--threads N] [--workers 0,2]
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from epx.constants import MARKS  # noqa: E402
from epx.data.inputs.chromoformer import ChromoformerInputs  # noqa: E402
from epx.data.inputs.context import DataContext  # noqa: E402
from epx.data.prepare.interactions import ContactFilter  # noqa: E402
from epx.data.tracks import SignalTracks  # noqa: E402
from epx.io.bedpe import COLUMNS as BEDPE_COLUMNS  # noqa: E402
from epx.models.chromoformer import Chromoformer  # noqa: E402


def make_dataset(n_genes: int = 2048, seed: int = 0):
    rng = np.random.default_rng(seed)
    length = 50_000_000
    tracks = SignalTracks({c: rng.random((length // 100, len(MARKS)), dtype=np.float32) for c in ("chr1", "chr2")}, MARKS)
    chrom = rng.choice(["chr1", "chr2"], n_genes)
    tss = rng.integers(1_000_000, length - 1_000_000, n_genes)
    genes = pd.DataFrame({"gene_id": [f"g{i}" for i in range(n_genes)], "chrom": chrom, "tss": tss,
                          "strand": rng.choice(["+", "-"], n_genes), "target": rng.random(n_genes), "rpkm": 1.0, "label": 0})
    rows = []
    for g in range(n_genes):
        for _ in range(8):
            s = int(tss[g] + rng.integers(20_000, 200_000) * rng.choice([-1, 1]))
            rows.append([chrom[g], tss[g], tss[g] + 1, chrom[g], s, s + int(rng.integers(2_000, 8_000)), f"g{g}", float(rng.uniform(1.5, 10))])
    links = pd.DataFrame(rows, columns=BEDPE_COLUMNS)
    ctx = DataContext.of(genes, marks=MARKS, tracks=tracks, contacts=ContactFilter(threshold=None).apply(links))
    return ChromoformerInputs()(ctx, np.arange(n_genes))


def time_it(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def step_fn(net, opt, batch, device, autocast_dtype=None):
    x = {k: ({r: t.to(device) for r, t in v.items()} if isinstance(v, dict) else v.to(device)) for k, v in batch["x"].items()}
    y = batch["y"].to(device)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss = torch.nn.functional.mse_loss(net(**x).squeeze(-1).float(), y)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    return step


def time_assembly(ds, batches: list[np.ndarray]) -> tuple[float, float]:
    """Median seconds per batch of the vectorised and of the reference assembly, alternated
    batch by batch so both see the same load, on one torch/NumPy thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ds.__getitems__(batches[0])
        ds.reference_x(batches[0])  # warm-up
        fast, ref = [], []
        for idx in batches:
            t0 = time.perf_counter()
            ds.__getitems__(idx)
            t1 = time.perf_counter()
            ds.reference_x(idx)
            fast.append(t1 - t0)
            ref.append(time.perf_counter() - t1)
    finally:
        torch.set_num_threads(threads)
    return statistics.median(fast), statistics.median(ref)


def loader_genes_per_s(ds, workers: int, n_batches: int) -> float:
    from torch.utils.data import DataLoader, Subset

    sub = Subset(ds, np.arange(64 * n_batches))
    sub.__getitems__ = lambda idx: ds.__getitems__([sub.indices[i] for i in idx])  # keep the batch fetch
    loader = DataLoader(sub, batch_size=64, shuffle=True, num_workers=workers, collate_fn=ds.collate_fn,
                        persistent_workers=False, generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    n = sum(len(batch["y"]) for batch in loader)
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batches", type=int, default=30, help="batches of 64 timed per assembly")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads for the training step (0 = default)")
    parser.add_argument("--workers", default="", help="comma-separated DataLoader worker counts to time (e.g. 0,2)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ds = make_dataset()
    rng = np.random.default_rng(1)
    batches = [rng.choice(len(ds), 64, replace=False) for _ in range(args.batches)]
    batch = ds.__getitems__(batches[0])
    assert batch["x"]["pcre_mask"].all(), "every benchmark gene has 8 pCREs"
    fast, ref = time_assembly(ds, batches)

    torch.manual_seed(0)
    net = Chromoformer(n_marks=len(MARKS)).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    cpu = time_it(step_fn(net, opt, batch, torch.device("cpu")), args.steps)
    fast_after, ref_after = time_assembly(ds, batches)  # again after the steps: load drifts
    fast, ref = min(fast, fast_after), min(ref, ref_after)
    print(f"[chromoformer] CPU ({torch.get_num_threads()} threads): train step at batch 64 = {cpu:.3f} s "
          f"-> {1 / cpu:.2f} steps/s, {64 / cpu:.0f} genes/s")
    print(f"[chromoformer] batch assembly, 64 genes x 7 marks x 8 pCREs x 3 resolutions, 1 core (median of {len(batches)}, "
          f"best of 2 rounds): vectorised {fast * 1000:.1f} ms ({64 / fast:.0f} genes/s), "
          f"window API (before) {ref * 1000:.1f} ms ({64 / ref:.0f} genes/s), {ref / fast:.1f}x; target <= 20 ms")
    print(f"[chromoformer] data side = {100 * fast / cpu:.2f}% of a CPU step (before: {100 * ref / cpu:.1f}%); "
          f"one core assembles {cpu / fast:.0f}x the genes/s a CPU step trains")
    for workers in [int(w) for w in args.workers.split(",") if w]:
        rate = loader_genes_per_s(ds, workers, len(ds) // 64)
        print(f"[chromoformer] DataLoader, {workers} worker(s), batch 64, shuffled, one pass of {len(ds) // 64} batches "
              f"(worker start included): {rate:.0f} genes/s ({rate * cpu / 64:.0f}x a CPU step's genes/s)")
    if torch.cuda.is_available():
        dev = torch.device("cuda")
        gnet = Chromoformer(n_marks=len(MARKS)).to(dev).train()
        gopt = torch.optim.AdamW(gnet.parameters(), lr=1e-4)
        for dtype, name in ((None, "fp32"), (torch.bfloat16, "bf16 autocast"), (torch.float16, "fp16 autocast")):
            t = time_it(step_fn(gnet, gopt, batch, dev, dtype), args.steps * 4)
            print(f"[chromoformer] GPU {torch.cuda.get_device_name()} {name}: {1 / t:.1f} steps/s ({64 / t:.0f} genes/s); "
                  f"assembly on one core = {100 * fast / t:.0f}% of a GPU step (before: {100 * ref / t:.0f}%); "
                  f"cores to keep up: {fast / t:.1f}")
    else:
        print("[chromoformer] GPU: not available on this machine (the GPU share is still open)")


if __name__ == "__main__":
    main()
