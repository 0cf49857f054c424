"""Significant-interaction tables (pcHi-C, HiChIP, HiCDCPlus) → BEDPE (DESIGN §2.1).

Contract:

- Output: BEDPE, 8 tab-separated columns, no header, 0-based half-open anchors:
  ``chrom1 start1 end1 chrom2 start2 end2 name score`` (``name`` is ``.`` when the source
  has none), written by ``epx.io.bedpe.write_interactions``. Rows keep the source order.
  Written to ``interactions/{cell}.bedpe``.
- Score kind: the BEDPE carries the score unchanged; its *kind* says how a threshold
  ``t`` reads it, and must be given to the dataset config
  (``dataset.interactions.score_kind``):

  ========== ============================ ===========================================
  kind       meaning                      kept by a threshold ``t``
  ========== ============================ ===========================================
  frequency  higher = stronger (normalised score >= t
             interaction frequency, read
             counts, CHiCAGO score)
  qvalue     lower = stronger (FDR q)     score <= t
  ========== ============================ ===========================================

- Column mapping: an ``InteractionFormat`` names the source column of each field
  (header names, or 0-based indices for header-less tables) and whether the source's
  starts are 1-based. Presets:

  ========= =========================================== ================ ==========
  preset    source (columns)                            score column     kind
  ========= =========================================== ================ ==========
  pchic     CHiCAGO ``.ibed`` (pcHi-C): bait_chr         score            frequency
            bait_start bait_end bait_name otherEnd_chr   (CHiCAGO score;
            otherEnd_start otherEnd_end otherEnd_name    >= 5 is the
            N_reads score                                usual cut)
  hichip    FitHiChIP loops (HiChIP): chr1 s1 e1 chr2    Q-Value_Bias     qvalue
            s2 e2 cc ... P-Value_Bias Q-Value_Bias
  hicdcplus HiCDCPlus ``gi_list_write`` (Hi-C/HiChIP):   qvalue           qvalue
            chrI startI endI chrJ startJ endJ D counts
            pvalue qvalue mu sdev; starts are 1-based
            (Bioconductor GRanges), converted to 0-based
  ========= =========================================== ================ ==========

  Any field can be overridden (e.g. ``score="counts", score_kind="frequency"``), or a
  whole mapping given for another tool.
- ``threshold`` (optional) drops rows the score kind rejects; without it every row of
  the (already significant) table is kept and the model's own threshold applies.
- A missing column raises one ``InputError`` (a ``ValueError``) naming the file, the
  column and the columns that exist. Broken input — a truncated or corrupt gzip, a binary
  or empty file, a line with another number of columns than the header, a non-integer,
  negative or reversed coordinate, a non-numeric score — is one ``InputError`` naming the
  file and the line (``epx.io.tables``). CRLF line ends and a UTF-8 BOM read correctly. A
  table with a header and no rows converts to an empty BEDPE. The table is read whole
  (significant-interaction tables are small).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from epx.data.prepare.interactions import SCORE_FILTERS  # the dataset's own keep rule
from epx.errors import InputError
from epx.io.bedpe import COLUMNS, DTYPES, write_interactions
from epx.io.tables import MISSING, REDOWNLOAD, Rows, read_rows


Column = str | int


@dataclass(frozen=True)
class InteractionFormat:
    """Where each BEDPE field comes from in a source table."""

    chrom1: Column
    start1: Column
    end1: Column
    chrom2: Column
    start2: Column
    end2: Column
    score: Column
    score_kind: str
    name: Column | None = None
    header: bool = True  # False: columns are 0-based indices
    one_based: bool = False  # source starts are 1-based inclusive

    def __post_init__(self) -> None:
        if self.score_kind not in SCORE_FILTERS:
            raise ValueError(f"score_kind {self.score_kind!r} is not one of {sorted(SCORE_FILTERS)}")


PRESETS: dict[str, InteractionFormat] = {
    "pchic": InteractionFormat(
        chrom1="bait_chr", start1="bait_start", end1="bait_end",
        chrom2="otherEnd_chr", start2="otherEnd_start", end2="otherEnd_end",
        name="bait_name", score="score", score_kind="frequency",
    ),
    "hichip": InteractionFormat(
        chrom1="chr1", start1="s1", end1="e1", chrom2="chr2", start2="s2", end2="e2",
        score="Q-Value_Bias", score_kind="qvalue",
    ),
    "hicdcplus": InteractionFormat(
        chrom1="chrI", start1="startI", end1="endI", chrom2="chrJ", start2="startJ", end2="endJ",
        score="qvalue", score_kind="qvalue", one_based=True,
    ),
}


def resolve_format(preset: str | None = None, **overrides) -> InteractionFormat:
    """A preset with some fields overridden, or (``preset=None``) a full custom mapping."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if preset is None:
        try:
            return InteractionFormat(**overrides)
        except TypeError as err:
            raise ValueError(
                f"a custom interaction format needs every column ({err}); or pick a preset "
                f"from {sorted(PRESETS)}"
            ) from err
    if preset not in PRESETS:
        raise ValueError(f"unknown interaction format {preset!r}; presets: {sorted(PRESETS)}")
    return replace(PRESETS[preset], **overrides)


