"""Chromoformer speed (issue 4): training steps/s and whether the data side keeps up.

Measures, in one process on the same inputs: (a) assembling a batch of 64 genes × 7 marks ×
8 pCREs at three resolutions from in-memory cached tracks (``ChromoformerInputs``), and
(b) one training step (forward + backward + AdamW) at batch 64 on CPU — and on CUDA with
bf16 autocast when a GPU is present. Prints steps/s and assembly as a % of a CPU step
(target < 10%).

    python benchmarks/bench_chromoformer.py [--steps 5] [--threads N]
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
    ctx = DataContext(tracks, genes, ContactFilter(threshold=None).apply(links), "X", MARKS, "target")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ds = make_dataset()
    rng = np.random.default_rng(1)
    batches = [rng.choice(len(ds), 64, replace=False) for _ in range(args.steps + 1)]
    it = iter(batches * 3)
    assemble = time_it(lambda: ds.__getitems__(next(it)), args.steps)
    batch = ds.__getitems__(batches[0])
    assert batch["x"]["pcre_mask"].all(), "every benchmark gene has 8 pCREs"

    torch.manual_seed(0)
    net = Chromoformer(n_marks=len(MARKS)).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    cpu = time_it(step_fn(net, opt, batch, torch.device("cpu")), args.steps)
    print(f"[chromoformer] CPU ({torch.get_num_threads()} threads): train step at batch 64 = {cpu:.3f} s "
          f"-> {1 / cpu:.2f} steps/s, {64 / cpu:.0f} genes/s")
    print(f"[chromoformer] batch assembly (64 genes x 7 marks x 8 pCREs x 3 resolutions) = {assemble * 1000:.1f} ms "
          f"= {100 * assemble / cpu:.1f}% of a CPU step (target < 10%)")
    if torch.cuda.is_available():
        dev = torch.device("cuda")
        gnet = Chromoformer(n_marks=len(MARKS)).to(dev).train()
        gopt = torch.optim.AdamW(gnet.parameters(), lr=1e-4)
        for dtype, name in ((None, "fp32"), (torch.bfloat16, "bf16 autocast"), (torch.float16, "fp16 autocast")):
            t = time_it(step_fn(gnet, gopt, batch, dev, dtype), args.steps * 4)
            print(f"[chromoformer] GPU {torch.cuda.get_device_name()} {name}: {1 / t:.1f} steps/s ({64 / t:.0f} genes/s); "
                  f"assembly = {100 * assemble / t:.0f}% of a GPU step")
    else:
        print("[chromoformer] GPU: not available on this machine")


if __name__ == "__main__":
    main()
