"""What a job costs per model (issue 14 parts 3 and 6): genes/s, epoch time, memory, data share.

For each model, in its own subprocess (so peak memory is its own), on the dataset the overrides
name (default: the built-in synthetic one; the full-size genome: ``epx synth OUT --genome hg19
--cells E003`` then ``dataset=folder dataset.root=OUT``):

1. the job's own data path: the DataModule from ``conf/`` (gene accounting, the cell's cache,
   in-memory tracks, the model's input builder), timed to ``setup()``, with the process's RSS
   after it and the in-memory inputs' size (the tracks of the used chromosomes);
2. the data side of a step: assembling a batch through the train DataLoader (as the job builds
   it, pinned on CUDA) and its copy to the device, median ms per batch;
3. the model side: forward + backward + optimizer step on batches already on the device
   (``--precisions``: ``32`` = float32 with TF32 off, ``tf32`` = float32 matmuls on TF32, what
   ``trainer=gpu trainer.precision=32-true`` gives, ``bf16`` = bf16 autocast as ``trainer=gpu``;
   ``--compile`` adds the last precision at the largest batch with ``torch.compile``), median ms
   per step after warm-up (3 steps when compiled: compilation stays out of the figure);
4. genes/s of each side, the data side's share of a step (data / (data + step): the loader runs
   in the training process, ``num_workers=0``), and the epoch time they imply for the train
   split; ``--epoch`` also runs one real ``trainer.fit`` epoch (training and validation) and
   reports its wall time, Lightning's own overhead included: what the bill multiplies;
5. peak RSS (``ru_maxrss``) and, on CUDA, peak allocated device memory.

Prints one table; ``--out FILE`` writes every figure as JSON (``benchmarks/bench_bill.py`` turns
it into the study's bill).

    python benchmarks/bench_cost.py [--models linear,promoter_cnn,chromoformer,graphreg,epi_cnn]
        [--device cpu|cuda] [--precisions 32,bf16] [--batch-sizes 64,256] [--compile] [--steps 10]
        [--epoch] [--out cost.json] [OVERRIDE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODELS = ["linear", "promoter_cnn", "chromoformer", "graphreg", "epi_cnn"]
WINDOW_MODELS = ("graphreg", "graphreg_gatv2", "epi_cnn")


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def n_genes(batch) -> int:
    return int(len(batch["gene"]))


def build(model: str, overrides: list[str]):
    from hydra.utils import instantiate

    from epx.config import compose
    from epx.run import objective_config

    cfg = compose([f"model={model}", "logger=none", *overrides])
    objective = instantiate(objective_config(cfg))
    dm = instantiate(cfg.data, target_column=objective.target_column)
    return cfg, objective, dm


def data_side(dm, batch_size: int, device, n: int) -> tuple[list, float, float]:
    """Batches assembled through the job's train DataLoader; median assembly and copy ms."""
    from lightning.fabric.utilities.apply_func import move_data_to_device

    dm.batch_size = batch_size
    loader = dm.train_dataloader()
    assemble, copy, staged = [], [], []
    it = iter(loader)
    while len(assemble) < n:
        t = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            continue
        t1 = time.perf_counter()
        on_device = move_data_to_device(batch, device)
        sync(device)
        t2 = time.perf_counter()
        assemble.append((t1 - t) * 1e3)
        copy.append((t2 - t1) * 1e3)
        staged.append(on_device)
    return staged, statistics.median(assemble[1:] or assemble), statistics.median(copy[1:] or copy)


