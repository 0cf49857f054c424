"""The synthetic genome's DNA: promoter and enhancer activity caused by planted motif sites.

Contract:
- ``plan_sequence(genome, seed) -> SequencePlan``: the motifs (``{name: (W, 4)
  probabilities}``, A C G T columns), every planted site (``sites``, the ``motif_sites.tsv``
  table of ``epx.io.motifs``) and the CpG-island promoters, from an already built
  ``biology.Genome``. Deterministic for ``(genome, seed)``; it draws only from its own
  streams, ``np.random.default_rng([seed, SEQUENCE_STREAM, ...])``, never from the one the
  tracks and tables are drawn from, so writing the sequence changes no other file's bytes.
- ``chromosome_codes(plan, chrom) -> uint8 (length,)``: one chromosome's bases (A C G T N =
  0 1 2 3 4, ``epx.io.fasta``); each chromosome has its own stream, so any one can be made
  alone. ``SyntheticSequence(plan)`` is the lazy ``{chrom: codes}`` mapping (genome order,
  one chromosome in memory at a time) that ``epx.io.fasta.write_fasta`` writes.
- ``log_odds(pwm)``: (W, 4) bits against ``BACKGROUND``; ``min_site_score(pwm)``: the score
  every planted site reaches (a background window's with probability ``CHANCE_RATE`` per
  position and strand, ~0.1 chance hits per kb per motif, but no higher than the median of
  the PWM's own instances, and at least ``MIN_SITE_FRACTION`` of the best; the score
  distributions are computed exactly); ``scan(pwm, codes,
  threshold) -> (starts, strands)``: every window on either strand scoring >= threshold.

The grammar (built on the genome's programs, ``biology``):
- Motifs: ``TF_PROMOTER`` (a general core-promoter factor), ``TF_HOUSEKEEPING`` (the
  housekeeping program's factor), one ``TF_{group}`` per cell group of the genome's cells
  (the five Roadmap groups: ESC, ESC-derived, primary_tissue, cancer_line, cell_line), and
  ``N_DECOYS`` decoys ``DECOY_1..``. Each is a random PWM of width 10-12 (a dominant base of
  probability 0.75-0.97 per position, the rest spread at random, every base >= 0.01);
  consensus sequences share no 6-mer with each other or each other's reverse complement.
- Promoters, in a 512 bp window (-416..+96 around the TSS, in the gene's orientation, cut in
  16 bp slots, one site per slot): every gene with a non-silent program (active somewhere)
  has one ``TF_PROMOTER`` site on its own strand at -48..-32 (where a TATA box sits). A gene
  whose level its promoter shows (not distal-driven) also has its program's factor
  (``TF_HOUSEKEEPING``, or ``TF_{group}``; a cell-specific program counts as its cell's
  group) on random strands in ``clip(round(SITES_PER_LOG2 x activity), 1, MAX_SITES)``
  random slots, activity = the gene's ``strength`` x its mean log2(RPKM + 1) over the cells
  expressing it (what sets its H3K4me3/H3K27ac peak heights), and a CpG island (GC 0.65, no
  CpG depletion) over TSS +- 500 bp. Distal-driven genes' poised promoters carry only
  ``TF_PROMOTER`` on CpG-poor background (H3K4me3 at a fixed level, no acetylation); the
  program's sites are at their driver enhancer. Silent genes carry nothing.
- Enhancers, in the core center +- 320 bp: the factor of the program its activity follows
  (a driver's is its gene's), in ``clip(round(SITES_PER_LOG2 x activity), 1, MAX_SITES)``
  slots, activity = the mean log2 level over the cells where it is active (H3K27ac
  there). An enhancer whose program is silent (H3K4me1 floor only) carries no site.
- Decoys: each decoy motif is planted at as many random genome-wide positions (any
  strand, off the real sites) as a real motif has sites on average; they cause nothing.
- Instances are drawn from their PWM (not the consensus) and kept only when they score
  >= ``min_site_score``, so a scan at that threshold finds every planted site; a site on
  ``-`` is pasted as the reverse complement. Real sites never overlap; a site that would
  overlap an earlier one (two enhancer cores touching) is dropped.
- Background: i.i.d. bases from a 256-entry table (GC 0.445), then 75% of CpG
  dinucleotides mutated (C->T or G->A, as methyl-CpG deamination does), leaving GC ~0.41
  and CpG at ~1/4 of its expected rate outside islands; 10 kb of N at each chromosome end
  (no feature lies within 50 kb of an end).

Cost: one ``integers`` call per chromosome for the background, fancy-indexed pastes for the
sites; the default dataset (23 x 8 Mb, ~24,000 sites) takes ~0.2 s to plan and ~2.3 s to
write as a 187 MB FASTA on one core. Memory: a few bytes per base of the largest chromosome.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from epx.io.motifs import SITE_COLUMNS
from epx.synthetic.biology import (
    MIN_EXPRESSED_RPKM,
    Genome,
    program_group,
    program_groups,
)

SEQUENCE_STREAM = 19  # issue 19: the key of every random stream this module draws from
PROMOTER_MOTIF, HOUSEKEEPING_MOTIF = "TF_PROMOTER", "TF_HOUSEKEEPING"
N_DECOYS = 3
WIDTHS = (10, 12)  # 8-9 bp PWMs this peaked would be hit by chance every few kb
DOMINANT = (0.75, 0.97)
MIN_PROB = 0.01
# Every planted instance scores at least what a background window reaches with probability
# CHANCE_RATE per position and strand (~0.1 chance hits per kb), and MIN_SITE_FRACTION of the
# best score: a factor's planted sites stand 15-180x above chance in a promoter window.
CHANCE_RATE = 5e-5
MIN_SITE_FRACTION = 0.6
SCORE_STEP = 0.005  # bits: resolution of the exact background score distribution
SITES_PER_LOG2 = 0.5  # sites per unit of log2 activity: mid-level (log2 16 = 4) -> 2, top -> 4-5
MAX_SITES = 5
SLOT = 16  # >= the widest motif + 4 bp: sites in distinct slots never overlap
PROMOTER_FIRST = -416  # window -416..+96 around the TSS, gene orientation: 32 slots
PROMOTER_SLOTS = 32
PROMOTER_CORE_SLOT = (-48 - PROMOTER_FIRST) // SLOT  # TF_PROMOTER's slot, -48..-32
ENHANCER_CORE = 320  # center +- 320 bp: 40 slots
CPG_ISLAND = 500  # TSS +- 500 bp
CPG_DEPLETION = 0.75
TELOMERE_N = 10_000


def _table(counts: dict[int, int]) -> np.ndarray:
    """A 256-entry byte -> base lookup with ``counts[base]`` entries per base."""
    return np.repeat(np.arange(4, dtype=np.uint8), [counts[b] for b in range(4)])


GENOME_TABLE = _table({0: 71, 1: 57, 2: 57, 3: 71})  # GC 114/256 before CpG depletion
ISLAND_TABLE = _table({0: 45, 1: 83, 2: 83, 3: 45})  # GC 0.65
BACKGROUND = np.array([0.295, 0.205, 0.205, 0.295])  # after depletion: the log-odds reference
ROLES = ("promoter", "enhancer", "decoy")


@dataclass
class SequencePlan:
    """Everything needed to write the sequence files; built without drawing a base."""

    seed: int
    chrom_sizes: dict[str, int]
    motifs: dict[str, np.ndarray]
    sites: pd.DataFrame  # SITE_COLUMNS, by chromosome (genome order) then start
    islands: pd.DataFrame  # chrom start end
    # per motif: the instance bases as they read on the + strand, row-aligned with
    # sites[sites.motif == name] in table order
    instances: dict[str, np.ndarray]


# ----------------------------------------------------------------------------- motifs


def log_odds(pwm: np.ndarray) -> np.ndarray:
    return np.log2(np.asarray(pwm, np.float64) / BACKGROUND)


def _score_tail(lo: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, int]:
    """Exact P(score >= k * SCORE_STEP) of a window whose bases are drawn from ``probs``
    ((W, 4) per position), over the discretised log-odds ``lo``; returns (tail, offset of k=0)."""
    steps = np.round(lo / SCORE_STEP).astype(np.int64)
    floor = steps.min(axis=1)
    shift = steps - floor[:, None]
    dist = np.ones(1)
    for row, p in zip(shift, probs):
        grown = np.zeros(len(dist) + int(row.max()))
        for base in range(4):
            grown[row[base] : row[base] + len(dist)] += p[base] * dist
        dist = grown
    return np.cumsum(dist[::-1])[::-1], int(floor.sum())


def min_site_score(pwm: np.ndarray) -> float:
    """The planting threshold: the background score exceeded with probability ``CHANCE_RATE``,
    capped at the median score of the PWM's own instances (half of them qualify, so sites
    vary), and at least ``MIN_SITE_FRACTION`` of the best."""
    lo = log_odds(pwm)
    chance_tail, offset = _score_tail(lo, np.broadcast_to(BACKGROUND, lo.shape))
    own_tail, _ = _score_tail(lo, pwm)
    chance = int(np.argmax(chance_tail <= CHANCE_RATE))
    median = len(own_tail) - 1 - int(np.argmax(own_tail[::-1] >= 0.5))  # the highest k with P >= 1/2
    return float(max((min(chance, median) + offset) * SCORE_STEP, MIN_SITE_FRACTION * lo.max(axis=1).sum()))


def _random_pwm(rng: np.random.Generator, width: int) -> np.ndarray:
    dominant = rng.integers(4, size=width)
    p = rng.uniform(*DOMINANT, size=width)
    rest = rng.dirichlet(np.ones(3), size=width) * (1 - p)[:, None]
    pwm = np.zeros((width, 4))
    others = (dominant[:, None] + np.arange(1, 4)) % 4
    np.put_along_axis(pwm, others, rest, axis=1)
    # Rounded to 3 decimals, so the written MEME file holds exactly the matrix used here.
    pwm = np.round(np.maximum(pwm, MIN_PROB), 3)
    np.put_along_axis(pwm, dominant[:, None], 0.0, axis=1)
    np.put_along_axis(pwm, dominant[:, None], np.round(1 - pwm.sum(1, keepdims=True), 3), axis=1)
    return pwm


def _kmers(consensus: str, k: int = 6) -> set[str]:
    rc = consensus[::-1].translate(str.maketrans("ACGT", "TGCA"))
    return {s[i : i + k] for s in (consensus, rc) for i in range(len(s) - k + 1)}


def make_motifs(rng: np.random.Generator, cells: tuple[str, ...]) -> dict[str, np.ndarray]:
    groups = [re.sub(r"\s", "_", g) for g in program_groups(cells)]
    names = [PROMOTER_MOTIF, HOUSEKEEPING_MOTIF, *(f"TF_{g}" for g in groups), *(f"DECOY_{i + 1}" for i in range(N_DECOYS))]
    motifs: dict[str, np.ndarray] = {}
    seen: set[str] = set()
    for name in names:
        while True:  # distinct consensus sequences: no motif is another's partial copy
            pwm = _random_pwm(rng, int(rng.integers(WIDTHS[0], WIDTHS[1] + 1)))
            kmers = _kmers("".join("ACGT"[i] for i in pwm.argmax(1)))
            if not kmers & seen:
                break
        seen |= kmers
        motifs[name] = pwm
    return motifs


def program_motif(program: str) -> str | None:
    """The factor of a program: housekeeping's, its group's, or None (silent)."""
    group = program_group(program)
    if group is not None:
        return "TF_" + re.sub(r"\s", "_", group)
    return HOUSEKEEPING_MOTIF if program == "housekeeping" else None


# ----------------------------------------------------------------------------- sites


@dataclass
class _Requests:
    """Sites asked for, one entry per site; coordinates are genomic, bp."""

    chrom: np.ndarray
    start: np.ndarray
    strand: np.ndarray  # +1 / -1
    motif: np.ndarray  # index into the motif list
    role: np.ndarray  # index into ROLES
    target: np.ndarray  # object: gene id, element id or ""

    @staticmethod
    def concat(parts: list[_Requests]) -> _Requests:
        return _Requests(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("chrom", "start", "strand", "motif", "role", "target")))

    def take(self, keep: np.ndarray) -> _Requests:
        return _Requests(self.chrom[keep], self.start[keep], self.strand[keep], self.motif[keep], self.role[keep], self.target[keep])


def _slots(rng: np.random.Generator, counts: np.ndarray, n_slots: int, reserved: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``counts[r]`` distinct random slots per region r (never ``reserved``): (region, slot) per site."""
    keys = rng.random((len(counts), n_slots))
    if reserved is not None:
        keys[:, reserved] = np.inf
    order = np.argsort(keys, axis=1)
    take = np.arange(n_slots)[None, :] < counts[:, None]
    return np.nonzero(take)[0], order[take]


