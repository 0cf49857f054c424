"""Per-region binned store: exact-position windows of one cell, built once from the bigWigs.

The 100 bp cell cache (``cache.CellCache``) cannot hold windows anchored at arbitrary bases
(Chromoformer's published promoters start at TSS - 20 kb; its pCREs at their own start).
This store bins each requested region from its own first base, from the bigWigs at base
resolution, at every resolution: bin j of region [s, e) at r bp is the mean per-bp signal
over [s + j r, min(s + (j + 1) r, e)) (a partial last bin is averaged over its real bases
only), stored as ln(mean + 1) in float32 (the sum in float64).

Contract:

- ``Regions.of(chrom, start, end)``: unique regions sorted by (chrom, start, end);
  ``index(chrom, start, end)`` the position of each given region (-1: not stored);
  ``n_bins(r)`` = ceil(length / r) and ``offsets(r)`` (R + 1,) where region i's bins start.
- ``WindowStore(spec, cell, cache_dir, chrom_sizes, resolutions=...)``: ``ensure(marks, regions)``
  builds one HDF5 file per mark, ``{cache_dir}/windows/{cell}-{mark}-{key}.h5`` (key: the
  bigWig's path, size and mtime, the regions, the resolutions, the chromosome sizes and the
  format), once: under a per-cell file lock, written atomically, marked complete last, so a
  half-written file is rebuilt, never read. ``load(marks, regions) -> BinnedRegions``.
- ``BinnedRegions``: ``regions``, ``resolutions``, per resolution ``values[r]`` (total bins,
  M) float32 and ``offsets[r]``; ``bins(r, index)`` the (n_bins, M) rows of one region.

Reading: regions of a chromosome are merged into spans (gaps under ``MERGE_GAP_BP``, spans up
to ``MAX_SPAN_BP``), each read with one ``epx.io.bigwig.per_base`` call; every region and
resolution of a span is binned with one cumulative sum and vectorised index arithmetic.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from filelock import FileLock

from epx.data.prepare.cache import source_signature
from epx.data.prepare.contract import DatasetSpec
from epx.errors import InputError
from epx.io.atomic import atomic_path, stale_temps
from epx.io.bigwig import per_base

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MERGE_GAP_BP = 50_000  # read two regions in one call when less than this lies between them
MAX_SPAN_BP = 4_000_000  # at most 16 MB of float32 per read


def ragged_arange(counts: np.ndarray) -> np.ndarray:
    """[0..c0-1, 0..c1-1, ...] for counts c."""
    counts = np.asarray(counts, np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    return np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)


@dataclass(frozen=True)
class Regions:
    chrom: np.ndarray  # (R,) object
    start: np.ndarray  # (R,) int64
    end: np.ndarray  # (R,) int64

    @classmethod
    def of(cls, chrom, start, end) -> Regions:
        frame = {"chrom": np.asarray(chrom, object), "start": np.asarray(start, np.int64), "end": np.asarray(end, np.int64)}
        if len(frame["chrom"]) and (frame["end"] <= frame["start"]).any():
            bad = int(np.flatnonzero(frame["end"] <= frame["start"])[0])
            raise InputError(f"region {frame['chrom'][bad]}:{frame['start'][bad]}-{frame['end'][bad]} is empty (end <= start)")
        order = np.lexsort((frame["end"], frame["start"], frame["chrom"].astype(str)))
        c, s, e = (frame[k][order] for k in ("chrom", "start", "end"))
        keep = np.ones(len(c), bool)
        if len(c) > 1:
            keep[1:] = (c[1:] != c[:-1]) | (s[1:] != s[:-1]) | (e[1:] != e[:-1])
        return cls(c[keep], s[keep], e[keep])

    def __len__(self) -> int:
        return len(self.chrom)

    def keys(self) -> np.ndarray:
        return np.array([f"{c}:{s}-{e}" for c, s, e in zip(self.chrom, self.start, self.end)], dtype=object)

    def index(self, chrom, start, end) -> np.ndarray:
        lookup = {k: i for i, k in enumerate(self.keys())}
        return np.array([lookup.get(f"{c}:{s}-{e}", -1) for c, s, e in zip(chrom, start, end)], np.int64)

    def n_bins(self, r: int) -> np.ndarray:
        return -(-(self.end - self.start) // r)

    def offsets(self, r: int) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.n_bins(r))]).astype(np.int64)

    def digest(self) -> str:
        h = hashlib.sha1()
        h.update("\n".join(self.keys()).encode())
        return h.hexdigest()


@dataclass
class BinnedRegions:
    regions: Regions
    resolutions: tuple[int, ...]
    marks: tuple[str, ...]
    values: dict[int, np.ndarray]  # r -> (total bins, M) float32, ln(mean + 1)
    offsets: dict[int, np.ndarray]  # r -> (R + 1,) int64

    def bins(self, r: int, index: int) -> np.ndarray:
        return self.values[r][self.offsets[r][index] : self.offsets[r][index + 1]]


def _spans(start: np.ndarray, end: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(span start, span end, first region, last region + 1) over regions sorted by start."""
    spans, a = [], 0
    lo, hi = int(start[0]), int(end[0])
    for i in range(1, len(start)):
        s, e = int(start[i]), int(end[i])
        if s - hi < MERGE_GAP_BP and max(hi, e) - lo <= MAX_SPAN_BP:
            hi = max(hi, e)
            continue
        spans.append((lo, hi, a, i))
        a, lo, hi = i, s, e
    spans.append((lo, hi, a, len(start)))
    return spans


