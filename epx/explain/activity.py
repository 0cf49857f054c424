"""Mark activity around the TSS (issue 13, part 1): model-free, as epi_to_express reports it.

Contract:

- ``region_means(tracks, chroms, starts, ends) -> (N, M)`` float64: the mean per-bp signal of
  every mark over each region ``[start, end)``, from the cache's 100 bp bin means
  (``SignalTracks.tracks``, raw signal, not the models' ln(mean + 1)). A bin partly inside a
  region counts by its overlap, so the value is exact wherever the signal is constant within
  each partly covered bin; bases off the chromosome (or on a chromosome the tracks lack)
  count as 0, as uncovered bigWig bases do. One cumulative sum per chromosome: any region
  length, no per-gene loop.
- ``tss_region(genes, upstream, downstream)``: the region in the gene's orientation: ``+``
  ``[tss - upstream, tss + downstream)``; ``−`` mirrored about the TSS base,
  ``[tss - downstream + 1, tss + upstream + 1)`` (as the models' windows mirror − strands).
  "TSS ± f" is ``upstream = downstream = f`` (2f bp, the TSS base the first downstream one).
- ``mark_activity(tracks, genes, *, cell, flanks_bp=(750, 1500, 3000), profile_bp=6000,
  profile_bin_bp=100) -> MarkActivity``: per gene and mark the mean over TSS ± each flank
  (``means``, one row per gene × mark: ``gene_id chrom tss strand cell mark rpkm target
  expressed [split] mean_750 mean_1500 mean_3000``) and the per-bin profile over
  ``profile_bp`` centred on the TSS, 5'→3' (``profiles`` (N, M, L), bin ``k`` starting at
  ``offsets[k]`` bp from the TSS). ``expressed`` is the gene table's ``label``: RPKM ≥ the
  cell's median over all genes (the classification task's "high"; DeepChrome's split).
- ``correlations(activities) -> DataFrame[cell, group, mark, flank_bp, n, spearman,
  pearson]``: per cell, mark and flank, the correlation of the TSS mean with log2(RPKM + 1)
  over the genes: Spearman on the raw means, Pearson on ln(mean + 1) (the models' input
  transform; raw ChIP signal is heavy-tailed and one locus would dominate Pearson).
- ``group_correlations(corr) -> DataFrame[group, mark, flank_bp, n_cells, cells, spearman,
  pearson, spearman_min, spearman_max]``: the mean (and range) over the cells of each cell
  group of ``epx/resources/cells.tsv`` (``group`` column: ESC, ESC-derived, primary tissue,
  cancer line; GM12878, an EBV-immortalised lymphoblastoid line — neither a tumour line nor
  primary tissue — is its own "cell line" group, docs/explain.md); a cell outside the table
  is its own group.
- ``profile_summary(activity) -> DataFrame[cell, mark, expressed, offset_bp, mean, sem, n]``
  and ``plot_profiles(activity, path)``: one panel per mark, the mean profile (± s.e.m.) of
  expressed and not expressed genes (PNG, Matplotlib's object API, atomic).
- ``write_activity(activities, out_dir) -> {name: path}``: ``activity.tsv``,
  ``activity_correlation.tsv``, ``activity_correlation_groups.tsv``,
  ``activity_profile_summary.tsv``, ``activity_profiles.npz`` (per-gene profiles: gene_ids,
  marks, offsets, values (N, M, L) per cell), ``activity_profiles_{cell}.png``; each table
  also as ``.parquet`` when pyarrow is installed.
- ``activity_for_job(job, *, split=None, out_dir=None)``: from an ``ExplainJob``'s
  DataModule (its cell, marks, cache and gene table; ``split`` None = every used gene).
- ``activity_for_folder(root, cells, marks, *, cache_dir, spec=None, out_dir=None)``: from a
  dataset folder directly (the same cache a job builds; every gene the TSS file and
  expression table share, on chromosomes the signals have).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from epx.constants import CELLS, MARKS
from epx.errors import InputError
from epx.io.atomic import atomic_write, write_table
from epx.io.figures import save_png

log = logging.getLogger(__name__)

FLANKS_BP: tuple[int, ...] = (750, 1500, 3000)
PROFILE_BP = 6000
PROFILE_BIN_BP = 100


# ----------------------------------------------------------------------------- signal over regions


def _cumulative(track: np.ndarray, base_bp: int) -> np.ndarray:
    """(n_bins + 1, M) float64: the integral of the per-bp signal up to each bin boundary."""
    out = np.zeros((track.shape[0] + 1, track.shape[1]), np.float64)
    np.cumsum(track.astype(np.float64) * base_bp, axis=0, out=out[1:])
    return out


def _integral(track: np.ndarray, cum: np.ndarray, pos: np.ndarray, base_bp: int) -> np.ndarray:
    """The signal integrated over [0, pos) for positions ``pos`` (any shape) → (*shape, M)."""
    n = track.shape[0]
    pos = np.clip(np.asarray(pos, np.int64), 0, n * base_bp)
    k = np.minimum(pos // base_bp, n - 1) if n else np.zeros_like(pos)
    part = (pos - k * base_bp)[..., None].astype(np.float64)
    return cum[k] + part * track[k].astype(np.float64)


def _by_chrom(tracks, chroms):
    """``(rows, track, cumulative integral)`` for each chromosome of ``chroms`` the tracks hold
    (regions on the others keep their zeros)."""
    chroms = np.asarray(chroms, dtype=object)
    for chrom in pd.unique(chroms):
        track = tracks.tracks.get(chrom)
        if track is not None and len(track):
            yield np.flatnonzero(chroms == chrom), track, _cumulative(track, tracks.base_bp)


def region_means(tracks, chroms, starts, ends) -> np.ndarray:
    """Mean per-bp signal (N, M) of every mark over each region ``[start, end)``."""
    starts, ends = np.asarray(starts, np.int64), np.asarray(ends, np.int64)
    out = np.zeros((len(starts), tracks.n_marks), np.float64)
    width = np.maximum(ends - starts, 1).astype(np.float64)
    for rows, track, cum in _by_chrom(tracks, chroms):
        total = _integral(track, cum, ends[rows], tracks.base_bp) - _integral(track, cum, starts[rows], tracks.base_bp)
        out[rows] = total / width[rows, None]
    return out


def region_profiles(tracks, chroms, edges) -> np.ndarray:
    """Mean per-bp signal (N, M, L) over consecutive regions ``[edges[:, k], edges[:, k + 1])``."""
    edges = np.asarray(edges, np.int64)
    n, l1 = edges.shape
    out = np.zeros((n, tracks.n_marks, max(l1 - 1, 0)), np.float64)
    for rows, track, cum in _by_chrom(tracks, chroms):
        integral = _integral(track, cum, edges[rows], tracks.base_bp)  # (n, L + 1, M)
        width = np.diff(edges[rows], axis=1).astype(np.float64)
        out[rows] = (np.diff(integral, axis=1) / width[..., None]).transpose(0, 2, 1)
    return out


def tss_region(genes: pd.DataFrame, upstream: int, downstream: int) -> tuple[np.ndarray, np.ndarray]:
    """``(start, end)`` of each gene's region ``upstream`` bp 5' of the TSS to ``downstream`` bp 3'."""
    tss = genes["tss"].to_numpy(np.int64)
    minus = (genes["strand"] == "-").to_numpy()
    start = np.where(minus, tss - downstream + 1, tss - upstream)
    return start, start + upstream + downstream


