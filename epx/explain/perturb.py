"""In-silico perturbation: scale one mark's signal over a region and watch each gene's prediction.

Contract: ``perturb(job, rows, *, mark, region, factors=np.linspace(1, 0, 11), chunks=None,
batch_size=None) -> DataFrame[gene, gene_id, region, chunk, chrom, start, end, factor,
prediction, delta]``.

- ``region`` is one of the adapter's ``regions`` (``epx.explain.adapters.REGIONS``):
  ``promoter`` (TSS ± 3 kb, chunk 0), ``flanks`` (each 2 kb chunk of the 40 kb window centred
  on the TSS; chunk = its start in bp from the TSS, 5'->3'), ``pcres`` (Chromoformer: each
  linked pCRE, chunk = slot, and all together, chunk -1), ``neighbours`` (GraphReg/Epi-CNN:
  each graph neighbour of the TSS node, chunk = rank along the window, and all together,
  chunk -1). A region is genomic: every input position whose signal lies in it is scaled,
  whichever window holds it (a pCRE inside Chromoformer's promoter window is scaled there too).
  ``start``/``end`` are the region's genomic span (of all its parts). ``chunks`` keeps only
  those chunk ids (e.g. ``[-1]``).
- The SIGNAL is scaled, not its log: inputs are x = ln(s + 1), so x' = ln(f (e^x - 1) + 1); a
  bin only partly inside the region has the covered fraction of its signal scaled (uniform
  within the bin). Positions a factor leaves unchanged are copied, so factor 1 gives delta 0.
- ``prediction`` is ``adapter.forward_genes`` (the ``predictions.csv`` scale; log-odds for
  classification), ``delta`` = prediction - the unperturbed prediction.
- Work is batched: genes x chunks x factors are stacked into forward passes of ``batch_size``
  inputs (the adapter's default when None), never one pass per gene.

A region or mark that does not apply (pCREs for the promoter CNN, flanks of a 40 kb window
for a model that sees 6 kb, a mark the job was not trained on) is one ``InputError`` before
any work.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from epx.errors import InputError
from epx.explain.adapters import GeneBatch, Layout, RegionIntervals

COLUMNS = ["gene", "gene_id", "region", "chunk", "chrom", "start", "end", "factor", "prediction", "delta"]


def region_fractions(layout: Layout, ri: RegionIntervals) -> np.ndarray:
    """(N, C, [I,] L) float32: the fraction of each position's signal span inside each chunk."""
    s, e = layout.start, layout.end
    extra_axes = s.ndim - 2  # 1 with a slot axis
    s = s[:, None]
    e = e[:, None]
    length = np.maximum(e - s, 1)
    chrom = np.asarray(layout.chrom, dtype=object)
    same = chrom[:, None] == ri.chrom.reshape(ri.chrom.shape + (1,) * extra_axes)  # (N, C, [I])
    frac = np.zeros(np.broadcast_shapes(s.shape, ri.start.shape[:2] + (1,) * (extra_axes + 1)), np.float64)
    for k in range(ri.start.shape[2]):
        rs = ri.start[:, :, k].reshape(ri.start.shape[:2] + (1,) * (extra_axes + 1))
        re = ri.end[:, :, k].reshape(rs.shape)
        frac += np.clip(np.minimum(e, re) - np.maximum(s, rs), 0, None) / length
    frac *= same[..., None] & layout.valid[:, None]
    return np.minimum(frac, 1.0).astype(np.float32)


def scale_signal(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """x = ln(s + 1) -> ln(keep * s + 1), exactly x where keep == 1."""
    return torch.where(keep == 1, x, torch.log1p(keep * torch.expm1(x)))


def _check_factors(factors) -> np.ndarray:
    f = np.asarray(factors, dtype=np.float64).reshape(-1)
    if not f.size or not np.isfinite(f).all() or (f < 0).any():
        raise InputError(f"factors must be finite and >= 0 (1 = unchanged, 0 = signal removed); got {factors!r}")
    return f


def _forward(adapter, batch: GeneBatch, per_forward: int) -> np.ndarray:
    out = []
    with torch.no_grad():
        for lo in range(0, len(batch.rows), per_forward):
            b = batch.take(np.arange(lo, min(lo + per_forward, len(batch.rows))))
            out.append(adapter.forward_genes(b.inputs, b.extra).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def perturb(job, rows, *, mark: str, region: str, factors=np.linspace(1, 0, 11), chunks=None, batch_size: int | None = None) -> pd.DataFrame:
    adapter = job.adapter
    adapter.check_region(region)
    channel = job.mark_index(mark)
    factors = _check_factors(factors)
    rows = adapter.check_rows(rows)
    per_forward = int(batch_size or adapter.default_batch)
    names = tuple(adapter.input_names)
    ids = job.gene_ids(rows)
    frames = []
    for lo in range(0, len(rows), per_forward):
        batch = adapter.batch(rows[lo : lo + per_forward])
        ri = adapter.region_intervals(batch, region)
        keep_chunk = np.ones(len(ri.chunk), bool) if chunks is None else np.isin(ri.chunk, np.asarray(chunks))
        layouts = adapter.layouts(batch.rows)
        fractions = {n: torch.from_numpy(region_fractions(layouts[n], ri)).to(adapter.device) for n in names}
        base = _forward(adapter, batch, per_forward)
        gi, ci = np.nonzero(ri.valid & keep_chunk[None, :])
        gi, fi = np.repeat(gi, len(factors)), np.tile(np.arange(len(factors)), len(ci))
        ci = np.repeat(ci, len(factors))
        pred = np.empty(len(gi))
        factor_t = torch.as_tensor(factors, dtype=torch.float32, device=adapter.device)
        with torch.no_grad():
            for v in range(0, len(gi), per_forward):
                g = torch.as_tensor(gi[v : v + per_forward], device=adapter.device)
                c = torch.as_tensor(ci[v : v + per_forward], device=adapter.device)
                f = factor_t[torch.as_tensor(fi[v : v + per_forward], device=adapter.device)]
                inputs = {}
                for n in names:
                    x = batch.inputs[n].index_select(0, g).clone()  # (V, [I,] M, L)
                    frac = fractions[n][g, c]  # (V, [I,] L)
                    keep = 1 - (1 - f.view((-1,) + (1,) * (frac.dim() - 1))) * frac
                    x[..., channel, :] = scale_signal(x[..., channel, :], keep)
                    inputs[n] = x
                extra = {k: t.index_select(0, g) for k, t in batch.extra.items()}
                pred[v : v + per_forward] = adapter.forward_genes(inputs, extra).double().cpu().numpy()
        if not len(gi):  # no gene of this batch has the region (e.g. no graph neighbour)
            continue
        gene_at = lo + gi
        starts = np.where(ri.end > ri.start, ri.start, np.iinfo(np.int64).max).min(axis=2)
        ends = np.where(ri.end > ri.start, ri.end, np.iinfo(np.int64).min).max(axis=2)
        frames.append(pd.DataFrame({
            "gene": rows[gene_at], "gene_id": ids[gene_at], "region": region, "chunk": ri.chunk[ci], "chrom": ri.chrom[gi, ci],
            "start": starts[gi, ci], "end": ends[gi, ci], "factor": factors[fi], "prediction": pred, "delta": pred - base[gi],
        }))
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(frames, ignore_index=True)[COLUMNS]
