"""pCRE selection: which distal regions a gene's promoter is linked to (DESIGN §2.1).

Contract: ``select_pcres(genes, interactions, *, tolerance_bp=1000, i_max=8)`` returns
``PcreSlots`` with arrays of shape (N, i_max): ``chrom`` (object), ``start``, ``end``,
``freq`` (the interaction score, 0 in empty slots) and ``mask`` (True where a slot holds a
pCRE). A gene's pCREs are the partner anchors of interactions whose other anchor overlaps
its promoter (TSS ± ``tolerance_bp``), either BEDPE orientation; partners that overlap the
same promoter are not pCREs; a partner seen twice keeps its best score. The top ``i_max``
by score are kept, ties broken by (chrom, start, end) so every run selects the same set.

``gene_links(genes, interactions, tolerance_bp=1000) -> DataFrame[gene, row, chrom, start,
end, freq]`` is every (gene row, partner) pair before that selection (``row``: the
interaction's row), self links removed: what the interaction accounting counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class PcreSlots:
    chrom: np.ndarray
    start: np.ndarray
    end: np.ndarray
    freq: np.ndarray
    mask: np.ndarray

    def take(self, rows: np.ndarray) -> "PcreSlots":
        return PcreSlots(self.chrom[rows], self.start[rows], self.end[rows], self.freq[rows], self.mask[rows])


LINK_COLUMNS = ["gene", "row", "chrom", "start", "end", "freq"]


def _ragged_arange(counts: np.ndarray) -> np.ndarray:
    """[0..c0-1, 0..c1-1, ...] for counts c."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    offsets = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total) - offsets


def _links(genes: pd.DataFrame, anchor: pd.DataFrame, partner: pd.DataFrame, score: np.ndarray, tol: int) -> pd.DataFrame:
    """(gene row, partner) pairs where ``anchor`` overlaps the gene's promoter."""
    out = []
    for chrom, idx in genes.groupby("chrom").indices.items():
        order = idx[np.argsort(genes["tss"].to_numpy()[idx], kind="stable")]
        tss = genes["tss"].to_numpy()[order]
        on = np.flatnonzero((anchor["chrom"] == chrom).to_numpy())
        if not on.size:
            continue
        lo = np.searchsorted(tss, anchor["start"].to_numpy()[on] - tol, side="left")
        hi = np.searchsorted(tss, anchor["end"].to_numpy()[on] + tol, side="left")
        counts = hi - lo
        rows = np.repeat(on, counts)
        gene_rows = order[np.repeat(lo, counts) + _ragged_arange(counts)]
        out.append(pd.DataFrame({
            "gene": gene_rows,
            "row": rows,
            "chrom": partner["chrom"].to_numpy()[rows],
            "start": partner["start"].to_numpy()[rows],
            "end": partner["end"].to_numpy()[rows],
            "freq": score[rows],
        }))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=LINK_COLUMNS)


def select_pcres(genes: pd.DataFrame, interactions: pd.DataFrame, *, tolerance_bp: int = 1000, i_max: int = 8) -> PcreSlots:
    n = len(genes)
    slots = PcreSlots(
        chrom=np.full((n, i_max), "", dtype=object),
        start=np.zeros((n, i_max), np.int64),
        end=np.ones((n, i_max), np.int64),
        freq=np.zeros((n, i_max), np.float32),
        mask=np.zeros((n, i_max), bool),
    )
    links = gene_links(genes, interactions, tolerance_bp=tolerance_bp)
    if links.empty:
        return slots
    links = links.sort_values(["gene", "freq", "chrom", "start", "end"], ascending=[True, False, True, True, True], kind="stable")
    links = links.drop_duplicates(["gene", "chrom", "start", "end"], keep="first")
    return fill_slots(slots, links, i_max)


def gene_links(genes: pd.DataFrame, interactions: pd.DataFrame, *, tolerance_bp: int = 1000) -> pd.DataFrame:
    """Every (gene row, partner) pair of ``interactions`` at a promoter, self links removed."""
    if interactions.empty or genes.empty:
        return pd.DataFrame(columns=LINK_COLUMNS)
    score = interactions["score"].to_numpy(np.float64)
    sides = [
        interactions[[f"chrom{i}", f"start{i}", f"end{i}"]].set_axis(["chrom", "start", "end"], axis=1) for i in (1, 2)
    ]
    links = pd.concat(
        [_links(genes, sides[0], sides[1], score, tolerance_bp), _links(genes, sides[1], sides[0], score, tolerance_bp)],
        ignore_index=True,
    )
    if links.empty:
        return pd.DataFrame(columns=LINK_COLUMNS)
    links = links.astype({"gene": np.int64, "row": np.int64, "start": np.int64, "end": np.int64, "freq": np.float64})
    g_chrom = genes["chrom"].to_numpy()[links["gene"]]
    g_tss = genes["tss"].to_numpy()[links["gene"]]
    self_link = (links["chrom"].to_numpy() == g_chrom) & (g_tss >= links["start"] - tolerance_bp) & (g_tss < links["end"] + tolerance_bp)
    return links[~self_link].reset_index(drop=True)


def fill_slots(slots, links: pd.DataFrame, i_max: int):
    """Puts each gene's ranked ``links`` (already in slot order, one row per partner) into its
    first ``i_max`` pCRE slots: chrom, start, end, freq, mask. Returns ``slots``."""
    links = links.assign(slot=links.groupby("gene").cumcount())
    links = links[links["slot"] < i_max]
    g, s = links["gene"].to_numpy(), links["slot"].to_numpy()
    slots.chrom[g, s] = links["chrom"].to_numpy()
    slots.start[g, s] = links["start"].to_numpy()
    slots.end[g, s] = links["end"].to_numpy()
    slots.freq[g, s] = links["freq"].to_numpy()
    slots.mask[g, s] = True
    return slots
