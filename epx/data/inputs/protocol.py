"""The input contract: what every model family's input builder declares, and how it is checked.

Contract: a builder is configured under ``model.inputs`` (``conf/model/<name>.yaml``), built
by Hydra with keyword arguments, and satisfies ``InputBuilder``:

- ``sources``: the named sources it reads (keys of ``epx.data.sources.SOURCES``:
  ``tracks`` the cell's binned histone marks, ``contacts`` the cell's thresholded
  interactions, ``genome`` the reference sequence). The DataModule prepares and loads only
  these: a model that reads no ``tracks`` never builds the histone cache, one that reads no
  ``contacts`` never opens the BEDPE. ``DataContext.sources`` holds exactly them.
- ``reach_bp``: how far its tensors reach from a gene's TSS. Genes whose TSS is closer to a
  chromosome end are dropped (``data.min_end_distance_bp`` overrides it); 0 when reads past
  the ends are zero-padded (GraphReg's tiles).
- ``contact_tolerance_bp``: how close an interaction anchor must come to a TSS to link the
  gene (the accounting's rule and the builder's); None when ``contacts`` is not a source.
- ``requires_contacts``: True when interactions that reach no gene must refuse the job.
- ``distal``: True when a gene's inputs include linked elements at any distance (pCREs),
  so no fixed window bounds what can influence its prediction.
- ``channels(marks) -> tuple[str, ...]``: the names of the input channels (the marks for
  histone inputs, ``A C G T`` for sequence).
- ``intervals(genes) -> GeneIntervals``: the genomic interval each gene's window covers
  (one row per gene, in ``genes``' order). Explain, element validation and activity read
  these instead of recomputing a builder's geometry.
- ``gene_dataset(dataset) -> Dataset``: the part of a split's dataset that per-gene
  predictions (``predictions.csv``) need: the whole of it for gene-centred builders, only the
  chunks that hold a TSS for a builder that tiles whole chromosomes (sequence), whose other
  chunks matter to training and per-bin metrics but predict no gene.
- ``collate_fn(batch)``: what the DataLoader does with one ``Dataset.__getitems__`` result
  (the builders assemble whole batches in memory, so usually the identity).
- ``__call__(context, rows, *, split) -> Dataset``: the dataset of one split (``split`` is
  its name: ``train`` is where training-time augmentation, e.g. reverse complements, may
  apply), items ``{"x": net keyword inputs, "y": targets, "gene": gene-table rows, ...}``.

``problems(builder)`` lists what a builder lacks (empty: it satisfies the contract);
``check_builder`` raises one ``InputError`` naming them. Nothing in epx probes a builder
with ``getattr``/``hasattr``: it reads the declared attributes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from epx.errors import InputError

ATTRIBUTES = ("sources", "reach_bp", "contact_tolerance_bp", "requires_contacts", "distal")
METHODS = ("channels", "intervals", "gene_dataset", "collate_fn", "__call__")


@dataclass
class GeneIntervals:
    """Per gene (N rows, the gene table's order): ``chrom`` (N,) object, ``start``/``end``
    (N,) int64 genomic bp of the window the gene's tensors are read from (may run past the
    chromosome ends, where the inputs are zero)."""

    chrom: np.ndarray
    start: np.ndarray
    end: np.ndarray

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.start, self.end


@dataclass
class Layout:
    """Where the positions (last axis) of one input tensor lie, per gene (and pCRE slot).

    ``start``/``end``: (N, [I,] L) genomic bp span of the signal each position holds;
    ``offset_bp``: (N, [I,] L) its start relative to the anchor (the TSS's base bin for
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


@runtime_checkable
class InputBuilder(Protocol):
    """A model family's input builder (see the module docstring for each member)."""

    sources: tuple[str, ...]
    reach_bp: int
    contact_tolerance_bp: int | None
    requires_contacts: bool
    distal: bool

    def channels(self, marks: Sequence[str]) -> tuple[str, ...]: ...

    def intervals(self, genes: pd.DataFrame) -> GeneIntervals: ...

    def gene_dataset(self, dataset: Any) -> Any: ...

    def collate_fn(self, batch: Any) -> Any: ...

    def __call__(self, context: Any, rows: np.ndarray, *, split: str = "train") -> Any: ...


def problems(builder: object, known_sources: Sequence[str] | None = None) -> list[str]:
    """What ``builder`` lacks or declares wrongly against ``InputBuilder`` (empty: none)."""
    out = [f"no attribute {name!r}" for name in ATTRIBUTES if name not in dir(builder)]
    out += [f"no method {name}()" for name in METHODS if not callable(getattr(type(builder), name, None))]
    if out:
        return out
    sources = builder.sources
    if not isinstance(sources, tuple) or not all(isinstance(s, str) for s in sources):
        out.append(f"sources must be a tuple of source names, got {sources!r}")
    elif known_sources is not None and set(sources) - set(known_sources):
        out.append(f"unknown source(s) {sorted(set(sources) - set(known_sources))} (known: {', '.join(known_sources)})")
    if not isinstance(builder.reach_bp, int) or builder.reach_bp < 0:
        out.append(f"reach_bp must be an int >= 0, got {builder.reach_bp!r}")
    reads_contacts = isinstance(sources, tuple) and "contacts" in sources
    if reads_contacts != (builder.contact_tolerance_bp is not None):
        out.append("contact_tolerance_bp must be set exactly when 'contacts' is one of the sources")
    if builder.requires_contacts and not reads_contacts:
        out.append("requires_contacts is True but 'contacts' is not a source")
    return out


def check_builder(builder: object, known_sources: Sequence[str] | None = None, *, what: str = "model.inputs") -> None:
    found = problems(builder, known_sources)
    if found:
        raise InputError(
            f"{what} ({type(builder).__module__}.{type(builder).__name__}) does not satisfy the input contract "
            f"(epx.data.inputs.protocol.InputBuilder): {'; '.join(found)}"
        )


def whole_dataset(dataset):
    """``gene_dataset`` of a builder whose every item holds genes: the dataset itself."""
    return dataset


def tss_intervals(genes: pd.DataFrame, half_bp: int, base_bp: int) -> GeneIntervals:
    """TSS-centred windows as ``SignalTracks.tss_windows`` reads them: ``half_bp`` either side of
    the start of the TSS's base bin (the TSS base bin sits at index n/2 on both strands)."""
    tss_bin = genes["tss"].to_numpy(np.int64) // base_bp * base_bp
    minus = (genes["strand"].to_numpy() == "-").astype(np.int64)
    start = tss_bin - half_bp + minus * base_bp  # − strand windows are mirrored about the TSS bin
    return GeneIntervals(genes["chrom"].to_numpy(object), start, start + 2 * half_bp)


def oriented_window_layout(chrom, tss, strand, *, window_bp: int, bin_bp: int, base_bp: int) -> Layout:
    """Layout of TSS-centred, strand-oriented windows as ``SignalTracks.tss_windows`` builds
    them: oriented base bin o sits at genomic bin (centre + o) on the + strand and (centre - o)
    on the − strand, the TSS's base bin at index n/2."""
    n_genes = len(tss)
    n_bins = window_bp // bin_bp
    minus = np.asarray(strand) == "-"
    tss_bin = np.asarray(tss, np.int64) // base_bp * base_bp
    offset = (np.arange(n_bins, dtype=np.int64) - n_bins // 2) * bin_bp
    start, end = oriented_interval(tss_bin[:, None], minus[:, None], offset[None, :], offset[None, :] + bin_bp, base_bp)
    return Layout(
        chrom=np.asarray(chrom, dtype=object), start=start, end=end, offset_bp=np.broadcast_to(offset, (n_genes, n_bins)).copy(),
        valid=np.ones((n_genes, n_bins), bool), reverse=minus, bin_bp=bin_bp,
    )


def oriented_interval(tss_bin_bp: np.ndarray, minus: np.ndarray, lo, hi, base_bp: int) -> tuple[np.ndarray, np.ndarray]:
    """Genomic [start, end) of the oriented interval [lo, hi) bp from the TSS's base bin (5'->3')."""
    start = np.where(minus, tss_bin_bp + base_bp - hi, tss_bin_bp + lo)
    end = np.where(minus, tss_bin_bp + base_bp - lo, tss_bin_bp + hi)
    return start.astype(np.int64), end.astype(np.int64)
