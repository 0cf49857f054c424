"""Seq-GraphReg inputs: GraphReg's 6 Mb windows, graph and targets, read as DNA instead of marks.

Contract: two ``InputBuilder``s (``epx.data.inputs.protocol``), both composing
``epx.data.inputs.graphreg.windows.GraphRegInputs`` for everything but the window's input
tensor, so the windows (6 Mb stepping 2 Mb, the middle 2 Mb scored), the 5 kb-node graph,
the per-node targets (summed RPKM or CAGE), the masks and the genes are exactly Epi-GraphReg's:

- ``SeqGraphRegInputs(*, base, fold, window_bp, step_bp, node_bp, bin_bp=100, skip_empty,
  requires_contacts, cache_dir=None, device="auto", base_batch=8, cache_dtype="float16")`` —
  separate mode (as published). ``base`` is a finished ``seq_cnn_base`` job (dir or
  checkpoint, ``epx.data.inputs.seq_base_job.open_base``: a missing, unreadable or
  other-fold base is refused when the builder is made, before any long work; ``fold`` is the
  job's, ``${fold}`` in the config). Sources ``genome`` and ``contacts``: no histone cache
  is built. Calling it computes the base's bottleneck of every chunk its windows cover, once
  (``epx.data.inputs.bottleneck_cache.BottleneckCache``, on disk under ``cache_dir``, by
  default ``<base job>/bottlenecks/``), on ``device`` (``auto``: CUDA when there is one),
  ``base_batch`` chunks per forward pass. A batch of B windows:
  ``x = {"bottleneck": (B, 64, L) float32, "edge_index": (2, E)}``, L = window_bp / 100.
- ``SeqGraphRegEndToEndInputs(*, window_bp, step_bp, node_bp, chunk_bp=100_000, bin_bp=100,
  skip_empty, requires_contacts)`` — end-to-end mode. Sources ``genome``, ``tracks`` (the
  job's marks are the epigenome the base half predicts) and ``contacts``. A batch:
  ``x = {"x": (B, 4, window_bp) one-hot, "edge_index": (2, E)}`` (the net cuts each window
  into its ``window_bp / chunk_bp`` chunks, which form the base's batch) and
  ``y_tracks``: (B, T, L) each track's mean per-bp signal per 100 bp bin (not logged: the
  Poisson target, as ``SequenceChunks``'), zero off the chromosome.

Both batches also carry GraphReg's ``y`` (B, S), ``has_tss``/``has_contact`` (B, S),
``gene``, ``gene_pos`` (into the flattened (B * N) nodes) and ``gene_target``, read by
``epx.train.counts.PoissonCounts``. Windows are genomic (never reverse-complemented).

A gene whose TSS node is all N (an assembly gap, or a FASTA of another assembly) is counted
and named in one warning per split (``report_unsequenced``), before any bottleneck is computed.

Windows must be whole chunks: ``window_bp``, ``step_bp`` and the flank ``(window_bp -
step_bp) / 2`` multiples of the chunk (the base's ``chunk_bp`` in separate mode), so a window
is consecutive chunks of the chromosome's chunk grid and overlapping windows share chunks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset
from torch_geometric.data import Batch, Data

from epx.data.inputs.arrays import keep_batch
from epx.data.inputs.bottleneck_cache import BottleneckCache
from epx.data.inputs.context import DataContext
from epx.data.inputs.graphreg.tiling import NODE_BP, STEP_BP, WINDOW_BP
from epx.data.inputs.graphreg.windows import GraphRegInputs, WindowTable
from epx.data.inputs.protocol import GeneIntervals, whole_dataset
from epx.io.fasta import N_CODE
from epx.data.inputs.seq_base_job import open_base
from epx.errors import InputError

log = logging.getLogger(__name__)

BOTTLENECK_CHANNELS = 64


class _GenomeLengths:
    """What ``GraphRegInputs`` reads of a ``tracks`` source (each chromosome's length in base
    bins), from the genome: a separate-mode job has no histone tracks to build."""

    n_marks = 0

    def __init__(self, genome, base_bp: int):
        self.base_bp = base_bp
        self.tracks = {c: np.empty((-(-n // base_bp), 0), np.float32) for c, n in genome.lengths.items()}


def _check_chunked(window_bp: int, step_bp: int, chunk_bp: int, what: str) -> None:
    flank = (window_bp - step_bp) // 2
    if chunk_bp <= 0 or window_bp % chunk_bp or step_bp % chunk_bp or flank % chunk_bp:
        raise InputError(
            f"Seq-GraphReg windows must be whole chunks: window_bp={window_bp}, step_bp={step_bp} and the flank "
            f"{flank} must be multiples of {what}={chunk_bp} (the defaults 6_000_000 / 2_000_000 over 100_000 are)"
        )


class _Windows:
    """Shared by both builders: the GraphReg window table, and its graph and targets per batch."""

    sources: tuple[str, ...] = ()
    distal = False  # the window bounds what a gene's prediction can see
    reach_bp = 0  # zero/N-padded ends: every gene has a window
    collate_fn = staticmethod(keep_batch)
    gene_dataset = staticmethod(whole_dataset)

    def _init_windows(self, *, window_bp: int, step_bp: int, node_bp: int, bin_bp: int, skip_empty: bool, requires_contacts: bool) -> None:
        if bin_bp != 100:
            raise InputError(f"Seq-GraphReg reads the base model's 100 bp bins; bin_bp must be 100, got {bin_bp}")
        self.windows = GraphRegInputs(window_bp=window_bp, step_bp=step_bp, node_bp=node_bp, bin_bp=bin_bp,
                                      skip_empty=skip_empty, requires_contacts=requires_contacts)
        self.window_bp, self.step_bp, self.node_bp, self.bin_bp = window_bp, step_bp, node_bp, bin_bp
        self.contact_tolerance_bp = self.windows.contact_tolerance_bp
        self.requires_contacts = self.windows.requires_contacts

    def intervals(self, genes: pd.DataFrame, *, base_bp: int = 100) -> GeneIntervals:
        """Each gene's window, as Epi-GraphReg's (``GraphRegInputs.intervals``)."""
        return self.windows.intervals(genes, base_bp=base_bp)

    def table(self, context: DataContext, rows: np.ndarray, tracks, split: str) -> WindowTable:
        sources = {"tracks": tracks, "contacts": context.interactions}
        shim = DataContext(context.genes, context.cell, context.marks, context.target_column, sources, cage=context.cage)
        table = self.windows(shim, rows).table
        report_unsequenced(context, table, node_bp=self.node_bp, split=split)
        return table


def unsequenced_genes(genome, table: WindowTable, *, node_bp: int) -> np.ndarray:
    """(G,) bool: the table's genes whose TSS node (``node_bp`` bases) is all N in ``genome``."""
    window = np.repeat(np.arange(len(table.chrom)), table.n_genes)
    starts = np.asarray(table.start_bp, np.int64)[window] + table.gene_node * node_bp
    chroms = np.asarray(table.chrom, dtype=object)[window]
    out = np.zeros(len(window), bool)
    for lo in range(0, len(window), 1024):  # 5 MB of codes per block
        out[lo : lo + 1024] = (genome.codes(chroms[lo : lo + 1024], starts[lo : lo + 1024], node_bp) == N_CODE).all(axis=1)
    return out


