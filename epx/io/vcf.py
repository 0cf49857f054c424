"""VCF: single-nucleotide variants read with pysam (htslib), reconciled to a dataset's names.

Contract:

- ``read_snvs(path, chrom_sizes, *, multiallelic="split") -> VcfSnvs``: every record of a
  ``.vcf`` or ``.vcf.gz`` (bgzip; plain gzip is refused with the fix) through ``pysam.VariantFile``. A record with
  several ALT alleles is ``split`` into one row per ALT (or, ``refuse``, left out), counted
  either way; an ALT that is not one of A C G T replacing a one-base REF (an indel, an MNP,
  a symbolic ``<DEL>``/``*`` allele, a missing ``.``) is refused and counted. Chromosome
  names are reconciled to ``chrom_sizes`` (``epx.io.naming``: ``1`` <-> ``chr1``); records on
  a chromosome the dataset lacks are counted and their names listed. A header contig whose
  length differs from the dataset's chromosome of that name means another assembly: one
  ``InputError`` naming the file, the chromosomes and both lengths; so is a file that
  pysam cannot parse, and a file none of whose records' chromosomes the dataset has.
- ``VcfSnvs``: ``table`` DataFrame[record (0-based record index in file order), vcf_chrom,
  chrom (the dataset's name), pos (0-based), id (the VCF ID, else ``chrom:POS:REF>ALT``), ref,
  alt] (REF/ALT upper case), ``counts`` {records, alleles, snvs, multiallelic_records,
  multiallelic_refused, non_snv, unknown_chrom, renamed_chrom}, ``unknown_chroms``.
- ``write_annotated(source, path, annotations, *, info_id, description, status, status_id)``:
  the source VCF again (header and record lines as written there) with two INFO fields added: ``info_id``
  (``Number=.``, String: ``annotations[record]``, a list of strings, where given) and
  ``status_id`` (``status[record]``: why a record was or was not scored). Written bgzipped
  when ``path`` ends in ``.gz``, atomically.
- ``write_vcf(path, records, contigs, info)``: a new VCF from a DataFrame[chrom, pos
  (0-based), id, ref, alt, <info fields>] with header contigs ``{name: length}`` and INFO
  definitions ``{field: (Number, Type, Description)}``; plain text unless ``.gz``; no date
  or program line, so the same records give the same bytes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from epx.errors import InputError
from epx.io.atomic import atomic_path
from epx.io.naming import reconcile

SNV_BASES = frozenset("ACGT")
MULTIALLELIC = ("split", "refuse")
TABLE_COLUMNS = ["record", "vcf_chrom", "chrom", "pos", "id", "ref", "alt"]


@dataclass
class VcfSnvs:
    table: pd.DataFrame
    counts: dict[str, int]
    unknown_chroms: list[str] = field(default_factory=list)


def _open(path: Path, mode: str = "r", **kw):
    import pysam

    try:
        return pysam.VariantFile(str(path), mode, **kw)
    except NotImplementedError as err:  # htslib reads bgzip, not plain gzip
        raise InputError(f"{path} is gzip- but not bgzip-compressed; recompress it: gunzip -c {path} | bgzip > {path.with_suffix('.bgz')}") from err
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot read it as a VCF ({err}); give a .vcf or bgzipped .vcf.gz (bgzip FILE.vcf)") from err


def _check_assembly(path: Path, header, chrom_sizes: Mapping[str, int], names: dict[str, str | None]) -> None:
    differ = []
    for contig in header.contigs.values():
        ours = names.get(contig.name)
        if ours is not None and contig.length is not None and int(contig.length) != int(chrom_sizes[ours]):
            differ.append(f"{contig.name} {contig.length} vs {ours} {chrom_sizes[ours]}")
    if differ:
        raise InputError(
            f"{path} is on another assembly than the dataset: contig lengths differ ({'; '.join(differ[:4])}"
            f"{'; ...' if len(differ) > 4 else ''}); lift the variants over to the dataset's assembly (e.g. CrossMap, Picard LiftoverVcf)"
        )


def read_snvs(path: str | os.PathLike, chrom_sizes: Mapping[str, int], *, multiallelic: str = "split") -> VcfSnvs:
    path = Path(path)
    if multiallelic not in MULTIALLELIC:
        raise InputError(f"multiallelic={multiallelic!r}; choose one of {', '.join(MULTIALLELIC)}")
    if not path.is_file():
        raise InputError(f"VCF not found: {path}")
    counts = dict.fromkeys(("records", "alleles", "snvs", "multiallelic_records", "multiallelic_refused", "non_snv", "unknown_chrom", "renamed_chrom"), 0)
    rows: list[tuple] = []
    unknown: dict[str, None] = {}
    with _open(path) as vcf:
        header_names = list(vcf.header.contigs)
        names = reconcile(header_names, chrom_sizes) if header_names else {}
        _check_assembly(path, vcf.header, chrom_sizes, names)
        try:
            for index, rec in enumerate(vcf):
                counts["records"] += 1
                if rec.chrom not in names:
                    names.update(reconcile([rec.chrom], chrom_sizes))
                ours = names[rec.chrom]
                alts = tuple(rec.alts or ())
                counts["alleles"] += max(len(alts), 1)
                if ours is None:
                    counts["unknown_chrom"] += 1
                    unknown[rec.chrom] = None
                    continue
                counts["renamed_chrom"] += ours != rec.chrom
                if len(alts) > 1:
                    counts["multiallelic_records"] += 1
                    if multiallelic == "refuse":
                        counts["multiallelic_refused"] += 1
                        continue
                ref = (rec.ref or "").upper()
                for alt in alts or (".",):
                    alt = alt.upper()
                    if len(ref) != 1 or len(alt) != 1 or ref not in SNV_BASES | {"N"} or alt not in SNV_BASES:
                        counts["non_snv"] += 1
                        continue
                    counts["snvs"] += 1
                    vid = rec.id or f"{rec.chrom}:{rec.pos}:{ref}>{alt}"
                    rows.append((index, rec.chrom, ours, rec.pos - 1, vid, ref, alt))
        except (OSError, ValueError) as err:
            raise InputError(f"{path}, record {counts['records'] + 1}: cannot parse it ({err}); check the file with `bcftools view {path}`") from err
    if counts["records"] and counts["unknown_chrom"] == counts["records"]:
        raise InputError(
            f"{path}: none of its chromosomes ({', '.join(list(unknown)[:5])}) is one of the dataset's "
            f"({', '.join(list(chrom_sizes)[:5])}, ...); is it for another genome?"
        )
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS).astype({"record": "int64", "pos": "int64"})
    return VcfSnvs(table, counts, list(unknown))


def _text_lines(path: Path):
    import gzip

    with path.open("rb") as handle:
        zipped = handle.read(2) == b"\x1f\x8b"
    with (gzip.open(path, "rt", newline="") if zipped else path.open("r", newline="")) as handle:
        yield from handle


def write_annotated(source: str | os.PathLike, path: str | os.PathLike, annotations: Mapping[int, Sequence[str]], *, info_id: str,
                    description: str, status: Mapping[int, str], status_id: str) -> Path:
    """The records' text with INFO fields appended (htslib's record translation exits the
    process on a record whose contig the header lacks, so records are not re-encoded)."""
    import pysam

    path, source = Path(path), Path(source)
    with _open(source):  # the same parse errors as read_snvs, before anything is written
        pass
    added = [f'##INFO=<ID={info_id},Number=.,Type=String,Description="{description}">\n',
             f'##INFO=<ID={status_id},Number=1,Type=String,Description="Why the record was or was not scored">\n']
    with atomic_path(path) as tmp:
        plain = tmp.with_name(tmp.name + ".txt") if path.suffix == ".gz" else tmp
        try:
            with plain.open("w", newline="") as out:
                index = 0
                for line in _text_lines(source):
                    if line.startswith("#CHROM"):
                        out.writelines(added)
                    if line.startswith("#") or not line.strip():
                        out.write(line)
                        continue
                    fields = line.rstrip("\r\n").split("\t")
                    extra = []
                    if annotations.get(index):
                        extra.append(f"{info_id}={','.join(annotations[index])}")
                    if index in status:
                        extra.append(f"{status_id}={status[index]}")
                    if extra and len(fields) > 7:
                        fields[7] = ";".join(extra) if fields[7] in ("", ".") else fields[7] + ";" + ";".join(extra)
                    out.write("\t".join(fields) + "\n")
                    index += 1
            if plain != tmp:
                pysam.tabix_compress(str(plain), str(tmp), force=True)
        finally:
            if plain != tmp:
                plain.unlink(missing_ok=True)
    return path


def write_vcf(path: str | os.PathLike, records: pd.DataFrame, contigs: Mapping[str, int], info: Mapping[str, tuple[str, str, str]]) -> Path:
    import pysam

    path = Path(path)
    header = pysam.VariantHeader()
    for name, length in contigs.items():
        header.contigs.add(name, length=int(length))
    for key, (number, kind, description) in info.items():
        header.add_line(f'##INFO=<ID={key},Number={number},Type={kind},Description="{description}">')
    with atomic_path(path) as tmp, _open(tmp, "wz" if path.suffix == ".gz" else "w", header=header) as out:
        for row in records.itertuples(index=False):
            values = row._asdict()
            pos = int(values["pos"])
            rec = out.new_record(contig=str(values["chrom"]), start=pos, stop=pos + len(values["ref"]), id=str(values["id"]),
                                 alleles=(str(values["ref"]), str(values["alt"])))
            for key in info:
                if key in values and values[key] is not None and values[key] != "":
                    rec.info[key] = values[key]
            out.write(rec)
    return path
