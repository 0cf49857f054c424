"""Chromoformer (Lee, Yang & Kim, Nat Commun 2022): a three-resolution transformer over a
gene's promoter and its 3D-linked putative cis-regulatory elements (pCREs).

Input contract (channels-first like every epx model; values already ln(mean + 1)):

* ``promoter[r]``: (B, M, L_r) promoter window at resolution ``r`` bp, ``L_r = window_bp // r``
  (20, 80, 400 by default), oriented 5'->3', the TSS bin at index ``L_r // 2``;
* ``pcres[r]``: (B, I, M, L_r) pCRE windows, centre-padded with zeros, ``I <= i_max``;
* ``pcre_bin_mask[r]``: (B, I, L_r) bool, True where a bin is real (False = padding);
* ``pcre_mask``: (B, I) bool, True where the slot holds a pCRE (no interactions: all False);
* ``freq``: (B, I) float interaction frequency promoter -> pCRE (0 for empty slots);
* output: (B, out_dim), regression value(s) or class logits.

Dict keys are the ints in ``resolutions``. Values under masks never reach the output:
padded bins, empty slots and their frequencies can hold anything.

Faithful to the published model, per resolution branch:

1. Embedding transformer: bias-free linear projection M -> d_emb, plus sinusoidal positions,
   ``embed_layers`` post-LN layers (``embed_heads`` heads, FF ``embed_ff``); the TSS bin's
   output is the promoter embedding.
2. Pairwise-interaction transformer: the promoter embedding (bias-free d_emb -> d_emb
   projection) attends to each pCRE (bias-free M -> d_emb projection plus sinusoidal
   positions) through ``pairwise_layers`` layers; the pCRE is the fixed key/value context
   of every layer. Its TSS-bin output is the pCRE's pairwise embedding.
3. Gated regulation transformer over [promoter, pCRE_1..pCRE_I]: ``regulation_layers``
   layers of ``regulation_heads`` heads with inner width ``regulation_d``, a sigmoid gate on
   every head's output, and a learned per-head weight times the promoter -> pCRE
   interaction frequency added to the promoter query's logits. Token 0's output plus its
   input is the branch embedding.

The three branch embeddings are concatenated -> Linear(3 d_emb, d_head) -> ReLU ->
Linear(d_head, out_dim). With 7 marks and the defaults: 5,341,457 trainable parameters for
``out_dim=1`` and 5,341,586 for ``out_dim=2``.

Where we differ from the published code (github.com/dohlee/chromoformer):

* its 1,086 parameters that never receive a gradient are not declared: a bias projection
  ``Linear(2, heads)`` in every attention layer, per-head frequency weights in the
  embedding and pairwise layers (which never get a bias), one LayerNorm per pairwise module;
* attention runs on ``F.scaled_dot_product_attention`` with one mask carrying padding
  and frequency bias, and on key-padding masks (padded *queries* are never read, so this
  equals the published square masks on every output that matters);
* only what reaches the output is computed, with the same result up to float rounding
  (``tests/test_chromoformer_net.py`` checks it against a naive full computation): the
  last embedding layer and the pairwise layers query the TSS bin alone (query rows never
  interact within a layer, and the pairwise context is fixed); empty pCRE slots are
  skipped (the regulation mask hides them); and where a context is a bias-free projection
  of the marks plus positions, attention reads the M marks directly: logits are
  ``(q W_k P) . x_j`` plus the positions' part, values ``(W_v P) sum_j a_j x_j`` plus theirs
  (M + d per bin and head instead of projecting every bin to 2 d_inner keys/values; the
  positions' part is computed once per batch; ``MultiHeadAttention(affine_context=...)``)
* a pCRE with no real bin gets a defined (uniform) pairwise attention rather than a -1e9
  fill, so every dtype stays finite, and positions are registered buffers rather than
  tensors created on one fixed device, so the module runs on any device.

``forward(..., return_attention=True)`` also returns, per resolution, the regulation layers'
attention of the promoter token over [promoter, pCRE_1..I] (per layer and head), computed
explicitly beside the fused attention, so the output is the same with or without it.

``reset_parameters()`` redraws every layer with PyTorch's default initialisation in
construction order (so ``torch.manual_seed(s)`` then a reset gives the weights a fresh
``Chromoformer`` built after ``torch.manual_seed(s)`` has) and sets the frequency gains to 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from epx.models.attention import MultiHeadAttention, TransformerLayer
from epx.models.reset import reset_submodules


def sinusoidal_positions(length: int, dim: int) -> Tensor:
    """(length, dim) table of the Transformer's sinusoidal positions: sin at even, cos at odd
    features, wavelengths from 2 pi to 10000 * 2 pi. ``dim`` must be even."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)
    return table


