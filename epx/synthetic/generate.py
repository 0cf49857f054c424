"""The built-in synthetic Roadmap-like dataset (DESIGN §2.4), written in the input contract.

Contract:
- ``generate(out_dir, *, seed, n_chroms, chrom_length, genes_per_chrom, cells, marks,
  distal_fraction, genome, n_genes, scale, progress) -> Path`` writes a complete contract
  folder (``signals/{cell}-{mark}.bigwig``, ``tss.bed``, ``expression.tsv``,
  ``interactions/{cell}.bedpe``, ``chrom.sizes``) plus ``truth.tsv`` (the hidden generative
  facts: program, distal driver, ...), ``elements.tsv`` (its own enhancer–gene screen in the
  CRISPRi-FlowFISH layout, ``docs/explain.md``: ``epx.synthetic.biology.element_pairs``) and
  ``synthetic.json`` (format version + parameters), and, for the built-in layout, the DNA
  (``SEQUENCE_FILES``: ``genome.fa`` + ``.fai``, ``motifs.meme``, ``motif_sites.tsv``;
  ``epx.synthetic.sequence``: motif sites cause the promoter and enhancer activity the tracks
  show; and ``variants.vcf``, SNVs that break driver sites, decoys and wrong REFs:
  ``epx.synthetic.variants``, added alone to a folder that lacks it: ``write_variant_file``). Deterministic for a seed. Each contract
  file is written by its format's writer in ``epx.io`` (the same code the converters and
  readers use). Atomic as a whole folder: it is built in a hidden sibling folder, which is
  then swapped into place (``_move_into_place``), so ``out_dir`` is either the old folder or
  the complete new one, never half-written — a folder operation, which ``epx.io.atomic``
  (one file at a time) does not cover. It replaces only an absent or empty folder or an
  earlier synthetic one; anything else is refused. ``progress(report)``, if given, is called
  after each cell with its time and bytes (also logged at INFO).
- Layouts. By default ``n_chroms`` chromosomes (chr1…) of ``chrom_length`` with
  ``genes_per_chrom`` genes each (the built-in dataset; its parameters, format version and
  bytes are untouched by the presets below). With ``genome=hg19`` (``GENOMES``) the
  chromosomes are that genome's real chr1-22/X (``epx/resources/hg19.chrom.sizes``, from
  UCSC) and ``n_genes`` (19,000) genes are shared out by length (``genome_layout``): a
  full-size benchmark input with the same biology, about 15 s and 230 MB per cell on one
  core (``benchmarks/bench_synth.py``). Its genome is built for all Roadmap cells (plus any
  non-Roadmap id asked for, which then changes it) and narrowed to ``cells``, so a cell's
  tracks, BEDPE and expression column are the same bytes whichever other cells are
  generated with it. ``scale`` (< 1, hidden on the command line) shrinks the preset's
  chromosomes (never below ``MIN_CHROM_LENGTH``) and gene count, for tests.
- ``ensure_synthetic(root, **params) -> Path`` generates on first use, reuses a folder whose
  ``synthetic.json`` matches ``params``, regenerates otherwise; concurrent callers are
  serialised by a file lock on ``{root}.lock``, so it is built once. A matching folder written
  before ``elements.tsv`` existed gets it added (``write_elements``); nothing else changes, and
  a folder that cannot take it (read-only, edited) is still returned, with a warning. The
  same for ``SEQUENCE_FILES`` (``write_sequence``) where ``sequence`` asks for them.
- ``sequence`` (``generate``/``ensure_synthetic``; ``--sequence/--no-sequence``) is not a data
  parameter (the DNA follows from the seed and layout; ``synthetic.json`` does not record it):
  None writes the sequence for the built-in layout (184 Mb, seconds) and not for a genome
  preset (a 3 GB FASTA; ``sequence=True`` writes it, about a minute and ~1 GB of memory for
  the largest chromosome). It is drawn from its own random streams, so every other file is
  byte-identical with or without it.
- ``write_elements(root) -> Path`` adds ``elements.tsv`` to an existing synthetic folder from
  its ``synthetic.json`` parameters: the genome is rebuilt from the seed (no signals
  rendered, well under a second), checked against the folder's ``tss.bed``, ``expression.tsv``
  and ``truth.tsv`` byte for byte, and the table written — the same bytes ``generate`` writes.
  A folder this generator version would not have written is refused (regenerate it).
  ``write_sequence(root) -> Path`` does the same for ``SEQUENCE_FILES`` (a preset's DNA is
  that of its un-narrowed genome: the same whichever cells the folder holds).
- ``main(argv)`` is ``epx synth OUT [--seed S] [--small | --genome hg19 [--n-genes N]] [--cells ...] ...``;
  bad parameters end with one line and exit code 2.

The biology lives in ``epx.synthetic.biology``; this module owns parameters and files.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from filelock import FileLock

from epx.constants import MARKS, ROADMAP_CELLS
from epx.errors import InputError
from epx.io.atomic import write_text
from epx.io.elements import write_elements as write_element_table
from epx.io.truth import write_truth
from epx.io.bedpe import write_interactions
from epx.io.bigwig import open_bigwig
from epx.io.chrom_sizes import read_chrom_sizes, write_chrom_sizes
from epx.io.expression import write_expression
from epx.io.fasta import write_fasta
from epx.io.motifs import write_meme, write_motif_sites
from epx.io.tss import write_tss
from epx.synthetic.biology import Genome, build_genome, element_pairs, render_cell_chrom
from epx.synthetic.sequence import BACKGROUND, SyntheticSequence, plan_sequence
from epx.synthetic.variants import write_variants

log = logging.getLogger(__name__)

# 2: distal-driven genes keep every gene-local mark primed; 3: their promoters are poised
# (no acetylation), a recognisable class whose level the promoter does not show
FORMAT_VERSION = 3
CHROM_NAMES: tuple[str, ...] = tuple(f"chr{i}" for i in range(1, 23)) + ("chrX",)
DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "n_chroms": 23,
    "chrom_length": 8_000_000,
    "genes_per_chrom": 90,
    "cells": ROADMAP_CELLS,
    "marks": MARKS,
    "distal_fraction": 0.2,
}
# Quick but still fold- and GraphReg-compatible: every chromosome >= 7 Mb (6 Mb windows fit)
# and every default fold group keeps >= 100 genes (6 chromosomes x 24 genes).
SMALL: dict[str, Any] = {"chrom_length": 7_000_000, "genes_per_chrom": 24}
MIN_CHROM_LENGTH = 500_000
LAYOUT_KEYS = ("n_chroms", "chrom_length", "genes_per_chrom")
# Genome presets: real chromosome sizes (epx/resources/{genome}.chrom.sizes) in place of
# LAYOUT_KEYS. 19,000 genes: about as many as Roadmap's protein-coding RPKM table holds.
GENOMES: tuple[str, ...] = ("hg19",)
GENOME_DEFAULTS: dict[str, Any] = {"genome": None, "n_genes": 19_000, "scale": 1.0}
ELEMENTS_FILE = "elements.tsv"
# The sequence files (epx.synthetic.sequence), FASTA last: its presence marks them complete.
# variants.vcf (epx.synthetic.variants) is added to a folder written before it existed on its own.
DNA_FILES = ("motifs.meme", "motif_sites.tsv", "genome.fa", "genome.fa.fai")
VARIANTS_FILE = "variants.vcf"
SEQUENCE_FILES = ("motifs.meme", "motif_sites.tsv", VARIANTS_FILE, "genome.fa", "genome.fa.fai")


# ----------------------------------------------------------------------------- parameters


def resolve_params(**params: Any) -> dict[str, Any]:
    """Fill defaults, validate, and normalise to JSON-comparable values (lists, not tuples).

    A None value counts as not given. Without ``genome`` the result has exactly the keys of
    ``DEFAULTS`` (so folders written before genome presets existed still match); with one it
    has ``genome``, ``n_genes`` and ``scale`` instead of the ``LAYOUT_KEYS``, which it refuses
    alongside."""
    params = {k: v for k, v in params.items() if v is not None}
    unknown = sorted(set(params) - set(DEFAULTS) - set(GENOME_DEFAULTS))
    if unknown:
        raise InputError(f"unknown synthetic dataset parameter(s) {unknown}; valid: {sorted({*DEFAULTS, *GENOME_DEFAULTS})}")
    p = {**DEFAULTS, **GENOME_DEFAULTS, **params}
    out: dict[str, Any] = {"seed": int(p["seed"])}
    checks = [(out["seed"] >= 0, f"seed must be >= 0, got {out['seed']}")]
    if "genome" in params:
        conflict = [k for k in LAYOUT_KEYS if k in params]
        out.update(genome=str(p["genome"]), n_genes=int(p["n_genes"]), scale=float(p["scale"]))
        checks += [
            (out["genome"] in GENOMES, f"genome must be one of {list(GENOMES)}, got {out['genome']!r}"),
            (not conflict, f"genome={out['genome']} takes its chromosomes from {out['genome']}.chrom.sizes and n_genes; drop {conflict}"),
            (out["n_genes"] >= 1, f"n_genes must be >= 1, got {out['n_genes']}"),
            (0 < out["scale"] <= 1, f"scale must be in (0, 1], got {out['scale']}"),
        ]
    else:
        stray = [k for k in GENOME_DEFAULTS if k in params]
        out.update(n_chroms=int(p["n_chroms"]), chrom_length=int(p["chrom_length"]), genes_per_chrom=int(p["genes_per_chrom"]))
        checks += [
            (not stray, f"{' and '.join(stray)} need a genome preset (genome={GENOMES[0]})"),
            (1 <= out["n_chroms"] <= len(CHROM_NAMES), f"n_chroms must be 1..{len(CHROM_NAMES)} (chr1..chr22, chrX), got {out['n_chroms']}"),
            (out["chrom_length"] >= MIN_CHROM_LENGTH, f"chrom_length must be >= {MIN_CHROM_LENGTH:,} bp, got {out['chrom_length']:,}"),
            (out["genes_per_chrom"] >= 1, f"genes_per_chrom must be >= 1, got {out['genes_per_chrom']}"),
        ]
    out.update(
        cells=[str(c) for c in _as_list(p["cells"])],
        marks=[str(m) for m in _as_list(p["marks"])],
        distal_fraction=float(p["distal_fraction"]),
    )
    checks += [
        (0.0 <= out["distal_fraction"] <= 1.0, f"distal_fraction must be in [0, 1], got {out['distal_fraction']}"),
        (len(out["cells"]) > 0, "cells is empty; give at least one cell id, e.g. cells=[E003]"),
        (len(set(out["cells"])) == len(out["cells"]), f"cells has duplicates: {out['cells']}"),
        (all(c and "/" not in c and c == c.strip() for c in out["cells"]), f"cell ids must be plain names usable in file names, got {out['cells']}"),
        (len(out["marks"]) > 0, f"marks is empty; choose from {list(MARKS)}"),
        (len(set(out["marks"])) == len(out["marks"]), f"marks has duplicates: {out['marks']}"),
    ]
    bad_marks = [m for m in out["marks"] if m not in MARKS]
    checks.append((not bad_marks, f"unknown mark(s) {bad_marks}: the synthetic generator models only {list(MARKS)}"))
    for ok, message in checks:
        if not ok:
            raise InputError(f"synthetic dataset: {message}")
    return out


# ----------------------------------------------------------------------------- genome presets


def genome_chrom_sizes(genome: str) -> dict[str, int]:
    """The preset's real chromosome sizes (``epx/resources/{genome}.chrom.sizes``), file order."""
    if genome not in GENOMES:
        raise InputError(f"synthetic dataset: genome must be one of {list(GENOMES)}, got {genome!r}")
    with resources.as_file(resources.files("epx").joinpath(f"resources/{genome}.chrom.sizes")) as path:
        return read_chrom_sizes(path)


