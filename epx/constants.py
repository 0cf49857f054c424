"""Vocabulary shared by configs, readers and figures: Roadmap mark names and cell metadata.

``MARKS`` is the canonical order of the seven core Roadmap histone marks; a mark
combination is always sorted into this order so ``H3K27ac+H3K4me3`` and
``H3K4me3+H3K27ac`` are the same experiment. ``CELLS`` is read from
``epx/resources/cells.tsv`` (EID, short name, Roadmap name, group).
"""

from __future__ import annotations

import csv
from importlib import resources

MARKS: tuple[str, ...] = (
    "H3K4me1",
    "H3K4me3",
    "H3K9me3",
    "H3K27me3",
    "H3K36me3",
    "H3K27ac",
    "H3K9ac",
)


def _read_cells() -> dict[str, dict[str, str]]:
    text = resources.files("epx").joinpath("resources/cells.tsv").read_text()
    rows = csv.DictReader(text.splitlines(), delimiter="\t")
    return {row["eid"]: row for row in rows}


CELLS: dict[str, dict[str, str]] = _read_cells()
ROADMAP_CELLS: tuple[str, ...] = tuple(CELLS)
