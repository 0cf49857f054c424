"""The in-memory model behind the synthetic Roadmap-like dataset: genome, expression, marks.

Contract:
- ``build_genome(rng, chrom_sizes, genes_per_chrom, cells, distal_fraction) -> Genome`` lays
  out genes (TSS, strand, body), heterochromatin domains, enhancers (one driver per
  distal-driven gene, decoys around every gene), per-cell expression (RPKM, genes x cells),
  per-cell enhancer activity and promoter-enhancer links. No file I/O. ``genes_per_chrom`` is
  one count for every chromosome or a ``{chrom: count}`` mapping (a real genome's sizes,
  genes in proportion to length); the random draws per chromosome are the same either way.
- ``program_group(program) -> str | None`` is the cell group a program's genes follow
  (``group:G`` → G, ``cell:C`` → C's group, housekeeping/silent → None); ``program_groups(cells)``
  lists the groups of a genome's cells. ``Genome.enhancers["program"]`` is the program an
  enhancer's activity follows (a driver's is its gene's). Both serve ``epx.synthetic.sequence``.
- ``Genome.narrow(cells) -> Genome`` keeps only those cells' columns (expression, enhancer
  activity, links) and their random streams, so a cell rendered from a narrowed genome is
  byte-identical to the same cell rendered from the whole one.
- ``element_pairs(genome) -> DataFrame`` is the synthetic data's own enhancer–gene screen in
  the CRISPRi-FlowFISH layout (``docs/explain.md``): per cell, every distal-driven gene
  expressed there (a screen reads out expressed genes only) with its driver enhancer
  (``significant`` 1, ``effect_size`` −1.0: the gene has no other input, so silencing the
  driver removes its expression) and its decoys (0, 0.0). Deterministic from the genome; no
  random draws, so it changes nothing else the generator writes.
- ``render_cell_chrom(genome, cell_index, chrom, marks, seed) -> {mark: (starts, ends, values)}``
  turns one cell's state on one chromosome into sorted, non-overlapping, non-zero bedGraph
  intervals per mark (per-bp signal, read-depth-like scale). Each (cell, chrom, mark) has its
  own random stream, so a track does not depend on which other marks are rendered. Vectorised
  over features and bins (no per-gene or per-bin Python loop): its cost and memory grow with
  the chromosome's length and gene count, one chromosome at a time.

The biology (DESIGN §2.4): H3K4me3/H3K9ac/H3K27ac peaks at active promoters rising with
log expression; H3K4me1 shoulders around active promoters and at enhancers; H3K27ac +
H3K4me1 at active enhancers; H3K36me3 over transcribed bodies, downstream in the gene's
orientation; broad H3K27me3 over polycomb-repressed silent genes; H3K9me3 heterochromatin
in gene-poor domains and over some silent genes. Distal-driven genes carry a constant
"poised" local state whatever their expression — H3K4me3 and H3K4me1 shoulders at a fixed
mid-range level, H3K36me3 over the body at that level, no promoter acetylation (H3K27ac,
H3K9ac), never polycomb/H3K9me3-silenced — so nothing within their own locus gives the level
away; it follows one linked enhancer. (Real H3K36me3 tracks transcription; the synthetic set
drops that here on purpose, so that the promoter-vs-distal benchmark isolates the distal
information.)

Why the poised promoter lacks acetylation: it makes enhancer-dependent genes a class a model
can recognise from the promoter (as CpG-poor, enhancer-dependent promoters differ from
CpG-island ones in real data) while their level stays unreadable there. Were their
promoters indistinguishable from ordinary mid-level ones, even an ideal model would have to
hedge every such promoter towards its linked enhancers, and "gain on distal genes, lose
nothing on the rest" could not be reached by any model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from operator import attrgetter

import numpy as np
import pandas as pd

from epx.constants import CELLS, MARKS
from epx.errors import InputError

# Programs a gene (or a decoy enhancer) can follow; "group:" / "cell:" ones are suffixed.
# With 5 cell groups this leaves ~35% of genes silent in any one cell.
PROGRAM_WEIGHTS = {"housekeeping": 0.6, "group": 0.22, "cell": 0.07, "silent": 0.11}

EDGE_MARGIN = 50_000  # keeps every feature (and 200 kb enhancer reach, by side choice) on the chromosome
MIN_GENE_SPACING = 10_000
HETERO_FRACTION = 0.15  # share of each chromosome in gene-poor H3K9me3 domains
HETERO_SIZE = (50_000, 300_000)
GENE_BODY = (5_000, 60_000)
ENHANCER_DISTANCE = (25_000, 200_000)
ENHANCER_TSS_CLEARANCE = 5_000  # an enhancer on another gene's promoter would blur that promoter
DECOYS_PER_GENE = 3
ANCHOR_WIDTH = (2_000, 5_000)
MAX_RPKM, MIN_EXPRESSED_RPKM, MAX_SILENT_RPKM = 500.0, 0.5, 0.3
PRIMED_LEVEL = np.log2(16.0)  # a mid-range poised promoter: says nothing about the gene's real level

# Per-mark rendering resolution (bp per written interval): narrow marks finer than broad ones,
# which keeps the bigWigs to a few million entries at the default size.
RESOLUTION = {
    "H3K4me3": 50,
    "H3K9ac": 50,
    "H3K27ac": 50,
    "H3K4me1": 100,
    "H3K36me3": 200,
    "H3K27me3": 200,
    "H3K9me3": 200,
}
BIN_NOISE_SIGMA = 0.35  # per-interval lognormal jitter: no track is a clean step function
BROAD_DROPOUT = 0.25  # broad domains are patchy in real ChIP-seq
BACKGROUND_EVERY = 4_000  # one stray low read pile-up per this many bp per track


@dataclass
class Genome:
    """Everything shared by the writers: tables are row-aligned with the arrays below."""

    chrom_sizes: dict[str, int]
    cells: tuple[str, ...]
    genes: pd.DataFrame  # gene_id chrom tss strand gene_end program distal_driven polycomb h3k9_silenced znf_like strength enhancer
    rpkm: np.ndarray  # (n_genes, n_cells)
    enhancers: pd.DataFrame  # chrom center half_width owner is_driver program
    enhancer_level: np.ndarray  # (n_enhancers, n_cells), log2(RPKM+1)-like activity
    heterochromatin: pd.DataFrame  # chrom start end
    links: pd.DataFrame  # gene enhancer start2 end2 (partner anchor); row-aligned with link_*
    link_cells: np.ndarray  # (n_links, n_cells) bool: link present in that cell
    link_scores: np.ndarray  # (n_links, n_cells) per-cell interaction frequency (> 1.5)
    # Random stream of each cell when rendering; None: its position in ``cells``. Set by
    # ``narrow``, so that a cell keeps the stream it had in the genome it was built with.
    streams: tuple[int, ...] | None = None

    def narrow(self, cells: Sequence[str]) -> "Genome":
        """The same genome with only ``cells`` (in that order)."""
        missing = [c for c in cells if c not in self.cells]
        if missing:
            raise InputError(f"cell(s) {missing} are not in this synthetic genome (it has {list(self.cells)})")
        idx = [self.cells.index(c) for c in cells]
        return replace(
            self,
            cells=tuple(cells),
            rpkm=self.rpkm[:, idx],
            enhancer_level=self.enhancer_level[:, idx],
            link_cells=self.link_cells[:, idx],
            link_scores=self.link_scores[:, idx],
            streams=tuple(self.stream(i) for i in idx),
        )

    def stream(self, cell_index: int) -> int:
        return cell_index if self.streams is None else self.streams[cell_index]


# ----------------------------------------------------------------------------- layout


def _layout_chromosome(rng: np.random.Generator, length: int, n_genes: int) -> tuple[np.ndarray, np.ndarray]:
    """Heterochromatin domains first, then genes evenly in the remaining (gene-rich) space.

    Returns ``(tss (n_genes,), domains (k, 2))``.
    """
    usable = length - 2 * EDGE_MARGIN
    n_domains = max(1, int(round(HETERO_FRACTION * usable / np.mean(HETERO_SIZE))))
    sizes = rng.integers(*HETERO_SIZE, size=n_domains)
    free = usable - int(sizes.sum())
    if free < n_genes * 2 * MIN_GENE_SPACING:
        raise InputError(
            f"chrom_length={length:,} bp is too short for genes_per_chrom={n_genes} "
            f"(need about {n_genes * 2 * MIN_GENE_SPACING / (1 - HETERO_FRACTION) + 2 * EDGE_MARGIN:,.0f} bp); "
            "raise chrom_length or lower genes_per_chrom."
        )
    # Domains are inserted at sorted points of the gene-free coordinate; genes sit on an even
    # grid of that coordinate with jitter, so spacing is never below MIN_GENE_SPACING.
    insert_at = np.sort(rng.uniform(0, free, size=n_domains))
    slot = free / n_genes
    jitter = rng.uniform(-0.3, 0.3, size=n_genes)
    free_pos = (np.arange(n_genes) + 0.5 + jitter) * slot
    shift = np.concatenate([[0], np.cumsum(sizes)])
    tss = EDGE_MARGIN + free_pos + shift[np.searchsorted(insert_at, free_pos, side="right")]
    starts = EDGE_MARGIN + insert_at + shift[:-1]
    domains = np.stack([starts, starts + sizes], axis=1).astype(np.int64)
    return tss.astype(np.int64), domains


def _assign_programs(rng: np.random.Generator, n: int, cells: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Draw expression programs; returns (program names, on-matrix (n, n_cells) bool)."""
    groups = [_cell_group(c) for c in cells]
    group_names = list(dict.fromkeys(groups))
    kinds = list(PROGRAM_WEIGHTS)
    kind = rng.choice(len(kinds), size=n, p=np.array(list(PROGRAM_WEIGHTS.values())))
    pick_group = rng.integers(len(group_names), size=n)
    pick_cell = rng.integers(len(cells), size=n)
    on_by_kind: dict[str, Callable[[int], np.ndarray]] = {
        "housekeeping": lambda i: np.ones(len(cells), bool),
        "group": lambda i: np.array([g == group_names[pick_group[i]] for g in groups]),
        "cell": lambda i: np.arange(len(cells)) == pick_cell[i],
        "silent": lambda i: np.zeros(len(cells), bool),
    }
    name_by_kind: dict[str, Callable[[int], str]] = {
        "housekeeping": lambda i: "housekeeping",
        "group": lambda i: "group:" + group_names[pick_group[i]].replace(" ", "_"),
        "cell": lambda i: "cell:" + cells[pick_cell[i]],
        "silent": lambda i: "silent",
    }
    on = np.stack([on_by_kind[kinds[k]](i) for i, k in enumerate(kind)]) if n else np.zeros((0, len(cells)), bool)
    names = [name_by_kind[kinds[k]](i) for i, k in enumerate(kind)]
    return names, on