def genome_layout(genome: str, n_genes: int = GENOME_DEFAULTS["n_genes"], scale: float = GENOME_DEFAULTS["scale"]) -> tuple[dict[str, int], dict[str, int]]:
    """``(chrom_sizes, genes_per_chrom)`` of a preset: ``round(n_genes * scale)`` genes shared
    out in proportion to the real lengths (largest remainders, so the total is exact; at least
    one per chromosome), on chromosomes ``scale`` times the real length but never shorter than
    ``MIN_CHROM_LENGTH``. ``scale`` < 1 is a shrunken copy for tests, not the real genome."""
    real = genome_chrom_sizes(genome)
    weights = np.array(list(real.values()), np.float64)
    share = round(n_genes * scale) * weights / weights.sum()
    counts = np.floor(share).astype(np.int64)
    counts[np.argsort(-(share - counts), kind="stable")[: round(n_genes * scale) - int(counts.sum())]] += 1
    sizes = {c: max(MIN_CHROM_LENGTH, round(length * scale)) for c, length in real.items()}
    return sizes, {c: max(1, int(k)) for c, k in zip(real, counts)}


def _as_list(value: Any) -> list:
    # A bare string is one item (cells="E003"), not a sequence of characters.
    return [value] if isinstance(value, str) else list(value)


