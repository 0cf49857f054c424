"""Hi-C contact maps (``.hic``, ``.cool``, ``.mcool``) read at one resolution, one chromosome at a time.

Contract:

- ``open_map(path, resolution=5000) -> ContactMap``: ``.cool`` / ``.mcool`` through cooler,
  ``.hic`` through hic-straw (``import hicstraw``; PyPI ``hic-straw``), chosen by the file's
  own bytes (HDF5 or the ``HIC`` magic), not its name. An ``.mcool`` must hold
  ``/resolutions/<resolution>``, a ``.cool`` must be binned at it, a ``.hic`` must list it in
  its base-pair resolutions: otherwise one ``InputError`` naming the file, the resolutions it
  has and the fix (``cooler zoomify``, or a map at 5 kb). A missing reader library is one
  ``InputError`` naming the package to install.
- ``ContactMap.chroms`` → ``{name: length}`` in the file's order (hic-straw's ``All`` and
  ``chrM``-less pseudo-entries left out); ``ContactMap.pixels(chrom, max_distance=None)`` →
  ``DataFrame[bin1, bin2, count]``: the upper triangle (``bin1 <= bin2``) of the chromosome's
  intra-chromosomal map, bin indices at the map's resolution (bin ``i`` covers
  ``[i * res, (i + 1) * res)``), raw counts (``balance=False`` / straw ``NONE``: the
  significance test is a count model), pairs further than ``max_distance`` bp apart left out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from epx.errors import InputError

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
HIC_MAGIC = b"HIC\x00"
RESOLUTION_BP = 5000  # GraphReg's Hi-C graph resolution


def _kind(path: Path) -> str:
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(HDF5_MAGIC):
        return "cooler"
    if head.startswith(HIC_MAGIC):
        return "hic"
    raise InputError(
        f"{path} is neither a .cool/.mcool (HDF5) nor a .hic file (first bytes {head!r}); give a Hi-C contact map "
        "written by cooler or juicer"
    )


@dataclass
class ContactMap:
    """One map at one resolution; ``pixels`` reads one chromosome."""

    path: Path
    resolution: int
    kind: str
    chroms: dict[str, int]
    _handle: Any = field(default=None, repr=False)

    def pixels(self, chrom: str, max_distance: int | None = None) -> pd.DataFrame:
        if chrom not in self.chroms:
            raise InputError(f"{self.path} has no chromosome {chrom!r}; it has {', '.join(self.chroms)}")
        frame = _cooler_pixels(self, chrom) if self.kind == "cooler" else _hic_pixels(self, chrom)
        frame = frame[frame["bin1"] <= frame["bin2"]]
        if max_distance is not None:
            frame = frame[(frame["bin2"] - frame["bin1"]) * self.resolution <= max_distance]
        return frame.reset_index(drop=True)


def _need(module: str, package: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise InputError(f"reading this map needs the {package!r} package ({err}); pip install {package}") from None


def _cooler_map(path: Path, resolution: int) -> ContactMap:
    cooler = _need("cooler", "cooler")
    groups = cooler.fileops.list_coolers(str(path))
    if "/resolutions/" + str(resolution) in groups:
        uri = f"{path}::/resolutions/{resolution}"
    elif len(groups) == 1:
        uri = f"{path}::{groups[0]}"
    else:
        have = sorted(int(g.rsplit("/", 1)[-1]) for g in groups if g.startswith("/resolutions/"))
        raise InputError(
            f"{path} has no {resolution} bp resolution (it has {have or groups}); make one with "
            f"`cooler zoomify --resolutions {resolution} BASE.cool` from a base at or below {resolution} bp"
        )
    clr = cooler.Cooler(uri)
    if clr.binsize != resolution:
        raise InputError(
            f"{path} is binned at {clr.binsize} bp, not {resolution} bp; make a {resolution} bp map with "
            f"`cooler zoomify --resolutions {resolution}` (from a base at or below {resolution} bp) and give the .mcool"
        )
    chroms = dict(zip(clr.chromnames, (int(n) for n in clr.chromsizes), strict=True))
    return ContactMap(path, resolution, "cooler", chroms, clr)


def _cooler_pixels(cmap: ContactMap, chrom: str) -> pd.DataFrame:
    clr = cmap._handle
    offset = int(clr.offset(chrom))
    frame = clr.matrix(balance=False, as_pixels=True, join=False).fetch(chrom)
    return pd.DataFrame({
        "bin1": frame["bin1_id"].to_numpy(np.int64) - offset,
        "bin2": frame["bin2_id"].to_numpy(np.int64) - offset,
        "count": frame["count"].to_numpy(np.float64),
    })


def _hic_map(path: Path, resolution: int) -> ContactMap:
    hicstraw = _need("hicstraw", "hic-straw")
    hic = hicstraw.HiCFile(str(path))
    have = [int(r) for r in hic.getResolutions()]
    if resolution not in have:
        raise InputError(
            f"{path} has no {resolution} bp resolution (it has {sorted(have)} bp); GraphReg's graph is at "
            f"{resolution} bp: use a .hic that includes it (juicer `pre` with -r {resolution}) or a .mcool"
        )
    chroms = {c.name: int(c.length) for c in hic.getChromosomes() if c.name.lower() != "all" and int(c.length) > 0}
    return ContactMap(path, resolution, "hic", chroms, hic)


def _hic_pixels(cmap: ContactMap, chrom: str) -> pd.DataFrame:
    zoom = cmap._handle.getMatrixZoomData(chrom, chrom, "observed", "NONE", "BP", cmap.resolution)
    end = cmap.chroms[chrom]
    records = zoom.getRecords(0, end, 0, end)
    x = np.fromiter((r.binX for r in records), np.int64, len(records))
    y = np.fromiter((r.binY for r in records), np.int64, len(records))
    counts = np.fromiter((r.counts for r in records), np.float64, len(records))
    lo, hi = np.minimum(x, y), np.maximum(x, y)
    return pd.DataFrame({"bin1": lo // cmap.resolution, "bin2": hi // cmap.resolution, "count": counts})


def open_map(path: str | os.PathLike, resolution: int = RESOLUTION_BP) -> ContactMap:
    """The map at ``path`` at ``resolution`` bp (module doc)."""
    path = Path(str(path).split("::", 1)[0])
    if not path.is_file():
        raise FileNotFoundError(f"Hi-C map {path} does not exist")
    return _cooler_map(path, resolution) if _kind(path) == "cooler" else _hic_map(path, resolution)