def _cell_group(cell: str) -> str:
    # A cell id outside Roadmap's table forms its own group.
    return CELLS.get(cell, {}).get("group", cell)


def _group_key(group: str) -> str:
    return group.replace(" ", "_")  # as "group:" program names spell it


# The cell group whose genes a program's genes are (the sequence model's TF choice): a
# cell-specific program counts as its cell's group; housekeeping and silent follow none.
_GROUP_OF_KIND: dict[str, Callable[[str], str | None]] = {
    "housekeeping": lambda rest: None,
    "group": lambda rest: rest,
    "cell": lambda rest: _group_key(_cell_group(rest)),
    "silent": lambda rest: None,
}


def program_group(program: str) -> str | None:
    """``group:G`` → ``G``; ``cell:C`` → C's group (spaces as ``_``); otherwise None."""
    kind, _, rest = program.partition(":")
    return _GROUP_OF_KIND[kind](rest)


def program_groups(cells: Sequence[str]) -> list[str]:
    """The group keys ``program_group`` can return for a genome of ``cells``, in cell order."""
    return list(dict.fromkeys(_group_key(_cell_group(c)) for c in cells))


def _levels(rng: np.random.Generator, on: np.ndarray, cell_sigma: np.ndarray) -> np.ndarray:
    """RPKM (n, n_cells): lognormal where on (0.5-500), 0-0.3 (often exactly 0) where off."""
    n, n_cells = on.shape
    base = rng.normal(np.log(15.0), 1.1, size=(n, 1))
    expressed = np.exp(base + rng.normal(0.0, 1.0, size=(n, n_cells)) * cell_sigma[:, None])
    expressed = np.clip(expressed, MIN_EXPRESSED_RPKM, MAX_RPKM)
    silent = rng.uniform(0, MAX_SILENT_RPKM, size=(n, n_cells)) * (rng.random((n, n_cells)) < 0.6)
    return np.where(on, expressed, silent)


