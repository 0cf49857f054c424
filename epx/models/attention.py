"""Post-LayerNorm transformer blocks on ``F.scaled_dot_product_attention`` (SDPA).

Contract
--------
``MultiHeadAttention`` is one attention sublayer, ``LayerNorm(query + W_o · attn)``:
queries come from ``query`` and keys/values from ``context`` (``context`` defaults to
``query``, i.e. self-attention). Options, all as in the Chromoformer paper:

* ``gated=True`` multiplies each head's attention output element-wise by
  ``sigmoid(W_g · query)`` before the output projection (the gated regulation transformer);
* ``pair_bias=True`` adds ``gamma_h * pair_bias[n, q, k]`` to the scaled logits of head
  ``h``, with a learned ``gamma`` (one per head, initialised to 1);
* ``key_valid`` (bool, ``True`` = real key) hides padding keys. A sequence whose keys are
  *all* invalid attends uniformly over them instead of producing NaN; its output is then
  meaningless and the caller must mask it downstream (Chromoformer masks empty pCRE slots
  in its regulation transformer).

The key mask and the scaled bias are merged into one ``attn_mask`` for SDPA (bool when
there is no bias, so the fused kernels stay available; additive float otherwise, which
SDPA differentiates, so ``gamma`` learns).

``FeedForward`` is ``LayerNorm(x + W_2 · relu(W_1 · x))`` and ``TransformerLayer`` chains
the two. Query rows never interact inside a layer, so a caller that needs only some
output positions may pass only those rows as ``query`` (with the full ``context``) and get
exactly the rows a full pass would give.

``MultiHeadAttention.reset_parameters()`` redraws its projections (PyTorch's default
``nn.Linear`` initialisation, in construction order) and sets ``gamma`` back to 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from epx.models.reset import reset_submodules


class MultiHeadAttention(nn.Module):
    """One post-LN multi-head attention sublayer with optional gate and per-head pair bias."""

    def __init__(
        self,
        *,
        d_model: int,
        n_heads: int,
        d_inner: int,
        gated: bool = False,
        pair_bias: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if d_inner % n_heads != 0:
            raise ValueError(
                f"attention width d_inner={d_inner} is not divisible by n_heads={n_heads}; "
                "choose a width that is a multiple of the head count"
            )
        self.n_heads = n_heads
        self.head_dim = d_inner // n_heads
        self.dropout = dropout
        self.query_proj = nn.Linear(d_model, d_inner, bias=False)
        self.key_value_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self.gate_proj = nn.Linear(d_model, d_inner, bias=False) if gated else None
        self.out_proj = nn.Linear(d_inner, d_model)
        self.out_dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)
        self.bias_gain = nn.Parameter(torch.ones(n_heads)) if pair_bias else None

    def reset_parameters(self) -> None:
        reset_submodules(self)
        if self.bias_gain is not None:
            # gamma = 1: the frequency bias enters at full strength, as published.
            nn.init.ones_(self.bias_gain)

    def extra_repr(self) -> str:
        return (f"n_heads={self.n_heads}, head_dim={self.head_dim}, "
                f"gated={self.gate_proj is not None}, pair_bias={self.bias_gain is not None}")

    def _split_heads(self, x: Tensor) -> Tensor:
        """(N, S, H*D) -> (N, H, S, D)."""
        n, s, _ = x.shape
        return x.view(n, s, self.n_heads, self.head_dim).transpose(1, 2)

    def _attention_mask(
        self, key_valid: Tensor | None, pair_bias: Tensor | None, dtype: torch.dtype
    ) -> Tensor | None:
        """SDPA mask broadcastable to (N, H, Q, K): bool (True = attend) or additive float."""
        keep = None
        if key_valid is not None:
            # All-padding sequences would softmax over nothing (NaN): let them see every key.
            keep = key_valid | ~key_valid.any(dim=-1, keepdim=True)
            keep = keep[:, None, None, :]
        if pair_bias is None:
            return keep
        if self.bias_gain is None:
            raise ValueError(
                "pair_bias was passed to an attention layer built with pair_bias=False; "
                "build it with pair_bias=True to learn the per-head bias weights"
            )
        bias = pair_bias[:, None] * self.bias_gain[None, :, None, None]
        if keep is not None:
            bias = bias.masked_fill(~keep, float("-inf"))
        return bias.to(dtype)

    def _attend_affine_context(self, query: Tensor, affine_context: tuple[Tensor, Tensor, Tensor],
                               key_valid: Tensor | None) -> Tensor:
        """Attention heads over the context ``inputs @ weight.T + offset``, never building it.

        The key/value projection is linear and bias-free, so a key is ``(W_k weight) x_j +
        W_k offset_j``: logits are ``(q W_k weight) . x_j + q . (W_k offset_j)`` and the heads
        ``(W_v weight)(sum_j a_j x_j) + sum_j a_j W_v offset_j``. With F << d_model marks per
        key (Chromoformer: 7 vs 128) this does F + d per key and head instead of projecting
        every key to 2 * d_inner features, and the offset part (positions) is computed once,
        not per sequence. Exact up to rounding. returns: (N, Q, H * D) like SDPA's heads."""
        inputs, weight, offset = affine_context  # (N, K, F), (d_model, F), (K, d_model)
        n, q_len, _ = query.shape
        keys, marks = inputs.shape[1], inputs.shape[2]
        h, d = self.n_heads, self.head_dim
        w_key, w_value = self.key_value_proj.weight.chunk(2, dim=0)  # (H * D, d_model) each
        # shared over the batch: the marks' and the positions' projections, per head
        key_marks = (w_key @ weight).view(h, d, marks)  # (H, D, F)
        value_marks = (w_value @ weight).view(h, d, marks)
        key_offset = F.linear(offset, w_key).view(keys, h, d).permute(1, 2, 0)  # (H, D, K)
        value_offset = F.linear(offset, w_value).view(keys, h, d).transpose(0, 1)  # (H, K, D)
        q = self.query_proj(query).view(n, q_len, h, d).permute(2, 0, 1, 3).reshape(h, n * q_len, d)
        q = q * d**-0.5
        logits = (q @ key_offset).view(h, n, q_len, keys).transpose(0, 1)  # (N, H, Q, K)
        q_marks = (q @ key_marks).view(h, n, q_len, marks).transpose(0, 1)  # (N, H, Q, F)
        logits = logits + (q_marks.reshape(n, h * q_len, marks) @ inputs.transpose(1, 2)).view(n, h, q_len, keys)
        keep = self._attention_mask(key_valid, None, logits.dtype)
        if keep is not None:
            logits = logits.masked_fill(~keep, float("-inf"))
        weights = torch.softmax(logits, dim=-1)
        weights = F.dropout(weights, self.dropout, self.training)  # where SDPA drops its weights
        mixed = (weights.reshape(n, h * q_len, keys) @ inputs).view(n, h, q_len, marks)  # (N, H, Q, F)
        heads = (mixed.transpose(0, 1).reshape(h, n * q_len, marks) @ value_marks.transpose(1, 2)
                 + weights.transpose(0, 1).reshape(h, n * q_len, keys) @ value_offset)  # (H, N * Q, D)
        return heads.view(h, n, q_len, d).permute(1, 2, 0, 3).reshape(n, q_len, h * d)

    def forward(
        self,
        query: Tensor,
        *,
        context: Tensor | None = None,
        affine_context: tuple[Tensor, Tensor, Tensor] | None = None,
        key_valid: Tensor | None = None,
        pair_bias: Tensor | None = None,
    ) -> Tensor:
        """query: (N, Q, d_model); context: (N, K, d_model), default ``query``;
        affine_context: ``(inputs (N, K, F), weight (d_model, F), offset (K, d_model))``, a
        context ``inputs @ weight.T + offset`` given by its parts instead of ``context``
        (attended without building it; no ``pair_bias``);
        key_valid: (N, K) bool, True where the key is real; pair_bias: (N, Q, K) float,
        scaled per head by the learned gain and added to the logits.
        returns: (N, Q, d_model)."""
        if affine_context is not None:
            if context is not None or pair_bias is not None:
                raise ValueError("affine_context replaces context and takes no pair_bias")
            heads = self._attend_affine_context(query, affine_context, key_valid)
        else:
            q = self._split_heads(self.query_proj(query))
            k, v = (self._split_heads(t)
                    for t in self.key_value_proj(query if context is None else context).chunk(2, dim=-1))
            mask = self._attention_mask(key_valid, pair_bias, q.dtype)
            heads = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
            )
            heads = heads.transpose(1, 2).flatten(2)
        if self.gate_proj is not None:
            heads = heads * torch.sigmoid(self.gate_proj(query))
        return self.norm(query + self.out_dropout(self.out_proj(heads)))


