"""The Seq-GraphReg family's adapters: separate mode and Seq-CNN (bottlenecks), end-to-end (one-hot).

Contract: both extend ``GraphRegAdapter`` (the same windows, graph, TSS node, per-gene score
log2(count + 1) of the TSS node, and regions ``promoter``, ``flanks``, ``neighbours``); only
the attributed input differs:

- ``SeqGraphRegAdapter`` (registered for ``SeqGraphRegInputs``: ``model=seq_graphreg`` and
  ``model=seq_cnn``): ``bottleneck`` (N, 64, L), the base model's bottleneck per 100 bp bin of
  the gene's window (genomic, ``Layout.bin_bp`` 100): attribution w.r.t. the bottleneck bins,
  as GraphReg attributes its sequence model;
- ``SeqGraphRegEndToEndAdapter`` (``SeqGraphRegEndToEndInputs``): ``x`` (N, 4, W), the
  window's one-hot DNA per base (``Layout.bin_bp`` 1); one window per forward pass by
  default (a 6 Mb window is 60 chunks through the base).

Scaling a bottleneck or a one-hot is not a mutation: in-silico mutagenesis and motif
knockouts are analyses of their own. They edit bases (``epx.explain.onehot``), so a
separate-mode job offers them ``sequence_view()``: ``SeqGraphRegDNAView``, the same model
seen from its DNA — input ``dna`` (N, 4, W), the window's one-hot per base; a forward pass
recomputes with the job's base model only the 100 kb chunks whose bases differ from the
reference (a chunk's bottleneck depends on that chunk alone), rounded to the cache's dtype as
the cached ones are, and reads the others from the cache. So an unedited input gives exactly
the job's own prediction, and an edit costs one base forward per edited chunk plus one
graph-head forward. Two exact memos keep repeated work out: a chunk's bottleneck by the
digest of its bases, and a window's per-node counts by (window, digest of the edit: the
positions whose one-hot differs from the reference and their new values) — genes that
share a window and an edit (a motif knockout of every hit in the window) share one pass.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
import torch
from torch import Tensor

from epx.data.inputs.seq_graphreg import SeqGraphRegEndToEndInputs, SeqGraphRegInputs
from epx.explain.adapters.base import Layout, register
from epx.explain.adapters.graphreg import GraphRegAdapter


class _SeqWindows(GraphRegAdapter):
    input_key = ""
    dataset_key = ""  # the dataset's input tensor, when it is not the one the adapter exposes

    def _fetch(self, dataset, positions):
        t = dataset.table
        window = self._gene_window(dataset)[positions]
        windows, inverse = np.unique(window, return_inverse=True)
        key = self.dataset_key or self.input_key
        x = dataset.inputs(windows)["x"][key]
        edges = [t.edges[w] for w in window]
        padded = np.zeros((len(positions), 2, max([e.shape[1] for e in edges] + [1])), np.int64)
        for i, e in enumerate(edges):
            padded[i, :, : e.shape[1]] = e
        extra = {
            "edges": torch.from_numpy(padded),
            "n_edges": torch.as_tensor([e.shape[1] for e in edges], dtype=torch.long),
            "tss_node": torch.from_numpy(t.gene_node[positions].astype(np.int64)),
        }
        return {key: x[torch.from_numpy(inverse)]}, extra

    def _counts(self, inputs, extra) -> Tensor:
        raise NotImplementedError

    def _dna_layout(self, rows) -> Layout:
        """Each gene's window per base (genomic, never reversed)."""
        rows = self.check_rows(rows)
        g = self.gene_table(rows)
        chrom, start, _ = self.windows(rows)
        j = np.arange(self.dm.inputs.window_bp, dtype=np.int64)
        lo = start[:, None] + j[None, :]
        tss = g["tss"].to_numpy(np.int64)[:, None]
        minus = g["strand"].to_numpy() == "-"
        offset = np.where(minus[:, None], tss - lo, lo - tss)
        return Layout(chrom=chrom, start=lo, end=lo + 1, offset_bp=offset, valid=np.ones(lo.shape, bool),
                      reverse=np.zeros(len(rows), bool), bin_bp=1)

    def forward_genes(self, inputs, extra) -> Tensor:
        counts = self._counts(inputs, extra)  # (n, N)
        return torch.log2(counts.gather(1, extra["tss_node"][:, None])[:, 0] + 1)


@register(SeqGraphRegInputs)
class SeqGraphRegAdapter(_SeqWindows):
    """Separate mode / Seq-CNN: ``bottleneck`` (N, 64, L) per 100 bp bin of the gene's window."""

    input_names = ("bottleneck",)
    input_key = "bottleneck"

    @property
    def sees(self) -> str:
        return "a trained base model's sequence bottleneck per 100 bp bin of " + super().sees

    def _counts(self, inputs, extra) -> Tensor:
        return self.net(bottleneck=inputs["bottleneck"], edge_index=self.edge_index(extra))

    def layouts(self, rows) -> dict[str, Layout]:
        return {"bottleneck": super().layouts(rows)["x"]}

    def sequence_view(self) -> "SeqGraphRegDNAView":
        """This job seen from its DNA (one view per adapter: its memos are kept between analyses)."""
        if "_dna_view" not in self.__dict__:
            self._dna_view = SeqGraphRegDNAView(self.net, self.dm, self.objective, self.model, self.device)
        return self._dna_view