def model_side(cfg, objective, batches, device, precision: str, compiled: bool, steps: int) -> float:
    """Median ms of forward + backward + optimizer step over ``batches`` already on ``device``."""
    import torch
    from hydra.utils import instantiate

    torch.manual_seed(0)
    net = instantiate(cfg.model.net).to(device).train()
    torch.set_float32_matmul_precision("highest" if precision == "32" else "high")
    torch.backends.cudnn.allow_tf32 = precision != "32"
    if compiled:
        net.compile()
    optimizer = instantiate(cfg.model.module.optimizer)(params=net.parameters())
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def loss_of(batch):
        with autocast:
            loss = objective.loss(net(**batch["x"]), batch)
            if hasattr(net, "penalty"):
                loss = loss + net.penalty()
        return loss

    def step(batch):
        def closure():
            optimizer.zero_grad(set_to_none=True)
            loss = loss_of(batch)
            loss.backward()
            return loss

        optimizer.step(closure)

    warm = 3 if compiled else 1
    if isinstance(optimizer, torch.optim.LBFGS):
        # full-batch L-BFGS (linear): the first step solves the problem and later ones stop at
        # once, so the first, cold step is the one that counts
        warm, steps = 0, 1
    for i in range(warm):
        step(batches[i % len(batches)])
    sync(device)
    times = []
    for i in range(steps):
        batch = batches[i % len(batches)]
        sync(device)
        t = time.perf_counter()
        step(batch)
        sync(device)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def one_epoch(cfg, objective, dm, device) -> float:
    """Wall seconds of one real Lightning epoch, training and validation, with the job's trainer."""
    from hydra.utils import instantiate

    from epx.train.compute import apply_compute

    net = instantiate(cfg.model.net)
    # no LR scheduler: ReduceLROnPlateau needs the validation this epoch leaves out
    module = instantiate(cfg.model.module, _partial_=True)(net=net, objective=objective, scheduler=None)
    trainer = instantiate(
        cfg.trainer, max_epochs=1, min_epochs=1, logger=False, callbacks=[], enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
    )
    apply_compute(cfg.get("compute"), trainer, net)
    t = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    return time.perf_counter() - t