def _layers(*, n_layers: int, d_model: int, n_heads: int, d_inner: int, d_ff: int,
            dropout: float, gated: bool = False, pair_bias: bool = False) -> nn.ModuleList:
    return nn.ModuleList(
        TransformerLayer(d_model=d_model, n_heads=n_heads, d_inner=d_inner, d_ff=d_ff,
                         gated=gated, pair_bias=pair_bias, dropout=dropout)
        for _ in range(n_layers)
    )


class EmbeddingTransformer(nn.Module):
    """Promoter bins -> the TSS bin's contextual embedding."""

    def __init__(self, *, n_marks: int, n_bins: int, d_model: int, n_layers: int, n_heads: int,
                 d_ff: int, dropout: float) -> None:
        super().__init__()
        self.tss_index = n_bins // 2
        self.project = nn.Linear(n_marks, d_model, bias=False)
        self.register_buffer("positions", sinusoidal_positions(n_bins, d_model), persistent=False)
        self.layers = _layers(n_layers=n_layers, d_model=d_model, n_heads=n_heads,
                              d_inner=d_model, d_ff=d_ff, dropout=dropout)

    def forward(self, promoter: Tensor) -> Tensor:
        """promoter: (B, L, M) -> (B, d_model), the output at bin L // 2."""
        t = self.tss_index
        *inner, last = self.layers
        if not inner:
            # A single layer only ever queries the TSS: project the marks straight to its
            # keys/values instead of building all L embeddings.
            tss = self.project(promoter[:, t : t + 1]) + self.positions[t : t + 1]
            return last(tss, affine_context=(promoter, self.project.weight, self.positions))[:, 0]
        x = self.project(promoter) + self.positions
        for layer in inner:
            x = layer(x)
        return last(x[:, t : t + 1], context=x)[:, 0]


class PairwiseInteractionTransformer(nn.Module):
    """Promoter TSS embedding attending to each pCRE's bins -> one embedding per pCRE."""

    def __init__(self, *, n_marks: int, n_bins: int, d_model: int, n_layers: int, n_heads: int,
                 d_ff: int, dropout: float) -> None:
        super().__init__()
        self.project_promoter = nn.Linear(d_model, d_model, bias=False)
        self.project_pcre = nn.Linear(n_marks, d_model, bias=False)
        self.register_buffer("positions", sinusoidal_positions(n_bins, d_model), persistent=False)
        self.layers = _layers(n_layers=n_layers, d_model=d_model, n_heads=n_heads,
                              d_inner=d_model, d_ff=d_ff, dropout=dropout)

    def forward(self, promoter: Tensor, pcres: Tensor, bin_valid: Tensor,
                slot_valid: Tensor) -> Tensor:
        """promoter: (B, d_model) TSS embedding; pcres: (B, I, L, M);
        bin_valid: (B, I, L) bool, False on padding; slot_valid: (B, I) bool, False on empty
        slots. returns: (B, I, d_model), zeros for empty slots (the regulation mask hides them)."""
        b, i = slot_valid.shape
        # Only real pCREs are computed; empty slots are padding that is never read.
        key_valid = bin_valid[slot_valid]  # (P, L)
        # Zero what is hidden, so a pCRE with no real bin (uniform fallback) sees fixed values.
        marks = pcres[slot_valid].masked_fill(~key_valid[..., None], 0.0)  # (P, L, M)
        query = self.project_promoter(promoter)
        query = query[:, None, :].expand(b, i, query.shape[-1])[slot_valid][:, None, :]
        for layer in self.layers:
            # The pCRE context never changes across layers and is a bias-free projection of
            # the marks plus positions, so each layer attends to it from the marks directly.
            query = layer(query, affine_context=(marks, self.project_pcre.weight, self.positions),
                          key_valid=key_valid)
        out = query.new_zeros(b, i, query.shape[-1])
        return out.index_put((slot_valid,), query[:, 0])