def tss_profiles(tracks, genes: pd.DataFrame, *, window_bp: int = PROFILE_BP, bin_bp: int = PROFILE_BIN_BP) -> tuple[np.ndarray, np.ndarray]:
    """(N, M, L) per-bin mean signal over ``window_bp`` centred on the TSS, 5'→3', and the
    bins' start offsets (L,) from the TSS in bp (the gene's orientation)."""
    if window_bp <= 0 or bin_bp <= 0 or window_bp % bin_bp:
        raise InputError(f"profile window {window_bp} bp must be a positive multiple of its bin {bin_bp} bp")
    offsets = np.arange(-window_bp // 2, window_bp // 2 + 1, bin_bp, dtype=np.int64)  # L + 1 bin edges
    tss = genes["tss"].to_numpy(np.int64)[:, None]
    minus = (genes["strand"] == "-").to_numpy()
    edges = tss + offsets[None, :]
    # − strand: 5'→3' bin k is the mirror of [tss + o_k, tss + o_k+1): [tss - o_k+1 + 1, tss - o_k + 1)
    edges[minus] = (tss[minus] - offsets[None, ::-1] + 1)
    profiles = region_profiles(tracks, genes["chrom"].to_numpy(), edges)
    profiles[minus] = profiles[minus][..., ::-1]
    return profiles, offsets[:-1]


# ----------------------------------------------------------------------------- per gene


@dataclass
class MarkActivity:
    cell: str
    marks: tuple[str, ...]
    genes: pd.DataFrame  # gene_id chrom tss strand rpkm target expressed [split], row-aligned with profiles
    flanks_bp: tuple[int, ...]
    tss_means: np.ndarray  # (N, M, F) mean signal over TSS ± flanks_bp[f]
    profiles: np.ndarray  # (N, M, L)
    offsets: np.ndarray  # (L,) bp from the TSS of each profile bin's start

    @property
    def means(self) -> pd.DataFrame:
        """One row per gene × mark: the gene's columns, ``cell``, ``mark``, ``mean_<flank>``."""
        n, m, _ = self.tss_means.shape
        frame = self.genes.iloc[np.repeat(np.arange(n), m)].reset_index(drop=True)
        frame.insert(4, "cell", self.cell)
        frame.insert(5, "mark", np.tile(np.asarray(self.marks, dtype=object), n))
        for f, flank in enumerate(self.flanks_bp):
            frame[f"mean_{flank}"] = self.tss_means[:, :, f].reshape(-1)
        return frame


GENE_COLUMNS = ["gene_id", "chrom", "tss", "strand", "rpkm", "target", "expressed"]


def _gene_frame(genes: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("gene_id", "chrom", "tss", "strand") if c not in genes.columns]
    if missing:
        raise InputError(f"mark activity needs a gene table with gene_id, chrom, tss, strand; missing {missing}")
    out = genes[["gene_id", "chrom", "tss", "strand"]].copy()
    rpkm = genes["rpkm"].to_numpy(np.float64) if "rpkm" in genes.columns else np.full(len(genes), np.nan)
    out["rpkm"] = rpkm
    out["target"] = genes["target"].to_numpy(np.float64) if "target" in genes.columns else np.log2(rpkm + 1.0)
    if "label" in genes.columns:
        out["expressed"] = genes["label"].to_numpy().astype(bool)
    else:  # the classification label's definition, over these genes
        finite = rpkm[np.isfinite(rpkm)]
        out["expressed"] = rpkm >= (np.median(finite) if len(finite) else np.inf)
    if "split" in genes.columns:
        out["split"] = genes["split"].to_numpy()
    return out.reset_index(drop=True)


def mark_activity(
    tracks,
    genes: pd.DataFrame,
    *,
    cell: str,
    flanks_bp: Sequence[int] = FLANKS_BP,
    profile_bp: int = PROFILE_BP,
    profile_bin_bp: int = PROFILE_BIN_BP,
) -> MarkActivity:
    """Mean signal over TSS ± each flank and the TSS profile, per gene and mark."""
    frame = _gene_frame(genes)
    if not len(frame):
        raise InputError(f"mark activity for cell {cell}: no genes to measure")
    means = np.stack(
        [region_means(tracks, frame["chrom"].to_numpy(), *tss_region(frame, int(f), int(f))) for f in flanks_bp], axis=-1
    )
    profiles, offsets = tss_profiles(tracks, frame, window_bp=profile_bp, bin_bp=profile_bin_bp)
    return MarkActivity(str(cell), tuple(tracks.marks), frame, tuple(int(f) for f in flanks_bp), means, profiles, offsets)


# ----------------------------------------------------------------------------- correlation


def cell_group(cell: str) -> str:
    """The cell's group in ``epx/resources/cells.tsv``; a cell outside it is its own group."""
    return CELLS.get(cell, {}).get("group", cell)


def _corr(x: np.ndarray, y: np.ndarray, method: str) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return float("nan")
    a, b = pd.Series(x[ok]), pd.Series(y[ok])
    if a.nunique() < 2 or b.nunique() < 2:
        return float("nan")  # a constant: no correlation defined
    return float(a.corr(b, method=method))


def correlations(activities: Iterable[MarkActivity]) -> pd.DataFrame:
    rows = []
    for act in activities:
        target = act.genes["target"].to_numpy(np.float64)
        for m, mark in enumerate(act.marks):
            for f, flank in enumerate(act.flanks_bp):
                signal = act.tss_means[:, m, f]
                rows.append(
                    {
                        "cell": act.cell,
                        "group": cell_group(act.cell),
                        "mark": mark,
                        "flank_bp": flank,
                        "n": int(np.isfinite(target).sum()),
                        "spearman": _corr(signal, target, "spearman"),
                        "pearson": _corr(np.log1p(signal), target, "pearson"),
                    }
                )
    return pd.DataFrame(rows, columns=["cell", "group", "mark", "flank_bp", "n", "spearman", "pearson"])


def group_correlations(corr: pd.DataFrame) -> pd.DataFrame:
    columns = ["group", "mark", "flank_bp", "n_cells", "cells", "spearman", "pearson", "spearman_min", "spearman_max"]
    if corr.empty:
        return pd.DataFrame(columns=columns)
    out = (
        corr.groupby(["group", "mark", "flank_bp"], sort=False)
        .agg(
            n_cells=("cell", "nunique"),
            cells=("cell", lambda c: ",".join(dict.fromkeys(c))),
            spearman=("spearman", "mean"),
            pearson=("pearson", "mean"),
            spearman_min=("spearman", "min"),
            spearman_max=("spearman", "max"),
        )
        .reset_index()
    )
    return out[columns]


# ----------------------------------------------------------------------------- profiles


def profile_summary(activity: MarkActivity) -> pd.DataFrame:
    parts = []
    expressed = activity.genes["expressed"].to_numpy(bool)
    for m, mark in enumerate(activity.marks):
        for flag in (True, False):
            values = activity.profiles[expressed == flag, m, :]
            n = len(values)
            mean = values.mean(axis=0) if n else np.full(len(activity.offsets), np.nan)
            sem = values.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.full(len(activity.offsets), np.nan)
            parts.append(
                pd.DataFrame(
                    {"cell": activity.cell, "mark": mark, "expressed": flag, "offset_bp": activity.offsets, "mean": mean, "sem": sem, "n": n}
                )
            )
    return pd.concat(parts, ignore_index=True)


def plot_profiles(activity: MarkActivity, path: str | Path) -> Path:
    """One panel per mark: mean TSS profile (± s.e.m.) of expressed vs not expressed genes."""
    summary = profile_summary(activity)
    marks = list(activity.marks)
    ncols = min(4, len(marks))
    nrows = -(-len(marks) // ncols)
    fig = Figure(figsize=(3.6 * ncols, 2.9 * nrows), constrained_layout=True)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    centre = (activity.offsets[1] - activity.offsets[0]) / 2 if len(activity.offsets) > 1 else 0
    for ax, mark in zip(axes.flat, marks):
        for flag, colour, label in ((True, "tab:red", "expressed"), (False, "tab:blue", "not expressed")):
            part = summary[(summary["mark"] == mark) & (summary["expressed"] == flag)]
            x = (part["offset_bp"].to_numpy() + centre) / 1000
            ax.plot(x, part["mean"], color=colour, label=f"{label} (n={int(part['n'].iloc[0]) if len(part) else 0})")
            ax.fill_between(x, part["mean"] - part["sem"].fillna(0), part["mean"] + part["sem"].fillna(0), color=colour, alpha=0.2, lw=0)
        ax.axvline(0, color="grey", lw=0.6, ls=":")
        ax.set_title(mark)
        ax.set_xlabel("kb from TSS (5'→3')")
        ax.set_ylabel("mean signal")
        ax.legend(fontsize=7, frameon=False)
    for ax in list(axes.flat)[len(marks):]:
        ax.set_visible(False)
    fig.suptitle(f"{activity.cell}: mark profiles around the TSS")
    return save_png(fig, path, dpi=110)


# ----------------------------------------------------------------------------- outputs


def write_activity(activities: Sequence[MarkActivity], out_dir: str | Path) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    activities = list(activities)
    corr = correlations(activities)
    paths = {
        "activity": write_table(pd.concat([a.means for a in activities], ignore_index=True), out / "activity.tsv")[0],
        "correlation": write_table(corr, out / "activity_correlation.tsv")[0],
        "correlation_groups": write_table(group_correlations(corr), out / "activity_correlation_groups.tsv")[0],
        "profile_summary": write_table(pd.concat([profile_summary(a) for a in activities], ignore_index=True), out / "activity_profile_summary.tsv")[0],
    }
    arrays = {}
    for a in activities:
        arrays[f"{a.cell}/gene_ids"] = a.genes["gene_id"].to_numpy(dtype=str)
        arrays[f"{a.cell}/values"] = a.profiles.astype(np.float32)
        arrays[f"{a.cell}/marks"] = np.asarray(a.marks, dtype=str)
        arrays[f"{a.cell}/offsets"] = a.offsets
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    paths["profiles"] = atomic_write(out / "activity_profiles.npz", lambda h: h.write(buffer.getvalue()), binary=True)
    for a in activities:
        paths[f"plot_{a.cell}"] = plot_profiles(a, out / f"activity_profiles_{a.cell}.png")
    return paths


# ----------------------------------------------------------------------------- entry points


def _profile_geometry(inputs, genes: pd.DataFrame, base_bp: int) -> tuple[int, int]:
    """The model's window for the profile: as wide as what its builder reads per gene
    (``InputBuilder.intervals``), capped at 40 kb; 100 bp bins up to 10 kb, else 500."""
    spans = inputs.intervals(genes, base_bp=base_bp)
    window = int((spans.end - spans.start).max()) if len(genes) else PROFILE_BP
    if window > 40_000:  # GraphReg's 6 Mb: a per-gene profile that long says nothing here
        window = 40_000
    bin_bp = PROFILE_BIN_BP if window <= 10_000 else 500
    return window, bin_bp


def activity_for_job(job, *, split: str | None = None, out_dir: str | Path | None = None, flanks_bp: Sequence[int] = FLANKS_BP) -> MarkActivity:
    """Mark activity of an ``ExplainJob``'s genes (``split`` None: every used gene) in its cell."""
    from epx.data.tracks import SignalTracks

    dm = job.dm
    genes = dm.genes.assign(split=dm.split.to_numpy())
    rows = np.flatnonzero((dm.split != "unused").to_numpy()) if split is None else np.asarray(job.rows(split))
    genes = genes.iloc[rows]
    chroms = list(pd.unique(genes["chrom"]))
    marks = list(getattr(job, "marks", None) or dm.marks)
    tracks = SignalTracks(dm.cell_cache(dm.cell).load(marks, chroms=chroms), marks, base_bp=dm.bin_bp)
    window, bin_bp = _profile_geometry(dm.inputs, genes, dm.bin_bp)
    activity = mark_activity(tracks, genes, cell=dm.cell, flanks_bp=flanks_bp, profile_bp=window, profile_bin_bp=bin_bp)
    if out_dir is not None:
        write_activity([activity], out_dir)
    return activity


def activity_for_folder(
    root: str | Path,
    cells: str | Sequence[str],
    marks: str | Sequence[str] = "all",
    *,
    cache_dir: str | Path,
    spec=None,
    out_dir: str | Path | None = None,
    flanks_bp: Sequence[int] = FLANKS_BP,
    profile_bp: int = PROFILE_BP,
    profile_bin_bp: int = PROFILE_BIN_BP,
) -> list[MarkActivity]:
    """Mark activity straight from a dataset folder, one ``MarkActivity`` per cell."""
    from epx.data.prepare.cache import CellCache
    from epx.data.prepare.contract import DatasetSpec
    from epx.data.prepare.genes import account_genes
    from epx.data.tracks import SignalTracks
    from epx.selection import parse_marks

    spec = spec if spec is not None else DatasetSpec(root)
    spec.materialize()
    cells = [cells] if isinstance(cells, str) else list(cells)
    marks = list(parse_marks(marks))
    spec.check(cells, marks)
    activities = []
    for cell in cells:
        cache = CellCache(spec, cell, cache_dir)
        account = account_genes(
            spec.path("tss"),
            spec.path("expression"),
            cell,
            cache.chrom_sizes,
            signal_chroms=spec.signal_chroms(cell, marks, cache.chrom_sizes),
            exact_names=spec.exact_names,
        )
        account.log()
        genes = account.genes
        if not len(genes):
            raise InputError(f"{spec.root}: no gene of cell {cell} is usable (see the warnings above); nothing to measure")
        chroms = list(pd.unique(genes["chrom"]))
        tracks = SignalTracks(cache.load(marks, chroms=chroms), marks, base_bp=cache.bin_bp)
        activities.append(mark_activity(tracks, genes, cell=cell, flanks_bp=flanks_bp, profile_bp=profile_bp, profile_bin_bp=profile_bin_bp))
    if out_dir is not None:
        write_activity(activities, out_dir)
    return activities


__all__ = [
    "FLANKS_BP",
    "MARKS",
    "MarkActivity",
    "activity_for_folder",
    "activity_for_job",
    "cell_group",
    "correlations",
    "group_correlations",
    "mark_activity",
    "plot_profiles",
    "profile_summary",
    "region_means",
    "tss_profiles",
    "tss_region",
    "write_activity",
]
