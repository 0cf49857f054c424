"""Attribution: how much each mark at each position moves each gene's prediction (captum).

Contract:

- ``attribute(job, rows, *, method="ig", n_steps=32, batch_size=None) -> Attribution``: the
  attribution of ``job.adapter.forward_genes`` (one prediction per gene: see
  ``epx.explain.adapters``) to every input position, for gene-table ``rows``. ``METHODS`` is
  the registry: ``ig`` (IntegratedGradients, Gauss-Legendre, ``n_steps``; the default),
  ``input_x_gradient``, ``deeplift`` (the rescale rule) and ``gradient_shap`` (``n_steps``
  samples). The baseline is zero signal (inputs are ln(mean + 1), so 0 = no signal).
  ``batch_size`` is the input copies per forward pass (genes x steps; the adapter's default
  when None): the genes are attributed ``batch_size // n_steps`` at a time.
- ``Attribution``: ``method``, ``rows`` (N,), ``marks`` (the input channels: ``InputBuilder.channels``, the marks of histone inputs, A C G T of sequence), ``inputs`` {input name: float32
  (N, M, L) or (N, I, M, L)}, ``prediction`` f(x) and ``baseline`` f(0) (N,), ``total`` (N,)
  the attributions summed, ``gap`` = total - (f(x) - f(0)) and ``delta`` = gap / max(|f(x) - f(0)|,
  sum |attribution|) (the completeness error, relative: to f(x) - f(0) itself unless the
  attributions cancel, as for silent genes whose prediction barely leaves f(0)). IG's attributions sum to
  f(x) - f(0) up to the integration error (within 5% at 32 steps on the trained models).
  ``attribution.select(rows)`` is the subset for some of its rows.
- ``profile(attribution, job, rows=None, *, resolution_bp=None) -> DataFrame[input,
  resolution_bp, slot, mark, offset_bp, group, attribution, abs_attribution, n_genes]``: the
  mean (and mean |.|) attribution over genes per mark x position, positions as ``offset_bp``
  from the TSS's 100 bp bin in 5'->3' orientation (pCRE slots: from the pCRE window's centre;
  slot -1 = not a pCRE), for ``group`` expressed / not_expressed / all (the classification
  label); padding and empty pCRE slots are left out (``n_genes`` counts the genes averaged).
  ``resolution_bp`` sums each gene's attributions into coarser offset bins first (e.g. 5000
  for a GraphReg window).
- ``gene_tracks(job, rows, attribution) -> list[GeneTrack]``: per gene, the attribution summed
  over marks on the genome (genomic orientation, at the cache's 100 bp bins, cut to the
  chromosome): the promoter window, and for Chromoformer every pCRE window too, coarse bins
  spread evenly over their 100 bp bins (so a track sums to the gene's total attribution).
  ``mark_tracks`` is the same with ``values`` (M, L), per mark.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from captum.attr import DeepLift, GradientShap, InputXGradient, IntegratedGradients
from torch import Tensor, nn

from epx.errors import InputError
from epx.explain.adapters import Layout


# -- methods -------------------------------------------------------------------------------


class _Forward(nn.Module):
    """``forward_genes`` over a flat tuple (attributed inputs, then extra), as captum calls it."""

    def __init__(self, adapter, names: tuple[str, ...], extra_names: tuple[str, ...]):
        super().__init__()
        self.adapter, self.names, self.extra_names = adapter, names, extra_names
        self.net = adapter.net  # a submodule, so DeepLift's hooks reach its layers

    def forward(self, *tensors: Tensor) -> Tensor:
        k = len(self.names)
        return self.adapter.forward_genes(dict(zip(self.names, tensors[:k])), dict(zip(self.extra_names, tensors[k:])))


@dataclass(frozen=True)
class Method:
    run: Callable  # (forward module, inputs, baselines, extra, n_steps, internal_batch) -> tuple of tensors
    uses_steps: bool


def _ig(f, inputs, baselines, extra, n_steps, internal):
    return IntegratedGradients(f).attribute(inputs, baselines=baselines, additional_forward_args=extra, n_steps=n_steps, internal_batch_size=internal)


def _input_x_gradient(f, inputs, baselines, extra, n_steps, internal):
    return InputXGradient(f).attribute(inputs, additional_forward_args=extra)


def _deeplift(f, inputs, baselines, extra, n_steps, internal):
    return DeepLift(f).attribute(inputs, baselines=baselines, additional_forward_args=extra)


def _gradient_shap(f, inputs, baselines, extra, n_steps, internal):
    zeros = tuple(b[:1] for b in baselines)  # one baseline sample: zero signal
    return GradientShap(f).attribute(inputs, baselines=zeros, n_samples=n_steps, stdevs=0.0, additional_forward_args=extra)


METHODS: dict[str, Method] = {
    "ig": Method(_ig, True),
    "input_x_gradient": Method(_input_x_gradient, False),
    "deeplift": Method(_deeplift, False),
    "gradient_shap": Method(_gradient_shap, True),
}


# -- attribution ---------------------------------------------------------------------------


@dataclass
class Attribution:
    method: str
    rows: np.ndarray
    marks: tuple[str, ...]
    inputs: dict[str, np.ndarray]
    prediction: np.ndarray
    baseline: np.ndarray
    n_steps: int = 0

    def __getitem__(self, name: str) -> np.ndarray:
        return self.inputs[name]

    @property
    def total(self) -> np.ndarray:
        """(N,) the attributions of every input summed per gene."""
        return sum(a.reshape(len(self.rows), -1).sum(axis=1, dtype=np.float64) for a in self.inputs.values())

    @property
    def gap(self) -> np.ndarray:
        return self.total - (self.prediction.astype(np.float64) - self.baseline)

    @property
    def magnitude(self) -> np.ndarray:
        """(N,) the attributions' absolute values summed per gene."""
        return sum(np.abs(a).reshape(len(self.rows), -1).sum(axis=1, dtype=np.float64) for a in self.inputs.values())

    @property
    def delta(self) -> np.ndarray:
        """(N,) the completeness error ``gap`` relative to max(|f(x) - f(0)|, sum |attribution|):
        the plain relative error where attributions do not cancel, and the error relative to
        the map's own size for a gene whose prediction barely leaves f(0) (a silent gene, whose
        |f(x) - f(0)| alone would blow up a tiny gap); NaN where both are 0."""
        scale = np.maximum(np.abs(self.prediction.astype(np.float64) - self.baseline), self.magnitude)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(scale > 0, self.gap / scale, np.nan)

    def index_of(self, rows) -> np.ndarray:
        rows = np.asarray(rows, np.int64).reshape(-1)
        order = np.argsort(self.rows, kind="stable")
        at = np.searchsorted(self.rows[order], rows)
        at = np.clip(at, 0, len(self.rows) - 1)
        found = self.rows[order][at] == rows if len(self.rows) else np.zeros(len(rows), bool)
        if not found.all():
            raise InputError(f"{(~found).sum()} of the rows asked for were not attributed (e.g. row {rows[~found][0]}); attribute them first")
        return order[at]

    def select(self, rows) -> "Attribution":
        i = self.index_of(rows)
        return Attribution(self.method, self.rows[i], self.marks, {k: v[i] for k, v in self.inputs.items()}, self.prediction[i], self.baseline[i], self.n_steps)


