"""Adapters: what interpretation needs to know about each model family's inputs.

Contract: ``ADAPTERS`` maps an input-builder class to its ``Adapter`` subclass
(``@register(BuilderClass)``), one file per builder family in this package (``promoter``,
``chromoformer``, ``graphreg``); ``adapter_for(net, dm, objective, model, device)`` picks the
one of the job's builder (its class or a base class), so a new model family is one registered
class in one new file, never a branch on a model name. Where each input position lies on the
genome is the builder's to say (its ``layouts``, ``epx.data.inputs.protocol.Layout``): an
adapter never re-derives a builder's geometry.

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

from epx.data.inputs.protocol import Layout, oriented_interval
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


class Adapter:
    """Base: gene lookup in the job's datasets, the per-gene score, region checks."""

    regions: tuple[str, ...] = ("promoter",)
    default_batch = 1024  # input copies per forward pass (attribution steps, perturbations)
    sees = ""  # what the model sees, for error messages

    def __init__(self, net: nn.Module, dm, objective, model: str, device: torch.device):
        if dm.test_cell:
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
        if self.objective.name == "classification":
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
        start, end = oriented_interval(tss_bin[:, None], minus[:, None], lo[None, :], hi[None, :], self.base_bp)
        return RegionIntervals(
            chunk=lo if region == "flanks" else np.zeros(1, np.int64),
            chrom=np.repeat(chrom[:, None], len(lo), axis=1), start=start[..., None], end=end[..., None],
            valid=np.ones((n, len(lo)), bool),
        )

    def _element_intervals(self, batch: GeneBatch, region: str) -> RegionIntervals:
        raise NotImplementedError


def stack_elements(chrom: np.ndarray, start: np.ndarray, end: np.ndarray, mask: np.ndarray) -> RegionIntervals:
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
