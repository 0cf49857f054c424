"""A distance-stratified significance filter for Hi-C maps: GraphReg's graph without R.

GraphReg builds its graph from HiC-DC+ significant interactions at 5 kb (``epx convert
interactions --format hicdcplus`` imports those). For users without R this module calls
contacts itself, with the simplest model that respects Hi-C's dominant bias, the decay of
contact frequency with genomic distance:

1. Per chromosome and per distance ``d`` (in bins; ``min_distance <= d * res <=
   max_distance``), the **expected** count is the mean raw count over every bin pair at that
   distance, zeros included: ``E_d = sum(counts at d) / (n_bins - d)``. Pairs touching a bin
   with no contacts at all (unmappable: centromeres, gaps) are left out of both the sum and
   the number of pairs.
2. Each observed pixel gets the Poisson upper-tail p-value ``P(X >= observed | λ = E_d)``
   (``scipy.stats.poisson.sf(observed - 1, E_d)``).
3. p-values are adjusted by Benjamini–Hochberg over **every** tested pair of the map (all
   chromosomes, zeros included, whose p-value is 1), so a sparse map is not favoured; the
   q-value is capped at 1.
4. Pairs with ``q <= fdr`` are written as BEDPE (``epx.io.bedpe``), anchors the two 5 kb bins,
   ``name`` ``.``, score = the q-value: ``score_kind: qvalue``. Run with
   ``dataset.interactions.score_kind=qvalue dataset.interactions.threshold=<fdr>``.

What it does not model (and HiC-DC+ does): GC content, mappability and restriction-site
density per bin, over-dispersion (negative binomial). It therefore calls more contacts at
biased bins than HiC-DC+; use HiC-DC+ when R is available. Raw counts are used, not balanced
values, because the test is a count model.

Contract: ``call_significant(cmap, *, fdr=0.1, min_distance=10_000, max_distance=2_000_000,
chroms=None) -> (DataFrame bedpe, FilterStats)``; ``write_significant(map_path, out, *,
resolution=5000, ...) -> FilterStats`` opens the map (``epx.hic.maps.open_map``) and writes the
BEDPE atomically. ``chroms`` (default: every chromosome of the map) naming one the map lacks is
one ``InputError``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import poisson

from epx.errors import InputError
from epx.hic.maps import RESOLUTION_BP, ContactMap, open_map
from epx.io.bedpe import COLUMNS, empty_interactions, write_interactions


@dataclass(frozen=True)
class FilterStats:
    chroms: int
    tested_pairs: int  # every bin pair at a tested distance, zeros included (BH's m)
    nonzero_pixels: int
    significant: int
    fdr: float


def _chrom_pvalues(cmap: ContactMap, chrom: str, lo: int, hi: int) -> tuple[pd.DataFrame, int]:
    """Nonzero pixels at tested distances with their p-values; and the number of tested pairs."""
    px = cmap.pixels(chrom, max_distance=hi * cmap.resolution)
    n_bins = -(-cmap.chroms[chrom] // cmap.resolution)
    px = px[(px["bin2"] - px["bin1"] >= lo) & (px["count"] > 0)]
    if px.empty:
        return px.assign(p=np.array([], np.float64)), 0
    # bins with no contact at all (at tested distances) are unmappable: out of the pair count
    coverage = np.zeros(n_bins, bool)
    coverage[px["bin1"].to_numpy()] = True
    coverage[px["bin2"].to_numpy()] = True
    d = (px["bin2"] - px["bin1"]).to_numpy()
    distances = np.arange(lo, min(hi, n_bins - 1) + 1)
    # pairs (i, i + d) with both bins covered, per d: count by shifting the coverage mask
    pairs = np.array([int(np.count_nonzero(coverage[: n_bins - k] & coverage[k:])) for k in distances])
    sums = np.bincount(d - lo, weights=px["count"].to_numpy(), minlength=len(distances))[: len(distances)]
    expected = np.divide(sums, pairs, out=np.zeros_like(sums), where=pairs > 0)
    lam = expected[d - lo]
    p = poisson.sf(px["count"].to_numpy() - 1, lam)
    return px.assign(p=p, expected=lam), int(pairs.sum())


def _bh(p: np.ndarray, m: int) -> np.ndarray:
    """Benjamini–Hochberg q-values of ``p`` among ``m >= len(p)`` tests (the rest have p = 1)."""
    if not len(p):
        return p
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, len(p) + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty_like(q)
    out[order] = np.minimum(q, 1.0)
    return out


def call_significant(
    cmap: ContactMap,
    *,
    fdr: float = 0.1,
    min_distance: int = 10_000,
    max_distance: int = 2_000_000,
    chroms: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, FilterStats]:
    """Significant contacts of ``cmap`` as BEDPE rows (module doc)."""
    if not 0 < fdr <= 1:
        raise InputError(f"fdr={fdr} must be in (0, 1]")
    names = list(chroms) if chroms else list(cmap.chroms)
    unknown = [c for c in names if c not in cmap.chroms]
    if unknown:
        raise InputError(f"{cmap.path} has no chromosome {', '.join(unknown)}; it has {', '.join(cmap.chroms)}")
    lo = max(1, -(-min_distance // cmap.resolution))
    hi = max_distance // cmap.resolution
    parts, m = [], 0
    for chrom in names:
        px, pairs = _chrom_pvalues(cmap, chrom, lo, hi)
        parts.append(px.assign(chrom=chrom))
        m += pairs
    pixels = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["bin1", "bin2", "count", "p", "chrom"])
    q = _bh(pixels["p"].to_numpy(np.float64), m)
    hit = pixels[q <= fdr].assign(q=q[q <= fdr])
    res = cmap.resolution
    if hit.empty:
        bedpe = empty_interactions()
    else:
        ends = hit["chrom"].map(cmap.chroms).to_numpy(np.int64)
        bedpe = pd.DataFrame({
            "chrom1": hit["chrom"].to_numpy(object), "start1": hit["bin1"].to_numpy(np.int64) * res,
            "end1": np.minimum((hit["bin1"].to_numpy(np.int64) + 1) * res, ends),
            "chrom2": hit["chrom"].to_numpy(object), "start2": hit["bin2"].to_numpy(np.int64) * res,
            "end2": np.minimum((hit["bin2"].to_numpy(np.int64) + 1) * res, ends),
            "name": ".", "score": hit["q"].to_numpy(np.float64),
        })[COLUMNS]
    stats = FilterStats(chroms=len(names), tested_pairs=m, nonzero_pixels=len(pixels), significant=len(bedpe), fdr=fdr)
    return bedpe, stats


def write_significant(
    map_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    resolution: int = RESOLUTION_BP,
    fdr: float = 0.1,
    min_distance: int = 10_000,
    max_distance: int = 2_000_000,
    chroms: Sequence[str] | None = None,
) -> FilterStats:
    """Open ``map_path`` at ``resolution`` and write its significant contacts to ``out``."""
    cmap = open_map(map_path, resolution)
    bedpe, stats = call_significant(cmap, fdr=fdr, min_distance=min_distance, max_distance=max_distance, chroms=chroms)
    write_interactions(bedpe, out, float_format="%.6g")
    return stats
