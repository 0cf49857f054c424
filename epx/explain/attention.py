"""Attention: which linked regions a model reads for each gene, with their coordinates.

Contract:

- ``pcre_table(job, rows, attribution=None, *, batch_size=None) -> DataFrame[gene, gene_id,
  slot, chrom, start, end, freq, attribution, attribution_r{r}..., attention_l{layer}_h{head}...,
  attention_r{r}..., attention_mean]`` (Chromoformer only): one row per linked pCRE (filled slot)
  of each gene. ``attribution`` is the pCRE windows' attribution summed over marks, bins and
  resolutions (``attribution_r{r}`` per resolution; IG with the defaults when ``attribution``
  is None); ``attention_l{l}_h{h}`` the attention of the promoter token to the pCRE in
  regulation layer l (0-based), head h, averaged over the resolution branches;
  ``attention_r{r}`` the mean over layers and heads of branch r; ``attention_mean`` the mean
  over all. Per layer and head, the promoter's attention over [itself, its pCREs] sums to 1.
- ``graph_attention(job, rows, *, batch_size=None) -> DataFrame[gene, gene_id, chrom,
  tss_node_start, neighbour_start, neighbour_end, self_loop, layer, head, weight]`` (GraphReg
  with graph-attention layers only): for each gene's TSS node, the GAT weight of every incoming
  edge (its graph neighbours, and the self-loop the layer adds), per layer and head; the
  weights of one node, layer and head sum to 1. Genes sharing a window share one forward pass.

Asked of a model without such attention (the promoter CNN, Epi-CNN, ...): one ``InputError``
naming the model and what applies, before any work.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from epx.errors import InputError
from epx.models.graphreg import EpiGraphReg
from epx.explain.adapters import ChromoformerAdapter, GraphRegAdapter
from epx.explain.attribution import Attribution, attribute

GRAPH_COLUMNS = ["gene", "gene_id", "chrom", "tss_node_start", "neighbour_start", "neighbour_end", "self_loop", "layer", "head", "weight"]


def _require(job, cls, what: str, instead: str) -> None:
    if not isinstance(job.adapter, cls):
        raise InputError(f"{what} does not apply to model {job.model!r}; {instead}")


def pcre_table(job, rows, attribution: Attribution | None = None, *, batch_size: int | None = None) -> pd.DataFrame:
    _require(job, ChromoformerAdapter, "the pCRE table (attention to and attribution of linked pCREs)",
             "it applies to Chromoformer; for GraphReg use graph_attention, for any model perturb(region=...) or attribute")
    adapter: ChromoformerAdapter = job.adapter
    rows = adapter.check_rows(rows)
    if attribution is None:
        attribution = attribute(job, rows)
    attribution = attribution.select(rows)
    per_forward = int(batch_size or adapter.default_batch)
    resolutions = adapter.resolutions
    attention = {r: [] for r in resolutions}
    with torch.no_grad():
        for lo in range(0, len(rows), per_forward):
            b = adapter.batch(rows[lo : lo + per_forward])
            _, att = job.net(**adapter.net_inputs(b.inputs, b.extra), return_attention=True)
            for r in resolutions:
                attention[r].append(att[r][..., 1:].float().cpu().numpy())  # (n, layers, heads, I)
    att = {r: np.concatenate(a) for r, a in attention.items()}
    slots = adapter.slots(rows)
    g, s = np.nonzero(slots.mask)
    table = {
        "gene": rows[g], "gene_id": job.gene_ids(rows)[g], "slot": s, "chrom": slots.chrom[g, s],
        "start": slots.start[g, s], "end": slots.end[g, s], "freq": slots.freq[g, s],
    }
    per_res = {r: attribution.inputs[f"pcres_{r}"].sum(axis=(2, 3), dtype=np.float64) for r in resolutions}  # (N, I)
    table["attribution"] = sum(per_res.values())[g, s]
    table |= {f"attribution_r{r}": per_res[r][g, s] for r in resolutions}
    stacked = np.stack([att[r] for r in resolutions])  # (R, N, layers, heads, I)
    mean_res = stacked.mean(axis=0)
    n_layers, n_heads = mean_res.shape[1:3]
    table |= {f"attention_l{l}_h{h}": mean_res[g, l, h, s] for l in range(n_layers) for h in range(n_heads)}
    table |= {f"attention_r{r}": att[r].mean(axis=(1, 2))[g, s] for r in resolutions}
    table["attention_mean"] = mean_res.mean(axis=(1, 2))[g, s]
    return pd.DataFrame(table)


def graph_attention(job, rows, *, batch_size: int | None = None) -> pd.DataFrame:
    _require(job, GraphRegAdapter, "graph attention", "it applies to GraphReg (graphreg, graphreg_gatv2); for Chromoformer use pcre_table")
    if not isinstance(job.net, EpiGraphReg):
        raise InputError(
            f"graph attention does not apply to model {job.model!r}: its net has no graph-attention layers "
            "(Epi-CNN is GraphReg's no-graph control); it applies to graphreg and graphreg_gatv2"
        )
    adapter: GraphRegAdapter = job.adapter
    rows = adapter.check_rows(rows)
    chrom, start, node = adapter.windows(rows)
    node_bp, n_nodes = adapter.dm.inputs.node_bp, adapter.n_nodes()
    keys = pd.Series(list(zip(chrom, start)))
    codes, uniques = pd.factorize(keys)
    first = np.array([np.flatnonzero(codes == k)[0] for k in range(len(uniques))], np.int64)
    per_forward = int(batch_size or adapter.default_batch)
    ids = job.gene_ids(rows)
    frames = []
    with torch.no_grad():
        for lo in range(0, len(first), per_forward):
            windows = np.arange(lo, min(lo + per_forward, len(first)))
            b = adapter.batch(rows[first[windows]])
            _, layers = job.net(x=b.inputs["x"], edge_index=adapter.edge_index(b.extra), return_attention=True)
            genes = np.flatnonzero(np.isin(codes, windows))
            receiver = (codes[genes] - lo) * n_nodes + node[genes]
            for layer, (edge_index, alpha) in enumerate(layers):
                ei, alpha = edge_index.cpu().numpy(), alpha.float().cpu().numpy()
                edges = pd.DataFrame({"receiver": ei[1], "sender": ei[0], "edge": np.arange(ei.shape[1])})
                hits = pd.DataFrame({"receiver": receiver, "i": genes}).merge(edges, on="receiver")
                i, e = hits["i"].to_numpy(), hits["edge"].to_numpy()
                sender_local = hits["sender"].to_numpy() % n_nodes
                n_heads = alpha.shape[1]
                frames.append(pd.DataFrame({
                    "gene": np.repeat(rows[i], n_heads), "gene_id": np.repeat(ids[i], n_heads), "chrom": np.repeat(chrom[i], n_heads),
                    "tss_node_start": np.repeat(start[i] + node[i] * node_bp, n_heads),
                    "neighbour_start": np.repeat(start[i] + sender_local * node_bp, n_heads),
                    "neighbour_end": np.repeat(start[i] + (sender_local + 1) * node_bp, n_heads),
                    "self_loop": np.repeat(sender_local == node[i], n_heads),
                    "layer": layer, "head": np.tile(np.arange(n_heads), len(i)), "weight": alpha[e].reshape(-1),
                }))
    if not frames:
        return pd.DataFrame(columns=GRAPH_COLUMNS)
    out = pd.concat(frames, ignore_index=True)[GRAPH_COLUMNS]
    return out.sort_values(["gene", "layer", "neighbour_start", "head"], kind="stable").reset_index(drop=True)