def _place_enhancers(
    rng: np.random.Generator, tss: np.ndarray, length: int, domains: np.ndarray, n_per_gene: int
) -> np.ndarray:
    """Centers (n_genes, n_per_gene) 25-200 kb from each TSS, off promoters and heterochromatin."""
    centers = np.zeros((len(tss), n_per_gene), np.int64)
    todo = np.ones(centers.shape, bool)
    sorted_tss = np.sort(tss)
    for attempt in range(60):
        # A gene flanked by two large domains may have no euchromatin 25-200 kb away: after
        # enough tries, allow the enhancer inside heterochromatin rather than fail.
        avoid_domains = attempt < 40
        if not todo.any():
            break
        dist = rng.uniform(*ENHANCER_DISTANCE, size=centers.shape)
        side = rng.choice([-1, 1], size=centers.shape)
        cand = tss[:, None] + side * dist
        off_chrom = (cand < EDGE_MARGIN) | (cand > length - EDGE_MARGIN)
        cand = np.where(off_chrom, tss[:, None] - side * dist, cand).astype(np.int64)
        near = np.searchsorted(sorted_tss, cand)
        gap_right = np.abs(sorted_tss[np.minimum(near, len(tss) - 1)] - cand)
        gap_left = np.abs(sorted_tss[np.maximum(near - 1, 0)] - cand)
        in_domain = ((cand[..., None] >= domains[:, 0]) & (cand[..., None] < domains[:, 1])).any(-1)
        ok = (np.minimum(gap_left, gap_right) > ENHANCER_TSS_CLEARANCE) & ~(in_domain & avoid_domains)
        ok &= (cand >= EDGE_MARGIN) & (cand <= length - EDGE_MARGIN)
        take = todo & ok
        centers[take] = cand[take]
        todo &= ~take
    if todo.any():
        raise InputError("could not place enhancers clear of promoters; lower genes_per_chrom or raise chrom_length")
    return centers


