"""Interpretation cost (issue 13): attribution and in-silico perturbation per gene, per model.

For each finished job dir given, in one process and on the same genes (the job's test genes,
then other genes if more are asked for): (a) one plain forward pass per gene
(``adapter.forward_genes`` in the adapter's batches: for GraphReg/Epi-CNN one 6 Mb window per
gene), (b) IntegratedGradients with ``--steps`` steps (32) via ``epx.explain.attribute``, and
(c) ``epx.explain.perturb`` of H3K4me3 over the promoter at 11 factors (genes x factors stacked
into batched forward passes). Each is reported as ms per gene and genes/s, and (b), (c) as a
ratio to (a), the cost of one plain forward pass of the same gene in the same run. Slow models
get fewer genes: ``--genes`` caps every stage, ``--genes-slow`` caps the window models
(GraphReg, Epi-CNN) and Chromoformer's attribution; per-gene figures make them comparable.

    python benchmarks/bench_explain.py JOB_DIR... [--genes 1000] [--genes-slow 4] [--steps 32] [--threads 2] [--device cpu]

Job dirs: e.g. ``python launch.py mark=all fold=0 model=M trainer=debug logger=none`` for each
model (the cost does not depend on how well a model is trained).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from epx.explain import ExplainJob, attribute, perturb  # noqa: E402
from epx.explain.adapters import ChromoformerAdapter, GraphRegAdapter  # noqa: E402

FACTORS = np.linspace(1, 0, 11)


def genes(job: ExplainJob, n: int) -> np.ndarray:
    test = job.rows("test")
    rest = np.setdiff1d(job.rows("all"), test)
    return np.concatenate([test, rest])[:n]


def timed(fn) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def forward_all(job: ExplainJob, rows: np.ndarray) -> None:
    adapter = job.adapter
    with torch.no_grad():
        for lo in range(0, len(rows), adapter.default_batch):
            b = adapter.batch(rows[lo : lo + adapter.default_batch])
            adapter.forward_genes(b.inputs, b.extra)


def line(stage: str, n: int, seconds: float, per_forward: float | None) -> str:
    ms = 1000 * seconds / n
    ratio = f"{ms / per_forward:8.1f}x" if per_forward else "       -"
    return f"  {stage:<26} {n:>5} genes  {ms:10.2f} ms/gene  {n / seconds:9.3g} genes/s  {ratio} a forward"


def bench(job_dir: Path, args) -> None:
    job = ExplainJob.load(job_dir, device=args.device)
    slow = isinstance(job.adapter, (GraphRegAdapter, ChromoformerAdapter))
    window = isinstance(job.adapter, GraphRegAdapter)
    n_fwd = min(args.genes, args.genes_slow * 4) if window else args.genes
    n_ig = min(args.genes, args.genes_slow) if slow else args.genes
    n_pert = min(args.genes, args.genes_slow) if window else args.genes
    print(f"{job.model} ({job_dir}): {'+'.join(job.marks)}, inputs {', '.join(job.adapter.input_names)}, "
          f"{sum(p.numel() for p in job.net.parameters()):,} parameters, device {job.device}")
    forward_all(job, genes(job, 2))  # warm-up
    t = timed(lambda: forward_all(job, genes(job, n_fwd)))
    per_forward = 1000 * t / n_fwd
    print(line("forward (one pass)", n_fwd, t, None))
    attribute(job, genes(job, 1), n_steps=args.steps)  # warm-up
    t = timed(lambda: attribute(job, genes(job, n_ig), n_steps=args.steps))
    print(line(f"IG, {args.steps} steps", n_ig, t, per_forward))
    t = timed(lambda: perturb(job, genes(job, n_pert), mark="H3K4me3", region="promoter", factors=FACTORS))
    print(line("perturb promoter x 11", n_pert, t, per_forward))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("jobs", nargs="+", type=Path)
    parser.add_argument("--genes", type=int, default=1000)
    parser.add_argument("--genes-slow", type=int, default=4)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    print(f"torch {torch.__version__}, {args.threads} CPU threads")
    for job_dir in args.jobs:
        bench(job_dir, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
