"""``epx download`` and ``epx convert`` subcommands (wired into ``epx/cli.py``).

``add_subcommands(subparsers)`` registers, on an ``argparse`` subparsers object:

- ``download roadmap --cells E003,E114 --marks H3K4me3,H3K27ac --dest data/roadmap
  [--signal tagalign|fc] [--base-url URL | NAME=URL ...] [--interactions]`` (``--interactions``:
  the cells' pcHi-C tables too, ``epx.roadmap.interactions``)
- ``download hg19 --dest data/roadmap [--base-url URL]``: UCSC's hg19 FASTA, unpacked into the
  dataset contract's ``genome.fa`` + ``.fai`` (``epx.roadmap.genome``), for sequence models.
- ``convert tagalign IN OUT --chrom-sizes F [--extend N] [--skip-unknown-chroms]``
- ``convert gtf IN OUT [--all-genes] [--ucsc-names]``
- ``convert interactions IN OUT --format pchic|hichip|hicdcplus|custom [column options]``
- ``convert expression IN OUT``
- ``convert crispr IN OUT --source fulco|encode [--gtf GTF] [--chain CHAIN] [--cell K562]``:
  a CRISPR screen as an hg19 element table (``epx.convert.crispr``).
- ``convert hic MAP OUT [--resolution 5000] [--fdr 0.1] [--min-distance BP] [--max-distance BP]
  [--chroms LIST]``: a Hi-C map's significant contacts (``epx.hic.significance``) as BEDPE.
- ``convert roadmap --dest data/roadmap [--extend N] [--force] [--pchic-score COLUMN]``: every converter a
  download folder needs, turning it into the dataset contract (DESIGN §2.1).

Each subcommand sets ``func``: a callable taking the parsed args and returning an exit
code. ``convert_roadmap`` is also the library entry point for the last one.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from epx.constants import MARKS, ROADMAP_CELLS
from epx.convert.expression import rpkm_to_expression
from epx.convert.gtf import gtf_to_tss
from epx.convert.interactions import PRESETS, convert_interactions, resolve_format
from epx.data.prepare.interactions import SCORE_FILTERS
from epx.convert.tagalign import tagalign_to_bigwig
from epx.io.bedpe import COLUMNS as BEDPE_COLUMNS
from epx.roadmap.download import download_roadmap, load_manifest
from epx.roadmap.genome import download_genome


def _outdated(out: Path, src: Path) -> bool:
    return not out.exists() or out.stat().st_mtime < src.stat().st_mtime


def _pchic_jobs(root: Path, manifest: dict) -> list[tuple[Path, Path, str]]:
    """(table, interactions/{EID}.bedpe, EID) for each cell with signals whose pcHi-C was downloaded."""
    from epx.roadmap.interactions import pchic_cells

    names = [p.name.split("-", 1)[0] for p in (*(root / "raw").glob("*.tagAlign.gz"), *(root / "signals").glob("*.bigwig"))]
    raw = root / Path(manifest["files"]["pchic"]["dest"]).parent
    sources = pchic_cells(manifest)
    return [
        (raw / sources[cell].file_name, root / "interactions" / f"{cell}.bedpe", cell)
        for cell in sorted(set(names) & set(sources))
        if (raw / sources[cell].file_name).is_file()
    ]


def convert_roadmap(
    dest: str | os.PathLike, *, extend: int | None = None, force: bool = False, pchic_score: str | None = None,
) -> list[Path]:
    """Convert a ``download roadmap`` folder into the dataset contract; return outputs written.

    tagAlign → ``signals/{cell}-{mark}.bigwig``, GTF → ``tss.bed``, RPKM → ``expression.tsv``,
    and (after ``download roadmap --interactions``) each cell's pcHi-C table →
    ``interactions/{cell}.bedpe`` (``epx.roadmap.interactions``; ``pchic_score`` names the
    table's score column, else the manifest's). Outputs newer than their input are kept unless
    ``force``.
    """
    root = Path(dest)
    manifest = load_manifest()
    files = manifest["files"]
    pchic = _pchic_jobs(root, manifest)
    score_column = pchic_score or manifest["interactions"].get("score_column")
    if pchic and score_column is None:  # before hours of tagAlign conversion, not after
        from epx.roadmap.interactions import pchic_to_bedpe

        pchic_to_bedpe(pchic[0][0], pchic[0][1], score_column=None)  # raises, listing the table's columns
    chrom_sizes = root / files["chrom_sizes"]["dest"]
    if not chrom_sizes.is_file():
        raise FileNotFoundError(
            f"{chrom_sizes} is missing; run `epx download roadmap --dest {root} ...` first"
        )
    jobs = [
        (root / "raw" / f, root / "signals" / f.replace(".tagAlign.gz", ".bigwig"), "tagalign")
        for f in sorted(p.name for p in (root / "raw").glob("*.tagAlign.gz"))
    ]
    jobs += [(root / files["gtf"]["dest"], root / "tss.bed", "gtf"),
             (root / files["rpkm"]["dest"], root / "expression.tsv", "rpkm")]
    converters = {
        "tagalign": lambda src, out: tagalign_to_bigwig(src, chrom_sizes, out, extend=extend),
        "gtf": gtf_to_tss,
        "rpkm": rpkm_to_expression,
    }
    written = []
    for src, out, kind in jobs:
        if not src.exists():
            raise FileNotFoundError(f"{src} is missing; run `epx download roadmap --dest {root} ...` first")
        if force or _outdated(out, src):
            print(f"converting {src} -> {out}", flush=True)
            converters[kind](src, out)
            written.append(out)
    if pchic:
        from epx.roadmap.interactions import pchic_cells, pchic_to_bedpe

        sources = pchic_cells(manifest)
        for src, out, cell in pchic:
            if force or _outdated(out, src):
                print(f"converting {src} -> {out}", flush=True)
                s = sources[cell]
                pchic_to_bedpe(src, out, score_column=score_column, cell=cell, tissue=s.tissue, proxy=s.proxy,
                               chrom_sizes=chrom_sizes)
                written.append(out)
    return written


# ---------------------------------------------------------------- command functions


def _cmd_download_roadmap(args: argparse.Namespace) -> int:
    files = download_roadmap(
        args.cells, args.marks, args.dest, signal=args.signal, base_urls=args.base_url,
        retries=args.retries, progress=not args.no_progress, interactions=args.interactions,
    )
    print(f"{len(files)} files verified in {args.dest}")
    if args.signal == "tagalign":
        print(f"next: epx convert roadmap --dest {args.dest}")
    return 0


def _cmd_download_genome(args: argparse.Namespace) -> int:
    fasta = download_genome(args.dest, args.source, base_urls=args.base_url, retries=args.retries, progress=not args.no_progress)
    print(f"{fasta} (+ .fai) verified: the dataset's genome (dataset.files.genome={fasta.name})")
    return 0


def _cmd_convert_tagalign(args: argparse.Namespace) -> int:
    stats = tagalign_to_bigwig(
        args.src, args.chrom_sizes, args.out, extend=args.extend,
        skip_unknown_chroms=args.skip_unknown_chroms, chunksize=args.chunksize,
    )
    print(f"{args.out}: {stats.reads} reads, {stats.intervals} intervals"
          + (f", skipped {stats.skipped}" if stats.skipped else ""))
    return 0


def _cmd_convert_gtf(args: argparse.Namespace) -> int:
    stats = gtf_to_tss(args.src, args.out, all_genes=args.all_genes, ucsc_names=args.ucsc_names)
    print(f"{args.out}: {stats.genes} genes ({stats.duplicates_dropped} duplicate ids dropped)")
    return 0


def _cmd_convert_interactions(args: argparse.Namespace) -> int:
    def column(value: str | None) -> str | int | None:
        return int(value) if value is not None and args.no_header and value.isdigit() else value

    overrides = {f: column(getattr(args, f)) for f in BEDPE_COLUMNS}
    overrides["score_kind"] = args.score_kind
    if args.no_header:
        overrides["header"] = False
    if args.one_based:
        overrides["one_based"] = True
    fmt = resolve_format(None if args.format == "custom" else args.format, **overrides)
    rows = convert_interactions(args.src, args.out, fmt, threshold=args.threshold)
    print(f"{args.out}: {rows} interactions; score kind {fmt.score_kind} "
          f"(run with dataset.interactions.score_kind={fmt.score_kind})")
    return 0


def _cmd_convert_hic(args: argparse.Namespace) -> int:
    from epx.hic.significance import write_significant  # cooler / hic-straw only when asked for

    chroms = [c for c in args.chroms.split(",") if c] if args.chroms else None
    stats = write_significant(args.src, args.out, resolution=args.resolution, fdr=args.fdr,
                              min_distance=args.min_distance, max_distance=args.max_distance, chroms=chroms)
    print(f"{args.out}: {stats.significant} contacts at FDR {stats.fdr} ({stats.nonzero_pixels} nonzero of "
          f"{stats.tested_pairs} tested pairs, {stats.chroms} chromosomes); run with "
          f"dataset.interactions.score_kind=qvalue dataset.interactions.threshold={stats.fdr}")
    return 0


def _cmd_convert_crispr(args: argparse.Namespace) -> int:
    from epx.convert.crispr import convert_crispr

    stats = convert_crispr(args.src, args.out, source=args.source, gtf=args.gtf, chain=args.chain, cell=args.cell)
    dropped = ", ".join(f"{n} {why}" for why, n in stats.dropped.items()) or "none"
    print(f"{args.out}: {stats.written} of {stats.rows_read} elements ({stats.positives} positive by GraphReg's rule)"
          f"{', lifted GRCh38 -> hg19' if stats.lifted else ''}; dropped: {dropped}"
          + (f"; {stats.unmapped_symbols} gene symbols not in the GTF (kept; validation counts them unknown_gene)"
             if stats.unmapped_symbols else ""))
    return 0


def _cmd_convert_expression(args: argparse.Namespace) -> int:
    print(f"{args.out}: {rpkm_to_expression(args.src, args.out)} genes")
    return 0


def _cmd_convert_roadmap(args: argparse.Namespace) -> int:
    written = convert_roadmap(args.dest, extend=args.extend, force=args.force, pchic_score=args.pchic_score)
    print(f"{args.dest}: {len(written)} files converted; dataset root ready "
          f"(dataset=folder dataset.root={args.dest})")
    return 0


# ---------------------------------------------------------------- parsers


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``download`` and ``convert`` (with their own subcommands) on ``subparsers``."""
    download = subparsers.add_parser("download", help="fetch public data sets")
    sources = download.add_subparsers(dest="source", required=True, metavar="SOURCE")
    roadmap = sources.add_parser(
        "roadmap", help="Roadmap Epigenomics (hg19): signals, RPKM matrix, GENCODE v19, chrom sizes",
    )
    roadmap.add_argument("--cells", required=True,
                         help=f"comma-separated EIDs or 'all' ({','.join(ROADMAP_CELLS)})")
    roadmap.add_argument("--marks", required=True, help=f"comma-separated marks or 'all' ({','.join(MARKS)})")
    roadmap.add_argument("--dest", type=Path, default=Path("data/roadmap"), help="the dataset folder to download into (default data/roadmap)")
    roadmap.add_argument("--signal", choices=sorted(load_manifest()["signals"]), default="tagalign",
                         help="tagalign: consolidated reads (convert to read depth); fc: MACS2 fold-change bigWigs")
    roadmap.add_argument("--base-url", action="append", default=[], metavar="URL|NAME=URL",
                         help="mirror for every source, or NAME=URL for one (roadmap, gencode, ucsc)")
    roadmap.add_argument("--retries", type=int, default=5, help="attempts per file before giving up (default 5); a partial file resumes")
    roadmap.add_argument("--no-progress", action="store_true", help="no progress lines (batch jobs)")
    roadmap.add_argument("--interactions", action="store_true",
                         help="also the cells' promoter-capture Hi-C (Jung et al. 2019, GEO GSE86189; source geo=URL)")
    roadmap.set_defaults(func=_cmd_download_roadmap)
    for genome in sorted(load_manifest()["genomes"]):
        fasta = sources.add_parser(genome, help=f"UCSC {genome} reference FASTA -> genome.fa + .fai (for sequence models)")
        fasta.add_argument("--dest", type=Path, default=Path("data/roadmap"), help="the dataset folder")
        fasta.add_argument("--base-url", action="append", default=[], metavar="URL|NAME=URL", help="mirror of UCSC's bigZips (ucsc=URL)")
        fasta.add_argument("--retries", type=int, default=5, help="attempts per file before giving up (default 5); a partial file resumes")
        fasta.add_argument("--no-progress", action="store_true", help="no progress lines (batch jobs)")
        fasta.set_defaults(func=_cmd_download_genome)

    convert = subparsers.add_parser("convert", help="convert lab formats into the dataset contract")
    kinds = convert.add_subparsers(dest="kind", required=True, metavar="KIND")

    tagalign = kinds.add_parser("tagalign", help="tagAlign(.gz) reads -> per-bp read-depth bigWig")
    tagalign.add_argument("src", type=Path, help="the tagAlign(.gz) file of reads")
    tagalign.add_argument("out", type=Path, help="the bigWig to write")
    tagalign.add_argument("--chrom-sizes", type=Path, required=True, help="chrom.sizes of the genome the reads are on")
    tagalign.add_argument("--extend", type=int, default=None, help="fragment length (strand-aware); default: reads as written")
    tagalign.add_argument("--skip-unknown-chroms", action="store_true", help="drop reads on chromosomes not in --chrom-sizes (default: an error naming them)")
    tagalign.add_argument("--chunksize", type=int, default=2_000_000, help="reads parsed per chunk")
    tagalign.set_defaults(func=_cmd_convert_tagalign)

    gtf = kinds.add_parser("gtf", help="GENCODE/Ensembl GTF -> tss.bed of protein-coding genes")
    gtf.add_argument("src", type=Path, help="the GTF(.gz) gene annotation (e.g. GENCODE v19)")
    gtf.add_argument("out", type=Path, help="the tss.bed to write")
    gtf.add_argument("--all-genes", action="store_true", help="keep every gene, not only protein-coding")
    gtf.add_argument("--ucsc-names", action="store_true", help="Ensembl chromosome names -> UCSC (1 -> chr1, MT -> chrM)")
    gtf.set_defaults(func=_cmd_convert_gtf)

    inter = kinds.add_parser("interactions", help="pcHi-C / HiChIP / HiCDCPlus table -> BEDPE")
    inter.add_argument("src", type=Path, help="the lab's interaction table")
    inter.add_argument("out", type=Path, help="the BEDPE to write (interactions/<cell>.bedpe)")
    inter.add_argument("--format", choices=[*sorted(PRESETS), "custom"], required=True,
                       help="pchic: CHiCAGO ibed; hichip: FitHiChIP; hicdcplus: gi_list_write; custom: map every column")
    for name in BEDPE_COLUMNS:
        inter.add_argument(f"--{name}", default=None, metavar="COLUMN", help=f"source column for {name}")
    inter.add_argument("--score-kind", choices=sorted(SCORE_FILTERS), default=None, help="how the score column reads (default: the format's)")
    inter.add_argument("--no-header", action="store_true", help="the table has no header; columns are 0-based indices")
    inter.add_argument("--one-based", action="store_true", help="the table's starts are 1-based")
    inter.add_argument("--threshold", type=float, default=None,
                       help="drop rows the score kind rejects (frequency: < t, qvalue: > t)")
    inter.set_defaults(func=_cmd_convert_interactions)

    hic = kinds.add_parser("hic", help="Hi-C map (.hic / .cool / .mcool) -> significant contacts BEDPE (q-values)")
    hic.add_argument("src", type=Path, help=".hic (hic-straw), .cool or .mcool (cooler)")
    hic.add_argument("out", type=Path, help="the BEDPE to write (interactions/<cell>.bedpe)")
    hic.add_argument("--resolution", type=int, default=5000, help="bin size in bp (GraphReg: 5000)")
    hic.add_argument("--fdr", type=float, default=0.1, help="keep pairs with Benjamini-Hochberg q <= this")
    hic.add_argument("--min-distance", type=int, default=10_000, help="bp; nearer pairs are not tested")
    hic.add_argument("--max-distance", type=int, default=2_000_000, help="bp; further pairs are not tested")
    hic.add_argument("--chroms", default=None, help="comma-separated chromosomes (default: all of the map)")
    hic.set_defaults(func=_cmd_convert_hic)

    crispr = kinds.add_parser("crispr", help="CRISPR enhancer screen (Fulco 2019 6a, ENCODE benchmark) -> hg19 element table")
    crispr.add_argument("src", type=Path, help="Fulco et al. 2019 Supplementary Table 6a (.xlsx or TSV), or the ENCODE table")
    crispr.add_argument("out", type=Path, help="element table (e.g. elements.tsv in the dataset folder)")
    crispr.add_argument("--source", choices=["fulco", "encode"], required=True, help="fulco: Fulco 2019 Table 6a (hg19); encode: the ENCODE CRISPR table (GRCh38, needs a chain file)")
    crispr.add_argument("--gtf", type=Path, default=None, help="GENCODE GTF mapping gene symbols to Ensembl ids (fulco)")
    crispr.add_argument("--chain", type=Path, default=None, help="hg38ToHg19.over.chain.gz (encode: GRCh38 -> hg19)")
    crispr.add_argument("--cell", default=None, help="keep this cell type only (encode: CellType, e.g. K562)")
    crispr.set_defaults(func=_cmd_convert_crispr)

    expression = kinds.add_parser("expression", help="RPKM matrix (57epigenomes.RPKM.pc) -> expression.tsv")
    expression.add_argument("src", type=Path, help="the RPKM matrix (genes x cells, e.g. Roadmap 57epigenomes.RPKM.pc)")
    expression.add_argument("out", type=Path, help="the expression.tsv to write")
    expression.set_defaults(func=_cmd_convert_expression)

    folder = kinds.add_parser("roadmap", help="convert a `download roadmap` folder into the dataset contract")
    folder.add_argument("--dest", type=Path, default=Path("data/roadmap"), help="the download folder to convert in place (default data/roadmap)")
    folder.add_argument("--extend", type=int, default=None, help="tagAlign fragment length (strand-aware); default: reads as written")
    folder.add_argument("--force", action="store_true", help="reconvert outputs that are up to date")
    folder.add_argument("--pchic-score", default=None, metavar="COLUMN",
                        help="score column of the GSE86189 pcHi-C tables (written as the BEDPE score, kind frequency)")
    folder.set_defaults(func=_cmd_convert_roadmap)