class RegulationTransformer(nn.Module):
    """Gated self-attention over [promoter, pCREs] with a frequency bias on the promoter row."""

    def __init__(self, *, d_model: int, n_layers: int, n_heads: int, d_inner: int, d_ff: int,
                 dropout: float) -> None:
        super().__init__()
        self.layers = _layers(n_layers=n_layers, d_model=d_model, n_heads=n_heads,
                              d_inner=d_inner, d_ff=d_ff, dropout=dropout,
                              gated=True, pair_bias=True)

    def forward(self, tokens: Tensor, token_valid: Tensor, freq: Tensor,
                return_attention: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """tokens: (B, 1 + I, d_model), token 0 the promoter; token_valid: (B, 1 + I) bool;
        freq: (B, I) promoter -> pCRE interaction frequency. returns: (B, 1 + I, d_model);
        with ``return_attention`` also (B, n_layers, n_heads, 1 + I), each layer's attention
        of the promoter token over [promoter, pCRE_1..I] (0 on empty slots, rows sum to 1)."""
        n_pcres = freq.shape[1]
        promoter_row = F.pad(freq, (1, 0))  # (B, 1 + I); the promoter-to-itself logit is unbiased
        pair_bias = F.pad(promoter_row[:, None, :], (0, 0, 0, n_pcres))  # only row 0 is biased
        x = tokens
        weights = []
        for layer in self.layers:
            if return_attention:
                weights.append(promoter_attention(layer.attention, x, token_valid, pair_bias[:, :1]))
            x = layer(x, key_valid=token_valid, pair_bias=pair_bias)
        return (x, torch.stack(weights, dim=1)) if return_attention else x


def promoter_attention(attention: MultiHeadAttention, x: Tensor, key_valid: Tensor,
                       pair_bias: Tensor) -> Tensor:
    """The attention weights of token 0 in one (eval-mode) attention sublayer, computed
    explicitly beside the fused SDPA call, with the same mask and bias (so the layer's output
    is untouched). x: (B, K, d_model); key_valid: (B, K) bool; pair_bias: (B, 1, K).
    returns: (B, n_heads, K), >= 0, summing to 1 over the keys, 0 on hidden keys."""
    q = attention._split_heads(attention.query_proj(x[:, :1]))  # (B, H, 1, D)
    k = attention._split_heads(attention.key_value_proj(x).chunk(2, dim=-1)[0])  # (B, H, K, D)
    logits = q @ k.transpose(-1, -2) / math.sqrt(attention.head_dim)  # (B, H, 1, K)
    mask = attention._attention_mask(key_valid, pair_bias, logits.dtype)
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else logits + mask
    return torch.softmax(logits, dim=-1)[:, :, 0]


class ChromoformerBranch(nn.Module):
    """One resolution: embedding -> pairwise interaction -> regulation -> (B, d_emb)."""

    def __init__(self, *, n_marks: int, n_bins: int, d_emb: int, embed_layers: int,
                 embed_heads: int, embed_ff: int, pairwise_layers: int, pairwise_heads: int,
                 pairwise_ff: int, regulation_layers: int, regulation_heads: int,
                 regulation_d: int, regulation_ff: int, dropout: float) -> None:
        super().__init__()
        self.embedding = EmbeddingTransformer(
            n_marks=n_marks, n_bins=n_bins, d_model=d_emb, n_layers=embed_layers,
            n_heads=embed_heads, d_ff=embed_ff, dropout=dropout)
        self.pairwise = PairwiseInteractionTransformer(
            n_marks=n_marks, n_bins=n_bins, d_model=d_emb, n_layers=pairwise_layers,
            n_heads=pairwise_heads, d_ff=pairwise_ff, dropout=dropout)
        self.regulation = RegulationTransformer(
            d_model=d_emb, n_layers=regulation_layers, n_heads=regulation_heads,
            d_inner=regulation_d, d_ff=regulation_ff, dropout=dropout)

    def forward(self, *, promoter: Tensor, pcres: Tensor, pcre_bin_mask: Tensor,
                pcre_mask: Tensor, freq: Tensor,
                return_attention: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """promoter: (B, M, L); pcres: (B, I, M, L); pcre_bin_mask: (B, I, L) bool;
        pcre_mask: (B, I) bool; freq: (B, I). returns: (B, d_emb); with ``return_attention``
        also the regulation layers' promoter-token attention (B, n_layers, n_heads, 1 + I)."""
        tss = self.embedding(promoter.transpose(1, 2))
        pairs = self.pairwise(tss, pcres.transpose(2, 3), pcre_bin_mask, pcre_mask)
        tokens = torch.cat([tss[:, None, :], pairs], dim=1)
        token_valid = F.pad(pcre_mask, (1, 0), value=True)
        freq = freq.masked_fill(~pcre_mask, 0.0)
        if return_attention:
            regulated, attention = self.regulation(tokens, token_valid, freq, return_attention=True)
            return regulated[:, 0] + tss, attention
        regulated = self.regulation(tokens, token_valid, freq)
        return regulated[:, 0] + tss


class Chromoformer(nn.Module):
    """Three-resolution Chromoformer; see the module docstring for the contract."""

    def __init__(
        self,
        *,
        n_marks: int = 7,
        out_dim: int = 1,
        resolutions: Sequence[int] = (2000, 500, 100),
        window_bp: int = 40_000,
        i_max: int = 8,
        d_emb: int = 128,
        embed_layers: int = 1,
        embed_heads: int = 2,
        embed_ff: int = 128,
        pairwise_layers: int = 2,
        pairwise_heads: int = 2,
        pairwise_ff: int = 256,
        regulation_layers: int = 6,
        regulation_heads: int = 8,
        regulation_d: int = 256,
        regulation_ff: int = 256,
        d_head: int = 128,
        dropout: float = 0.0,
    ) -> None:
        """``d_head`` is the hidden width of the output MLP (the published name);
        ``i_max`` the most pCRE slots an input may have; ``dropout`` applies to attention
        weights and to every sublayer output (the published model trains with 0)."""
        super().__init__()
        resolutions = tuple(int(r) for r in resolutions)
        for name, value in {"n_marks": n_marks, "out_dim": out_dim, "embed_layers": embed_layers,
                            "pairwise_layers": pairwise_layers,
                            "regulation_layers": regulation_layers}.items():
            if value < 1:
                raise ValueError(f"Chromoformer {name}={value}: must be at least 1")
        if not resolutions or len(set(resolutions)) != len(resolutions):
            raise ValueError(f"Chromoformer resolutions={resolutions}: give distinct bin sizes, "
                             "e.g. (2000, 500, 100)")
        uneven = [r for r in resolutions if r <= 0 or window_bp % r != 0]
        if uneven:
            raise ValueError(f"Chromoformer window_bp={window_bp} is not a whole number of "
                             f"bins of {uneven} bp; pick a window that every resolution divides")
        if d_emb % 2 != 0:
            raise ValueError(f"Chromoformer d_emb={d_emb} must be even (sinusoidal positions "
                             "pair a sine and a cosine per frequency)")
        self.n_marks = n_marks
        self.out_dim = out_dim
        self.resolutions = resolutions
        self.window_bp = window_bp
        self.i_max = i_max
        self.d_emb = d_emb
        self.n_layers = (embed_layers, pairwise_layers, regulation_layers)
        self.dropout = dropout
        self.n_bins = {r: window_bp // r for r in resolutions}
        self.branches = nn.ModuleDict({
            str(r): ChromoformerBranch(
                n_marks=n_marks, n_bins=self.n_bins[r], d_emb=d_emb,
                embed_layers=embed_layers, embed_heads=embed_heads, embed_ff=embed_ff,
                pairwise_layers=pairwise_layers, pairwise_heads=pairwise_heads,
                pairwise_ff=pairwise_ff, regulation_layers=regulation_layers,
                regulation_heads=regulation_heads, regulation_d=regulation_d,
                regulation_ff=regulation_ff, dropout=dropout)
            for r in resolutions
        })
        self.head = nn.Sequential(
            nn.Linear(len(resolutions) * d_emb, d_head),
            nn.ReLU(),
            nn.Linear(d_head, out_dim),
        )

    def reset_parameters(self) -> None:
        reset_submodules(self)

    def extra_repr(self) -> str:
        embed, pairwise, regulation = self.n_layers
        return (f"n_marks={self.n_marks}, out_dim={self.out_dim}, "
                f"resolutions={self.resolutions}, window_bp={self.window_bp}, "
                f"i_max={self.i_max}, d_emb={self.d_emb}, layers=(embed={embed}, "
                f"pairwise={pairwise}, regulation={regulation}), dropout={self.dropout}")

    def _check_inputs(self, promoter: dict[int, Tensor], pcres: dict[int, Tensor],
                      pcre_bin_mask: dict[int, Tensor], pcre_mask: Tensor, freq: Tensor) -> None:
        """Raise one ValueError naming the first input whose keys, shape or dtype is wrong."""
        if pcre_mask.dim() != 2 or pcre_mask.dtype != torch.bool:
            raise ValueError(f"Chromoformer input pcre_mask must be a (B, I) bool tensor, got "
                             f"shape {tuple(pcre_mask.shape)} dtype {pcre_mask.dtype}")
        b, i = pcre_mask.shape
        if i > self.i_max:
            raise ValueError(f"Chromoformer input has I={i} pCRE slots but i_max={self.i_max}; "
                             "build the model with i_max matching the dataset's i_max")
        if tuple(freq.shape) != (b, i):
            raise ValueError(f"Chromoformer input freq has shape {tuple(freq.shape)}, "
                             f"expected (B, I) = {(b, i)} like pcre_mask")
        expected = set(self.resolutions)
        for name, tensors in {"promoter": promoter, "pcres": pcres,
                              "pcre_bin_mask": pcre_bin_mask}.items():
            if set(tensors) != expected:
                raise ValueError(f"Chromoformer input {name} has resolutions {sorted(tensors)} "
                                 f"but the model was built for {list(self.resolutions)}; "
                                 "set the model's resolutions to the dataset's")
        for r, n_bins in self.n_bins.items():
            layouts = {
                "promoter": (promoter[r], (b, self.n_marks, n_bins), "(B, M, L)"),
                "pcres": (pcres[r], (b, i, self.n_marks, n_bins), "(B, I, M, L)"),
                "pcre_bin_mask": (pcre_bin_mask[r], (b, i, n_bins), "(B, I, L)"),
            }
            for name, (tensor, shape, layout) in layouts.items():
                if tuple(tensor.shape) != shape:
                    raise ValueError(
                        f"Chromoformer input {name}[{r}] has shape {tuple(tensor.shape)}, "
                        f"expected {layout} = {shape} (M = n_marks = {self.n_marks}, "
                        f"L = window_bp // {r} = {n_bins}); match the model's n_marks and "
                        "window_bp to the dataset")
            if pcre_bin_mask[r].dtype != torch.bool:
                raise ValueError(f"Chromoformer input pcre_bin_mask[{r}] must be bool, got "
                                 f"{pcre_bin_mask[r].dtype}")

    def branch_embeddings(self, *, promoter: dict[int, Tensor], pcres: dict[int, Tensor],
                          pcre_bin_mask: dict[int, Tensor], pcre_mask: Tensor,
                          freq: Tensor) -> dict[int, Tensor]:
        """Inputs as ``forward``. returns: {r: (B, d_emb)}, each resolution's regulatory
        embedding of the promoter (what the output head reads)."""
        self._check_inputs(promoter, pcres, pcre_bin_mask, pcre_mask, freq)
        return {
            r: self.branches[str(r)](promoter=promoter[r], pcres=pcres[r],
                                     pcre_bin_mask=pcre_bin_mask[r], pcre_mask=pcre_mask,
                                     freq=freq)
            for r in self.resolutions
        }

    def forward(self, *, promoter: dict[int, Tensor], pcres: dict[int, Tensor],
                pcre_bin_mask: dict[int, Tensor], pcre_mask: Tensor, freq: Tensor,
                return_attention: bool = False
                ) -> Tensor | tuple[Tensor, dict[int, Tensor]]:
        """promoter[r]: (B, M, L_r); pcres[r]: (B, I, M, L_r); pcre_bin_mask[r]: (B, I, L_r)
        bool; pcre_mask: (B, I) bool; freq: (B, I) float. returns: (B, out_dim).

        ``return_attention=True`` returns ``(out, attention)`` with the same ``out`` and
        ``attention[r]``: (B, regulation_layers, regulation_heads, 1 + I), the attention of
        the promoter token over [promoter, pCRE_1..I] in each regulation layer of branch
        ``r`` (the weights the fused kernel applies, computed beside it; 0 on empty slots,
        summing to 1 over the 1 + I tokens; without dropout, i.e. as in eval mode)."""
        if not return_attention:
            embeddings = self.branch_embeddings(promoter=promoter, pcres=pcres,
                                                pcre_bin_mask=pcre_bin_mask,
                                                pcre_mask=pcre_mask, freq=freq)
            return self.head(torch.cat([embeddings[r] for r in self.resolutions], dim=-1))
        self._check_inputs(promoter, pcres, pcre_bin_mask, pcre_mask, freq)
        embeddings, attention = {}, {}
        for r in self.resolutions:
            embeddings[r], attention[r] = self.branches[str(r)](
                promoter=promoter[r], pcres=pcres[r], pcre_bin_mask=pcre_bin_mask[r],
                pcre_mask=pcre_mask, freq=freq, return_attention=True)
        out = self.head(torch.cat([embeddings[r] for r in self.resolutions], dim=-1))
        return out, attention
