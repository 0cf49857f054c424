"""Seq-GraphReg: the sequence half of GraphReg (Karbalayghareh et al., Genome Research 2022).

Contract: two nets over GraphReg's windows (1,200 nodes of 5 kb for 6 Mb), built from
Epi-GraphReg's own graph stage by composition (``epx.models.graphreg.EpiGraphReg`` with its
mark encoder replaced by ``nn.Identity``: its GAT layers, BatchNorms, dropout and
``CountHead`` — Conv 64 k1 + BN + ReLU -> Conv 1 -> exponential — are used as they are):

- ``SeqGraphReg`` (separate mode, as published): the 64-dim bottlenecks of a trained
  ``seq_cnn_base`` per 100 bp bin -> ``BottleneckEncoder`` (Conv 128 k3 + BN + ReLU, max-pool 2;
  Conv 128 k3 + BN + ReLU, pool 5; Conv 128 k3 + BN + ReLU, pool 5: 50 bins = one 5 kb node,
  dropout between the stages) -> GAT layers over the Hi-C graph -> counts per node.
  ``forward(*, bottleneck (B, 64, L), edge_index (2, E), edge_weight=None,
  return_attention=False) -> (B, N)`` (N = L / 50; with ``return_attention``, EpiGraphReg's
  ``(counts, attention)``).
- ``SeqGraphRegEndToEnd`` (end-to-end mode): a ``SeqCNNBase`` and a ``SeqGraphReg`` trained
  together. ``forward(*, x (B, 4, W) one-hot, edge_index) -> {"counts": (B, N), "tracks":
  (B, T, W / 100)}``: each window is cut into its W / ``chunk_bp`` chunks, which form the
  base's batch (60 chunks of 100 kb per 6 Mb window, as published); the chunks' bottlenecks
  side by side are the window's (B, 64, W / 100) input to the graph half, and the base's
  heads predict the T epigenome tracks per bin (the objective weighs both losses,
  ``epx.train.joint``). ``checkpoint_chunks=k`` (training only; 0 = off): the base runs
  over the window's chunks in groups of k, each group under ``torch.utils.checkpoint``
  (non-reentrant), so only each group's one-hot input and its outputs are kept for the
  backward pass and the group's conv tower is recomputed there: the peak memory of a window
  is that of k chunks, not of all of them. BatchNorm's batch statistics are then a group's
  (k chunks) instead of the window's 60, and the recomputation updates the running statistics
  a second time per step (a known effect of checkpointing BatchNorm); with 0, the base sees
  all the window's chunks as one batch, as published, and keeps every activation.

``reset_parameters()`` redraws every layer (PyTorch's and PyG's initialisation, BatchNorm
statistics included); ``extra_repr`` names the hyper-parameters.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from epx.models.graphreg import EpiGraphReg
from epx.models.graphreg_blocks import BINS_PER_NODE
from epx.models.graphreg_blocks import layer_order as find_layer_order
from epx.models.reset import reset_submodules
from epx.models.seq_cnn import BOTTLENECK, N_BASES, SeqCNNBase

POOLS = (2, 5, 5)  # 100 bp bins -> 5 kb nodes


class BottleneckEncoder(nn.Module):
    """Bottleneck bins -> node embeddings: three Conv k3 + BN + ReLU stages pooled 2, 5, 5."""

    def __init__(self, *, in_channels: int = BOTTLENECK, d: int = 128, dropout: float = 0.5, layer_order: str = "epx") -> None:
        super().__init__()
        order = find_layer_order(layer_order)
        self.in_channels, self.d, self.layer_order = in_channels, d, layer_order
        layers: list[nn.Module] = []
        for i, pool in enumerate(POOLS):
            if i:
                layers.append(nn.Dropout(dropout))
            layers += [*order.stage(nn.Conv1d(in_channels if i == 0 else d, d, 3, padding="same"), d), nn.MaxPool1d(pool)]
        self.layers = nn.Sequential(*layers)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, d={self.d}, layer_order={self.layer_order!r}"

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h: (B, C, L), C = in_channels, L a multiple of 50 -> (B, d, L // 50)."""
        if h.dim() != 3 or h.shape[1] != self.in_channels or h.shape[2] % BINS_PER_NODE or h.shape[2] == 0:
            raise ValueError(
                f"expected bottlenecks of shape (B, {self.in_channels}, L) with L a positive multiple of {BINS_PER_NODE} "
                f"100 bp bins, got {tuple(h.shape)}; check the window length"
            )
        return self.layers(h)


def graph_stage(*, d: int, n_gat_layers: int, heads: int, gat_dim: int, dropout: float, attention: str, output: str,
                layer_order: str) -> EpiGraphReg:
    """Epi-GraphReg's graph half: its GAT layers and count head over node embeddings (B, d, N)."""
    graph = EpiGraphReg(n_marks=d, d=d, n_gat_layers=n_gat_layers, heads=heads, gat_dim=gat_dim, dropout=dropout,
                        attention=attention, output=output, layer_order=layer_order)
    graph.encoder = nn.Identity()  # the node embeddings come from the bottleneck encoder
    return graph


