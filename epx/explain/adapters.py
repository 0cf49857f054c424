"""Adapters: what interpretation needs to know about each model family's inputs.

Contract: ``ADAPTERS`` maps an input-builder class (``PromoterInputs``, ``ChromoformerInputs``,
``GraphRegInputs``) to its ``Adapter`` subclass (``@register(BuilderClass)``); ``adapter_for(net,
dm, objective, model, device)`` picks the one of the job's builder (its class or a base class),
so a new model family is one registered class, never a branch on a model name.

An adapter, built on a set-up ``EpxDataModule``, knows:

- ``batch(rows) -> GeneBatch``: the model's inputs for gene-table ``rows`` (any splits, any
  order), fetched from the job's own datasets (the tensors its predictions were made from):
  ``inputs`` (the tensors attribution and perturbation act on, by name: ``input_names``) and
  ``extra`` (per-gene tensors the forward pass also needs: masks, frequencies, graph edges);
  every tensor has the genes on its first axis, so batches can be sliced, repeated or stacked;
- ``forward_genes(inputs, extra) -> (N,)``: one prediction per gene, on the scale of
  ``predictions.csv`` (regression: the value; GraphReg/Epi-CNN: log2(count + 1) of the gene's
  TSS bin in its window, the bin GraphReg attributes; classification: the log-odds
  logit(expressed) - logit(not), whose sigmoid is ``predictions.csv``'s probability);
- ``layouts(rows) -> {input name: Layout}``: where each input position lies on the genome
  (chromosome, start/end bp of the signal it holds, its offset from the TSS in 5'->3'
  orientation, whether it is real or padding). Promoter and Chromoformer windows are
  oriented 5'->3' (− strand genes read right to left), GraphReg windows are genomic;
- ``regions``: the in-silico perturbation regions that apply (``REGIONS``), and
  ``region_intervals(batch, region)``, each region as genomic intervals per gene and chunk.

Inputs are ln(mean signal + 1), so an all-zero input is "no signal" (the attribution baseline).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from epx.data.inputs.chromoformer import ChromoformerInputs
from epx.data.inputs.graphreg.windows import GraphRegInputs
from epx.data.inputs.promoter import PromoterInputs
from epx.errors import InputError

PROMOTER_BP = 3000  # the promoter region: TSS ± 3 kb
FLANK_WINDOW_BP = 40_000  # "flanks": the 2 kb chunks of a 40 kb window centred on the TSS
CHUNK_BP = 2000

REGIONS = {
    "promoter": "TSS ± 3 kb",
    "flanks": "each 2 kb chunk of the 40 kb window centred on the TSS (chunk = its start, bp from the TSS, 5'->3')",
    "pcres": "each linked pCRE (chunk = its slot) and all of them together (chunk -1)",
    "neighbours": "each graph neighbour of the TSS node (chunk = its rank along the window) and all of them together (chunk -1)",
}


@dataclass
class GeneBatch:
    """Model inputs for ``rows``; every tensor has the N genes on axis 0."""

    rows: np.ndarray  # (N,) gene-table rows
    inputs: dict[str, Tensor]  # attributed / perturbed: (N, M, L) or (N, I, M, L)
    extra: dict[str, Tensor]  # what the forward pass also needs, per gene

    def take(self, index) -> "GeneBatch":
        index = torch.as_tensor(np.asarray(index), dtype=torch.long)
        pick = lambda t: t.index_select(0, index.to(t.device))  # noqa: E731
        return GeneBatch(self.rows[index.numpy()], {k: pick(v) for k, v in self.inputs.items()}, {k: pick(v) for k, v in self.extra.items()})


@dataclass
class Layout:
    """Where the positions (last axis) of one input lie, per gene (and pCRE slot).

    ``start``/``end``: (N, [I,] L) genomic bp span of the signal each position holds;
    ``offset_bp``: (N, [I,] L) its start relative to the anchor (the TSS's 100 bp bin for
    promoter and GraphReg windows, the pCRE window's centre for pCRE slots), 5'->3' for the
    gene (negative = upstream); ``valid``: False on padding and empty slots; ``chrom``:
    (N,) or (N, I); ``reverse``: (N,) or (N, I) True where positions run 3'->5' on the genome
    (oriented windows of − strand genes); ``slot_axis``: the input has a pCRE axis."""

    chrom: np.ndarray
    start: np.ndarray
    end: np.ndarray
    offset_bp: np.ndarray
    valid: np.ndarray
    reverse: np.ndarray
    bin_bp: int
    anchor: str = "tss"
    slot_axis: bool = False


@dataclass
class RegionIntervals:
    """A perturbation region per gene and chunk, as up to K genomic intervals each.

    chunk: (C,) int ids; chrom: (N, C) str; start, end: (N, C, K) int64 (empty where
    start == end); valid: (N, C) bool, False where the gene has no such chunk (an empty slot)."""

    chunk: np.ndarray
    chrom: np.ndarray
    start: np.ndarray
    end: np.ndarray
    valid: np.ndarray


ADAPTERS: dict[type, type["Adapter"]] = {}


def register(builder: type) -> Callable[[type["Adapter"]], type["Adapter"]]:
    def add(cls: type[Adapter]) -> type[Adapter]:
        ADAPTERS[builder] = cls
        return cls

    return add


def adapter_for(net: nn.Module, dm, objective, model: str, device: torch.device | str = "cpu") -> "Adapter":
    for cls in type(dm.inputs).__mro__:
        if cls in ADAPTERS:
            return ADAPTERS[cls](net, dm, objective, model, torch.device(device))
    known = ", ".join(sorted(c.__name__ for c in ADAPTERS))
    raise InputError(f"model {model!r}: no interpretation adapter for its input builder {type(dm.inputs).__name__} (known: {known})")


def _oriented_interval(tss_bin_bp: np.ndarray, minus: np.ndarray, lo: int | np.ndarray, hi: int | np.ndarray, base_bp: int):
    """Genomic [start, end) of the oriented interval [lo, hi) bp from the TSS's base bin (5'->3').

    As the windows are built: oriented base bin o sits at genomic bin (centre + o) on the +
    strand and (centre - o) on the − strand."""
    start = np.where(minus, tss_bin_bp + base_bp - hi, tss_bin_bp + lo)
    end = np.where(minus, tss_bin_bp + base_bp - lo, tss_bin_bp + hi)
    return start.astype(np.int64), end.astype(np.int64)


def _oriented_window(chrom, tss, strand, *, window_bp: int, bin_bp: int, base_bp: int) -> Layout:
    """Layout of TSS-centred oriented windows as ``SignalTracks.tss_windows`` builds them."""
    n_genes = len(tss)
    n_bins = window_bp // bin_bp
    minus = np.asarray(strand) == "-"
    tss_bin = np.asarray(tss, np.int64) // base_bp * base_bp
    offset = (np.arange(n_bins, dtype=np.int64) - n_bins // 2) * bin_bp  # the TSS base bin starts bin L/2
    start, end = _oriented_interval(tss_bin[:, None], minus[:, None], offset[None, :], offset[None, :] + bin_bp, base_bp)
    return Layout(
        chrom=np.asarray(chrom, dtype=object), start=start, end=end, offset_bp=np.broadcast_to(offset, (n_genes, n_bins)).copy(),
        valid=np.ones((n_genes, n_bins), bool), reverse=minus, bin_bp=bin_bp,
    )


class Adapter:
    """Base: gene lookup in the job's datasets, the per-gene score, region checks."""

    regions: tuple[str, ...] = ("promoter",)
    default_batch = 1024  # input copies per forward pass (attribution steps, perturbations)
    sees = ""  # what the model sees, for error messages

    def __init__(self, net: nn.Module, dm, objective, model: str, device: torch.device):
        if getattr(dm, "test_cell", None):
            raise InputError(
                f"explaining a cross-cell DataModule (test_cell={dm.test_cell}) is not supported: its test genes index "
                "another cell's table; explain the training cell (test_cell=null) or the other cell (cell=...)"
            )
        self.net, self.dm, self.objective, self.model, self.device = net, dm, objective, model, device
        self.base_bp = int(dm.bin_bp)
        self._split_of = np.full(len(dm.genes), -1, np.int64)
        self._pos_of = np.full(len(dm.genes), -1, np.int64)
        self._splits = [name for name in dm.datasets]
        for i, name in enumerate(self._splits):
            rows = self._dataset_rows(dm.datasets[name])
            self._split_of[rows], self._pos_of[rows] = i, np.arange(len(rows))

    # -- what subclasses provide
    input_names: tuple[str, ...] = ()

    def _dataset_rows(self, dataset) -> np.ndarray:
        raise NotImplementedError

    def _fetch(self, dataset, positions: np.ndarray) -> tuple[dict, dict]:
        raise NotImplementedError

    def forward_genes(self, inputs: Mapping[str, Tensor], extra: Mapping[str, Tensor]) -> Tensor:
        raise NotImplementedError

    def layouts(self, rows: np.ndarray) -> dict[str, Layout]:
        raise NotImplementedError

    # -- shared
    def gene_score(self, out: Tensor) -> Tensor:
        """(B, out_dim) net output -> (B,): the value, or the log-odds of "expressed"."""
        if getattr(self.objective, "name", "") == "classification":
            return out[:, 1] - out[:, 0]
        return out[:, 0]

    def check_rows(self, rows) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        bad = rows[(rows < 0) | (rows >= len(self._split_of))]
        if bad.size:
            raise InputError(f"gene rows {bad[:5].tolist()} are outside the gene table (0..{len(self._split_of) - 1})")
        missing = rows[self._split_of[rows] < 0]
        if missing.size:
            ids = self.dm.genes["gene_id"].to_numpy()[missing[:5]].tolist()
            raise InputError(f"genes {ids} ({missing.size} in all) are in no split of this job; pass rows from job.rows(split)")
        return rows

    def batch(self, rows) -> GeneBatch:
        """Inputs for ``rows`` in that order, gathered per split from the job's datasets."""
        rows = self.check_rows(rows)
        split = self._split_of[rows]
        order, parts = [], []
        for s in np.unique(split):
            at = np.flatnonzero(split == s)
            order.append(at)
            parts.append(self._fetch(self.dm.datasets[self._splits[s]], self._pos_of[rows[at]]))
        inverse = np.empty(len(rows), np.int64)
        inverse[np.concatenate(order)] = np.arange(len(rows))
        index = torch.from_numpy(inverse)

        def merge(k: int) -> dict[str, Tensor]:
            keys = parts[0][k].keys()
            return {key: torch.cat([p[k][key] for p in parts])[index].to(self.device) for key in keys}

        return GeneBatch(rows, merge(0), merge(1))

    def gene_table(self, rows: np.ndarray):
        return self.dm.genes.iloc[np.asarray(rows, np.int64)]

    def check_region(self, region: str) -> None:
        if region not in self.regions:
            applies = "; ".join(f"{r} ({REGIONS[r]})" for r in self.regions)
            raise InputError(
                f"perturbation region {region!r} does not apply to model {self.model!r}, which sees {self.sees}; "
                f"regions that apply: {applies}"
            )

    def region_intervals(self, batch: GeneBatch, region: str) -> RegionIntervals:
        self.check_region(region)
        genes = self.gene_table(batch.rows)
        chrom = genes["chrom"].to_numpy(object)
        minus = genes["strand"].to_numpy() == "-"
        tss_bin = genes["tss"].to_numpy(np.int64) // self.base_bp * self.base_bp
        n = len(batch.rows)
        if region == "promoter":
            lo, hi = np.array([-PROMOTER_BP]), np.array([PROMOTER_BP])
        elif region == "flanks":
            lo = np.arange(-FLANK_WINDOW_BP // 2, FLANK_WINDOW_BP // 2, CHUNK_BP)
            hi = lo + CHUNK_BP
        else:
            return self._element_intervals(batch, region)
        start, end = _oriented_interval(tss_bin[:, None], minus[:, None], lo[None, :], hi[None, :], self.base_bp)
        return RegionIntervals(
            chunk=lo if region == "flanks" else np.zeros(1, np.int64),
            chrom=np.repeat(chrom[:, None], len(lo), axis=1), start=start[..., None], end=end[..., None],
            valid=np.ones((n, len(lo)), bool),
        )

    def _element_intervals(self, batch: GeneBatch, region: str) -> RegionIntervals:
        raise NotImplementedError


def _stack_elements(chrom: np.ndarray, start: np.ndarray, end: np.ndarray, mask: np.ndarray) -> RegionIntervals:
    """Per gene K elements (N, K) -> chunks 0..K-1 (each alone) and -1 (all together)."""
    n, k = mask.shape
    eye = np.eye(k, dtype=bool)
    single_start = np.where(eye[None], start[:, None, :], 0)
    single_end = np.where(eye[None] & mask[:, None, :], end[:, None, :], single_start)
    all_end = np.where(mask, end, start)
    return RegionIntervals(
        chunk=np.concatenate([np.arange(k), [-1]]).astype(np.int64),
        chrom=np.concatenate([chrom, chrom[:, :1]], axis=1),
        start=np.concatenate([single_start, start[:, None, :]], axis=1).astype(np.int64),
        end=np.concatenate([single_end, all_end[:, None, :]], axis=1).astype(np.int64),
        valid=np.concatenate([mask, mask.any(axis=1, keepdims=True)], axis=1),
    )


@register(PromoterInputs)
class PromoterAdapter(Adapter):
    """Promoter CNN and the linear baseline: ``x`` (N, M, L), TSS ± window/2, 5'->3'."""

    input_names = ("x",)
    default_batch = 2048

    @property
    def sees(self) -> str:
        return f"TSS ± {self.dm.inputs.window_bp // 2} bp"

    @property
    def regions(self) -> tuple[str, ...]:
        return ("promoter", "flanks") if self.dm.inputs.window_bp >= FLANK_WINDOW_BP else ("promoter",)

    def _dataset_rows(self, dataset) -> np.ndarray:
        return dataset.fields["gene"].numpy()

    def _fetch(self, dataset, positions):
        return {"x": dataset.fields["x"]["x"][torch.from_numpy(positions)]}, {}

    def forward_genes(self, inputs, extra) -> Tensor:
        return self.gene_score(self.net(x=inputs["x"]))

    def layouts(self, rows) -> dict[str, Layout]:
        g = self.gene_table(rows)
        b = self.dm.inputs
        return {"x": _oriented_window(g["chrom"], g["tss"], g["strand"], window_bp=b.window_bp, bin_bp=b.bin_bp, base_bp=self.base_bp)}


@register(ChromoformerInputs)
class ChromoformerAdapter(Adapter):
    """Chromoformer: ``promoter_{r}`` (N, M, L_r) and ``pcres_{r}`` (N, I, M, L_r) per resolution."""

    regions = ("promoter", "flanks", "pcres")
    default_batch = 64

    def __init__(self, *args, **kwargs):
        b = args[1].inputs
        self.resolutions = tuple(b.resolutions)
        self.input_names = tuple(f"promoter_{r}" for r in self.resolutions) + tuple(f"pcres_{r}" for r in self.resolutions)
        super().__init__(*args, **kwargs)

    @property
    def sees(self) -> str:
        b = self.dm.inputs
        return f"TSS ± {b.window_bp // 2} bp and up to {b.i_max} linked pCREs at {'/'.join(map(str, self.resolutions))} bp"

    def _dataset_rows(self, dataset) -> np.ndarray:
        return dataset.rows

    def _fetch(self, dataset, positions):
        x = dataset.__getitems__(positions)["x"]
        inputs = {f"promoter_{r}": x["promoter"][r] for r in self.resolutions}
        inputs |= {f"pcres_{r}": x["pcres"][r] for r in self.resolutions}
        extra = {f"pcre_bin_mask_{r}": x["pcre_bin_mask"][r] for r in self.resolutions}
        extra |= {"pcre_mask": x["pcre_mask"], "freq": x["freq"]}
        return inputs, extra

    def net_inputs(self, inputs, extra) -> dict:
        rs = self.resolutions
        return dict(
            promoter={r: inputs[f"promoter_{r}"] for r in rs}, pcres={r: inputs[f"pcres_{r}"] for r in rs},
            pcre_bin_mask={r: extra[f"pcre_bin_mask_{r}"] for r in rs}, pcre_mask=extra["pcre_mask"], freq=extra["freq"],
        )

    def forward_genes(self, inputs, extra) -> Tensor:
        return self.gene_score(self.net(**self.net_inputs(inputs, extra)))

    def slots(self, rows: np.ndarray):
        """``PcreSlots`` of ``rows`` (chrom, start, end, freq, mask: (N, I))."""
        rows = self.check_rows(rows)
        split = self._split_of[rows]
        out = None
        for s in np.unique(split):
            at = np.flatnonzero(split == s)
            part = self.dm.datasets[self._splits[s]].slots.take(self._pos_of[rows[at]])
            if out is None:
                out = type(part)(*(np.empty((len(rows), *a.shape[1:]), a.dtype) for a in (part.chrom, part.start, part.end, part.freq, part.mask)))
            for name in ("chrom", "start", "end", "freq", "mask"):
                getattr(out, name)[at] = getattr(part, name)
        return out

    def layouts(self, rows) -> dict[str, Layout]:
        rows = self.check_rows(rows)
        g = self.gene_table(rows)
        b = self.dm.inputs
        out = {
            f"promoter_{r}": _oriented_window(g["chrom"], g["tss"], g["strand"], window_bp=b.window_bp, bin_bp=r, base_bp=self.base_bp)
            for r in self.resolutions
        }
        slots = self.slots(rows)
        minus = np.repeat((g["strand"].to_numpy() == "-")[:, None], slots.mask.shape[1], axis=1)
        for r in self.resolutions:
            out[f"pcres_{r}"] = self._pcre_layout(slots, minus, r, b.w_max)
        return out

    def _pcre_layout(self, slots, minus: np.ndarray, r: int, w_max: int) -> Layout:
        """As ``SignalTracks.region_windows`` bins a pCRE: from its start (from its end for −
        strand genes), centre-padded or centre-cropped to ``w_max // r`` bins; a position's
        span is clipped to the pCRE (the window holds zeros beyond it)."""
        base, k, n_out = self.base_bp, r // self.base_bp, w_max // r
        first = slots.start // base
        last = np.maximum((slots.end - 1) // base, first)
        n_base = last - first + 1
        n_bins = np.minimum(-(-n_base // k), n_out)
        crop = (-(-n_base // k) - n_bins) // 2 * k
        pad_left = (n_out - n_bins) // 2
        j = np.arange(n_out)
        rel = (j[None, None, :] - pad_left[..., None]) * k  # base bins from the anchor
        lo_fwd = first[..., None] + crop[..., None] + rel
        hi_rev = last[..., None] - crop[..., None] - rel + 1
        start_bin = np.where(minus[..., None], hi_rev - k, lo_fwd)
        end_bin = np.where(minus[..., None], hi_rev, lo_fwd + k)
        start = np.clip(start_bin, first[..., None], last[..., None] + 1) * base
        end = np.clip(end_bin, first[..., None], last[..., None] + 1) * base
        valid = (j[None, None, :] >= pad_left[..., None]) & (j[None, None, :] < (pad_left + n_bins)[..., None]) & slots.mask[..., None]
        offset = np.broadcast_to((j - n_out // 2) * r, start.shape).copy()
        return Layout(chrom=slots.chrom, start=start.astype(np.int64), end=end.astype(np.int64), offset_bp=offset, valid=valid,
                      reverse=minus, bin_bp=r, anchor="pcre_centre", slot_axis=True)

    def _element_intervals(self, batch: GeneBatch, region: str) -> RegionIntervals:
        s = self.slots(batch.rows)
        return _stack_elements(s.chrom, s.start, s.end, s.mask)


@register(GraphRegInputs)
class GraphRegAdapter(Adapter):
    """GraphReg / Epi-CNN: each gene's 6 Mb window ``x`` (N, M, L), genomic, and its graph.

    ``extra``: ``edges`` (N, 2, E_max) the window's local edges (padded), ``n_edges`` (N,),
    ``tss_node`` (N,) the gene's TSS node; the forward batches each gene's window as one graph."""

    input_names = ("x",)
    regions = ("promoter", "flanks", "neighbours")
    BINS_PER_FORWARD = 240_000  # 4 windows of 6 Mb at 100 bp per forward pass; more when windows are smaller

    @property
    def default_batch(self) -> int:
        return max(1, self.BINS_PER_FORWARD // (self.dm.inputs.window_bp // self.dm.inputs.bin_bp))

    @property
    def sees(self) -> str:
        b = self.dm.inputs
        return f"{b.window_bp // 1_000_000 or b.window_bp / 1e6} Mb windows of {b.bin_bp} bp bins over a graph of {b.node_bp // 1000} kb nodes"

    def _dataset_rows(self, dataset) -> np.ndarray:
        return dataset.table.gene

    def _gene_window(self, dataset) -> np.ndarray:
        t = dataset.table
        return np.repeat(np.arange(len(t.chrom)), t.n_genes)

    def _fetch(self, dataset, positions):
        t = dataset.table
        window = self._gene_window(dataset)[positions]
        windows, inverse = np.unique(window, return_inverse=True)
        x = dataset.__getitems__(windows)["x"]["x"]
        edges = [t.edges[w] for w in window]
        e_max = max([e.shape[1] for e in edges] + [1])
        padded = np.zeros((len(positions), 2, e_max), np.int64)
        for i, e in enumerate(edges):
            padded[i, :, : e.shape[1]] = e
        extra = {
            "edges": torch.from_numpy(padded),
            "n_edges": torch.as_tensor([e.shape[1] for e in edges], dtype=torch.long),
            "tss_node": torch.from_numpy(t.gene_node[positions].astype(np.int64)),
        }
        return {"x": x[torch.from_numpy(inverse)]}, extra

    def batch(self, rows) -> GeneBatch:
        b = super().batch(rows)
        e_max = int(b.extra["n_edges"].max()) if len(b.rows) else 0
        b.extra["edges"] = b.extra["edges"][:, :, : max(e_max, 1)]  # splits may pad differently
        return b

    def n_nodes(self) -> int:
        return self.dm.inputs.window_bp // self.dm.inputs.node_bp

    def edge_index(self, extra) -> Tensor:
        """The genes' windows as one PyG batch: node n of gene b's window is b * N + n."""
        edges, n_edges = extra["edges"], extra["n_edges"]
        n, _, e_max = edges.shape
        keep = torch.arange(e_max, device=edges.device)[None, :] < n_edges[:, None]  # (n, E)
        shifted = edges + (torch.arange(n, device=edges.device) * self.n_nodes())[:, None, None]
        return shifted.permute(1, 0, 2)[:, keep]

    def forward_genes(self, inputs, extra) -> Tensor:
        counts = self.net(x=inputs["x"], edge_index=self.edge_index(extra))  # (n, N)
        pred = counts.gather(1, extra["tss_node"][:, None])[:, 0]
        return torch.log2(pred + 1)

    def windows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(chrom (N,), window start bp (N,), TSS node (N,)) of each gene's window."""
        rows = self.check_rows(rows)
        chrom = np.empty(len(rows), object)
        start = np.zeros(len(rows), np.int64)
        node = np.zeros(len(rows), np.int64)
        split = self._split_of[rows]
        for s in np.unique(split):
            at = np.flatnonzero(split == s)
            ds = self.dm.datasets[self._splits[s]]
            pos = self._pos_of[rows[at]]
            w = self._gene_window(ds)[pos]
            chrom[at] = np.asarray(ds.table.chrom, dtype=object)[w]
            start[at] = ds.table.start_bp[w]
            node[at] = ds.table.gene_node[pos]
        return chrom, start, node

    def layouts(self, rows) -> dict[str, Layout]:
        rows = self.check_rows(rows)
        g = self.gene_table(rows)
        chrom, start, _ = self.windows(rows)
        bin_bp = self.dm.inputs.bin_bp
        n_bins = self.dm.inputs.window_bp // bin_bp
        j = np.arange(n_bins, dtype=np.int64)
        lo = start[:, None] + j[None, :] * bin_bp
        centre = (g["tss"].to_numpy(np.int64) - start) // bin_bp
        minus = g["strand"].to_numpy() == "-"
        offset = np.where(minus[:, None], centre[:, None] - j[None, :], j[None, :] - centre[:, None]) * bin_bp
        return {"x": Layout(chrom=chrom, start=lo, end=lo + bin_bp, offset_bp=offset, valid=np.ones(lo.shape, bool),
                            reverse=np.zeros(len(rows), bool), bin_bp=bin_bp)}

    def neighbours(self, batch: GeneBatch) -> tuple[np.ndarray, np.ndarray]:
        """Graph neighbours of each gene's TSS node: (start bp (N, K), mask (N, K)), sorted along the window."""
        _, start, node = self.windows(batch.rows)
        edges, n_edges = batch.extra["edges"].cpu().numpy(), batch.extra["n_edges"].cpu().numpy()
        keep = (np.arange(edges.shape[2])[None, :] < n_edges[:, None]) & (edges[:, 1, :] == node[:, None])
        k = max(int(keep.sum(axis=1).max()) if len(keep) else 0, 1)
        nbr = np.where(keep, edges[:, 0, :], np.iinfo(np.int64).max)
        nbr = np.sort(nbr, axis=1)[:, :k]
        mask = nbr != np.iinfo(np.int64).max
        node_bp = self.dm.inputs.node_bp
        return np.where(mask, start[:, None] + nbr * node_bp, 0), mask

    def _element_intervals(self, batch: GeneBatch, region: str) -> RegionIntervals:
        chrom, _, _ = self.windows(batch.rows)
        start, mask = self.neighbours(batch)
        chroms = np.repeat(chrom[:, None], start.shape[1], axis=1)
        return _stack_elements(chroms, start, start + self.dm.inputs.node_bp, mask)
