"""Seq-CNN base quality on held-out chromosomes: Pearson per track over 100 bp bins, overall and
at the synthetic genome's planted motif instances vs background (issue 19's figure).

Opens a finished ``model=seq_cnn_base`` job (``epx.explain.job.ExplainJob``: its own config and
checkpoint), predicts every chunk of its test split and reports, per predicted track, the
Pearson r of log2(pred + 1) vs log2(observed + 1) over

- ``all``: every held-out bin (what the job's ``test/bin_pearson_{i}`` measures);
- ``driver sites``: bins overlapping a planted instance of a factor that drives a promoter or
  an enhancer (``motif_sites.tsv`` roles ``promoter`` / ``enhancer``);
- ``decoy sites``: bins overlapping a decoy instance (a motif that causes nothing);
- ``background``: bins with no planted instance.

On a dataset without ``motif_sites.tsv`` only ``all`` is reported.

    python benchmarks/quality_seq_base.py JOB_DIR [--batch 8]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from epx.explain.job import ExplainJob  # noqa: E402
from epx.io.motifs import read_motif_sites  # noqa: E402


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _site_bins(sites, chrom: np.ndarray, start: np.ndarray, n_bins: int, bin_bp: int, roles) -> np.ndarray:
    """(K, n_bins) bool: chunk bins overlapping a site of ``roles``."""
    hit = np.zeros((len(chrom), n_bins), bool)
    chosen = sites[sites["role"].isin(roles)]
    for c in np.unique(chrom):
        rows = np.flatnonzero(chrom == c)
        on = chosen[chosen["chrom"] == c]
        if not len(on):
            continue
        first = on["start"].to_numpy(np.int64) // bin_bp
        last = (on["end"].to_numpy(np.int64) - 1) // bin_bp
        chunk_first = start[rows] // bin_bp
        for k, row in enumerate(rows):
            lo, hi = chunk_first[k], chunk_first[k] + n_bins
            inside = (last >= lo) & (first < hi)
            for f, l in zip(first[inside], last[inside]):
                hit[row, max(f, lo) - lo : min(l, hi - 1) - lo + 1] = True
    return hit


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("job_dir")
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args(argv)
    job = ExplainJob.load(args.job_dir)
    ds = job.dm.datasets["test"]
    preds, obs = [], []
    with torch.no_grad():
        for lo in range(0, len(ds), args.batch):
            batch = ds.__getitems__(np.arange(lo, min(lo + args.batch, len(ds))))
            preds.append(job.net(**batch["x"]).float().numpy())
            obs.append(batch["y"].numpy())
    pred, y = np.log2(np.concatenate(preds) + 1), np.log2(np.concatenate(obs) + 1)  # (K, T, n_bins)
    t = ds.table
    subsets = {"all": np.ones((len(t.chrom), ds.n_bins), bool)}
    sites_path = job.dm.spec.root / "motif_sites.tsv"
    if sites_path.exists():
        sites = read_motif_sites(sites_path)
        drivers = _site_bins(sites, t.chrom, t.start, ds.n_bins, ds.bin_bp, ("promoter", "enhancer"))
        decoys = _site_bins(sites, t.chrom, t.start, ds.n_bins, ds.bin_bp, ("decoy",))
        subsets |= {"driver sites": drivers, "decoy sites": decoys & ~drivers, "background": ~drivers & ~decoys}
    chroms = sorted(set(t.chrom))
    print(f"{job.model} job {args.job_dir}: cell {job.dm.cell}, fold {job.dm.fold}, test chromosomes {', '.join(chroms)}, "
          f"{len(t.chrom)} chunks of {ds.chunk_bp:,} bp")
    print(f"{'track':<10} " + " ".join(f"{name:>22}" for name in subsets))
    for i, mark in enumerate(job.marks):
        cells = []
        for mask in subsets.values():
            cells.append(f"{_pearson(pred[:, i][mask], y[:, i][mask]):>8.3f} ({int(mask.sum()):>9,} bins)")
        print(f"{mark:<10} " + " ".join(f"{c:>22}" for c in cells))


if __name__ == "__main__":
    main()