def report_unsequenced(context: DataContext, table: WindowTable, *, node_bp: int, split: str) -> int:
    """Count (and log, naming the first few) the genes whose TSS node has no sequence: an assembly
    gap under the gene, or a FASTA that does not match the gene table. They are kept (their
    window's other nodes may carry sequence), but their prediction rests on no DNA of their own."""
    missing = unsequenced_genes(context.genome, table, node_bp=node_bp)
    if missing.any():
        genes = context.genes.iloc[table.gene[missing]]
        named = ", ".join(f"{g} ({c}:{t})" for g, c, t in zip(genes["gene_id"][:5], genes["chrom"][:5], genes["tss"][:5]))
        log.warning("Seq-GraphReg %s: %d of %d genes have no sequence (all N) in the %d bp node of their TSS: %s%s. Their "
                    "prediction reads no DNA there; check that the FASTA (genome.fa) is the gene table's assembly and covers them",
                    split, int(missing.sum()), len(missing), node_bp, named, ", ..." if missing.sum() > 5 else "")
    return int(missing.sum())


class SeqWindowDataset(Dataset):
    """GraphReg windows of one split; subclasses add the window's input tensor."""

    collate_fn = staticmethod(keep_batch)

    def __init__(self, table: WindowTable, *, window_bp: int, node_bp: int):
        self.table, self.window_bp, self.node_bp = table, window_bp, node_bp
        self.offsets = table.gene_offsets
        self.n_nodes = window_bp // node_bp

    def __len__(self) -> int:
        return len(self.table.chrom)

    def _graph_and_targets(self, idx: np.ndarray) -> dict:
        t = self.table
        graphs = Batch.from_data_list([Data(edge_index=torch.from_numpy(t.edges[w]), num_nodes=self.n_nodes) for w in idx])
        genes = np.concatenate([np.arange(self.offsets[w], self.offsets[w + 1]) for w in idx]).astype(np.int64)
        window_in_batch = np.repeat(np.arange(len(idx)), t.n_genes[idx])
        return {
            "edge_index": graphs.edge_index.long(),
            "y": torch.from_numpy(t.y[idx]),
            "has_tss": torch.from_numpy(t.has_tss[idx]),
            "has_contact": torch.from_numpy(t.has_contact[idx]),
            "gene": torch.from_numpy(t.gene[genes]),
            "gene_pos": torch.from_numpy(window_in_batch * self.n_nodes + t.gene_node[genes]),
            "gene_target": torch.from_numpy(t.gene_target[genes]),
        }

    def inputs(self, idx: np.ndarray) -> dict:
        raise NotImplementedError

    def __getitems__(self, indices: Sequence[int]) -> dict:
        idx = np.asarray(indices, dtype=np.int64)
        batch = self._graph_and_targets(idx)
        extra = self.inputs(idx)
        x = {**extra.pop("x"), "edge_index": batch.pop("edge_index")}
        return {"x": x, **batch, **extra}

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])