class FeedForward(nn.Module):
    """Post-LN position-wise feed-forward sublayer: LayerNorm(x + W_2 relu(W_1 x))."""

    def __init__(self, *, d_model: int, d_ff: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.inner = nn.Linear(d_model, d_ff)
        self.outer = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, S, d_model) -> (N, S, d_model)."""
        return self.norm(x + self.dropout(self.outer(F.relu(self.inner(x)))))


class TransformerLayer(nn.Module):
    """Attention sublayer followed by a feed-forward sublayer (both post-LN)."""

    def __init__(
        self,
        *,
        d_model: int,
        n_heads: int,
        d_inner: int,
        d_ff: int,
        gated: bool = False,
        pair_bias: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.attention = MultiHeadAttention(
            d_model=d_model,
            n_heads=n_heads,
            d_inner=d_inner,
            gated=gated,
            pair_bias=pair_bias,
            dropout=dropout,
        )
        self.feed_forward = FeedForward(d_model=d_model, d_ff=d_ff, dropout=dropout)

    def forward(
        self,
        query: Tensor,
        *,
        context: Tensor | None = None,
        affine_context: tuple[Tensor, Tensor, Tensor] | None = None,
        key_valid: Tensor | None = None,
        pair_bias: Tensor | None = None,
    ) -> Tensor:
        """query: (N, Q, d_model); context: (N, K, d_model) or None (self-attention);
        affine_context: the context as ``(inputs, weight, offset)`` instead (see
        ``MultiHeadAttention``); key_valid: (N, K) bool; pair_bias: (N, Q, K).
        returns: (N, Q, d_model)."""
        x = self.attention(query, context=context, affine_context=affine_context,
                           key_valid=key_valid, pair_bias=pair_bias)
        return self.feed_forward(x)