# ----------------------------------------------------------------------------- writers


def _write_chrom_sizes(out: Path, genome: Genome) -> None:
    write_chrom_sizes(genome.chrom_sizes, out / "chrom.sizes")


def _write_tss(out: Path, genome: Genome) -> None:
    write_tss(genome.genes, out / "tss.bed")


def _write_expression(out: Path, genome: Genome) -> None:
    table = pd.DataFrame(genome.rpkm, columns=list(genome.cells))
    table.insert(0, "gene_id", genome.genes["gene_id"])
    write_expression(table, out / "expression.tsv", float_format="%.4f")


def _write_interactions(out: Path, genome: Genome) -> None:
    g, links = genome.genes, genome.links
    gene = links["gene"].to_numpy()
    full = pd.DataFrame(
        {
            "chrom1": g["chrom"].to_numpy()[gene],
            "start1": g["tss"].to_numpy()[gene],
            "end1": g["tss"].to_numpy()[gene] + 1,
            "chrom2": g["chrom"].to_numpy()[gene],
            "start2": links["start2"].to_numpy(),
            "end2": links["end2"].to_numpy(),
            "name": g["gene_id"].to_numpy()[gene],
        }
    )
    order = np.lexsort((full["start2"].to_numpy(), gene))
    for ci, cell in enumerate(genome.cells):
        rows = full.assign(score=genome.link_scores[:, ci]).iloc[order]
        rows = rows[genome.link_cells[order, ci]]
        write_interactions(rows, out / "interactions" / f"{cell}.bedpe", float_format="%.4f")