# ----------------------------------------------------------------------------- separate mode


class BottleneckWindows(SeqWindowDataset):
    """Separate mode: each window's bottlenecks, read from the on-disk cache."""

    def __init__(self, table: WindowTable, *, cache: BottleneckCache, genome, window_bp: int, node_bp: int):
        super().__init__(table, window_bp=window_bp, node_bp=node_bp)
        self.cache, self.genome = cache, genome
        self.chunks_per_window = window_bp // cache.chunk_bp

    def first_chunk(self, w: int) -> int:
        return int(self.table.start_bp[w]) // self.cache.chunk_bp

    def inputs(self, idx: np.ndarray) -> dict:
        t = self.table
        x = np.stack([self.cache.read(self.genome, t.chrom[w], self.first_chunk(w), self.chunks_per_window) for w in idx])
        return {"x": {"bottleneck": torch.from_numpy(x)}}


def _device(name: str) -> torch.device:
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name))


class SeqGraphRegInputs(_Windows):
    """Separate-mode builder (see the module docstring)."""

    sources = ("genome", "contacts")

    def __init__(
        self,
        *,
        base: str | None,
        fold: int,
        window_bp: int = WINDOW_BP,
        step_bp: int = STEP_BP,
        node_bp: int = NODE_BP,
        bin_bp: int = 100,
        skip_empty: bool = True,
        requires_contacts: bool = True,
        cache_dir: str | None = None,
        device: str = "auto",
        base_batch: int = 8,
        cache_dtype: str = "float16",
    ):
        self._init_windows(window_bp=window_bp, step_bp=step_bp, node_bp=node_bp, bin_bp=bin_bp, skip_empty=skip_empty,
                           requires_contacts=requires_contacts)
        self.base = open_base(base, fold=int(fold))  # refuses a missing / unreadable / other-fold base now
        self.chunk_bp = self.base.chunk_bp
        _check_chunked(window_bp, step_bp, self.chunk_bp, "the base model's chunk_bp")
        self.device, self.base_batch = str(device), int(base_batch)
        root = Path(cache_dir) if cache_dir else self.base.job_dir / "bottlenecks"
        self.cache = BottleneckCache(root / f"bottlenecks-{self.base.digest[:16]}.h5", chunk_bp=self.chunk_bp,
                                     channels=BOTTLENECK_CHANNELS, dtype=cache_dtype)

    def channels(self, marks) -> tuple[str, ...]:
        return tuple(f"bottleneck_{i}" for i in range(BOTTLENECK_CHANNELS))

    @torch.no_grad()
    def compute(self, onehot: np.ndarray) -> np.ndarray:
        """(K, 4, chunk_bp) one-hot -> (K, 64, chunk_bp / 100) the base's bottleneck, ``base_batch`` at a time."""
        device = _device(self.device)
        net = self.base.net.to(device)
        out = [net.bottleneck(torch.from_numpy(onehot[i : i + self.base_batch]).to(device)).float().cpu()
               for i in range(0, len(onehot), self.base_batch)]
        return torch.cat(out).numpy()

    def check_split(self, context: DataContext, rows: np.ndarray, split: str) -> None:
        if split != "test" or self.base.test_chroms is None:
            return
        leaked = sorted(set(context.genes["chrom"].iloc[rows]) - set(self.base.test_chroms))
        if leaked:
            raise InputError(
                f"model.inputs.base={self.base.path}: this job tests on {leaked}, which the base trained or validated on "
                f"(it held out {list(self.base.test_chroms)}); use a base trained on this job's fold and fold scheme"
            )

    def ensure(self, genome, table: WindowTable) -> int:
        """Compute the bottlenecks of every chunk the table's windows cover (once, cached)."""
        per_window = self.window_bp // self.chunk_bp
        computed = 0
        chroms = np.asarray(table.chrom, dtype=object)
        for chrom in pd.unique(chroms):
            first = table.start_bp[chroms == chrom] // self.chunk_bp
            chunks = np.unique((first[:, None] + np.arange(per_window)[None, :]).reshape(-1))
            computed += self.cache.ensure(genome, chrom, chunks, self.compute)
        return computed

    def __call__(self, context: DataContext, rows: np.ndarray, *, split: str = "train") -> BottleneckWindows:
        rows = np.asarray(rows, np.int64)
        self.check_split(context, rows, split)
        genome = context.genome
        table = self.table(context, rows, _GenomeLengths(genome, self.bin_bp), split)
        computed = self.ensure(genome, table)
        log.info("Seq-GraphReg %s: %d windows, %d chunk bottlenecks computed (the rest cached in %s)", split, len(table.chrom),
                 computed, self.cache.path)
        return BottleneckWindows(table, cache=self.cache, genome=genome, window_bp=self.window_bp, node_bp=self.node_bp)