def _activity(levels: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Mean level over the active cells of each row (0 where never active)."""
    n = active.sum(axis=1)
    return np.where(n > 0, (levels * active).sum(axis=1) / np.maximum(n, 1), 0.0)


def _site_count(activity: np.ndarray) -> np.ndarray:
    return np.clip(np.round(SITES_PER_LOG2 * activity), 1, MAX_SITES).astype(np.int64)


def _promoter_requests(rng: np.random.Generator, genome: Genome, motif_index: dict[str, int], widths: np.ndarray) -> tuple[_Requests, np.ndarray]:
    """TF_PROMOTER at every active-capable gene; the program's factor where not distal-driven.
    Returns the requests and the genes that get a CpG island."""
    g = genome.genes
    chrom_index = {c: i for i, c in enumerate(genome.chrom_sizes)}
    tf = np.array([motif_index.get(program_motif(p) or "", -1) for p in g["program"]])
    capable = tf >= 0
    distal = g["distal_driven"].to_numpy().astype(bool)
    island = capable & ~distal
    level = np.log2(genome.rpkm + 1)
    activity = g["strength"].to_numpy() * _activity(level, genome.rpkm >= MIN_EXPRESSED_RPKM)
    counts = np.where(island, _site_count(activity), 0)
    region, slot = _slots(rng, counts, PROMOTER_SLOTS, PROMOTER_CORE_SLOT)
    core = np.flatnonzero(capable)
    region = np.concatenate([core, region])
    slot = np.concatenate([np.full(len(core), PROMOTER_CORE_SLOT), slot])
    motif = np.concatenate([np.full(len(core), motif_index[PROMOTER_MOTIF]), tf[region[len(core):]]])
    gene_strand = np.where(g["strand"].to_numpy()[region] == "+", 1, -1)
    strand = np.concatenate([gene_strand[: len(core)], rng.choice([-1, 1], size=len(region) - len(core))])
    width = widths[motif]
    oriented = PROMOTER_FIRST + SLOT * slot + rng.integers(0, SLOT - width + 1)  # site's first oriented bp
    tss = g["tss"].to_numpy()[region]
    start = np.where(gene_strand > 0, tss + oriented, tss - oriented - width + 1)
    requests = _Requests(
        chrom=np.array([chrom_index[c] for c in g["chrom"].to_numpy()[region]], np.int64),
        start=start.astype(np.int64),
        strand=strand,
        motif=motif,
        role=np.zeros(len(region), np.int64),
        target=g["gene_id"].to_numpy()[region].astype(object),
    )
    return requests, island


def _enhancer_requests(rng: np.random.Generator, genome: Genome, motif_index: dict[str, int], widths: np.ndarray) -> _Requests:
    e = genome.enhancers
    chrom_index = {c: i for i, c in enumerate(genome.chrom_sizes)}
    tf = np.array([motif_index.get(program_motif(p) or "", -1) for p in e["program"]], np.int64)
    active = genome.enhancer_level >= np.log2(1 + MIN_EXPRESSED_RPKM)
    counts = np.where(tf >= 0, _site_count(_activity(genome.enhancer_level, active)), 0)
    region, slot = _slots(rng, counts, 2 * ENHANCER_CORE // SLOT, None)
    motif = tf[region]
    start = e["center"].to_numpy()[region] - ENHANCER_CORE + SLOT * slot + rng.integers(0, SLOT - widths[motif] + 1)
    return _Requests(
        chrom=np.array([chrom_index[c] for c in e["chrom"].to_numpy()[region]], np.int64),
        start=start.astype(np.int64),
        strand=rng.choice([-1, 1], size=len(region)),
        motif=motif,
        role=np.ones(len(region), np.int64),
        target=np.array([f"ENH{i + 1:06d}" for i in region], dtype=object),
    )


def _genome_offsets(chrom_sizes: dict[str, int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(list(chrom_sizes.values()))[:-1]]).astype(np.int64)


def _without_overlaps(req: _Requests, widths: np.ndarray, offsets: np.ndarray) -> _Requests:
    """Sorted by position; a site starting before an earlier site's end is dropped."""
    gstart = offsets[req.chrom] + req.start
    order = np.argsort(gstart, kind="stable")
    req, gstart = req.take(order), gstart[order]
    gend = gstart + widths[req.motif]
    prev_end = np.concatenate([[-1], np.maximum.accumulate(gend)[:-1]])
    return req.take(gstart >= prev_end)


def _decoy_requests(rng: np.random.Generator, chrom_sizes: dict[str, int], real: _Requests, decoys: np.ndarray, widths: np.ndarray) -> _Requests:
    """Each decoy at the mean real motif's site count, uniform over the genome, off real sites."""
    per_motif = round(len(real.motif) / max(1, len(np.unique(real.motif))))
    lengths = np.array(list(chrom_sizes.values()), np.int64)
    usable = lengths - 2 * TELOMERE_N - SLOT
    motif = np.repeat(decoys, per_motif)
    chrom = rng.choice(len(lengths), size=len(motif), p=usable / usable.sum())
    start = TELOMERE_N + (rng.random(len(motif)) * usable[chrom]).astype(np.int64)
    offsets = _genome_offsets(chrom_sizes)
    req = _Requests(chrom, start, rng.choice([-1, 1], size=len(motif)), motif, np.full(len(motif), 2), np.full(len(motif), "", dtype=object))
    real_start = offsets[real.chrom] + real.start  # sorted, non-overlapping: ends are sorted too
    real_end = real_start + widths[real.motif]
    gstart = offsets[chrom] + start
    before = np.searchsorted(real_start, gstart + widths[motif]) - 1
    clash = (before >= 0) & (real_end[np.maximum(before, 0)] > gstart)
    return _without_overlaps(req.take(~clash), widths, offsets)


def _instances(rng: np.random.Generator, pwm: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` instances drawn from the PWM scoring >= ``min_site_score``: (codes (n, W), scores)."""
    width = len(pwm)
    cum = np.cumsum(pwm, axis=1)[:, :3]
    lo, threshold = log_odds(pwm), min_site_score(pwm)
    kept, scores, have, rate = [], [], 0, 0.25
    while have < n:
        u = rng.random((max(int(1.5 * (n - have) / rate), 16), width))
        codes = (u[:, :, None] >= cum[None]).sum(-1).astype(np.uint8)
        score = lo[np.arange(width), codes].sum(axis=1)
        ok = score >= threshold
        kept.append(codes[ok])
        scores.append(score[ok])
        have += int(ok.sum())
        rate = max(float(ok.mean()), 0.01)
    return np.concatenate(kept)[:n], np.concatenate(scores)[:n]


def plan_sequence(genome: Genome, seed: int) -> SequencePlan:
    motifs = make_motifs(np.random.default_rng([seed, SEQUENCE_STREAM, 0]), genome.cells)
    names = list(motifs)
    motif_index = {name: i for i, name in enumerate(names)}
    widths = np.array([len(m) for m in motifs.values()], np.int64)
    rng = np.random.default_rng([seed, SEQUENCE_STREAM, 1])
    offsets = _genome_offsets(genome.chrom_sizes)
    promoters, island = _promoter_requests(rng, genome, motif_index, widths)
    real = _without_overlaps(_Requests.concat([promoters, _enhancer_requests(rng, genome, motif_index, widths)]), widths, offsets)
    decoys = np.array([motif_index[n] for n in names if n.startswith("DECOY_")], np.int64)
    req = _Requests.concat([real, _decoy_requests(rng, genome.chrom_sizes, real, decoys, widths)])
    req = req.take(np.lexsort((req.start, req.chrom)))
    chroms = np.array(list(genome.chrom_sizes), dtype=object)
    sites = pd.DataFrame(
        {
            "chrom": chroms[req.chrom],
            "start": req.start,
            "end": req.start + widths[req.motif],
            "strand": np.where(req.strand > 0, "+", "-"),
            "motif": np.array(names, dtype=object)[req.motif],
            "role": np.array(ROLES, dtype=object)[req.role],
            "target": req.target,
            "score": 0.0,
        }
    )[SITE_COLUMNS]
    instances = {}
    for i, name in enumerate(names):
        rows = np.flatnonzero(req.motif == i)
        codes, scores = _instances(rng, motifs[name], len(rows))
        sites.loc[rows, "score"] = np.round(scores, 3)
        minus = req.strand[rows] < 0
        codes[minus] = 3 - codes[minus, ::-1]  # reverse complement: A<->T, C<->G
        instances[name] = codes
    g = genome.genes
    islands = pd.DataFrame({"chrom": g["chrom"].to_numpy()[island], "start": g["tss"].to_numpy()[island] - CPG_ISLAND, "end": g["tss"].to_numpy()[island] + CPG_ISLAND})
    return SequencePlan(seed=seed, chrom_sizes=dict(genome.chrom_sizes), motifs=motifs, sites=sites, islands=islands, instances=instances)


# ----------------------------------------------------------------------------- bases


def _ragged(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Every position of the intervals [starts, ends), concatenated."""
    counts = ends - starts
    return np.repeat(starts, counts) + np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)


def chromosome_codes(plan: SequencePlan, chrom: str) -> np.ndarray:
    length = plan.chrom_sizes[chrom]
    index = list(plan.chrom_sizes).index(chrom)
    rng = np.random.default_rng([plan.seed, SEQUENCE_STREAM, 2, index])
    codes = GENOME_TABLE[rng.integers(0, 256, size=length, dtype=np.uint8)]
    cg = np.flatnonzero((codes[:-1] == 1) & (codes[1:] == 2))
    u = rng.random(len(cg))
    codes[cg[u < CPG_DEPLETION / 2]] = 3  # C -> T
    codes[cg[(u >= CPG_DEPLETION / 2) & (u < CPG_DEPLETION)] + 1] = 0  # G -> A
    isl = plan.islands[plan.islands["chrom"] == chrom]
    pos = _ragged(np.maximum(isl["start"].to_numpy(), 0), np.minimum(isl["end"].to_numpy(), length))
    codes[pos] = ISLAND_TABLE[rng.integers(0, 256, size=len(pos), dtype=np.uint8)]
    edge = min(TELOMERE_N, length // 4)
    codes[:edge] = codes[length - edge :] = 4
    on_chrom = (plan.sites["chrom"] == chrom).to_numpy()
    for name, instances in plan.instances.items():
        mine = on_chrom[(plan.sites["motif"] == name).to_numpy()]
        starts = plan.sites.loc[on_chrom & (plan.sites["motif"] == name).to_numpy(), "start"].to_numpy()
        codes[starts[:, None] + np.arange(instances.shape[1])] = instances[mine]
    return codes


class SyntheticSequence(Mapping):
    """``{chrom: uint8 codes}`` made on access, in genome order (for ``write_fasta``)."""

    def __init__(self, plan: SequencePlan):
        self.plan = plan

    def __getitem__(self, chrom: str) -> np.ndarray:
        if chrom not in self.plan.chrom_sizes:
            raise KeyError(chrom)
        return chromosome_codes(self.plan, chrom)

    def __iter__(self) -> Iterator[str]:
        return iter(self.plan.chrom_sizes)

    def __len__(self) -> int:
        return len(self.plan.chrom_sizes)


# ----------------------------------------------------------------------------- scanning


def scan(pwm: np.ndarray, codes: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Starts and strands (+1/-1) of every window of ``codes`` scoring >= ``threshold`` for
    ``pwm`` on either strand (N scores -inf), in position order."""
    lo = log_odds(pwm)
    width = len(lo)
    n = len(codes) - width + 1
    if n <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    found = []
    for strand, matrix in ((1, lo), (-1, lo[::-1, ::-1])):  # the - strand reads the reverse complement
        table = np.concatenate([matrix, np.full((width, 1), -np.inf)], axis=1)
        score = np.zeros(n)
        for j in range(width):
            score += table[j, codes[j : j + n]]
        hits = np.flatnonzero(score >= threshold)
        found.append((hits, np.full(len(hits), strand)))
    starts = np.concatenate([f[0] for f in found])
    strands = np.concatenate([f[1] for f in found])
    order = np.argsort(starts, kind="stable")
    return starts[order].astype(np.int64), strands[order]
