"""Cache at genome scale (issue 14 part 2): build time, size and load time per cell, float32 vs
float16 vs bfloat16 storage, measured side by side in one process.

1. ``synthetic``: one cell, 7 marks of the built-in synthetic generator at ``--mb`` Mb
   (23 chromosomes, the default dataset's gene density); each dtype's cache is built and
   loaded ``--repeats`` times, the dtypes alternated round by round (medians), next to the
   bare bigWig decode of the same 7 marks (the floor a build cannot beat).
2. ``dense``: one dense fold-enrichment-like mark (variable 10-200 bp intervals on every base,
   as MACS2 writes them) at ``--dense-mb`` Mb: the case compression cannot help, the closest to
   a real genome-wide Roadmap track; sizes are scaled to 7 marks.

Per case and dtype it prints: build s, load s (into float32 memory), file MB, MB per Gb of
genome (7 marks) and the extrapolation to hg19 (3.1 Gb × 7 marks), and the precision the
models see (largest relative error of a bin mean in the format's normal range, largest
absolute error of ln(mean + 1)) against the float32 cache.

3. ``--models linear,promoter_cnn``: the models' test metrics with each cache dtype on the
   default data: ``python launch.py mark=all fold=0 model=M seed=S`` per dtype and seed, side
   by side (``--seeds``, ``--overrides`` add to it). Until the DataModule takes
   ``data.cache_dtype``, the job's ``CellCache`` gets the dtype by a patch in the launching
   process; the cache dir is a temporary one, so nothing shared is touched.

    python benchmarks/bench_cache.py [--mb 300] [--dense-mb 100] [--repeats 3]
    python benchmarks/bench_cache.py --mb 0 --dense-mb 0 --models linear,promoter_cnn --seeds 0,1
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import subprocess
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_data import dense_bigwig  # noqa: E402
from epx.constants import MARKS  # noqa: E402
from epx.data.prepare.cache import CellCache  # noqa: E402
from epx.data.prepare.contract import DatasetSpec  # noqa: E402
from epx.io.bigwig import read_binned  # noqa: E402
from epx.io.chrom_sizes import write_chrom_sizes  # noqa: E402
from epx.io.expression import write_expression  # noqa: E402
from epx.io.tss import write_tss  # noqa: E402

DTYPES = ("float32", "float16", "bfloat16")
HG19_GB = 3.1
GENES_PER_MB = 2070 / (23 * 8)  # the default synthetic dataset's density


def synthetic_folder(tmp: Path, mb: int) -> tuple[Path, list[str], float]:
    from epx.synthetic.generate import generate

    length = mb * 1_000_000 // 23
    t0 = time.perf_counter()
    root = generate(tmp / "synthetic", n_chroms=23, chrom_length=length,
                    genes_per_chrom=max(1, round(length / 1e6 * GENES_PER_MB)), cells=("E003",))
    took = time.perf_counter() - t0
    print(f"[generate] synthetic genome 23 x {length / 1e6:.1f} Mb = {23 * length / 1e9:.2f} Gb, 1 cell x 7 marks: "
          f"{took:.1f} s, bigWigs {sum(p.stat().st_size for p in (root / 'signals').iterdir()) / 1e6:.1f} MB")
    return root, list(MARKS), took


def dense_folder(tmp: Path, mb: int) -> tuple[Path, list[str]]:
    root = tmp / "dense"
    sizes = {"chr1": mb * 1_000_000 // 2, "chr2": mb * 1_000_000 // 2}
    write_chrom_sizes(sizes, root / "chrom.sizes")
    write_tss(pd.DataFrame({"gene_id": ["g"], "chrom": ["chr1"], "tss": [100], "strand": ["+"]}), root / "tss.bed")
    write_expression(pd.DataFrame({"gene_id": ["g"], "E003": [1]}), root / "expression.tsv")
    dense_bigwig(root / "signals" / "E003-H3K4me3.bigwig", sizes)
    return root, ["H3K4me3"]


def genome_bp(root: Path) -> int:
    return sum(int(line.split()[1]) for line in (root / "chrom.sizes").read_text().splitlines() if line.strip())


def measure(name: str, root: Path, marks: list[str], repeats: int, work: Path) -> None:
    spec = DatasetSpec(root=root)
    gb = genome_bp(root) / 1e9
    scale = 7 / len(marks)  # sizes per cell of 7 marks
    build = {d: [] for d in DTYPES}
    load = {d: [] for d in DTYPES}
    decode = []
    size, tracks = {}, {}
    sizes = None
    for round_ in range(repeats):
        t0 = time.perf_counter()
        for mark in marks:
            sizes = sizes or CellCache(spec, "E003", work / "probe").chrom_sizes
            read_binned(spec.signal_path("E003", mark), sizes)
        decode.append(time.perf_counter() - t0)
        for dtype in DTYPES[round_ % 3:] + DTYPES[: round_ % 3]:  # rotate the order each round
            cache_dir = work / f"{name}-{dtype}-{round_}"
            t0 = time.perf_counter()
            path = CellCache(spec, "E003", cache_dir, dtype=dtype).ensure(marks)
            build[dtype].append(time.perf_counter() - t0)
            size[dtype] = path.stat().st_size
            t0 = time.perf_counter()
            loaded = CellCache(spec, "E003", cache_dir, dtype=dtype).load(marks)
            load[dtype].append(time.perf_counter() - t0)
            if round_ == 0:
                tracks[dtype] = loaded
            del loaded
            shutil.rmtree(cache_dir)
    ref = tracks["float32"]
    floor = statistics.median(decode)
    print(f"[{name}] {gb:.2f} Gb x {len(marks)} mark(s); bigWig decode alone {floor:.1f} s "
          f"(median of {repeats}); sizes scaled to 7 marks, hg19 = {HG19_GB} Gb")
    print(f"  {'dtype':9} {'build s':>8} {'vs f32':>6} {'load s':>7} {'file MB':>8} {'MB/Gb':>7} {'hg19 MB':>8} "
          f"{'hg19 build':>10} {'max rel err':>11} {'max ln err':>10}")
    for dtype in DTYPES:
        b, lo = statistics.median(build[dtype]), statistics.median(load[dtype])
        rel, ln = 0.0, 0.0
        for chrom, exact in ref.items():
            got = tracks[dtype][chrom]
            normal = exact >= 2.0**-14
            if normal.any():
                rel = max(rel, float((np.abs(got[normal] - exact[normal]) / exact[normal]).max()))
            ln = max(ln, float(np.abs(np.log1p(got) - np.log1p(exact)).max()))
        per_gb = size[dtype] / 1e6 * scale / gb
        print(f"  {dtype:9} {b:8.1f} {b / statistics.median(build['float32']):6.2f} {lo:7.2f} {size[dtype] / 1e6:8.1f} "
              f"{per_gb:7.1f} {per_gb * HG19_GB:8.0f} {b * scale / gb * HG19_GB / 60:8.1f} min {rel:11.2e} {ln:10.2e}")
    raw = 4 * 7 * 1e9 / 100 / 1e6
    print(f"  uncompressed bound: float32 {raw:.0f} MB/Gb ({raw * HG19_GB:.0f} MB at hg19), half {raw / 2:.0f} MB/Gb "
          f"({raw / 2 * HG19_GB:.0f} MB)")


LAUNCH = """
import functools, runpy, sys
import epx.data.datamodule as datamodule
from epx.data.prepare.cache import CellCache
datamodule.CellCache = functools.partial(CellCache, dtype={dtype!r})
sys.argv = ["launch.py", *{overrides!r}]
runpy.run_path("launch.py", run_name="__main__")
"""


def job_metrics(dtype: str, overrides: list[str], work: Path) -> dict:
    """Run one job with the cache in ``dtype``; its test metrics and wall time."""
    from epx.data.datamodule import EpxDataModule

    run_dir = work / "runs" / f"{dtype}-{'-'.join(o.replace('=', '_') for o in overrides)}"
    common = [*overrides, f"paths.cache_dir={work / 'cache'}", f"hydra.run.dir={run_dir}", "logger=none",
              "trainer.enable_progress_bar=false"]
    if "cache_dtype" in inspect.signature(EpxDataModule).parameters:  # wired: the plain command
        command = [sys.executable, "launch.py", *common, f"data.cache_dtype={dtype}"]
    else:
        command = [sys.executable, "-c", LAUNCH.format(dtype=dtype, overrides=common)]
    t0 = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env={**os.environ, "WANDB_MODE": "disabled"})
    if done.returncode:
        raise SystemExit(f"job {overrides} ({dtype}) failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    record = json.loads((run_dir / "metrics.json").read_text())
    predictions = pd.read_csv(run_dir / "predictions.csv")
    test = predictions[predictions["split"] == "test"].set_index("gene_id")
    return {"test": record["test"], "wall_s": time.perf_counter() - t0, "pred": test}


def bootstrap_se(test: pd.DataFrame, n: int = 500, seed: int = 0) -> dict[str, float]:
    """Standard error of the test Pearson / Spearman from resampling the test genes: the noise
    of a metric measured on this many genes."""
    rng = np.random.default_rng(seed)
    y, p = test["target"].to_numpy(), test["prediction"].to_numpy()
    out = {"pearson": [], "spearman": []}
    for _ in range(n):
        i = rng.integers(0, len(y), len(y))
        out["pearson"].append(np.corrcoef(y[i], p[i])[0, 1])
        out["spearman"].append(pd.Series(y[i]).rank().corr(pd.Series(p[i]).rank()))
    return {k: float(np.std(v)) for k, v in out.items()}


def compare_models(models: list[str], seeds: list[int], extra: list[str], work: Path) -> None:
    for model in models:
        rows = {}
        for seed in seeds:
            for dtype in DTYPES:
                overrides = ["mark=all", "fold=0", f"model={model}", f"seed={seed}", *extra]
                rows[(seed, dtype)] = job_metrics(dtype, overrides, work)
        keys = sorted(next(iter(rows.values()))["test"])
        print(f"[models] {model}: python launch.py mark=all fold=0 model={model} seed=S {' '.join(extra)} "
              f"+ cache dtype; test metrics")
        print(f"  {'seed':>4} {'dtype':9} " + " ".join(f"{k.removeprefix('test/'):>10}" for k in keys) + f" {'wall s':>7}")
        for (seed, dtype), row in rows.items():
            print(f"  {seed:>4} {dtype:9} " + " ".join(f"{row['test'][k]:10.4f}" for k in keys) + f" {row['wall_s']:7.0f}")
        se = bootstrap_se(rows[(seeds[0], "float32")]["pred"])
        for k in keys:
            by_dtype = {d: [rows[(s, d)]["test"][k] for s in seeds] for d in DTYPES}
            seed_spread = max(max(v) - min(v) for v in by_dtype.values()) if len(seeds) > 1 else float("nan")
            dtype_gap = max(abs(rows[(s, d)]["test"][k] - rows[(s, "float32")]["test"][k]) for s in seeds for d in DTYPES)
            noise = f"; bootstrap SE over the {len(rows[(seeds[0], 'float32')]['pred'])} test genes {se[k]:.4f}" if k in se else ""
            print(f"  {k}: largest |half - float32| at one seed {dtype_gap:.4f}; spread over seeds {seed_spread:.4f}{noise}")
        for seed in seeds:
            ref = rows[(seed, "float32")]["pred"]["prediction"]
            for dtype in DTYPES[1:]:
                diff = (rows[(seed, dtype)]["pred"]["prediction"] - ref).abs()
                print(f"  seed {seed} {dtype}: test predictions differ from float32's by at most {diff.max():.4f} "
                      f"(median {diff.median():.4f}; prediction sd {ref.std():.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=300, help="synthetic genome size in Mb (0 skips it)")
    parser.add_argument("--dense-mb", type=int, default=100, help="dense one-mark genome size in Mb (0 skips it)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="", help="comma-separated models whose test metrics to compare per dtype")
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds for --models")
    parser.add_argument("--overrides", default="", help="extra launch.py overrides for --models, space-separated")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=REPO / "outputs" if (REPO / "outputs").is_dir() else None) as tmp:
        tmp = Path(tmp)
        if args.mb:
            root, marks, _ = synthetic_folder(tmp, args.mb)
            measure("synthetic", root, marks, args.repeats, tmp / "work")
        if args.dense_mb:
            root, marks = dense_folder(tmp, args.dense_mb)
            measure("dense", root, marks, args.repeats, tmp / "work")
        if args.models:
            compare_models(args.models.split(","), [int(x) for x in args.seeds.split(",")], args.overrides.split(), tmp / "jobs")


if __name__ == "__main__":
    main()