class _Memo(OrderedDict):
    """A bounded least-recently-used dict."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def lookup(self, key):
        """The value under ``key`` (now the most recent), or None."""
        if key not in self:
            return None
        self.move_to_end(key)
        return self[key]

    def put(self, key, value):
        self[key] = value
        if len(self) > self.size:
            self.popitem(last=False)
        return value

    def get_or(self, key, make):
        found = self.lookup(key)
        return self.put(key, make()) if found is None else found


def _digest(t: Tensor) -> bytes:
    return hashlib.blake2b(t.detach().contiguous().cpu().numpy().tobytes(), digest_size=16).digest()


class SeqGraphRegDNAView(SeqGraphRegAdapter):
    """A separate-mode job from its DNA: input ``dna`` (N, 4, W) one-hot per base of the gene's
    window (uint8); ``extra`` adds the cached ``bottleneck`` (N, 64, L), ``dna_ref`` (N, 4, W) uint8 (the
    reference one-hot) and ``window`` (N, 2) (split, window) ids (see the module docstring)."""

    input_names = ("dna",)
    input_key = "dna"
    dataset_key = "bottleneck"
    onehot_input = "dna"
    default_batch = 1  # a 6 Mb window's one-hot is 96 MB
    CHUNK_MEMO = 2048  # bottlenecks of edited chunks (64 x 1,000 float32 each: 256 kB)
    WINDOW_MEMO = 256  # per-node counts of edited windows

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        builder = self.dm.inputs
        self.base_net, self.chunk_bp, self.base_batch = builder.base.net.to(self.device), builder.chunk_bp, builder.base_batch
        self.cache_dtype = torch.from_numpy(np.zeros(0, builder.cache.dtype)).dtype
        self._chunks, self._windows = _Memo(self.CHUNK_MEMO), _Memo(self.WINDOW_MEMO)

    @property
    def sees(self) -> str:
        return "the DNA sequence (one-hot, through its base model's bottleneck) of " + GraphRegAdapter.sees.fget(self)

    def _fetch(self, dataset, positions):
        inputs, extra = super()._fetch(dataset, positions)
        t = dataset.table
        window = self._gene_window(dataset)[positions]
        # uint8, not float32: every edited copy of a 6 Mb window is cloned and compared with the
        # reference (24 MB instead of 96 MB each); only the edited chunks become float for the base
        dna = torch.from_numpy(dataset.genome.onehot(np.asarray(t.chrom, dtype=object)[window], t.start_bp[window], self.dm.inputs.window_bp,
                                                     dtype=np.uint8))
        split = self._splits.index(next(name for name, ds in self.dm.datasets.items() if ds is dataset))
        extra.update(bottleneck=inputs["bottleneck"], dna_ref=dna.clone(),
                     window=torch.as_tensor(np.stack([np.full(len(window), split), window], axis=1), dtype=torch.long))
        return {"dna": dna}, extra

    def sequence_view(self) -> "SeqGraphRegDNAView":
        return self

    def _chunk_bottleneck(self, chunks: Tensor) -> Tensor:
        """(C, 4, chunk_bp) -> (C, 64, chunk_bp / 100): the base's bottleneck, as the cache holds it."""
        keys = [_digest(c) for c in chunks]
        out = [self._chunks.lookup(k) for k in keys]
        todo = [i for i, b in enumerate(out) if b is None]
        for lo in range(0, len(todo), self.base_batch):
            at = todo[lo : lo + self.base_batch]
            fresh = self.base_net.bottleneck(chunks[at].to(self.device, torch.float32)).to(self.cache_dtype).float()
            for i, b in zip(at, fresh):
                out[i] = self._chunks.put(keys[i], b)
        return torch.stack(out)

    def _counts(self, inputs, extra) -> Tensor:
        dna, ref = inputs["dna"], extra["dna_ref"]
        n, _, width = dna.shape
        k = width // self.chunk_bp
        per_chunk = dna.view(n, 4, k, self.chunk_bp)
        diff = dna != ref  # (n, 4, W)
        out = []
        for g in range(n):
            # The window's reference is fixed by its id, so the edit is the sparse difference:
            # its positions and new values (hashing them, not every edited chunk's bases)
            at = diff[g].nonzero()
            key = (tuple(extra["window"][g].tolist()), _digest(at), _digest(dna[g][tuple(at.T)]))

            def head(g=g):  # on a memo miss only: the edited chunks are copied out here
                edited = diff[g].view(4, k, self.chunk_bp).any(dim=2).any(dim=0).nonzero().flatten().tolist()
                b = extra["bottleneck"][g : g + 1].clone()
                if edited:
                    chunks = per_chunk[g].permute(1, 0, 2)[edited]  # (C, 4, chunk_bp)
                    b.view(1, b.shape[1], k, -1)[0, :, edited, :] = self._chunk_bottleneck(chunks).permute(1, 0, 2)
                one = {name: t[g : g + 1] for name, t in extra.items()}
                return self.net(bottleneck=b, edge_index=self.edge_index(one))[0]

            out.append(self._windows.get_or(key, head))
        return torch.stack(out)

    def layouts(self, rows) -> dict[str, Layout]:
        return {"dna": self._dna_layout(rows)}


@register(SeqGraphRegEndToEndInputs)
class SeqGraphRegEndToEndAdapter(_SeqWindows):
    """End-to-end: ``x`` (N, 4, W) one-hot DNA of the gene's window, per base."""

    input_names = ("x",)
    input_key = "x"
    default_batch = 1

    @property
    def sees(self) -> str:
        return "the DNA sequence (one-hot) of " + super().sees

    def _counts(self, inputs, extra) -> Tensor:
        return self.net(x=inputs["x"], edge_index=self.edge_index(extra))["counts"]

    def layouts(self, rows) -> dict[str, Layout]:
        return {"x": self._dna_layout(rows)}
