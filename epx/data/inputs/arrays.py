"""A map-style Dataset over arrays already in memory, fetched a whole batch at a time.

Contract: ``ArrayDataset(fields)`` where ``fields`` is a nested dict of arrays/tensors sharing
their first dimension N. ``__getitems__(indices)`` returns the same nested dict indexed by the
batch (one fancy-index per array, no per-item Python work); use it with
``collate_fn=keep_batch`` so the DataLoader passes it through unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset


def _to_tensor(value):
    if isinstance(value, Mapping):
        return {k: _to_tensor(v) for k, v in value.items()}
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(np.ascontiguousarray(value))


def _take(value, idx: torch.Tensor):
    if isinstance(value, Mapping):
        return {k: _take(v, idx) for k, v in value.items()}
    return value.index_select(0, idx)


def _length(value) -> int:
    if isinstance(value, Mapping):
        return _length(next(iter(value.values())))
    return int(value.shape[0])


def keep_batch(batch):
    return batch


class ArrayDataset(Dataset):
    def __init__(self, fields: Mapping):
        self.fields = _to_tensor(fields)
        self.n = _length(self.fields)

    def __len__(self) -> int:
        return self.n

    def __getitems__(self, indices: Sequence[int]) -> dict:
        return _take(self.fields, torch.as_tensor(indices, dtype=torch.long))

    def __getitem__(self, index: int) -> dict:
        return _take(self.fields, torch.as_tensor([index]))
