"""GENCODE / Ensembl GTF → ``tss.bed`` of protein-coding genes (DESIGN §2.1).

Contract:

- Input: a GTF (plain or ``.gz``): 9 tab-separated columns, 1-based inclusive
  coordinates, attributes as ``key "value";``. Genes are taken from ``gene`` lines; a GTF
  without ``gene`` lines (older Ensembl releases) gets each gene's span from the
  smallest start and largest end of its other lines (transcripts, exons).
- Kept: genes whose ``gene_type`` (GENCODE) or ``gene_biotype`` (Ensembl) is
  ``protein_coding``; a GTF with none of them is an ``InputError`` (nothing would be
  written). A GTF with neither attribute raises one ``InputError`` (a
  ``ValueError``) naming the file, unless ``all_genes=True`` (keep every gene).
- Broken input — a truncated or corrupt gzip, a binary file, an empty file, a line without 9
  columns, a non-integer, negative or reversed start/end, a strand other than ``+ - .``, a
  gene without ``gene_id`` or without a strand — is one ``InputError`` naming the file (and
  the line, found by a line-by-line scan after the fast pandas read failed) and the fix.
  CRLF line ends and a UTF-8 BOM read correctly.
- Output: BED6 ``chrom, tss, tss+1, gene_id, 0, strand``, 0-based, sorted by chrom and
  TSS, written by ``epx.io.tss.write_tss``. The TSS is the gene's 5' end: in BED terms
  ``start`` for ``+`` genes and ``end - 1`` for ``-`` genes, i.e. GTF ``start - 1`` and
  GTF ``end - 1``.
- Ids lose their version (``ENSG00000116213.11`` → ``ENSG00000116213``,
  ``epx.io.gene_ids``) so they join the Roadmap RPKM matrix; a gene line without a
  ``gene_id`` is an error. An id listed twice (GENCODE v19 lists the pseudo-autosomal genes
  on both chrX and chrY under one id) keeps its first line, the chrX copy in GENCODE order.
- ``ucsc_names=True`` renames Ensembl chromosomes to UCSC style (``1`` → ``chr1``,
  ``MT`` → ``chrM``; ``epx.io.naming.ucsc_name``) so the BED matches hg19 bigWigs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from epx.errors import InputError
from epx.io.gene_ids import normalise_gene_ids
from epx.io.naming import ucsc_name
from epx.io.tables import Rows, guard, open_text, scan
from epx.io.tss import write_tss

_GTF_COLUMNS = {0: "chrom", 2: "feature", 3: "start", 4: "end", 6: "strand", 8: "attributes"}
_TYPE_KEYS = ("gene_type", "gene_biotype")  # GENCODE, Ensembl


@dataclass
class GtfStats:
    """What a conversion kept."""

    genes: int  # genes written
    duplicates_dropped: int  # later lines of an id already written


def _attribute(attributes: pd.Series, key: str) -> pd.Series:
    return attributes.str.extract(rf'(?:^|;)\s*{key} "([^"]*)"', expand=False)


GTF_EXPECTED = "9 tab-separated columns with integer start/end (GENCODE or Ensembl gene annotation)"
GTF_HINT = (
    "a GTF line has 9 tab-separated columns (seqname source feature start end score strand frame attributes), "
    "1-based integer start <= end and strand +, - or .; fix or delete that line (comment lines start with '#'), "
    "or re-download the annotation"
)


def _check_gtf_rows(rows: Rows) -> None:
    rows.check_width(9, 9, expected="9 (seqname source feature start end score strand frame attributes)")
    start = rows.integers(3, "start", minimum=1)
    rows.ordered(start, rows.integers(4, "end", minimum=1), "start", "end")
    rows.choice(6, "strand", ["+", "-", "."])


def _read_gtf_chunks(path: Path, chunksize: int):
    """Typed chunks read by pandas (fast); on any failure the file is scanned line by line
    for the first bad line, so the one ``InputError`` names it."""

    def locate() -> None:
        scan(path, what="GTF", hint=GTF_HINT, check=_check_gtf_rows)

    with guard(path, what="GTF", expected=GTF_EXPECTED, on_error=locate), open_text(path, what="GTF") as handle:
        for chunk in pd.read_csv(
            handle,
            sep="\t",
            header=None,
            comment="#",
            usecols=list(_GTF_COLUMNS),
            dtype={0: str, 2: str, 3: "int64", 4: "int64", 6: str, 8: str},
            chunksize=chunksize,
        ):
            bad = (chunk[3] < 1) | (chunk[4] < chunk[3]) | ~chunk[6].isin(["+", "-", "."]) | chunk[8].isna() | chunk[0].isna()
            if bad.any():
                locate()
                row = chunk[bad].iloc[0]
                raise InputError(f"{path}: a line reads {row.tolist()}, not a valid GTF line; {GTF_HINT}")
            yield chunk


def _spans(lines: pd.DataFrame) -> pd.DataFrame:
    """Gene spans (smallest start, largest end) per ``gene_id`` column of ``lines``."""
    spans = lines.groupby("gene_id", sort=False).agg(
        chrom=("chrom", "first"),
        start=("start", "min"),
        end=("end", "max"),
        strand=("strand", "first"),
        attributes=("attributes", "first"),
    )
    return spans.reset_index()


def _genes(path: Path, chunksize: int = 500_000) -> pd.DataFrame:
    """One row per gene, streaming: only ``gene`` lines are kept (GENCODE v19 has 2.6 M
    lines, 58 k of them genes); without any, spans come from the other lines."""
    gene_lines: list[pd.DataFrame] = []
    spans: list[pd.DataFrame] = []
    for chunk in _read_gtf_chunks(path, chunksize):
        chunk = chunk.rename(columns=_GTF_COLUMNS)
        genes = chunk[chunk["feature"] == "gene"]
        if not genes.empty:
            gene_lines.append(genes)
        elif not gene_lines:
            spans.append(_spans(chunk.assign(gene_id=_attribute(chunk["attributes"], "gene_id"))))
    if gene_lines:
        return pd.concat(gene_lines, ignore_index=True)
    if not spans:
        return pd.DataFrame(columns=list(_GTF_COLUMNS.values()))
    return _spans(pd.concat(spans, ignore_index=True))


def gtf_to_tss(
    gtf: str | os.PathLike,
    out: str | os.PathLike,
    *,
    all_genes: bool = False,
    ucsc_names: bool = False,
) -> GtfStats:
    """Write the TSS of every protein-coding gene in ``gtf`` to ``out`` (see module docstring)."""
    gtf = Path(gtf)
    if not gtf.is_file():
        raise FileNotFoundError(f"GTF file {gtf} does not exist")
    genes = _genes(gtf)
    if genes.empty:
        raise InputError(f"{gtf} has no annotation lines; expected a GENCODE/Ensembl GTF")

    if not all_genes:
        types = next(
            (t for key in _TYPE_KEYS if (t := _attribute(genes["attributes"], key)).notna().any()),
            None,
        )
        if types is None:
            raise InputError(
                f"{gtf} has no gene_type (GENCODE) or gene_biotype (Ensembl) attribute, so "
                "protein-coding genes cannot be selected; use a GENCODE/Ensembl GTF, or pass "
                "--all-genes to keep every gene"
            )
        coding = (types == "protein_coding").to_numpy()
        if not coding.any():
            found = ", ".join(map(str, types.dropna().unique()[:5]))
            raise InputError(
                f"{gtf} has no protein_coding gene among its {len(genes)} genes (types: {found or 'none'}); is it the "
                "gene annotation? Pass --all-genes to keep every gene"
            )
        genes = genes[coding]

    gene_ids = normalise_gene_ids(_attribute(genes["attributes"], "gene_id"))
    if gene_ids.isna().any() or (gene_ids.str.strip() == "").any():
        example = genes["attributes"][(gene_ids.isna() | (gene_ids.str.strip() == "")).to_numpy()].iloc[0]
        raise InputError(f"{gtf}: some gene lines have no gene_id attribute (e.g. attributes {example[:120]!r}); {GTF_HINT}")
    unstranded = (genes["strand"] == ".").to_numpy()
    if unstranded.any():
        raise InputError(
            f"{gtf}: gene {gene_ids[unstranded].iloc[0]} has no strand ('.'), so its TSS is unknown; give it + or -, or "
            "drop it from the GTF"
        )
    minus = (genes["strand"] == "-").to_numpy()
    tss = genes["start"].to_numpy() - 1  # GTF is 1-based inclusive
    tss[minus] = genes["end"].to_numpy()[minus] - 1
    chroms = genes["chrom"]
    if ucsc_names:
        chroms = chroms.map(ucsc_name)

    table = pd.DataFrame(
        {"gene_id": gene_ids.to_numpy(), "chrom": chroms.to_numpy(), "tss": tss, "strand": genes["strand"].to_numpy()}
    )
    unique = table.drop_duplicates("gene_id", keep="first")
    unique = unique.sort_values(["chrom", "tss"], kind="stable")
    write_tss(unique, out)
    return GtfStats(genes=len(unique), duplicates_dropped=len(table) - len(unique))