def _write_truth(out: Path, genome: Genome) -> None:
    g = genome.genes
    truth = g[["gene_id", "chrom", "tss", "strand", "gene_end", "program", "distal_driven", "polycomb", "h3k9_silenced", "znf_like", "strength"]].copy()
    e = genome.enhancers
    has = g["enhancer"].to_numpy() >= 0
    enh = g["enhancer"].to_numpy()[has]
    center, half = e["center"].to_numpy()[enh], e["half_width"].to_numpy()[enh]
    truth["enhancer_chrom"] = pd.Series(pd.NA, index=truth.index, dtype="string")
    truth.loc[has, "enhancer_chrom"] = e["chrom"].to_numpy()[enh]
    for column, values in (("enhancer_start", center - half), ("enhancer_end", center + half)):
        truth[column] = pd.Series(pd.NA, index=truth.index, dtype="Int64")
        truth.loc[has, column] = values
    write_truth(truth, out / "truth.tsv")


def _write_elements(out: Path, genome: Genome) -> None:
    write_element_table(element_pairs(genome), out / ELEMENTS_FILE)


def _write_sequence(out: Path, full: Genome, seed: int) -> None:
    """genome.fa (+ .fai), motifs.meme, motif_sites.tsv from the un-narrowed genome: a preset's
    DNA is the same whichever cells are asked for."""
    started = time.perf_counter()
    plan = plan_sequence(full, seed)
    write_meme(out / "motifs.meme", plan.motifs, background=BACKGROUND)
    write_motif_sites(out / "motif_sites.tsv", plan.sites)
    write_variants(out / VARIANTS_FILE, plan, full)
    write_fasta(out / "genome.fa", SyntheticSequence(plan))
    log.info(
        "synthetic sequence: %.0f Mb, %d motifs, %d planted sites, %.1f s",
        sum(full.chrom_sizes.values()) / 1e6, len(plan.motifs), len(plan.sites), time.perf_counter() - started,
    )