def attribute(job, rows, *, method: str = "ig", n_steps: int = 32, batch_size: int | None = None) -> Attribution:
    if method not in METHODS:
        raise InputError(f"unknown attribution method {method!r}; choose one of {', '.join(METHODS)}")
    if n_steps < 1:
        raise InputError(f"n_steps must be >= 1, got {n_steps}")
    spec = METHODS[method]
    adapter = job.adapter
    rows = adapter.check_rows(rows)
    per_forward = int(batch_size or adapter.default_batch)
    per_call = max(1, per_forward // n_steps) if spec.uses_steps else per_forward
    names = tuple(adapter.input_names)
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    fx, f0 = [], []
    for lo in range(0, len(rows), per_call):
        batch = adapter.batch(rows[lo : lo + per_call])
        extra_names = tuple(batch.extra)
        f = _Forward(adapter, names, extra_names)
        inputs = tuple(batch.inputs[n] for n in names)
        baselines = tuple(torch.zeros_like(t) for t in inputs)
        extra = tuple(batch.extra[n] for n in extra_names) or None
        with torch.enable_grad():
            attr = spec.run(f, inputs, baselines, extra, n_steps, max(per_forward, len(batch.rows)))
        with torch.no_grad():
            fx.append(f(*inputs, *(extra or ())).double().cpu().numpy())
            f0.append(f(*baselines, *(extra or ())).double().cpu().numpy())
        for n, a in zip(names, attr):
            parts[n].append(a.detach().float().cpu().numpy())
    values = {n: np.concatenate(p) if p else np.zeros((0,)) for n, p in parts.items()}
    return Attribution(method, rows, tuple(adapter.dm.inputs.channels(job.marks)), values, np.concatenate(fx) if fx else np.zeros(0),
                       np.concatenate(f0) if f0 else np.zeros(0), n_steps if spec.uses_steps else 0)


# -- profiles ------------------------------------------------------------------------------

PROFILE_COLUMNS = ["input", "resolution_bp", "slot", "mark", "offset_bp", "group", "attribution", "abs_attribution", "n_genes"]


def _with_slot_axis(values: np.ndarray, layout: Layout):
    """(N, [I,] M, L) values and their layout as (N, I, M, L), (N, I, L) with I = 1 if none."""
    if layout.slot_axis:
        return values, layout.offset_bp, layout.valid
    return values[:, None], layout.offset_bp[:, None], layout.valid[:, None]


def _profile_one(name: str, values: np.ndarray, layout: Layout, groups: dict[str, np.ndarray], marks, resolution_bp) -> list[pd.DataFrame]:
    a, offset, valid = _with_slot_axis(values, layout)
    n, n_slots, n_marks, _ = a.shape
    step = int(resolution_bp or layout.bin_bp)
    if step % layout.bin_bp:
        raise InputError(f"resolution_bp={resolution_bp} is not a multiple of {name}'s {layout.bin_bp} bp bins")
    cell = np.floor_divide(offset, step)
    lo = int(cell[valid].min()) if valid.any() else 0
    n_cells = (int(cell[valid].max()) - lo + 1) if valid.any() else 1
    key = np.arange(n_slots)[None, :, None] * n_cells + (cell - lo)  # (N, I, L)
    slot_label = np.arange(n_slots) if layout.slot_axis else np.array([-1])
    out = []
    for group, genes in groups.items():
        mask = valid & genes[:, None, None]
        size = n_slots * n_cells
        if step == layout.bin_bp:  # every gene has each offset at most once
            k = key[mask]
            counts = np.bincount(k, minlength=size)
            sums = [np.bincount(k, weights=a[:, :, m, :][mask], minlength=size) for m in range(n_marks)]
            abs_sums = [np.bincount(k, weights=np.abs(a[:, :, m, :][mask]), minlength=size) for m in range(n_marks)]
        else:  # sum each gene's bins within a coarse cell, then average over genes
            gkey = (np.arange(n)[:, None, None] * size + key)[mask]
            counts = np.bincount(np.unique(gkey) % size, minlength=size)
            per_gene = [np.bincount(gkey, weights=a[:, :, m, :][mask], minlength=n * size).reshape(n, size) for m in range(n_marks)]
            sums = [p.sum(axis=0) for p in per_gene]
            abs_sums = [np.abs(p).sum(axis=0) for p in per_gene]
        present = np.flatnonzero(counts)
        if not present.size:
            continue
        slot, c = np.divmod(present, n_cells)
        for m, mark in enumerate(marks):
            out.append(pd.DataFrame({
                "input": name, "resolution_bp": step, "slot": slot_label[slot], "mark": mark, "offset_bp": (c + lo) * step,
                "group": group, "attribution": sums[m][present] / counts[present],
                "abs_attribution": abs_sums[m][present] / counts[present], "n_genes": counts[present],
            }))
    return out


def profile(attribution: Attribution, job, rows=None, *, resolution_bp: int | None = None) -> pd.DataFrame:
    if rows is not None:
        attribution = attribution.select(rows)
    rows = attribution.rows
    layouts = job.adapter.layouts(rows)
    expressed = job.expressed(rows)
    groups = {"expressed": expressed, "not_expressed": ~expressed, "all": np.ones(len(rows), bool)}
    frames = []
    for name, values in attribution.inputs.items():
        frames += _profile_one(name, values, layouts[name], groups, attribution.marks, resolution_bp)
    if not frames:
        return pd.DataFrame(columns=PROFILE_COLUMNS)
    return pd.concat(frames, ignore_index=True)[PROFILE_COLUMNS]


# -- gene tracks ---------------------------------------------------------------------------


@dataclass
class GeneTrack:
    """One gene's attribution on the genome: ``values[..., j]`` covers ``[start_bp + j * bin_bp,
    start_bp + (j + 1) * bin_bp)`` on ``chrom`` (genomic orientation). ``values``: (L,) summed
    over marks (``gene_tracks``) or (M, L) per mark (``mark_tracks``)."""

    gene: int
    gene_id: str
    chrom: str
    start_bp: int
    bin_bp: int
    values: np.ndarray

    @property
    def end_bp(self) -> int:
        return self.start_bp + self.values.shape[-1] * self.bin_bp


def mark_tracks(job, rows, attribution: Attribution) -> list[GeneTrack]:
    attribution = attribution.select(rows) if rows is not None else attribution
    rows = attribution.rows
    layouts = job.adapter.layouts(rows)
    fine = int(job.dm.bin_bp)
    sizes = job.chrom_sizes()
    ids = job.gene_ids(rows)
    tracks = []
    for i, row in enumerate(rows):
        starts, ends, vals, chrom = [], [], [], None
        for name, values in attribution.inputs.items():
            lay = layouts[name]
            a = values[i] if lay.slot_axis else values[i][None]  # (I, M, L)
            s = lay.start[i] if lay.slot_axis else lay.start[i][None]  # (I, L)
            e = lay.end[i] if lay.slot_axis else lay.end[i][None]
            valid = lay.valid[i] if lay.slot_axis else lay.valid[i][None]
            c = np.asarray(lay.chrom[i], dtype=object).reshape(-1)
            gene_chrom = str(job.genes["chrom"].to_numpy()[row])
            same = np.array([str(x) == gene_chrom for x in c])  # a pCRE on another chromosome is left out
            keep = valid & same[:, None] & (e > s)
            starts.append(s[keep])
            ends.append(e[keep])
            vals.append(a.transpose(0, 2, 1)[keep])  # (K, M)
            chrom = gene_chrom
        s, e, v = np.concatenate(starts), np.concatenate(ends), np.concatenate(vals)
        size = int(sizes.get(chrom, 0)) or int(e.max(initial=0))
        lo = max(int(s.min()) // fine * fine, 0) if s.size else 0
        hi = min(-(-int(e.max()) // fine) * fine, -(-size // fine) * fine) if e.size else lo
        n_fine = max((hi - lo) // fine, 0)
        out = np.zeros((len(attribution.marks), n_fine), np.float64)
        if n_fine:
            first, last = s // fine, -(-e // fine)
            count = last - first
            pos = np.repeat(first, count) + (np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count))
            share = np.repeat(v / count[:, None], count, axis=0)  # (sum count, M)
            inside = (pos >= lo // fine) & (pos < hi // fine)
            for m in range(out.shape[0]):
                out[m] += np.bincount(pos[inside] - lo // fine, weights=share[inside, m], minlength=n_fine)[:n_fine]
        tracks.append(GeneTrack(int(row), str(ids[i]), chrom, lo, fine, out.astype(np.float32)))
    return tracks


def gene_tracks(job, rows, attribution: Attribution) -> list[GeneTrack]:
    return [GeneTrack(t.gene, t.gene_id, t.chrom, t.start_bp, t.bin_bp, t.values.sum(axis=0)) for t in mark_tracks(job, rows, attribution)]
