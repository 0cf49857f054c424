"""In-silico saturation mutagenesis: every base of a window to each of the three others.

Contract:

- ``ism(job, rows, centers, *, flank_bp=50, batch_size=None) -> DataFrame[gene, gene_id,
  chrom, position, offset, ref, alt, prediction, mutant, delta]``: for gene ``rows[i]``, every
  base of ``centers[i] ± flank_bp`` (genomic, 0-based) that its one-hot input holds
  (``epx.explain.onehot``) is set to each other base, and the gene predicted again
  (``adapter.forward_genes``); ``delta`` = mutant - prediction. ``offset`` is the position
  minus the center; ``ref``/``alt`` are genomic-strand letters. An N base is left out. The
  genes x positions x 3 mutants are stacked into forward passes of ``batch_size`` copies
  (the adapter's default when None).
- ``motif_centers(job, rows, motifs, name) -> (N,) int64``: the middle of the best-scoring
  hit of motif ``name`` in each gene's input; -1 where the gene's input has none.
- ``base_scores(table) -> DataFrame[gene, gene_id, chrom, position, offset, ref, mean_delta,
  max_abs_delta]``: per base, the mean Δ over its three mutants (the ISM score a bigWig
  shows) and the largest |Δ|.
- ``heatmap(table, path, *, title)``: one panel per gene (up to 8), A C G T rows x positions,
  Δ coloured (diverging, 0 white), the reference base outlined.
- ``ism_bigwig(job, scores, path)``: ``mean_delta`` per base as a bigWig (1 bp entries; where
  genes' windows overlap, the value of largest magnitude), the cache's chromosome sizes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from epx.explain.motifs import MotifSet
from epx.explain.onehot import (
    onehot_adapter,
    BASES,
    channel,
    columns,
    onehot_layout,
    onehot_name,
    predict,
    predict_edited,
    substitute,
)
from epx.io.bigwig import open_bigwig
from epx.io.figures import save_png

COLUMNS = ["gene", "gene_id", "chrom", "position", "offset", "ref", "alt", "prediction", "mutant", "delta"]


def motif_centers(job, rows, motifs: MotifSet, name: str) -> np.ndarray:
    adapter = onehot_adapter(job)
    rows = adapter.check_rows(rows)
    one = motifs.subset([name])
    out = np.full(len(rows), -1, np.int64)
    per_forward = int(adapter.default_batch)
    input_name = onehot_name(job, "ISM")
    for lo in range(0, len(rows), per_forward):
        batch = adapter.batch(rows[lo : lo + per_forward])
        layout = onehot_layout(job, batch.rows, "ISM")
        hits = one.scan_onehot(batch.inputs[input_name])
        for b in np.unique(hits.batch):
            at = np.flatnonzero(hits.batch == b)
            best = at[np.argmax(hits.score[at])]
            out[lo + b] = layout.start[b, hits.start[best] + hits.width[best] // 2]
    return out


def ism(job, rows, centers, *, flank_bp: int = 50, batch_size: int | None = None) -> pd.DataFrame:
    adapter = onehot_adapter(job)
    rows = adapter.check_rows(rows)
    centers = np.asarray(centers, np.int64).reshape(-1)
    name = onehot_name(job, "ISM")
    per_forward = int(batch_size or adapter.default_batch)
    offsets = np.arange(-int(flank_bp), int(flank_bp) + 1)
    frames = []
    for lo in range(0, len(rows), per_forward):
        batch = adapter.batch(rows[lo : lo + per_forward])
        layout = onehot_layout(job, batch.rows, "ISM")
        n = len(batch.rows)
        gene = np.repeat(np.arange(n), len(offsets))
        position = np.repeat(centers[lo : lo + n], len(offsets)) + np.tile(offsets, n)
        col = columns(layout, gene, position)
        x = batch.inputs[name]
        ok = col >= 0
        ref_channel = np.full(len(col), -1)
        if ok.any():
            column_values = x[torch.as_tensor(gene[ok]), :, torch.as_tensor(col[ok])].cpu().numpy()  # (P, 4)
            present = column_values.max(axis=1) > 0.5
            ref_channel[np.flatnonzero(ok)[present]] = column_values[present].argmax(axis=1)
        keep = ref_channel >= 0
        gene, position, col, ref_channel = gene[keep], position[keep], col[keep], ref_channel[keep]
        # genomic-strand bases: a reversed input holds complements
        ref = channel(layout, gene, ref_channel)
        alt = (ref[:, None] + np.arange(1, 4)[None, :]) % 4  # (P, 3)
        g3, c3 = np.repeat(gene, 3), np.repeat(col, 3)
        mutate = substitute(c3, channel(layout, g3, alt.reshape(-1)))
        base = predict(adapter, batch, per_forward)
        mutant = predict_edited(adapter, batch, name, g3, mutate, per_forward) if len(g3) else np.zeros(0)
        table = job.genes.iloc[batch.rows]
        frames.append(pd.DataFrame({
            "gene": batch.rows[g3], "gene_id": table["gene_id"].to_numpy()[g3], "chrom": table["chrom"].to_numpy()[g3],
            "position": np.repeat(position, 3), "offset": np.repeat(position - np.repeat(centers[lo : lo + n], len(offsets))[keep], 3),
            "ref": np.array(BASES, dtype=object)[np.repeat(ref, 3)], "alt": np.array(BASES, dtype=object)[alt.reshape(-1)],
            "prediction": base[g3], "mutant": mutant, "delta": mutant - base[g3],
        }))
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(frames, ignore_index=True)[COLUMNS]


def base_scores(table: pd.DataFrame) -> pd.DataFrame:
    keys = ["gene", "gene_id", "chrom", "position", "offset", "ref"]
    grouped = table.assign(abs_delta=table["delta"].abs()).groupby(keys, as_index=False, sort=False)
    return grouped.agg(mean_delta=("delta", "mean"), max_abs_delta=("abs_delta", "max"))


def heatmap(table: pd.DataFrame, path: Path, *, title: str, max_genes: int = 8) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    genes = list(dict.fromkeys(table["gene"]))[:max_genes]
    fig, axes = plt.subplots(len(genes), 1, figsize=(10, 1.3 * max(len(genes), 1) + 0.6), squeeze=False)
    for ax, gene in zip(axes[:, 0], genes):
        part = table[table["gene"] == gene]
        offsets = np.sort(part["offset"].unique())
        grid = np.zeros((4, len(offsets)))
        col = np.searchsorted(offsets, part["offset"].to_numpy())
        grid[part["alt"].map(BASES.index).to_numpy(), col] = part["delta"].to_numpy()
        limit = max(float(np.abs(grid).max()), 1e-12)
        ax.imshow(grid, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest",
                  extent=(offsets[0] - 0.5, offsets[-1] + 0.5, 3.5, -0.5))
        refs = part.drop_duplicates("offset")
        ax.scatter(refs["offset"], refs["ref"].map(BASES.index), s=4, c="k", marker="s")
        ax.set_yticks(range(4), BASES, fontsize=7)
        ax.set_ylabel(str(part["gene_id"].iloc[0]), fontsize=7)
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("bp from the window's center (genomic strand); black: reference base", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_png(fig, path, dpi=120)


def ism_bigwig(job, scores: pd.DataFrame, path: Path) -> Path:
    sizes = job.chrom_sizes()
    best = scores.assign(abs_mean=scores["mean_delta"].abs()).sort_values("abs_mean", ascending=False, kind="stable")
    best = best.drop_duplicates(["chrom", "position"])
    with open_bigwig(path, sizes) as bw:
        for chrom in sizes:
            part = best[best["chrom"] == chrom].sort_values("position")
            if len(part):
                starts = part["position"].to_numpy(np.int64)
                bw.add(chrom, starts, starts + 1, part["mean_delta"].to_numpy(np.float32))
    return Path(path)


# ------------------------------------------------------------------------------ epx explain

CENTERS = ("tss", "motif")


def _rows(job, options) -> np.ndarray:
    from epx.errors import InputError

    if options["genes"]:
        ids = job.genes["gene_id"].to_numpy()
        wanted = [str(g) for g in options["genes"]]
        missing = [g for g in wanted if g not in set(ids)]
        if missing:
            raise InputError(f"analysis.ism.genes: {', '.join(missing[:5])} not in the job's gene table")
        return np.array([int(np.flatnonzero(ids == g)[0]) for g in wanted], np.int64)
    rows = job.rows(options["split"])
    return np.sort(rows)[: int(options["max_genes"])] if options["max_genes"] else rows


def check(job, options) -> None:
    from epx.errors import InputError
    from epx.explain.knockout import motif_set

    onehot_name(job, "ISM")
    if options["center"] not in CENTERS:
        raise InputError(f"analysis.ism.center={options['center']!r}; choose one of {', '.join(CENTERS)}")
    if int(options["flank_bp"]) < 0:
        raise InputError(f"analysis.ism.flank_bp must be >= 0, got {options['flank_bp']}")
    if options["center"] == "motif":
        if not options["motif"]:
            raise InputError("analysis.ism.center=motif needs analysis.ism.motif=NAME (a motif of the motifs file)")
        motif_set(job, {**options, "names": [options["motif"]]})


def run(job, out: Path, options) -> list[Path]:
    import logging

    from epx.explain.knockout import motif_set
    from epx.io.atomic import write_csv

    rows = _rows(job, options)
    if options["center"] == "motif":
        centers = motif_centers(job, rows, motif_set(job, {**options, "names": [options["motif"]]}), options["motif"])
        found = centers >= 0
        if not found.all():
            logging.getLogger(__name__).info("%s: ISM: %d of %d genes have no %s hit in their input; left out", job.dir, (~found).sum(), len(rows), options["motif"])
        rows, centers = rows[found], centers[found]
    else:
        centers = job.genes["tss"].to_numpy(np.int64)[rows]
    table = ism(job, rows, centers, flank_bp=int(options["flank_bp"]), batch_size=options["batch_size"])
    scores = base_scores(table)
    paths = [write_csv(out / "ism.tsv", table, sep="\t"), write_csv(out / "ism_bases.tsv", scores, sep="\t")]
    if len(table):
        where = "TSS" if options["center"] == "tss" else f"best {options['motif']} hit"
        paths.append(heatmap(table, out / "ism.png", title=f"{job.model}: ISM around the {where} (Δ prediction per mutant)"))
        if options["bigwig"]:
            paths.append(ism_bigwig(job, scores, out / "ism.bigwig"))
    return paths
