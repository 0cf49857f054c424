"""The study's bill (issue 14 part 4): the projected cost of the full Roadmap grid per model.

Reads what ``benchmarks/bench_cost.py --epoch --out FILE`` measured on one job at full size
(``epx synth OUT --genome hg19 --cells E003``: 19,000 genes, hg19 chromosomes) and multiplies:

    one job  = setup (gene accounting, cache load, input building)
             + E × (one real training epoch with its validation)
             + one more epoch for the test and predictions (an upper bound: those are forward only)
    the grid = cells × marks × folds jobs (11 × 7 × 4 = 308 per model by default)
             + each cell's cache, built once for all 7 marks (``--cache-s``, seconds per cell)

with E from each model's recipe (``RECIPES``: the experiment a study would run it with, composed
from ``conf/``): ``max_epochs`` bounds it from above; early stopping can end it after
``patience + 1`` epochs at the earliest. CPU figures are core-hours (job wall time × the torch
threads it ran with); GPU figures are device-hours, from ``--gpu`` (the same benchmark run with
``--device cuda``) when one was measured, else "open".

    python benchmarks/bench_bill.py --cpu cost_cpu_hg19.json [--gpu cost_gpu_hg19.json]
        [--cells 11 --marks 7 --folds 4] [--cache-s 60]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# the recipe a study runs each model with (conf/experiment/); [] = the model's defaults
RECIPES = {
    "linear": ["model=linear"],
    "promoter_cnn": ["experiment=chromexpress_promoter"],
    "chromoformer": ["experiment=chromoformer_paper"],
    "graphreg": ["experiment=graphreg_paper"],
    "epi_cnn": ["model=epi_cnn"],
}


def epochs(model: str) -> tuple[int, int, str]:
    """(max_epochs, the earliest early stop, the recipe) of ``model``'s recipe."""
    from epx.config import compose

    recipe = RECIPES.get(model, [f"model={model}"])
    cfg = compose(recipe)
    most = int(cfg.trainer.max_epochs)
    stop = cfg.get("callbacks", {}).get("early_stopping") if cfg.get("callbacks") else None
    least = min(most, int(stop.patience) + 1) if stop is not None else most
    return most, least, " ".join(recipe)


def job_hours(result: dict, n_epochs: int) -> float:
    # the cache build (prepare_s, in the first measured job) is billed once per cell, not per job
    setup = result["setup_s"] - result.get("prepare_s", 0.0)
    return (setup + (n_epochs + 1) * result["fit_epoch_s"]) / 3600


def bill(cpu: list[dict], gpu: list[dict], *, jobs: int, cells: int, cache_s: float) -> list[dict]:
    gpu_by = {r["model"]: r for r in gpu if "fit_epoch_s" in r}
    rows = []
    for r in cpu:
        if "fit_epoch_s" not in r:
            rows.append({"model": r["model"], "error": r.get("error", "not measured")})
            continue
        most, least, recipe = epochs(r["model"])
        threads = int(r.get("threads") or 1)
        row = {
            "model": r["model"], "recipe": recipe, "genes": sum(r["genes"].values()), "epochs": (least, most),
            "cpu_epoch_s": r["fit_epoch_s"], "threads": threads,
            "cpu_job_h": (job_hours(r, least), job_hours(r, most)),
            "cpu_core_h": tuple(jobs * job_hours(r, e) * threads + cells * cache_s / 3600 for e in (least, most)),
        }
        g = gpu_by.get(r["model"])
        if g:
            row.update(gpu_epoch_s=g["fit_epoch_s"], gpu_h=tuple(jobs * job_hours(g, e) for e in (least, most)))
        rows.append(row)
    return rows


def render(rows: list[dict], *, jobs: int) -> str:
    lines = [
        f"{'model':13s} {'recipe':32s} {'epochs':>8s} {'CPU epoch s':>11s} {'CPU h/job':>13s} "
        f"{f'CPU core-h ({jobs} jobs)':>24s} {'GPU epoch s':>11s} {f'GPU h ({jobs} jobs)':>18s}"
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['model']:13s} not measured: {r['error']}")
            continue
        e = f"{r['epochs'][0]}-{r['epochs'][1]}"
        job = f"{r['cpu_job_h'][0]:.2f}-{r['cpu_job_h'][1]:.2f}"
        core = f"{r['cpu_core_h'][0]:,.0f}-{r['cpu_core_h'][1]:,.0f}"
        gpu_e = f"{r['gpu_epoch_s']:.1f}" if "gpu_epoch_s" in r else "open"
        gpu_h = f"{r['gpu_h'][0]:,.1f}-{r['gpu_h'][1]:,.1f}" if "gpu_h" in r else "open"
        lines.append(f"{r['model']:13s} {r['recipe'][:32]:32s} {e:>8s} {r['cpu_epoch_s']:>11.1f} {job:>13s} {core:>24s} {gpu_e:>11s} {gpu_h:>18s}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", required=True, help="bench_cost.py --epoch --out JSON, on the CPU")
    ap.add_argument("--gpu", default=None, help="the same with --device cuda (optional)")
    ap.add_argument("--cells", type=int, default=11)
    ap.add_argument("--marks", type=int, default=7)
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--cache-s", type=float, default=0.0, help="seconds to build one cell's 7-mark cache (epx prepare)")
    args = ap.parse_args()
    cpu = json.loads(Path(args.cpu).read_text())
    gpu = json.loads(Path(args.gpu).read_text()) if args.gpu else []
    jobs = args.cells * args.marks * args.folds
    rows = bill(cpu, gpu, jobs=jobs, cells=args.cells, cache_s=args.cache_s)
    print(f"The study: {args.cells} cells x {args.marks} marks x {args.folds} folds = {jobs} jobs per model, one mark per job, "
          f"each cell's cache built once ({args.cache_s:.0f} s per cell). Ranges: earliest early stop - max_epochs.")
    print(render(rows, jobs=jobs))
    measured = [r for r in rows if "cpu_core_h" in r]
    if measured:
        low, high = (sum(r["cpu_core_h"][i] for r in measured) for i in (0, 1))
        print(f"all {len(measured)} models: {low:,.0f}-{high:,.0f} CPU core-hours; "
              f"{args.cells} caches: {args.cells * args.cache_s / 3600:.2f} h once (included per model above)")
    if not gpu:
        print("GPU: open (no bench_cost.py --device cuda figures were given)")


if __name__ == "__main__":
    main()