def _wants_sequence(params: dict[str, Any], sequence: bool | None) -> bool:
    # The built-in layout: yes (184 Mb, seconds). A genome preset: only when asked (3 GB).
    return ("genome" not in params) if sequence is None else bool(sequence)


def _write_signals(
    out: Path, genome: Genome, marks: Sequence[str], seed: int, progress: Callable[[dict[str, Any]], None] | None = None
) -> None:
    # All marks of a cell are open at once: each chromosome is rendered once for every mark,
    # and only one chromosome's tracks are in memory at a time (hg19: peak RSS ~250 MB).
    for ci, cell in enumerate(genome.cells):
        started = time.perf_counter()
        paths = {m: out / "signals" / f"{cell}-{m}.bigwig" for m in marks}
        with contextlib.ExitStack() as stack:
            writers = {m: stack.enter_context(open_bigwig(paths[m], genome.chrom_sizes)) for m in marks}
            for chrom in genome.chrom_sizes:
                for mark, (starts, ends, values) in render_cell_chrom(genome, ci, chrom, marks, seed).items():
                    writers[mark].add(chrom, starts, ends, values)
        signal_bytes = {m: paths[m].stat().st_size for m in marks}
        bedpe = out / "interactions" / f"{cell}.bedpe"
        report = {
            "cell": cell,
            "seconds": time.perf_counter() - started,
            "signal_bytes": signal_bytes,
            "interactions_bytes": bedpe.stat().st_size if bedpe.exists() else 0,
            "entries": sum(w.entries for w in writers.values()),
        }
        report["bytes"] = sum(signal_bytes.values()) + report["interactions_bytes"]
        log.info(
            "synthetic cell %s (%d/%d): %d marks, %.1f MB on disk (bigWigs + BEDPE), %.1f s",
            cell, ci + 1, len(genome.cells), len(marks), report["bytes"] / 1e6, report["seconds"],
        )
        if progress is not None:
            progress(report)


def _write_manifest(out: Path, genome: Genome, params: dict[str, Any]) -> None:
    manifest = {
        "format_version": FORMAT_VERSION,
        "generator": "epx.synthetic.generate",
        "params": params,
        "n_genes": int(len(genome.genes)),
        "n_distal_driven": int(genome.genes["distal_driven"].sum()),
        "chroms": list(genome.chrom_sizes),
        "note": "truth.tsv holds the generative facts (program, distal driver); it is not part of the input contract.",
    }
    write_text(out / "synthetic.json", json.dumps(manifest, indent=2) + "\n")


# ----------------------------------------------------------------------------- public API