def build_genome(
    rng: np.random.Generator,
    chrom_sizes: Mapping[str, int],
    genes_per_chrom: int | Mapping[str, int],
    cells: Sequence[str],
    distal_fraction: float,
) -> Genome:
    cells = tuple(cells)
    n_cells = len(cells)
    n_genes = genes_per_chrom if isinstance(genes_per_chrom, Mapping) else dict.fromkeys(chrom_sizes, genes_per_chrom)
    gene_rows, het_rows, centers_all = [], [], []
    for chrom, length in chrom_sizes.items():
        tss, domains = _layout_chromosome(rng, length, int(n_genes[chrom]))
        strand = rng.choice(np.array(["+", "-"]), size=len(tss))
        body = np.exp(rng.uniform(*np.log(GENE_BODY), size=len(tss))).astype(np.int64)
        gene_end = np.clip(tss + np.where(strand == "+", body, -body), 0, length - 1)
        n_enh = DECOYS_PER_GENE + 1  # slot 0 is the driver if the gene turns out distal-driven
        centers_all.append(_place_enhancers(rng, tss, length, domains, n_enh))
        gene_rows.append(pd.DataFrame({"chrom": chrom, "tss": tss, "strand": strand, "gene_end": gene_end}))
        het_rows.append(pd.DataFrame({"chrom": chrom, "start": domains[:, 0], "end": domains[:, 1]}))
    genes = pd.concat(gene_rows, ignore_index=True)
    n = len(genes)
    genes.insert(0, "gene_id", [f"SYN{i + 1:06d}" for i in range(n)])

    programs, on = _assign_programs(rng, n, cells)
    genes["program"] = programs
    candidates = np.flatnonzero(on.any(axis=1))  # a never-expressed gene has nothing for an enhancer to drive
    n_distal = min(int(round(distal_fraction * n)), len(candidates))
    distal = np.zeros(n, bool)
    distal[rng.choice(candidates, size=n_distal, replace=False)] = True
    genes["distal_driven"] = distal.astype(int)
    # Distal-driven genes vary more between cells: their enhancer is the whole story.
    rpkm = _levels(rng, on, np.where(distal, 0.9, 0.35))

    silent_somewhere = ~on.all(axis=1)
    genes["polycomb"] = (silent_somewhere & (rng.random(n) < 0.5)).astype(int)
    never_on = ~on.any(axis=1)
    h3k9 = (never_on & (rng.random(n) < 0.3)) | (silent_somewhere & (genes["polycomb"].to_numpy() == 0) & (rng.random(n) < 0.1))
    genes["h3k9_silenced"] = h3k9.astype(int)
    # ZNF-cluster-like genes carry H3K9me3 whether expressed or not, so H3K9me3 is no clean
    # silencing flag (as in Roadmap, where its promoter AUROC is ~0.5).
    genes["znf_like"] = (~never_on & ~h3k9 & (rng.random(n) < 0.12)).astype(int)
    # Genes differ in how strongly their promoter is marked, the same in every cell.
    genes["strength"] = np.round(np.exp(rng.normal(0, 0.25, n)), 4)

    # Enhancers: per gene, slot 0 (driver, kept only for distal genes) + decoys.
    centers = np.concatenate(centers_all)  # (n, 1 + DECOYS)
    keep = np.ones(centers.shape, bool)
    keep[:, 0] = distal
    owner = np.repeat(np.arange(n), centers.shape[1]).reshape(centers.shape)
    is_driver = np.zeros(centers.shape, bool)
    is_driver[:, 0] = True
    enhancers = pd.DataFrame(
        {
            "chrom": np.repeat(genes["chrom"].to_numpy(), centers.shape[1]).reshape(centers.shape)[keep],
            "center": centers[keep],
            "half_width": rng.integers(600, 1_000, size=int(keep.sum())),
            "owner": owner[keep],
            "is_driver": is_driver[keep],
        }
    )
    enh_index = np.full(centers.shape, -1)
    enh_index[keep] = np.arange(int(keep.sum()))
    genes["enhancer"] = enh_index[:, 0]

    # Decoy activity follows its own random program, so it looks like a real enhancer that
    # happens to drive nothing here; driver activity is the driven gene's level.
    n_enh = len(enhancers)
    decoy_programs, decoy_on = _assign_programs(rng, n_enh, cells)
    level = np.log2(_levels(rng, decoy_on, np.full(n_enh, 0.5)) + 1)
    drivers = enhancers["is_driver"].to_numpy()
    level[drivers] = np.log2(rpkm[enhancers["owner"].to_numpy()[drivers]] + 1)
    # The program each enhancer's activity follows (its gene's for a driver); no draw, no file
    # changes: read by the sequence model (epx.synthetic.sequence) to pick its TF.
    enhancers["program"] = np.where(drivers, genes["program"].to_numpy()[enhancers["owner"].to_numpy()], np.array(decoy_programs, dtype=object))

    links, link_cells, link_scores = _link(rng, genes, enhancers, n_cells)
    return Genome(
        chrom_sizes=dict(chrom_sizes),
        cells=cells,
        genes=genes,
        rpkm=rpkm,
        enhancers=enhancers,
        enhancer_level=level,
        heterochromatin=pd.concat(het_rows, ignore_index=True),
        links=links,
        link_cells=link_cells,
        link_scores=link_scores,
    )


