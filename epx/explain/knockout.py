"""Motif knockout: zero the one-hot DNA at one TF's motif hits and read each gene's change.

Contract:

- ``knockout(job, rows, motifs, *, regions=None, batch_size=None) -> DataFrame[motif, gene,
  gene_id, chrom, tss, n_hits, n_bases, prediction, knockout, delta, log2_fold_change]``:
  for each motif of ``motifs`` (``epx.explain.motifs.MotifSet``) and each gene of ``rows``,
  the motif's hits (p <= the set's threshold, either strand) in the gene's one-hot input
  (``epx.explain.onehot``) are set to N (all-zero columns: the model's "no base") and the
  gene predicted again. ``regions`` (DataFrame[chrom, start, end] and optionally
  ``gene_id``) keeps only the hits overlapping a region (of that gene, where the table names
  genes): peaks, or the gene's linked enhancers. ``n_hits`` / ``n_bases`` count the hits and
  the columns zeroed; a gene with no hit keeps its prediction (delta 0, no forward pass).
  ``prediction`` / ``knockout`` are ``adapter.forward_genes`` (log2(value + 1) for sequence
  models), ``delta`` their difference; ``log2_fold_change`` = delta, the log2 fold change of
  (value + 1), for regression scores (NaN for classification, whose score is a log-odds).
  A hit is found only when it lies wholly inside the input (a window's edge cuts none).
- ``ranked(table, top=100, planted=None, min_effect=0.0) -> DataFrame``: per motif, the
  down-regulated genes (log2 fold change < -``min_effect``: a call threshold, so a knockout
  that moves genes by noise alone calls none), most down first, ``rank`` 1.., the first
  ``top``; ``planted`` ``{motif: set of gene ids}`` adds a ``planted`` column (the synthetic truth).
- ``summary(table, top, planted=None, min_effect=0.0) -> DataFrame``: per motif, genes, genes
  with hits, genes down (called as in ``ranked``), mean and min log2 fold change and, with
  ``planted``, ``n_planted``, ``k`` and ``precision_at_k`` (k = min(top, n_planted)) of its
  ranked list, ``against`` saying which genes count as hits: ``own`` (the motif's planted
  targets) or, for a motif that drives nothing (a decoy), ``any driver`` (the union of every
  other motif's targets; k = min(top, their number)): a decoy's called genes that are some
  driver's targets score as hits, so its precision is how much its knockout looks like a
  driver's, ~0 when it calls (almost) nothing.
- ``planted_targets(root) -> {motif: set of gene ids}``: from a synthetic folder's
  ``motif_sites.tsv`` and ``truth.tsv``: a motif's promoter sites' genes and the genes whose
  driver enhancer holds one of its enhancer sites; {} where the files are absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from epx.explain.motifs import Hits, MotifSet
from epx.explain.onehot import onehot_adapter, onehot_layout, onehot_name, predict, predict_edited

SCAN_MEMO = 8  # distinct inputs whose hits are kept (genes come in genome order, so neighbours share)
COLUMNS = ["motif", "gene", "gene_id", "chrom", "tss", "n_hits", "n_bases", "prediction", "knockout", "delta", "log2_fold_change"]


def _overlapping(chrom: np.ndarray, gene_id: np.ndarray, lo: np.ndarray, hi: np.ndarray, regions: pd.DataFrame) -> np.ndarray:
    """(H,) True where [lo, hi) on chrom overlaps a region (of that gene, when regions name genes)."""
    keyed = "gene_id" in regions.columns
    keep = np.zeros(len(lo), bool)
    keys = regions["chrom"].astype(str) + ("\t" + regions["gene_id"].astype(str) if keyed else "")
    hit_keys = pd.Series(chrom.astype(str)) + (pd.Series("\t" + gene_id.astype(str)) if keyed else "")
    for key, part in regions.groupby(keys.to_numpy(), sort=False):
        at = np.flatnonzero(hit_keys.to_numpy() == key)
        if not at.size:
            continue
        part = part.sort_values("start")
        starts = part["start"].to_numpy(np.int64)
        ends = np.maximum.accumulate(part["end"].to_numpy(np.int64))  # running max: the last region starting before hi reaches furthest
        before = np.searchsorted(starts, hi[at], side="left") - 1
        keep[at] = (before >= 0) & (ends[np.maximum(before, 0)] > lo[at])
    return keep


def _scan(motifs: MotifSet, x: torch.Tensor, layout, memo: dict) -> Hits:
    """``motifs.scan_onehot(x)``, scanning each distinct input once: genes whose inputs cover the
    same bases (Seq-GraphReg's genes share a 6 Mb window, ~20 each) have the same hits. An input
    is named by its chromosome, its first and last base and its length (a reversed input starts
    at its last base); ``memo`` keeps the last few inputs' hits across batches."""
    if not len(x):
        return motifs.scan_onehot(x)
    keys = [(str(layout.chrom[g]), int(layout.start[g, 0]), int(layout.start[g, -1]), int(x.shape[-1])) for g in range(len(x))]
    parts = []
    for g, key in enumerate(keys):
        if key not in memo:
            if len(memo) >= SCAN_MEMO:
                memo.pop(next(iter(memo)))
            memo[key] = motifs.scan_onehot(x[g : g + 1])
        parts.append(memo[key].as_batch(g))
    return Hits.concat(parts)


def knockout(job, rows, motifs: MotifSet, *, regions: pd.DataFrame | None = None, batch_size: int | None = None) -> pd.DataFrame:
    adapter = onehot_adapter(job)
    rows = adapter.check_rows(rows)
    name = onehot_name(job, "motif knockout")
    per_forward = int(batch_size or adapter.default_batch)
    genes = job.genes
    regression = getattr(job.objective, "name", "") != "classification"
    frames, scanned = [], {}
    for lo in range(0, len(rows), per_forward):
        batch = adapter.batch(rows[lo : lo + per_forward])
        layout = onehot_layout(job, batch.rows, "motif knockout")
        hits = _scan(motifs, batch.inputs[name], layout, scanned)
        ids = genes["gene_id"].to_numpy()[batch.rows]
        if regions is not None and len(hits):
            first = layout.start[hits.batch, hits.start]
            last = layout.start[hits.batch, hits.start + hits.width - 1]
            chrom = np.asarray(layout.chrom, dtype=object)[hits.batch]
            hits = hits.take(_overlapping(chrom, ids[hits.batch], np.minimum(first, last), np.maximum(first, last) + 1, regions))
        base = predict(adapter, batch, per_forward)
        n_genes, n_motifs = len(batch.rows), len(motifs.names)
        length = batch.inputs[name].shape[-1]
        # (gene, motif) pairs with a hit, each a column mask of its hits
        pair = hits.batch * n_motifs + hits.motif
        pairs = np.unique(pair)
        masks = np.zeros((len(pairs), length), bool)
        at = np.searchsorted(pairs, pair)
        for w in np.unique(hits.width):
            sel = hits.width == w
            cols = hits.start[sel][:, None] + np.arange(w)
            masks[np.repeat(at[sel], w), cols.reshape(-1)] = True
        keep = torch.from_numpy(~masks)

        def zero(x, a, b, keep=keep):
            x.mul_(keep[a:b, None, :].to(x.device, x.dtype))

        edited = predict_edited(adapter, batch, name, pairs // n_motifs, zero, per_forward) if len(pairs) else np.zeros(0)
        after = np.repeat(base[:, None], n_motifs, axis=1)
        after[pairs // n_motifs, pairs % n_motifs] = edited
        n_hits = np.bincount(pair, minlength=n_genes * n_motifs).reshape(n_genes, n_motifs)
        n_bases = np.zeros(n_genes * n_motifs, np.int64)
        n_bases[pairs] = masks.sum(axis=1)
        table = genes.iloc[batch.rows]
        for m, motif in enumerate(motifs.names):
            delta = after[:, m] - base
            frames.append(pd.DataFrame({
                "motif": motif, "gene": batch.rows, "gene_id": ids, "chrom": table["chrom"].to_numpy(), "tss": table["tss"].to_numpy(),
                "n_hits": n_hits[:, m], "n_bases": n_bases.reshape(n_genes, n_motifs)[:, m], "prediction": base, "knockout": after[:, m],
                "delta": delta, "log2_fold_change": delta if regression else np.nan,
            }))
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    out = pd.concat(frames, ignore_index=True)[COLUMNS]
    return out.sort_values(["motif", "gene"], kind="stable", ignore_index=True)


def ranked(table: pd.DataFrame, top: int = 100, planted: dict[str, set] | None = None, min_effect: float = 0.0) -> pd.DataFrame:
    down = table[table["log2_fold_change"] < -float(min_effect)].sort_values(["motif", "log2_fold_change", "gene"], kind="stable")
    down = down.assign(rank=down.groupby("motif").cumcount() + 1)
    down = down[down["rank"] <= int(top)]
    if planted is not None:
        down = down.assign(planted=[gid in planted.get(m, ()) for m, gid in zip(down["motif"], down["gene_id"])])
    return down.reset_index(drop=True)


def summary(table: pd.DataFrame, top: int = 100, planted: dict[str, set] | None = None, min_effect: float = 0.0) -> pd.DataFrame:
    out = []
    for motif, part in table.groupby("motif", sort=False):
        called = part[part["log2_fold_change"] < -float(min_effect)]
        row = {"motif": motif, "n_genes": len(part), "n_with_hits": int((part["n_hits"] > 0).sum()),
               "n_down": len(called), "mean_log2_fold_change": float(part["log2_fold_change"].mean()),
               "min_log2_fold_change": float(part["log2_fold_change"].min())}
        if planted is not None:
            genes = set(part["gene_id"])
            own = planted.get(motif, set()) & genes
            # a motif that drives nothing here: do its calls look like a driver's?
            targets = own or set().union(*(v for m, v in planted.items() if m != motif)) & genes
            k = min(int(top), len(targets))
            head = called.sort_values(["log2_fold_change", "gene"], kind="stable")["gene_id"].head(k)
            row.update(n_planted=len(own), against="own" if own else "any driver", k=k,
                       precision_at_k=float(head.isin(targets).sum() / k) if k else float("nan"))
        out.append(row)
    return pd.DataFrame(out)


def planted_targets(root: str | Path) -> dict[str, set]:
    from epx.io.motifs import read_motif_sites
    from epx.io.truth import read_truth

    root = Path(root)
    if not (root / "motif_sites.tsv").exists() or not (root / "truth.tsv").exists():
        return {}
    sites = read_motif_sites(root / "motif_sites.tsv")
    truth = read_truth(root / "truth.tsv")
    out: dict[str, set] = {}
    for motif, part in sites[sites["role"] == "promoter"].groupby("motif"):
        out.setdefault(motif, set()).update(part["target"])
    if "enhancer_start" in truth.columns:
        enh = truth.dropna(subset=["enhancer_start"])
        for motif, part in sites[sites["role"] == "enhancer"].groupby("motif"):
            regions = pd.DataFrame({"chrom": enh["enhancer_chrom"].astype(str).to_numpy(), "start": enh["enhancer_start"].astype(np.int64).to_numpy(),
                                    "end": enh["enhancer_end"].astype(np.int64).to_numpy(), "gene_id": enh["gene_id"].to_numpy()})
            for chrom, s, e, gene_id in regions.itertuples(index=False):
                on = part[(part["chrom"] == chrom) & (part["start"] < e) & (part["end"] > s)]
                if len(on):
                    out.setdefault(motif, set()).add(gene_id)
    return out


# ------------------------------------------------------------------------------ epx explain


def _motif_path(job, given) -> Path:
    from epx.errors import InputError

    path = Path(given) if given else Path(job.dm.spec.root) / "motifs.meme"
    if not path.exists():
        raise InputError(f"motif file not found: {path}. Give analysis.<name>.motifs=/path/to/motifs.meme (MEME minimal format)")
    return path


def motif_set(job, options) -> MotifSet:
    return MotifSet.load(_motif_path(job, options["motifs"]), options.get("names"), pvalue=float(options["pvalue"]))


def _regions(job, given) -> pd.DataFrame | None:
    from epx.errors import InputError
    from epx.io.tables import read_rows

    if not given:
        return None
    if given == "linked":
        from epx.io.elements import read_element_table

        path = Path(job.dm.spec.root) / "elements.tsv"
        if not path.exists():
            raise InputError(f"analysis.knockout.regions=linked reads the dataset's element table, and {path} does not exist; give a BED file instead")
        table = read_element_table(path)
        table = table[table["significant"]]
        return pd.DataFrame({"chrom": table["chrom"].astype(str), "start": table["start"].astype(np.int64), "end": table["end"].astype(np.int64),
                             "gene_id": table["gene_id"].astype(str)})
    path = Path(given)
    rows = read_rows(path, what="BED region file", hint="a BED file: chrom, start, end (0-based, half-open), tab-separated")
    rows.check_width(3, None, expected="at least 3")
    start, end = rows.integers(1, "start"), rows.integers(2, "end")
    rows.ordered(start, end, "start", "end")
    return pd.DataFrame({"chrom": rows.texts(0, "chrom"), "start": start, "end": end})


def check(job, options) -> None:
    onehot_name(job, "motif knockout")
    motif_set(job, options)
    given = options["regions"]
    if given and given != "linked" and not Path(given).exists():
        from epx.errors import InputError

        raise InputError(f"analysis.knockout.regions: BED file not found: {given} (or give regions=linked, or null for every hit)")


def run(job, out: Path, options) -> list[Path]:
    import logging

    from epx.io.atomic import write_csv

    rows = job.rows(options["split"])
    if options["max_genes"]:
        rows = np.sort(rows)[: int(options["max_genes"])]
    motifs = motif_set(job, options)
    table = knockout(job, rows, motifs, regions=_regions(job, options["regions"]), batch_size=options["batch_size"])
    planted = planted_targets(job.dm.spec.root) or None
    top, min_effect = int(options["top"]), float(options["min_effect"])
    summ = summary(table, top, planted, min_effect)
    paths = [write_csv(out / "knockout.tsv", table, sep="\t"), write_csv(out / "knockout_ranked.tsv", ranked(table, top, planted, min_effect), sep="\t"),
             write_csv(out / "knockout_summary.tsv", summ, sep="\t")]
    paths.append(_plot(summ, out / "knockout_summary.png", title=f"{job.model}: motif knockout ({len(rows)} genes)"))
    logging.getLogger(__name__).info("%s: knockout of %d motifs over %d genes; %s", job.dir, len(motifs.names), len(rows),
                                     summ[["motif", "mean_log2_fold_change"] + (["precision_at_k"] if planted else [])].to_dict("records"))
    return paths


def _plot(summ: pd.DataFrame, path: Path, *, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from epx.io.figures import save_png

    fig, ax = plt.subplots(figsize=(max(3.0, 0.45 * len(summ) + 1), 2.8))
    ax.bar(summ["motif"], summ["mean_log2_fold_change"], color="tab:blue")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_ylabel("mean log2 fold change", fontsize=8)
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return save_png(fig, path, dpi=120)