def generate(
    out_dir: str | os.PathLike,
    *,
    seed: int = DEFAULTS["seed"],
    n_chroms: int | None = None,
    chrom_length: int | None = None,
    genes_per_chrom: int | None = None,
    cells: Sequence[str] = DEFAULTS["cells"],
    marks: Sequence[str] = DEFAULTS["marks"],
    distal_fraction: float = DEFAULTS["distal_fraction"],
    genome: str | None = None,
    n_genes: int | None = None,
    scale: float | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    sequence: bool | None = None,
) -> Path:
    """Write the synthetic dataset folder at ``out_dir`` (atomically) and return its path.

    ``progress`` (not a parameter of the data) is called after each cell's signals with
    ``{cell, seconds, signal_bytes: {mark: bytes}, interactions_bytes, bytes, entries}``.
    ``sequence`` (not a parameter of the data either: the DNA follows from the seed and the
    layout) writes ``SEQUENCE_FILES``; None: yes for the built-in layout, no for a preset."""
    params = resolve_params(
        seed=seed,
        n_chroms=n_chroms,
        chrom_length=chrom_length,
        genes_per_chrom=genes_per_chrom,
        cells=cells,
        marks=marks,
        distal_fraction=distal_fraction,
        genome=genome,
        n_genes=n_genes,
        scale=scale,
    )
    out = Path(out_dir).expanduser().absolute()
    _refuse_foreign_folder(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    building = out.parent / f".{out.name}.building-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    building.mkdir()
    started = time.perf_counter()
    try:
        _write_all(building, params, progress, _wants_sequence(params, sequence))
        _move_into_place(building, out)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    log.info("synthetic dataset written to %s in %.1f s", out, time.perf_counter() - started)
    return out


def _write_all(folder: Path, params: dict[str, Any], progress: Callable[[dict[str, Any]], None] | None = None, sequence: bool = False) -> None:
    started = time.perf_counter()
    full = _full_genome(params)
    genome = _narrowed(full, params)
    _write_chrom_sizes(folder, genome)
    _write_tss(folder, genome)
    _write_expression(folder, genome)
    _write_interactions(folder, genome)
    _write_truth(folder, genome)
    _write_elements(folder, genome)
    log.info(
        "synthetic genome: %d chromosomes, %.2f Gb, %d genes, %d cells; tables written in %.1f s",
        len(genome.chrom_sizes), sum(genome.chrom_sizes.values()) / 1e9, len(genome.genes), len(genome.cells),
        time.perf_counter() - started,
    )
    _write_signals(folder, genome, params["marks"], params["seed"], progress)
    if sequence:
        _write_sequence(folder, full, params["seed"])
    _write_manifest(folder, genome, params)  # last: its presence marks a complete folder


def _genome(params: dict[str, Any]) -> Genome:
    return _narrowed(_full_genome(params), params)


def _full_genome(params: dict[str, Any]) -> Genome:
    rng = np.random.default_rng([params["seed"], 0])
    if "genome" not in params:
        chrom_sizes = {name: params["chrom_length"] for name in CHROM_NAMES[: params["n_chroms"]]}
        return build_genome(rng, chrom_sizes, params["genes_per_chrom"], params["cells"], params["distal_fraction"])
    # A preset's genome is built for all Roadmap cells whichever are asked for, then narrowed:
    # E003 of `--cells E003` is byte for byte E003 of the full set, so cells can be made in
    # separate runs (or machines) and still belong to one dataset.
    chrom_sizes, genes_per_chrom = genome_layout(params["genome"], params["n_genes"], params["scale"])
    universe = [*ROADMAP_CELLS, *(c for c in params["cells"] if c not in ROADMAP_CELLS)]
    return build_genome(rng, chrom_sizes, genes_per_chrom, universe, params["distal_fraction"])


def _narrowed(full: Genome, params: dict[str, Any]) -> Genome:
    return full if "genome" not in params else full.narrow(params["cells"])


def write_elements(root: str | os.PathLike) -> Path:
    """Add (or rewrite) ``elements.tsv`` in the synthetic folder ``root``; returns its path."""
    root = Path(root).expanduser().absolute()
    _, genome = _rebuilt_genome(root)
    _write_elements(root, genome)
    return root / ELEMENTS_FILE


def write_sequence(root: str | os.PathLike) -> Path:
    """Add (or rewrite) ``SEQUENCE_FILES`` in the synthetic folder ``root``; returns the FASTA."""
    root = Path(root).expanduser().absolute()
    full, _ = _rebuilt_genome(root)
    _write_sequence(root, full, read_manifest(root)["params"]["seed"])
    return root / "genome.fa"


def write_variant_file(root: str | os.PathLike) -> Path:
    """Add (or rewrite) ``variants.vcf`` in the synthetic folder ``root`` (nothing else changes)."""
    root = Path(root).expanduser().absolute()
    full, _ = _rebuilt_genome(root)
    return write_variants(root / VARIANTS_FILE, plan_sequence(full, read_manifest(root)["params"]["seed"]), full)


def _rebuilt_genome(root: Path) -> tuple[Genome, Genome]:
    """The folder's genome (un-narrowed, narrowed) rebuilt from its ``synthetic.json``, checked
    against its ``tss.bed``, ``expression.tsv`` and ``truth.tsv`` byte for byte."""
    manifest = read_manifest(root)
    if not manifest or "params" not in manifest:
        raise InputError(f"{root} is not a synthetic dataset folder (no readable synthetic.json); write one with `epx synth {root}`.")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise InputError(
            f"{root} was written by synthetic format {manifest.get('format_version')}, this generator writes format "
            f"{FORMAT_VERSION}: its genome cannot be rebuilt here. Regenerate it (`epx synth {root} --seed S`, or delete it "
            "and run a job)."
        )
    params = resolve_params(**manifest["params"])
    full = _full_genome(params)
    genome = _narrowed(full, params)
    with tempfile.TemporaryDirectory(prefix="epx-elements-check-") as tmp:
        check = Path(tmp)
        _write_tss(check, genome)
        _write_expression(check, genome)
        _write_truth(check, genome)
        differ = [name for name in ("tss.bed", "expression.tsv", "truth.tsv") if not _same_bytes(check / name, root / name)]
    if differ:
        raise InputError(
            f"{root}: {', '.join(differ)} differ from what the synthetic generator writes for its synthetic.json "
            f"parameters (edited, or written by another generator version), so its enhancers are unknown here. "
            f"Regenerate the folder (`epx synth {root} --seed {params['seed']}`)."
        )
    return full, genome


def _same_bytes(a: Path, b: Path) -> bool:
    try:
        return a.read_bytes() == b.read_bytes()
    except OSError:
        return False


def _refuse_foreign_folder(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder; choose another output path for the synthetic dataset.")
    if out.is_dir() and any(out.iterdir()) and not (out / "synthetic.json").exists():
        raise InputError(
            f"{out} is a non-empty folder that is not a synthetic dataset (no synthetic.json); "
            "refusing to replace it. Choose an empty or new output path."
        )


def _move_into_place(building: Path, out: Path) -> None:
    """Swap the finished ``building`` folder in at ``out`` (a folder-level atomic replace).

    rename() cannot replace a non-empty directory, so the old folder is first renamed aside
    (hidden), the new one renamed in, then the old one deleted: ``out`` is absent only
    between the two renames, and never half-written."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(out, old)
    os.replace(building, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_manifest(root: str | os.PathLike) -> dict[str, Any] | None:
    """The folder's ``synthetic.json``, or None where absent or unreadable."""
    try:
        return json.loads((Path(root) / "synthetic.json").read_text())
    except (OSError, ValueError):
        return None


def _matches(root: Path, params: dict[str, Any]) -> bool:
    manifest = read_manifest(root)
    return bool(manifest) and manifest.get("format_version") == FORMAT_VERSION and manifest.get("params") == params


def ensure_synthetic(root: str | os.PathLike, *, sequence: bool | None = None, **params: Any) -> Path:
    """Return ``root`` holding the synthetic dataset for ``params``, generating it if needed.

    ``sequence`` as for ``generate``: a matching folder that lacks the files is given them."""
    resolved = resolve_params(**params)
    root = Path(root).expanduser().absolute()
    if _matches(root, resolved):
        _add_missing(root, (ELEMENTS_FILE,), write_elements, "enhancer validation needs it")
        if _wants_sequence(resolved, sequence):
            _add_missing(root, DNA_FILES, write_sequence, "sequence models need it")
            _add_missing(root, (VARIANTS_FILE,), write_variant_file, "variant-effect checks need it")
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(_lock_path(root)):
        if _matches(root, resolved):  # another process built it while we waited
            return root
        log.info("generating the synthetic dataset at %s (once; reused afterwards)", root)
        return generate(root, sequence=sequence, **resolved)


def _lock_path(root: Path) -> str:
    return str(root.with_name(root.name + ".lock"))


def _add_missing(root: Path, names: Sequence[str], writer: Callable[[Path], Path], why: str) -> None:
    """Add files to a matching folder written before they existed; a folder that cannot take
    them (read-only, edited) stays usable for training, with a warning."""
    if all((root / name).exists() for name in names):
        return
    try:
        with FileLock(_lock_path(root)):
            if not all((root / name).exists() for name in names):
                log.info("adding %s to the synthetic dataset at %s", ", ".join(names), root)
                writer(root)
    except (OSError, InputError) as err:
        log.warning("could not add %s to %s (%s); %s: run epx.synthetic.generate.%s", ", ".join(names), root, err, why, writer.__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="epx synth",
        description="Write the built-in synthetic Roadmap-like dataset (bigWigs, tss.bed, expression.tsv, "
        "interactions/*.bedpe, chrom.sizes, truth.tsv, elements.tsv, genome.fa, motifs.meme, motif_sites.tsv) to OUT. With --genome, a full-size one on "
        "that genome's real chromosomes (a benchmark input: minutes and a few hundred MB per cell).",
    )
    parser.add_argument("out", type=Path, help="output folder (created; an earlier synthetic folder is replaced)")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"], help=f"random seed of the whole dataset (default {DEFAULTS['seed']})")
    parser.add_argument("--small", action="store_true", help=f"quick version: {SMALL}")
    parser.add_argument("--genome", choices=GENOMES, help="full-size: real chromosome sizes (chr1-22, chrX) and --n-genes genes")
    parser.add_argument("--n-genes", type=int, help=f"with --genome: genes in total, by chromosome length (default {GENOME_DEFAULTS['n_genes']:,})")
    # Shrinks a preset's chromosomes and gene count (tests, quick looks); not the real genome.
    parser.add_argument("--scale", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--n-chroms", type=int, help=f"default {DEFAULTS['n_chroms']}")
    parser.add_argument("--chrom-length", type=int, help=f"bp, default {DEFAULTS['chrom_length']}")
    parser.add_argument("--genes-per-chrom", type=int, help=f"default {DEFAULTS['genes_per_chrom']}")
    parser.add_argument("--cells", help="comma-separated cell ids (default: the 11 Roadmap cells)")
    parser.add_argument("--distal-fraction", type=float, help=f"default {DEFAULTS['distal_fraction']}")
    parser.add_argument(
        "--sequence", action=argparse.BooleanOptionalAction, default=None,
        help="write genome.fa (+ .fai), motifs.meme and motif_sites.tsv (default: yes, except with --genome: 3 GB)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``epx synth OUT [--seed S] [--small | --genome hg19] [...]``: write a synthetic dataset folder."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.small and args.genome:
        parser.error("--small and --genome exclude each other (--small shrinks the default layout)")
    params: dict[str, Any] = dict(SMALL) if args.small else {}
    overrides = {
        "n_chroms": args.n_chroms,
        "chrom_length": args.chrom_length,
        "genes_per_chrom": args.genes_per_chrom,
        "cells": args.cells.split(",") if args.cells else None,
        "distal_fraction": args.distal_fraction,
        "genome": args.genome,
        "n_genes": args.n_genes,
        "scale": args.scale,
    }
    params.update({k: v for k, v in overrides.items() if v is not None})
    try:
        path = generate(args.out, seed=args.seed, sequence=args.sequence, **params)
    except InputError as err:
        print(f"epx synth: error: {err}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    raise SystemExit(main())
