"""Adapters: what interpretation needs to know about each model family's inputs.

One file per builder family (``promoter``, ``chromoformer``, ``graphreg``, ``sequence``, ``seq_graphreg``), each
registering its ``Adapter`` for its builder class in ``base.ADAPTERS``; importing this package
registers them all. See ``base`` for the adapter contract.
"""

from epx.explain.adapters.base import (
    ADAPTERS,
    CHUNK_BP,
    FLANK_WINDOW_BP,
    PROMOTER_BP,
    REGIONS,
    Adapter,
    GeneBatch,
    Layout,
    RegionIntervals,
    adapter_for,
    register,
    stack_elements,
)
from epx.explain.adapters.chromoformer import ChromoformerAdapter
from epx.explain.adapters.graphreg import GraphRegAdapter
from epx.explain.adapters.promoter import PromoterAdapter
from epx.explain.adapters.sequence import SequenceAdapter
from epx.explain.adapters.seq_graphreg import SeqGraphRegAdapter, SeqGraphRegEndToEndAdapter

__all__ = [
    "ADAPTERS", "CHUNK_BP", "FLANK_WINDOW_BP", "PROMOTER_BP", "REGIONS", "Adapter", "ChromoformerAdapter", "GeneBatch",
    "GraphRegAdapter", "Layout", "PromoterAdapter", "RegionIntervals", "SeqGraphRegAdapter", "SeqGraphRegEndToEndAdapter", "SequenceAdapter", "adapter_for", "register", "stack_elements",
]