# ----------------------------------------------------------------------------- end-to-end mode


class OneHotWindows(SeqWindowDataset):
    """End-to-end mode: each window's one-hot DNA and its epigenome tracks per 100 bp bin."""

    def __init__(self, table: WindowTable, *, genome, tracks, window_bp: int, node_bp: int, bin_bp: int):
        super().__init__(table, window_bp=window_bp, node_bp=node_bp)
        if bin_bp % tracks.base_bp:
            raise InputError(f"Seq-GraphReg bin_bp={bin_bp} is not a multiple of the cache's {tracks.base_bp} bp bins")
        self.genome, self.tracks, self.bin_bp = genome, tracks, bin_bp
        self.n_bins = window_bp // bin_bp
        self.k = bin_bp // tracks.base_bp

    def track_targets(self, idx: np.ndarray) -> np.ndarray:
        """(B, T, n_bins) mean per-bp signal per bin; 0 off the chromosome."""
        t = self.table
        base = np.arange(self.n_bins * self.k)
        out = np.empty((len(idx), self.tracks.n_marks, self.n_bins), np.float32)
        for b, w in enumerate(idx):
            first = int(t.start_bp[w]) // self.tracks.base_bp
            bins = self.tracks.base_bins(t.chrom[w], first + base)  # (n * k, T), zeros outside
            if self.k > 1:
                bins = bins.reshape(self.n_bins, self.k, -1).mean(axis=1)
            out[b] = bins.T
        return out

    def inputs(self, idx: np.ndarray) -> dict:
        t = self.table
        x = self.genome.onehot(np.asarray(t.chrom, dtype=object)[idx], t.start_bp[idx], self.window_bp)
        return {"x": {"x": torch.from_numpy(x)}, "y_tracks": torch.from_numpy(self.track_targets(idx))}


class SeqGraphRegEndToEndInputs(_Windows):
    """End-to-end builder (see the module docstring)."""

    sources = ("genome", "tracks", "contacts")

    def __init__(
        self,
        *,
        window_bp: int = WINDOW_BP,
        step_bp: int = STEP_BP,
        node_bp: int = NODE_BP,
        chunk_bp: int = 100_000,
        bin_bp: int = 100,
        skip_empty: bool = True,
        requires_contacts: bool = True,
    ):
        self._init_windows(window_bp=window_bp, step_bp=step_bp, node_bp=node_bp, bin_bp=bin_bp, skip_empty=skip_empty,
                           requires_contacts=requires_contacts)
        _check_chunked(window_bp, step_bp, int(chunk_bp), "chunk_bp")
        self.chunk_bp = int(chunk_bp)

    def channels(self, marks) -> tuple[str, ...]:
        return ("A", "C", "G", "T")

    def __call__(self, context: DataContext, rows: np.ndarray, *, split: str = "train") -> OneHotWindows:
        table = self.table(context, np.asarray(rows, np.int64), context.tracks, split)
        return OneHotWindows(table, genome=context.genome, tracks=context.tracks, window_bp=self.window_bp,
                             node_bp=self.node_bp, bin_bp=self.bin_bp)
