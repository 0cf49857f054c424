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
- A missing column, or a non-numeric coordinate or score, raises one ``ValueError``
  naming the file, the column and the columns that exist.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from epx.data.prepare.interactions import SCORE_FILTERS  # the dataset's own keep rule
from epx.io.bedpe import COLUMNS, write_interactions


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


def _check_columns(table: pd.DataFrame, fmt: InteractionFormat, path: Path) -> None:
    fields = [f for f in COLUMNS if f != "name"] + ["name"]  # the optional one last
    wanted = [getattr(fmt, f) for f in fields if getattr(fmt, f) is not None]
    missing = [c for c in wanted if c not in table.columns]
    if missing:
        raise ValueError(
            f"{path} has no column {', '.join(map(repr, missing))}; its columns are "
            f"{list(table.columns)}. Pick the matching preset ({', '.join(PRESETS)}) or map "
            "columns by option" + ("" if fmt.header else " (0-based indices, since header=False)")
        )


def _numeric(series: pd.Series, path: Path, dtype) -> np.ndarray:
    try:
        return pd.to_numeric(series).to_numpy(dtype)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: column {series.name!r} is not numeric ({err})") from err


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
    table = pd.read_csv(src, sep="\t", header=0 if fmt.header else None, comment=None)
    _check_columns(table, fmt, src)
    shift = 1 if fmt.one_based else 0

    def field(name: str) -> pd.Series:
        return table[getattr(fmt, name)]

    score = _numeric(field("score"), src, np.float64)
    bedpe = pd.DataFrame(
        {
            "chrom1": field("chrom1").astype(str).to_numpy(),
            "start1": _numeric(field("start1"), src, np.int64) - shift,
            "end1": _numeric(field("end1"), src, np.int64),
            "chrom2": field("chrom2").astype(str).to_numpy(),
            "start2": _numeric(field("start2"), src, np.int64) - shift,
            "end2": _numeric(field("end2"), src, np.int64),
            "name": field("name").astype(str).to_numpy() if fmt.name is not None else ".",
            "score": score,
        }
    )
    if threshold is not None:
        bedpe = bedpe[SCORE_FILTERS[fmt.score_kind](score, threshold)]

    write_interactions(bedpe, out)
    return len(bedpe)