def _link(
    rng: np.random.Generator, genes: pd.DataFrame, enhancers: pd.DataFrame, n_cells: int
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Promoter-enhancer links: every driver, plus 1-3 decoys for every gene (0-2 if distal).

    Link counts overlap between distal and other genes, and drivers score higher only on
    average, so neither presence, count, score nor distance alone marks the driver.
    """
    owner = enhancers["owner"].to_numpy()
    drivers = enhancers["is_driver"].to_numpy()
    distal = genes["distal_driven"].to_numpy().astype(bool)
    n_decoy_links = rng.binomial(2, 0.5, size=len(genes)) + (~distal)
    decoy_rank = np.zeros(len(enhancers), int)
    decoy_rank[~drivers] = np.tile(np.arange(DECOYS_PER_GENE), len(genes))
    linked = drivers | (decoy_rank < n_decoy_links[owner])
    idx = np.flatnonzero(linked)
    k = len(idx)
    base = np.where(drivers[idx], 2.5 + rng.exponential(2.0, k), 1.6 + rng.exponential(1.0, k))
    shared = drivers[idx] | (rng.random(k) < 0.75)
    cells = shared[:, None] | (rng.random((k, n_cells)) < 0.5)
    scores = np.maximum(base[:, None] * np.exp(rng.normal(0, 0.1, (k, n_cells))), 1.51)
    width = rng.integers(*ANCHOR_WIDTH, size=k)
    center = enhancers["center"].to_numpy()[idx]
    start2 = center - (width * rng.uniform(0.3, 0.7, size=k)).astype(np.int64)
    links = pd.DataFrame({"gene": owner[idx], "enhancer": idx, "start2": start2, "end2": start2 + width})
    return links, cells, np.round(scores, 4)


# ----------------------------------------------------------------------------- element table

ELEMENT_COLUMNS = ["chrom", "start", "end", "gene", "significant", "effect_size", "cell", "element", "role", "linked", "distance_bp"]
DRIVER_EFFECT = -1.0  # fraction change in RPKM when the driver is silenced: a distal-driven gene has no other input


def element_pairs(genome: Genome) -> pd.DataFrame:
    """Candidate element–gene pairs with labels, one row per (cell, gene, element).

    For each cell, each distal-driven gene expressed there (RPKM >= ``MIN_EXPRESSED_RPKM``):
    its driver (``role`` driver, ``significant`` 1, ``effect_size`` ``DRIVER_EFFECT``) and its
    ``DECOYS_PER_GENE`` decoys (``role`` decoy, 0, 0.0), linked by an interaction or not
    (``linked``: the pair is a row of that cell's BEDPE). Elements span ``center ± half_width``
    (0-based, half-open, as ``truth.tsv``); ``distance_bp`` is the element's midpoint minus
    the TSS (genomic, not strand-oriented). Rows by cell (genome order), gene, start.
    """
    g, e = genome.genes, genome.enhancers
    owner = e["owner"].to_numpy()
    distal = g["distal_driven"].to_numpy().astype(bool)
    pick = np.flatnonzero(distal[owner])  # enhancers owned by distal-driven genes: drivers + decoys
    gene = owner[pick]
    center, half = e["center"].to_numpy()[pick], e["half_width"].to_numpy()[pick]
    driver = e["is_driver"].to_numpy()[pick]
    order = np.lexsort((center, gene))
    pick, gene, center, half, driver = pick[order], gene[order], center[order], half[order], driver[order]
    link_row = np.full(len(e), -1)
    link_row[genome.links["enhancer"].to_numpy()] = np.arange(len(genome.links))
    base = pd.DataFrame(
        {
            "chrom": e["chrom"].to_numpy()[pick],
            "start": center - half,
            "end": center + half,
            "gene": g["gene_id"].to_numpy()[gene],
            "significant": driver.astype(int),
            "effect_size": np.where(driver, DRIVER_EFFECT, 0.0),
            "element": [f"ENH{i + 1:06d}" for i in pick],
            "role": np.where(driver, "driver", "decoy"),
            "distance_bp": center - g["tss"].to_numpy()[gene],
        }
    )
    parts = []
    for ci, cell in enumerate(genome.cells):
        rows = link_row[pick]
        linked = (rows >= 0) & genome.link_cells[np.maximum(rows, 0), ci]
        expressed = genome.rpkm[gene, ci] >= MIN_EXPRESSED_RPKM
        parts.append(base.assign(cell=cell, linked=linked.astype(int))[expressed])
    if not parts:
        return pd.DataFrame(columns=ELEMENT_COLUMNS)
    return pd.concat(parts, ignore_index=True)[ELEMENT_COLUMNS]


# ----------------------------------------------------------------------------- rendering


@dataclass
class _Features:
    """Rectangles to paint on one track: bp coordinates, heights and a profile code each."""

    start: np.ndarray
    end: np.ndarray
    height: np.ndarray
    profile: np.ndarray


# Profile over a feature's fractional position t in [0, 1): peaks are bumps, gene bodies ramp
# up towards the 3' end (H3K36me3 is highest near the TES), broad domains are flat.
PROFILES: tuple[Callable[[np.ndarray], np.ndarray], ...] = (
    lambda t: np.ones_like(t),  # 0 flat
    lambda t: 0.15 + 0.85 * np.sin(np.pi * t),  # 1 peak
    lambda t: 0.2 + 0.8 * t,  # 2 ramp towards higher coordinates (+ strand body)
    lambda t: 1.0 - 0.8 * t,  # 3 ramp towards lower coordinates (- strand body)
)
FLAT, PEAK, RAMP_UP, RAMP_DOWN = range(4)


def _features(start, end, height, profile) -> _Features:
    start, end, height = np.broadcast_arrays(np.asarray(start), np.asarray(end), np.asarray(height, float))
    keep = (height > 0) & (end > start)
    prof = np.broadcast_to(np.asarray(profile), start.shape)
    return _Features(start[keep].astype(np.int64), end[keep].astype(np.int64), height[keep], prof[keep])


@dataclass
class _CellChrom:
    """One cell's state on one chromosome, the input of every mark's feature builder."""

    rng: np.random.Generator
    tss: np.ndarray
    plus: np.ndarray
    gene_end: np.ndarray
    level: np.ndarray  # log2(RPKM+1) of each gene in this cell
    expressed: np.ndarray
    # what H3K4me3, H3K4me1 shoulders and H3K36me3 over the body show: level, or PRIMED_LEVEL if distal
    local_level: np.ndarray
    acetyl_level: np.ndarray  # what promoter H3K27ac/H3K9ac show: level, or 0 if distal (poised)
    gene_noise: np.ndarray  # per-gene factor shared by cells: genes differ in peak strength
    polycomb_silent: np.ndarray
    h3k9_silent: np.ndarray
    znf_like: np.ndarray
    enh_center: np.ndarray
    enh_half: np.ndarray
    enh_level: np.ndarray
    domains: np.ndarray  # (k, 2)

    def jitter(self, sigma: float = 0.2) -> np.ndarray:
        return np.exp(self.rng.normal(0, sigma, size=len(self.tss)))


_LOCAL: Callable[[_CellChrom], np.ndarray] = attrgetter("local_level")
_ACETYL: Callable[[_CellChrom], np.ndarray] = attrgetter("acetyl_level")


def _promoter_peak(
    scale: float, reach: tuple[int, int], shown: Callable[[_CellChrom], np.ndarray]
) -> Callable[[_CellChrom], _Features]:
    """A TSS peak whose height rises with the level the mark ``shown``; 0 shows only noise."""

    def build(s: _CellChrom) -> _Features:
        level = shown(s)
        active = level > 0
        height = np.where(active, scale * (0.3 + level), 0.0) * s.gene_noise * s.jitter()
        # A few silent promoters carry a stray low peak: the separation is good, not perfect.
        stray = ~active & (s.rng.random(len(s.tss)) < 0.25)
        height = np.where(stray, s.rng.uniform(0.3, 1.5 * scale, len(s.tss)), height)
        up = s.rng.integers(*reach, size=len(s.tss))
        down = s.rng.integers(*reach, size=len(s.tss))
        lo = s.tss - np.where(s.plus, up, down)
        hi = s.tss + np.where(s.plus, down, up)
        return _features(lo, hi, height, PEAK)

    return build


def _enhancer_peaks(scale: float, floor: float, widen: float) -> Callable[[_CellChrom], _Features]:
    """Peaks at enhancers: ``floor`` everywhere (primed), plus ``scale`` x activity when active."""

    def build(s: _CellChrom) -> _Features:
        active = s.enh_level >= np.log2(1 + MIN_EXPRESSED_RPKM)
        height = (floor + np.where(active, scale * s.enh_level, 0.0)) * np.exp(s.rng.normal(0, 0.2, len(s.enh_level)))
        half = (s.enh_half * widen).astype(np.int64)
        return _features(s.enh_center - half, s.enh_center + half, height, PEAK)

    return build


def _h3k27ac(s: _CellChrom) -> _Features:
    return _concat(_promoter_peak(3.0, (800, 1_800), _ACETYL)(s), _enhancer_peaks(2.5, 0.0, 1.0)(s))


def _h3k4me1(s: _CellChrom) -> _Features:
    # Shoulders either side of active promoters (depleted at the TSS itself), and enhancers
    # (a low primed level even when inactive).
    active = s.local_level > 0
    height = np.where(active, 0.8 + 0.5 * s.local_level, 0.0) * s.jitter(0.3)
    near = s.rng.integers(1_000, 1_400, size=len(s.tss))
    far = s.rng.integers(2_500, 3_000, size=len(s.tss))
    left = _features(s.tss - far, s.tss - near, height, PEAK)
    right = _features(s.tss + near, s.tss + far, height, PEAK)
    return _concat(left, right, _enhancer_peaks(1.2, 1.0, 1.8)(s))


def _h3k36me3(s: _CellChrom) -> _Features:
    # From just downstream of the TSS to the gene end, in the gene's orientation. Distal-driven
    # genes show a fixed level here too, so no gene-local mark gives their expression away.
    height = 0.6 * s.local_level * s.jitter(0.25)
    offset = np.where(s.plus, 1_000, -1_000)
    lo = np.minimum(s.tss + offset, s.gene_end)
    hi = np.maximum(s.tss + offset, s.gene_end)
    return _features(lo, hi, height, np.where(s.plus, RAMP_UP, RAMP_DOWN))


def _h3k27me3(s: _CellChrom) -> _Features:
    half = s.rng.integers(5_000, 20_000, size=len(s.tss))
    height = np.where(s.polycomb_silent, s.rng.uniform(2.0, 5.0, len(s.tss)), 0.0)
    return _features(s.tss - half, s.tss + half, height, FLAT)


def _h3k9me3(s: _CellChrom) -> _Features:
    domains = _features(s.domains[:, 0], s.domains[:, 1], s.rng.uniform(2.0, 4.0, len(s.domains)), FLAT)
    lo = np.minimum(s.tss, s.gene_end) - 5_000
    hi = np.maximum(s.tss, s.gene_end) + 5_000
    silenced = _features(lo, hi, np.where(s.h3k9_silent, s.rng.uniform(1.5, 3.5, len(s.tss)), 0.0), FLAT)
    znf = _features(lo, hi, np.where(s.znf_like, s.rng.uniform(1.0, 3.0, len(s.tss)), 0.0), FLAT)
    return _concat(domains, silenced, znf)


def _concat(*parts: _Features) -> _Features:
    return _Features(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("start", "end", "height", "profile")))


FEATURE_BUILDERS: dict[str, Callable[[_CellChrom], _Features]] = {
    "H3K4me3": _promoter_peak(5.0, (1_000, 2_000), _LOCAL),
    "H3K9ac": _promoter_peak(3.0, (800, 1_600), _ACETYL),
    "H3K27ac": _h3k27ac,
    "H3K4me1": _h3k4me1,
    "H3K36me3": _h3k36me3,
    "H3K27me3": _h3k27me3,
    "H3K9me3": _h3k9me3,
}
BROAD_MARKS = frozenset({"H3K36me3", "H3K27me3", "H3K9me3"})


def _paint(f: _Features, length: int, res: int) -> np.ndarray:
    """Sum the features' profiles into a dense (ceil(length / res),) bin array."""
    n_bins = -(-length // res)
    first = np.clip(f.start // res, 0, n_bins - 1)
    last = np.clip((f.end - 1) // res, 0, n_bins - 1)
    counts = last - first + 1
    idx = np.repeat(first, counts) + (np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts))
    t = (idx - np.repeat(first, counts) + 0.5) / np.repeat(counts, counts)
    profile = np.repeat(f.profile, counts)
    shape = np.empty_like(t)
    for code, fn in enumerate(PROFILES):
        sel = profile == code
        shape[sel] = fn(t[sel])
    painted = np.bincount(idx, weights=np.repeat(f.height, counts) * shape, minlength=n_bins)
    return painted.astype(np.float64, copy=False)  # no features: bincount hands back ints


def render_cell_chrom(
    genome: Genome, cell_index: int, chrom: str, marks: Sequence[str], seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """bedGraph intervals ``(starts, ends, values)`` per mark for one cell on one chromosome."""
    length = genome.chrom_sizes[chrom]
    g = genome.genes
    on_chrom = (g["chrom"] == chrom).to_numpy()
    level = np.log2(genome.rpkm[on_chrom, cell_index] + 1)
    expressed = genome.rpkm[on_chrom, cell_index] >= MIN_EXPRESSED_RPKM
    distal = g["distal_driven"].to_numpy()[on_chrom].astype(bool)
    e = genome.enhancers
    enh_on = (e["chrom"] == chrom).to_numpy()
    het = genome.heterochromatin
    chrom_index = list(genome.chrom_sizes).index(chrom)
    shown = np.where(expressed, level, 0.0)  # what a gene's own locus shows unless distal-driven
    state = _CellChrom(
        rng=np.random.default_rng(0),  # replaced per mark below
        tss=g["tss"].to_numpy()[on_chrom],
        plus=(g["strand"] == "+").to_numpy()[on_chrom],
        gene_end=g["gene_end"].to_numpy()[on_chrom],
        level=level,
        expressed=expressed,
        local_level=np.where(distal, PRIMED_LEVEL, shown),
        acetyl_level=np.where(distal, 0.0, shown),
        gene_noise=g["strength"].to_numpy()[on_chrom],
        # a distal-driven gene keeps its poised local state whatever its expression
        polycomb_silent=(g["polycomb"].to_numpy()[on_chrom] == 1) & ~expressed & ~distal,
        h3k9_silent=(g["h3k9_silenced"].to_numpy()[on_chrom] == 1) & ~expressed & ~distal,
        znf_like=g["znf_like"].to_numpy()[on_chrom] == 1,
        enh_center=e["center"].to_numpy()[enh_on],
        enh_half=e["half_width"].to_numpy()[enh_on],
        enh_level=genome.enhancer_level[enh_on, cell_index],
        domains=het.loc[het["chrom"] == chrom, ["start", "end"]].to_numpy(),
    )
    out = {}
    for mark in marks:
        res = RESOLUTION[mark]
        rng = np.random.default_rng([seed, 1, genome.stream(cell_index), chrom_index, MARKS.index(mark)])
        dense = _paint(FEATURE_BUILDERS[mark](replace(state, rng=rng)), length, res)
        idx = np.flatnonzero(dense)
        values = dense[idx] * np.exp(rng.normal(0, BIN_NOISE_SIGMA, len(idx)))
        if mark in BROAD_MARKS:
            values *= rng.random(len(idx)) >= BROAD_DROPOUT
        dense[idx] = values
        n_bg = length // BACKGROUND_EVERY
        dense[rng.integers(0, len(dense), n_bg)] += rng.uniform(0.5, 2.0, n_bg)
        dense = np.round(dense, 2)
        idx = np.flatnonzero(dense)
        starts = idx * res
        ends = np.minimum(starts + res, length)
        out[mark] = (starts.astype(np.int64), ends.astype(np.int64), dense[idx])
    return out
