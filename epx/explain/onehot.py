"""The one-hot DNA input of a sequence model, edited: what knockout, ISM and variants share.

Contract (any adapter, ``epx.explain.adapters.base``, whose builder's channels are A C G T,
or that offers a view of its model from the DNA):

- ``onehot_adapter(job) -> Adapter``: the adapter these analyses drive: the job's own, or the
  one its ``sequence_view()`` returns where it has one (a model that reads features cached
  from the DNA, Seq-GraphReg's bottlenecks, seen from the bases they were computed from).
- ``onehot_name(job) -> str``: the input that holds one-hot DNA: the adapter's
  ``onehot_input`` attribute when it declares one (a model with several inputs, e.g. DNA
  plus cached bottlenecks), else its only input. A model that reads no DNA is one
  ``InputError`` naming the analysis and what the model sees.
- ``onehot_layout(job, rows, what) -> Layout``: that input's layout, checked to be one
  column per base (``bin_bp`` 1, no slot axis).
- ``columns(layout, gene, position) -> (V,) int64``: the input column holding genomic
  ``position`` (0-based) for each (gene index into the layout, position) pair; -1 where the
  gene's input does not hold it. Reversed inputs (the − strand read 5'->3') are handled.
- ``channel(layout, gene, base) -> (V,) int64``: the one-hot row of ``base`` (0-3 = A C G
  T, genomic strand) in that gene's input: its complement in a reversed input.
- ``substitute(cols, channels)``: the ``edit`` that sets copy j's column ``cols[j]`` to the
  one-hot row ``channels[j]`` (a single-base substitution).
- ``predict_edited(adapter, batch, name, gene, edit, per_forward) -> float64 (V,)``:
  ``adapter.forward_genes`` of V edited copies of the batch's genes ``gene`` (V,): each
  forward pass stacks ``per_forward`` copies, ``edit(x, lo, hi)`` changes the copies (x:
  (v, 4, L), a clone of the genes' one-hot) of items ``lo:hi`` in place. The net sees an
  edit exactly as it sees a sequence (eval mode: ``rc_average`` nets average both strands).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from epx.errors import InputError
from epx.explain.adapters import GeneBatch, Layout

BASES = ("A", "C", "G", "T")


def onehot_adapter(job):
    view = getattr(job.adapter, "sequence_view", None)
    return view() if view is not None else job.adapter


def onehot_name(job, what: str = "this analysis") -> str:
    adapter = onehot_adapter(job)
    declared = getattr(adapter, "onehot_input", None)
    if declared:
        return str(declared)
    names = tuple(adapter.input_names)
    if tuple(job.dm.inputs.channels(job.dm.marks)) != BASES or len(names) != 1:
        raise InputError(
            f"{what} edits one-hot DNA; model {job.model!r} sees {adapter.sees or ', '.join(names)} "
            "(use a sequence model, e.g. model=seq_cnn_base)"
        )
    return names[0]


def onehot_layout(job, rows, what: str = "this analysis") -> Layout:
    name = onehot_name(job, what)
    layout = onehot_adapter(job).layouts(rows)[name]
    if layout.bin_bp != 1 or layout.slot_axis:
        raise InputError(f"{what}: input {name!r} of model {job.model!r} is not one column per base (bin_bp={layout.bin_bp})")
    return layout


def columns(layout: Layout, gene: np.ndarray, position: np.ndarray) -> np.ndarray:
    gene, position = np.asarray(gene, np.int64), np.asarray(position, np.int64)
    first = layout.start[gene, 0]
    col = np.where(layout.reverse[gene], first - position, position - first)
    length = layout.start.shape[1]
    inside = (col >= 0) & (col < length)
    col = np.where(inside, col, 0)
    inside &= layout.start[gene, col] == position  # a layout that is not one contiguous run
    return np.where(inside, col, -1)


def channel(layout: Layout, gene: np.ndarray, base: np.ndarray) -> np.ndarray:
    base = np.asarray(base, np.int64)
    return np.where(layout.reverse[np.asarray(gene, np.int64)], 3 - base, base)


def predict_edited(adapter, batch: GeneBatch, name: str, gene: np.ndarray, edit: Callable[[torch.Tensor, int, int], None], per_forward: int) -> np.ndarray:
    gene = np.asarray(gene, np.int64)
    out = np.empty(len(gene))
    with torch.no_grad():
        for lo in range(0, len(gene), per_forward):
            hi = min(lo + per_forward, len(gene))
            g = torch.as_tensor(gene[lo:hi], device=adapter.device)
            inputs = {n: t.index_select(0, g) for n, t in batch.inputs.items()}
            inputs[name] = inputs[name].clone()
            edit(inputs[name], lo, hi)
            extra = {k: t.index_select(0, g) for k, t in batch.extra.items()}
            out[lo:hi] = adapter.forward_genes(inputs, extra).double().cpu().numpy()
    return out


def substitute(cols: np.ndarray, channels: np.ndarray) -> Callable[[torch.Tensor, int, int], None]:
    """The ``edit`` that puts base ``channels[j]`` (one-hot row) at column ``cols[j]`` of copy j."""
    cols_t, channels_t = torch.as_tensor(np.asarray(cols, np.int64)), torch.as_tensor(np.asarray(channels, np.int64))

    def edit(x: torch.Tensor, lo: int, hi: int) -> None:
        at = torch.arange(hi - lo)
        x[at, :, cols_t[lo:hi]] = 0
        x[at, channels_t[lo:hi], cols_t[lo:hi]] = 1

    return edit


def predict(adapter, batch: GeneBatch, per_forward: int) -> np.ndarray:
    """(N,) the unedited predictions of the batch's genes."""
    name = next(iter(batch.inputs))
    return predict_edited(adapter, batch, name, np.arange(len(batch.rows)), lambda x, lo, hi: None, per_forward)