def measure(args) -> dict:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    base = rss_mb()
    overrides = list(args.overrides)
    if device.type == "cuda":
        overrides.append("trainer=gpu")
    t = time.perf_counter()
    cfg, objective, dm = build(args.one, overrides)
    dm.account_inputs()
    t_account = time.perf_counter() - t
    dm.prepare_data()  # builds the cell's cache if it is not there yet
    t_prepare = time.perf_counter() - t - t_account
    dm.setup()
    t_setup = time.perf_counter() - t
    genes = dm.n_genes()
    out = {
        "model": args.one, "device": device.type, "threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None,
        "genes": genes, "setup_s": round(t_setup, 2), "prepare_s": round(t_prepare, 2),
        "rss_after_setup_mb": round(rss_mb(), 1), "rss_before_mb": round(base, 1),
        "inputs_mb": round(inputs_mb(dm), 1), "rows": [],
    }
    own = int(cfg.model.batch_size)
    if not args.batch_sizes or args.one == "linear":  # linear: always the whole split
        sizes = [own]
    elif args.one in WINDOW_MODELS:  # batches of 6 Mb windows (~30 genes each), not genes
        sizes = sorted({own, *[max(1, b // 32) for b in args.batch_sizes]})
    else:
        sizes = args.batch_sizes
    for size in sizes:
        # compiling costs tens of seconds per model: measured once, at the largest batch, in the
        # fastest precision asked for
        fastest = args.precisions[-1] if device.type == "cuda" else "32"
        variants = [(p, False) for p in args.precisions] + ([(fastest, True)] if args.compile and size == max(sizes) else [])
        dm.trainer = None
        if device.type == "cuda":
            dm.pin_memory = True
        batches, assemble_ms, copy_ms = data_side(dm, size, device, n=max(3, min(args.steps, 20)))
        genes_per_batch = statistics.mean(n_genes(b) for b in batches)
        for precision, compiled in variants:
            if device.type == "cpu" and precision != "32":
                continue
            try:
                step_ms = model_side(cfg, objective, batches, device, precision, compiled, args.steps)
                error = None
            except Exception as err:  # a variant that fails is reported, not fatal
                step_ms, error = float("nan"), f"{type(err).__name__}: {str(err)[:200]}"
            data_ms = assemble_ms + copy_ms
            row = {
                "batch": size, "genes_per_batch": round(genes_per_batch, 1), "precision": precision, "compile": compiled,
                "assemble_ms": round(assemble_ms, 2), "copy_ms": round(copy_ms, 2), "step_ms": round(step_ms, 2),
                "model_genes_s": round(genes_per_batch / step_ms * 1e3, 1) if step_ms == step_ms else None,
                "data_genes_s": round(genes_per_batch / data_ms * 1e3, 1),
                "data_share": round(data_ms / (data_ms + step_ms), 4) if step_ms == step_ms else None,
                "epoch_s": round(genes["train"] / genes_per_batch * (data_ms + step_ms) / 1e3, 2) if step_ms == step_ms else None,
                "error": error,
            }
            out["rows"].append(row)
            print(json.dumps({"model": args.one, **row}), file=sys.stderr, flush=True)
        del batches
    if args.epoch:
        dm.batch_size = own
        dm.trainer = None
        dm.pin_memory = "auto"
        out["fit_epoch_s"] = round(one_epoch(cfg, objective, dm, device), 2)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    if device.type == "cuda":
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def inputs_mb(dm) -> float:
    """Bytes of the in-memory inputs the datasets hold: the tracks' arrays, counted once."""
    import numpy as np

    seen, total = set(), 0
    for ds in dm.datasets.values():
        for value in vars(ds).values():
            for arr in _arrays(value):
                if id(arr) not in seen:
                    seen.add(id(arr))
                    total += arr.nbytes
    return total / 2**20 if total else float(np.nan)


def _arrays(value, depth: int = 0):
    import numpy as np
    import torch

    if depth > 4:
        return
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, torch.Tensor):
        yield value.numpy() if value.device.type == "cpu" else value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _arrays(v, depth + 1)
    elif isinstance(value, list | tuple):
        for v in value[:64]:
            yield from _arrays(v, depth + 1)
    elif hasattr(value, "__dict__") and not isinstance(value, type):
        for v in vars(value).values():
            yield from _arrays(v, depth + 1)


def table(results: list[dict]) -> str:
    head = f"{'model':14s} {'dev':4s} {'batch':>5s} {'prec':>5s} {'comp':>4s} {'genes/s model':>13s} {'genes/s data':>12s} {'data %':>7s} {'epoch s':>8s} {'peak RSS MB':>11s} {'GPU MB':>7s}"
    lines = [head]
    for r in results:
        if "error" in r and not r.get("rows"):
            lines.append(f"{r['model']:14s} failed: {r['error']}")
            continue
        for row in r["rows"]:
            lines.append(
                f"{r['model']:14s} {r['device']:4s} {row['batch']:>5d} {row['precision']:>5s} {('yes' if row['compile'] else 'no'):>4s} "
                f"{row['model_genes_s'] or float('nan'):>13,.0f} {row['data_genes_s']:>12,.0f} {100 * (row['data_share'] or float('nan')):>6.1f}% "
                f"{row['epoch_s'] if row['epoch_s'] is not None else float('nan'):>8.2f} {r['peak_rss_mb']:>11,.0f} {r.get('peak_gpu_mb', float('nan')):>7,.0f}"
                + (f"  ({row['error']})" if row["error"] else "")
            )
        extra = f"  {r['model']}: genes {r['genes']}, setup {r['setup_s']} s (cache build {r['prepare_s']} s), inputs in memory {r['inputs_mb']} MB, RSS after setup {r['rss_after_setup_mb']} MB"
        if "fit_epoch_s" in r:
            extra += f", one real trainer.fit epoch {r['fit_epoch_s']} s"
        lines.append(extra)
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precisions", default="32,bf16")
    ap.add_argument("--batch-sizes", default="")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--epoch", action="store_true")
    ap.add_argument("--out", default=None)
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per model")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    args.precisions = [p for p in args.precisions.split(",") if p]
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b]
    if args.one:
        print(json.dumps(measure(args)))
        return
    results = []
    for model in args.models.split(","):
        cmd = [sys.executable, __file__, "--one", model, *sys.argv[1:]]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env={**os.environ, "WANDB_MODE": "disabled"})
            line = proc.stdout.strip().splitlines()[-1] if proc.returncode == 0 and proc.stdout.strip() else None
            results.append(json.loads(line) if line else {"model": model, "error": proc.stderr.strip().splitlines()[-1:] or [f"rc {proc.returncode}"]})
        except subprocess.TimeoutExpired:
            results.append({"model": model, "error": f"over {args.timeout} s"})
        print(table(results[-1:]).splitlines()[-1], flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=1))
    print(table(results))


if __name__ == "__main__":
    main()
