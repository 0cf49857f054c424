"""The context every input builder reads, and the shared target helper.

Contract: a builder (``epx.data.inputs.protocol.InputBuilder``) is called ``builder(context,
rows) -> Dataset`` where ``context`` is a ``DataContext`` and ``rows`` the gene-table row
indices of one split. ``context.sources`` maps each source the builder declared (and only
those) to its loaded object: ``tracks`` (``SignalTracks``), ``contacts`` (the cell's BEDPE
rows past the dataset's threshold, with a ``strength`` column), ``genome``
(``GenomeSequence``). ``context.tracks`` / ``.interactions`` / ``.genome`` read them, and
asking for a source the builder did not declare is an error that says so, not a silent
``None``. Every item a builder makes is a dict ``{"x": {net keyword inputs}, "y": target,
"gene": row index}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class DataContext:
    genes: pd.DataFrame
    cell: str
    marks: tuple[str, ...]
    target_column: str
    sources: Mapping[str, Any] = field(default_factory=dict)
    cage: Path | None = None  # per-bin count target (GraphReg), when the dataset has one

    @classmethod
    def of(cls, genes: pd.DataFrame, *, cell: str = "X", marks=(), target_column: str = "target", cage: Path | None = None,
           **sources: Any) -> "DataContext":
        """A context from keyword sources (``tracks=``, ``contacts=``, ``genome=``); None ones are left out."""
        return cls(genes, cell, tuple(marks), target_column, {k: v for k, v in sources.items() if v is not None}, cage)

    def source(self, name: str) -> Any:
        if name not in self.sources:
            raise KeyError(
                f"source {name!r} was not loaded for this builder (loaded: {sorted(self.sources) or 'none'}); "
                f"declare it in the builder's `sources`"
            )
        return self.sources[name]

    @property
    def tracks(self):
        return self.source("tracks")

    @property
    def interactions(self) -> pd.DataFrame:
        return self.source("contacts")

    @property
    def genome(self):
        return self.source("genome")


def target_array(genes: pd.DataFrame, column: str) -> np.ndarray:
    """The objective's target column: float32 for regression, int64 class labels otherwise."""
    y = genes[column].to_numpy()
    return y.astype(np.float32 if y.dtype.kind == "f" else np.int64)