class SeqGraphReg(nn.Module):
    """Separate mode: bottlenecks of B windows + their contact graph -> counts per 5 kb node."""

    def __init__(
        self,
        *,
        bottleneck_channels: int = BOTTLENECK,
        d: int = 128,
        n_gat_layers: int = 2,
        heads: int = 4,
        gat_dim: int = 32,
        dropout: float = 0.5,
        attention: str = "gat",
        output: str = "exp",
        layer_order: str = "epx",
    ) -> None:
        super().__init__()
        self.bottleneck_channels, self.d, self.n_gat_layers, self.heads, self.gat_dim = bottleneck_channels, d, n_gat_layers, heads, gat_dim
        self.dropout_p, self.attention, self.output, self.layer_order = dropout, attention, output, layer_order
        self.encoder = BottleneckEncoder(in_channels=bottleneck_channels, d=d, dropout=dropout, layer_order=layer_order)
        self.graph = graph_stage(d=d, n_gat_layers=n_gat_layers, heads=heads, gat_dim=gat_dim, dropout=dropout,
                                 attention=attention, output=output, layer_order=layer_order)

    def reset_parameters(self) -> None:
        reset_submodules(self)

    def extra_repr(self) -> str:
        return (f"bottleneck_channels={self.bottleneck_channels}, d={self.d}, n_gat_layers={self.n_gat_layers}, "
                f"heads={self.heads}, gat_dim={self.gat_dim}, attention={self.attention!r}, dropout={self.dropout_p}, "
                f"output={self.output!r}, layer_order={self.layer_order!r}")

    def forward(
        self,
        *,
        bottleneck: torch.Tensor,
        edge_index: torch.Tensor,
        edge_weight: torch.Tensor | None = None,
        return_attention: bool = False,
    ):
        """bottleneck: (B, 64, L) the base's bottleneck per 100 bp bin (L = 60,000 for 6 Mb);
        edge_index: (2, E) int64 over the B * N batched nodes (id = b * N + n, N = L // 50);
        edge_weight: accepted, unused (binary graph). -> (B, N) counts >= 0 (and, with
        ``return_attention``, each GAT layer's (edge_index, alpha), as ``EpiGraphReg``)."""
        del edge_weight
        return self.graph(x=self.encoder(bottleneck), edge_index=edge_index, return_attention=return_attention)


class SeqGraphRegEndToEnd(nn.Module):
    """End-to-end mode: one-hot DNA of B windows -> counts per node and epigenome tracks per bin."""

    def __init__(
        self,
        *,
        n_tracks: int,
        chunk_bp: int = 100_000,
        base_dropout: float = 0.5,
        dilated: bool = True,
        n_dilated: int = 6,
        d: int = 128,
        n_gat_layers: int = 2,
        heads: int = 4,
        gat_dim: int = 32,
        dropout: float = 0.5,
        attention: str = "gat",
        output: str = "exp",
        checkpoint_chunks: int = 0,
    ) -> None:
        super().__init__()
        if chunk_bp <= 0 or chunk_bp % 100:
            raise ValueError(f"chunk_bp must be a positive multiple of 100, got {chunk_bp}")
        if checkpoint_chunks < 0:
            raise ValueError(f"checkpoint_chunks must be >= 0 (0: no checkpointing), got {checkpoint_chunks}")
        self.n_tracks, self.chunk_bp, self.checkpoint_chunks = n_tracks, int(chunk_bp), int(checkpoint_chunks)
        self.base = SeqCNNBase(n_tracks=n_tracks, dropout=base_dropout, dilated=dilated, n_dilated=n_dilated, output=output)
        self.graph = SeqGraphReg(bottleneck_channels=BOTTLENECK, d=d, n_gat_layers=n_gat_layers, heads=heads, gat_dim=gat_dim,
                                 dropout=dropout, attention=attention, output=output)

    def reset_parameters(self) -> None:
        reset_submodules(self)

    def extra_repr(self) -> str:
        return f"n_tracks={self.n_tracks}, chunk_bp={self.chunk_bp}, checkpoint_chunks={self.checkpoint_chunks}"

    def _base(self, chunks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(K, 4, chunk_bp) -> the bottleneck (K, 64, n) and the base's predicted tracks (K, T, n)."""
        h = self.base.bottleneck(chunks)
        blocks = self.base.blocks(h)
        return h, self.base.link(torch.cat([head(blocks) for head in self.base.heads], dim=1))

    def _run_base(self, chunks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.checkpoint_chunks
        if not k or not (self.training and torch.is_grad_enabled()):
            return self._base(chunks)
        parts = [checkpoint(self._base, group, use_reentrant=False) for group in chunks.split(k)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def forward(
        self,
        *,
        x: torch.Tensor,
        edge_index: torch.Tensor,
        edge_weight: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> dict:
        """x: (B, 4, W) one-hot DNA of B windows, W a multiple of ``chunk_bp`` (and of 5 kb);
        edge_index: (2, E) over the B * N batched nodes, N = W / 5,000.
        returns: {"counts": (B, N) >= 0, "tracks": (B, T, W / 100) >= 0} (and "attention",
        each GAT layer's (edge_index, alpha), with ``return_attention``)."""
        del edge_weight
        if x.dim() != 3 or x.shape[1] != N_BASES or x.shape[2] % self.chunk_bp or x.shape[2] == 0:
            raise ValueError(f"expected one-hot windows (B, {N_BASES}, W) with W a positive multiple of chunk_bp={self.chunk_bp}, "
                             f"got {tuple(x.shape)}")
        b, _, w = x.shape
        k = w // self.chunk_bp
        chunks = x.reshape(b, N_BASES, k, self.chunk_bp).transpose(1, 2).reshape(b * k, N_BASES, self.chunk_bp)
        h, tracks = self._run_base(chunks)  # (B * K, 64, n), (B * K, T, n)
        n = h.shape[2]
        tracks = tracks.reshape(b, k, self.n_tracks, n).transpose(1, 2).reshape(b, self.n_tracks, k * n)
        window = h.reshape(b, k, BOTTLENECK, n).transpose(1, 2).reshape(b, BOTTLENECK, k * n)
        out = self.graph(bottleneck=window, edge_index=edge_index, return_attention=return_attention)
        if return_attention:
            counts, attention = out
            return {"counts": counts, "tracks": tracks, "attention": attention}
        return {"counts": out, "tracks": tracks}
