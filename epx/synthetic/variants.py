"""The synthetic genome's variants: SNVs that break planted driver motifs, decoys, wrong REFs.

Contract: ``plan_variants(plan, genome) -> DataFrame[chrom, pos (0-based), id, ref, alt,
CLASS, MOTIF, ROLE, TARGET]`` from a ``SequencePlan`` (``epx.synthetic.sequence``) and the
``biology.Genome`` it was planned on; ``write_variants(path, plan, genome)`` writes it as a
VCF (``epx.io.vcf.write_vcf``: plain text, no date, so the same plan gives the same bytes).
It draws only from its own stream, ``np.random.default_rng([seed, VARIANT_STREAM])``, and
reads bases from the plan's planted instances (no chromosome is made), so adding it changes
no other file's bytes.

Classes (INFO ``CLASS``):
- ``break`` (``N_PER_CLASS``): at a site of a program factor that drives a gene (a promoter
  site of a non-distal gene, or a site in a distal-driven gene's driver enhancer;
  ``TF_PROMOTER`` left out), the base whose change costs the most log-odds is changed to the
  motif's worst base there: the site no longer scores as one. ``TARGET`` is the gene driven.
- ``decoy`` (``N_PER_CLASS``): the same change at a decoy motif's site, which drives nothing.
- ``wrong_ref`` (``N_WRONG_REF``): a base of a planted site with a REF that is not the
  genome's base (a record to be reported, never scored).
Records are in genome order; ``MOTIF``/``ROLE`` name the site. Where a class has fewer
candidate sites than asked, it has that many records.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from epx.io.vcf import write_vcf
from epx.synthetic.biology import Genome
from epx.synthetic.sequence import PROMOTER_MOTIF, SequencePlan, log_odds

VARIANT_STREAM = 20  # after the sequence's 19: its own random stream
N_PER_CLASS = 200
N_WRONG_REF = 20
BASES = np.array(list("ACGT"), dtype=object)
INFO = {
    "CLASS": ("1", "String", "break (a planted driver motif site broken), decoy (a decoy motif site changed), wrong_ref (REF is not the genome's)"),
    "MOTIF": ("1", "String", "the planted motif whose site the variant is in"),
    "ROLE": ("1", "String", "the site's role: promoter, enhancer or decoy"),
    "TARGET": ("1", "String", "the gene the site drives (break), empty otherwise"),
}


def _site_bases(plan: SequencePlan) -> pd.DataFrame:
    """The sites with their instance bases (genomic strand) and driven gene (drivers only)."""
    sites = plan.sites.copy()
    sites["instance"] = None
    for name, codes in plan.instances.items():
        at = np.flatnonzero((sites["motif"] == name).to_numpy())
        sites.loc[sites.index[at], "instance"] = pd.Series(list(codes), index=sites.index[at])
    return sites


def _driven_gene(sites: pd.DataFrame, genome: Genome) -> np.ndarray:
    """The gene id each site drives ('' where none): promoter sites of genes that are not
    distal-driven; enhancer sites of driver enhancers."""
    g, e = genome.genes, genome.enhancers
    distal = dict(zip(g["gene_id"], g["distal_driven"].astype(bool)))
    out = np.full(len(sites), "", dtype=object)
    role, target = sites["role"].to_numpy(), sites["target"].to_numpy()
    promoter = (role == "promoter") & (sites["motif"].to_numpy() != PROMOTER_MOTIF)
    out[promoter] = [t if not distal.get(t, True) else "" for t in target[promoter]]
    enhancer = np.flatnonzero(role == "enhancer")
    index = np.array([int(t[3:]) - 1 for t in target[enhancer]], np.int64)  # ENH000001 -> row 0
    driver = e["is_driver"].to_numpy()[index]
    owner = g["gene_id"].to_numpy()[e["owner"].to_numpy()[index]]
    out[enhancer[driver]] = owner[driver]
    return out


def _breaking(sites: pd.DataFrame, plan: SequencePlan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per site: genomic position, REF code and ALT code of its most damaging single change."""
    pos, ref, alt = (np.zeros(len(sites), np.int64) for _ in range(3))
    for i, (motif, start, strand, codes) in enumerate(zip(sites["motif"], sites["start"], sites["strand"], sites["instance"])):
        lo = log_odds(plan.motifs[motif])
        oriented = codes if strand == "+" else 3 - codes[::-1]
        cost = lo[np.arange(len(lo)), oriented] - lo.min(axis=1)
        j = int(np.argmax(cost))
        worst = int(np.argmin(lo[j]))
        at = j if strand == "+" else len(lo) - 1 - j
        pos[i], ref[i] = start + at, codes[at]
        alt[i] = worst if strand == "+" else 3 - worst
    return pos, ref, alt


def plan_variants(plan: SequencePlan, genome: Genome) -> pd.DataFrame:
    rng = np.random.default_rng([plan.seed, VARIANT_STREAM])
    sites = _site_bases(plan)
    driven = _driven_gene(sites, genome)
    pools = {"break": np.flatnonzero(driven != ""), "decoy": np.flatnonzero((sites["role"] == "decoy").to_numpy())}
    frames = []
    for kind, pool in pools.items():
        chosen = np.sort(rng.choice(pool, size=min(N_PER_CLASS, len(pool)), replace=False))
        part = sites.iloc[chosen]
        pos, ref, alt = _breaking(part, plan)
        frames.append(pd.DataFrame({"chrom": part["chrom"].to_numpy(), "pos": pos, "ref": BASES[ref], "alt": BASES[alt], "CLASS": kind,
                                    "MOTIF": part["motif"].to_numpy(), "ROLE": part["role"].to_numpy(), "TARGET": driven[chosen] if kind == "break" else ""}))
    taken = np.concatenate([pools["break"], pools["decoy"]])
    others = np.setdiff1d(np.arange(len(sites)), taken)
    chosen = np.sort(rng.choice(others, size=min(N_WRONG_REF, len(others)), replace=False))
    part = sites.iloc[chosen]
    offset = np.array([int(rng.integers(len(c))) for c in part["instance"]], np.int64)
    genome_base = np.array([c[k] for c, k in zip(part["instance"], offset)], np.int64)
    wrong = (genome_base + rng.integers(1, 4, size=len(part))) % 4
    pick = rng.integers(2, size=len(part))  # ALT: one of the two bases that are neither REF nor the genome's
    alt = np.array([[b for b in range(4) if b not in (w, g)][k] for w, g, k in zip(wrong, genome_base, pick)], np.int64)
    frames.append(pd.DataFrame({"chrom": part["chrom"].to_numpy(), "pos": part["start"].to_numpy() + offset, "ref": BASES[wrong], "alt": BASES[alt],
                                "CLASS": "wrong_ref", "MOTIF": part["motif"].to_numpy(), "ROLE": part["role"].to_numpy(), "TARGET": ""}))
    out = pd.concat(frames, ignore_index=True)
    order = {c: i for i, c in enumerate(plan.chrom_sizes)}
    out = out.assign(_c=out["chrom"].map(order)).sort_values(["_c", "pos"], kind="stable").drop(columns="_c")
    out = out.drop_duplicates(["chrom", "pos"]).reset_index(drop=True)
    out.insert(2, "id", [f"{k}_{i + 1:04d}" for i, k in enumerate(out["CLASS"])])
    return out[["chrom", "pos", "id", "ref", "alt", *INFO]]


def write_variants(path: str | Path, plan: SequencePlan, genome: Genome) -> Path:
    return write_vcf(path, plan_variants(plan, genome), plan.chrom_sizes, INFO)