HINT = (
    "fix or delete that line, or check the format/preset matches the tool that wrote the table (coordinates are "
    "integers with start <= end, the score a number)"
)


def _positions(table: Rows, fmt: InteractionFormat, path: Path) -> dict[str, int]:
    """Each BEDPE field's column index in ``table`` (header names or 0-based indices)."""
    fields = [f for f in COLUMNS if f != "name"] + ["name"]  # the optional one last
    wanted = {f: getattr(fmt, f) for f in fields if getattr(fmt, f) is not None}
    if fmt.header:
        names = table.header
        index = {name: k for k, name in reversed(list(enumerate(names)))}  # first of a repeated name
    else:
        width = max(len(row) for row in table.fields)
        names = list(range(width))
        index = {k: k for k in names}
    missing = [c for c in wanted.values() if c not in index]
    if missing:
        raise InputError(
            f"{path} has no column {', '.join(map(repr, missing))}; its columns are "
            f"{list(names)}. Pick the matching preset ({', '.join(PRESETS)}) or map "
            "columns by option" + ("" if fmt.header else " (0-based indices, since header=False)")
        )
    return {f: index[c] for f, c in wanted.items()}


def convert_interactions(
    src: str | os.PathLike,
    out: str | os.PathLike,
    fmt: InteractionFormat,
    *,
    threshold: float | None = None,
) -> int:
    """Write ``src`` as 8-column BEDPE at ``out`` using ``fmt``; return the rows written."""
    src = Path(src)
    if not src.is_file():
        raise FileNotFoundError(f"interaction table {src} does not exist")
    table = read_rows(src, what="interaction table", hint=HINT, comment=None, header=fmt.header, allow_empty=True)
    if fmt.header and table.header is None or not fmt.header and not len(table):
        raise InputError(f"{src} is empty: no header and no interactions; {REDOWNLOAD}")
    if fmt.header:
        while len(table.header) > 1 and not table.header[-1].strip():  # a trailing tab is not a column
            table.header.pop()
    position = _positions(table, fmt, src) if len(table) or fmt.header else {}
    if fmt.header:
        table.check_width(len(table.header), len(table.header), expected=f"{len(table.header)} (as many as the header has)")
    else:
        table.check_width(max(position.values()) + 1, expected=f"at least {max(position.values()) + 1}")
    shift = 1 if fmt.one_based else 0

    def coordinate(name: str) -> np.ndarray:
        start = name.startswith("start")
        return table.integers(position[name], name, minimum=shift if start else 0) - (shift if start else 0)

    score = table.floats(position["score"], "score", missing=MISSING - {""})
    bedpe = pd.DataFrame({c: pd.Series(dtype=t if t is not str else object) for c, t in DTYPES.items()})
    if len(table):
        bedpe = pd.DataFrame(
            {
                "chrom1": table.texts(position["chrom1"], "chrom1"),
                "start1": coordinate("start1"),
                "end1": coordinate("end1"),
                "chrom2": table.texts(position["chrom2"], "chrom2"),
                "start2": coordinate("start2"),
                "end2": coordinate("end2"),
                "name": table.texts(position["name"], "name", allow_empty=True) if fmt.name is not None else ".",
                "score": score,
            }
        )
        table.ordered(bedpe["start1"].to_numpy(), bedpe["end1"].to_numpy(), "start1", "end1")
        table.ordered(bedpe["start2"].to_numpy(), bedpe["end2"].to_numpy(), "start2", "end2")
    if threshold is not None:
        bedpe = bedpe[SCORE_FILTERS[fmt.score_kind](score, threshold)]

    write_interactions(bedpe, out)
    return len(bedpe)