def bin_span(cum: np.ndarray, span_start: int, start: np.ndarray, end: np.ndarray, r: int) -> np.ndarray:
    """ln(mean + 1) of every r-bp bin of regions [start, end) inside a span read from
    ``span_start`` (``cum``: its per-bp cumulative sum from 0, float64): (sum of n_bins,)
    float32 in region order, partial last bins averaged over their real bases."""
    n = -(-(end - start) // r)
    j = ragged_arange(n)
    first = np.repeat(start - span_start, n)
    lo = first + j * r
    hi = np.minimum(lo + r, np.repeat(end - span_start, n))
    return np.log1p((cum[hi] - cum[lo]) / (hi - lo)).astype(np.float32)


def bin_regions(read, regions: Regions, resolutions: Sequence[int]) -> dict[int, np.ndarray]:
    """Every region at every resolution from ``read(chrom, start, end)`` per-bp values."""
    out = {r: np.zeros(int(regions.offsets(r)[-1]), np.float32) for r in resolutions}
    offsets = {r: regions.offsets(r) for r in resolutions}
    chrom = regions.chrom.astype(str)
    for name in dict.fromkeys(chrom.tolist()):
        on = np.flatnonzero(chrom == name)
        on = on[np.argsort(regions.start[on], kind="stable")]
        start, end = regions.start[on], regions.end[on]
        for lo, hi, a, z in _spans(start, end):
            cum = np.concatenate([[0.0], np.cumsum(read(name, lo, hi), dtype=np.float64)])
            for r in resolutions:
                binned = bin_span(cum, lo, start[a:z], end[a:z], r)
                n = -(-(end[a:z] - start[a:z]) // r)
                dest = np.repeat(offsets[r][on[a:z]], n) + ragged_arange(n)
                out[r][dest] = binned
    return out


class WindowStore:
    def __init__(self, spec: DatasetSpec, cell: str, cache_dir: str | Path, chrom_sizes: dict[str, int], *,
                 resolutions: Sequence[int]):
        self.spec, self.cell = spec, str(cell)
        self.dir = Path(cache_dir) / "windows"
        self.chrom_sizes = dict(chrom_sizes)
        self.resolutions = tuple(int(r) for r in resolutions)

    def path(self, mark: str, regions: Regions) -> Path:
        source = self.spec.signal_path(self.cell, mark)
        key = {"source": source_signature(source) if source.exists() else str(source), "regions": regions.digest(),
               "resolutions": self.resolutions, "chrom_sizes": self.chrom_sizes, "format": FORMAT_VERSION}
        digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        return self.dir / f"{self.cell}-{mark}-{digest}.h5"

    @staticmethod
    def _complete(path: Path) -> bool:
        try:
            with h5py.File(path, "r") as f:
                return bool(f.attrs.get("complete", False))
        except (OSError, RuntimeError):
            return False

    def ensure(self, marks: Sequence[str], regions: Regions) -> list[Path]:
        """Build every missing mark's file (module doc); returns the files."""
        self.dir.mkdir(parents=True, exist_ok=True)
        paths = {mark: self.path(mark, regions) for mark in marks}
        if all(p.exists() and self._complete(p) for p in paths.values()):
            return list(paths.values())
        with FileLock(str(self.dir / f".{self.cell}.lock")):
            for mark, path in paths.items():
                if path.exists() and self._complete(path):
                    continue
                for stale in stale_temps(path):
                    stale.unlink(missing_ok=True)
                self._build(mark, regions, path)
        return list(paths.values())

    def _build(self, mark: str, regions: Regions, path: Path) -> None:
        source = self.spec.signal_path(self.cell, mark)
        log.info("binning %d regions of %s %s at %s bp from %s", len(regions), self.cell, mark, self.resolutions, source)
        with per_base(source, self.chrom_sizes) as read:
            binned = bin_regions(read, regions, self.resolutions)
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            for r, values in binned.items():
                f.create_dataset(f"values_{r}", data=values, compression="lzf", fletcher32=True,
                                 chunks=(min(len(values), 1 << 16),) if len(values) else None)
            f.attrs.update({"source": json.dumps(source_signature(source)), "regions": regions.digest(), "n_regions": len(regions),
                            "resolutions": list(self.resolutions), "format": FORMAT_VERSION, "mark": mark, "cell": self.cell})
            f.attrs["complete"] = True

    def load(self, marks: Sequence[str], regions: Regions) -> BinnedRegions:
        paths = self.ensure(marks, regions)
        offsets = {r: regions.offsets(r) for r in self.resolutions}
        values = {r: np.empty((int(offsets[r][-1]), len(marks)), np.float32) for r in self.resolutions}
        for m, path in enumerate(paths):
            try:
                with h5py.File(path, "r") as f:
                    for r in self.resolutions:
                        values[r][:, m] = f[f"values_{r}"][:]
            except (OSError, KeyError, RuntimeError) as err:
                raise InputError(f"{path}: the window store cannot be read ({err}); delete it and epx rebuilds it") from err
        return BinnedRegions(regions, self.resolutions, tuple(marks), values, offsets)
