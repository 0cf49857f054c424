"""Promoter-capture Hi-C for the Roadmap cells (Jung et al. 2019, GEO GSE86189, hg19) → BEDPE.

Contract:

- ``pchic_cells(manifest=None) -> dict[EID, PchicSource]``: the manifest's ``interactions``
  section: each EID's tissue (Chromoformer's own mapping), its name in the GEO file name and,
  for the three cells without pcHi-C of their own (E016 HUES64, E114 A549, E118 HepG2), the
  proxy it uses and why.
- ``pchic_to_bedpe(src, out, *, score_column, cell=None, chrom_sizes=None) -> PchicStats``:
  one promoter–other table (``GSE86189_<tissue>.po.all.txt.bz2``: tab-separated, a header,
  ``frag1`` = the captured promoter fragment and ``frag2`` = its partner, each written
  ``chr.start.end``; bzip2, gzip or plain) → 8-column BEDPE (``epx.io.bedpe``): anchor 1 =
  ``frag1``, anchor 2 = ``frag2``, name = the tissue (or ``.``), score = ``score_column``
  unchanged (score kind ``frequency``). Rows keep the file order; a row with an empty/NaN
  score is dropped and counted. What Chromoformer keeps (score > 1.5, partner ≤ 40 kb, the 8
  strongest per promoter) is applied downstream by the dataset, like any other BEDPE
  (``dataset.interactions.threshold=1.5``, ``ChromoformerInputs(i_max=8, w_max=40_000)``),
  so the file holds every called interaction. With ``cell``, ``interactions/{cell}.source.json``
  is written next to ``out`` (source, tissue, proxy, score column, rows).
- Bad input is one ``InputError`` naming the file and the fix, before anything is written:
  a table without ``frag1``/``frag2``/the score column (its columns are listed), no score
  column named (``--pchic-score``), a fragment not written ``chr.start.end`` or with start >
  end, a non-numeric score, a chromosome hg19 lacks or a fragment past the end of its hg19
  chromosome (another assembly, e.g. GRCh38 — lift it first), a corrupt or truncated
  compressed file.
"""

from __future__ import annotations

import bz2
import gzip
import json
import os
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from epx.errors import InputError
from epx.io.atomic import write_text
from epx.io.bedpe import write_interactions
from epx.io.chrom_sizes import read_chrom_sizes

HINT = (
    "a GSE86189 promoter-other table is tab-separated with a header: frag1, frag2 (chr.start.end) and a score "
    "column; download it again with `epx download roadmap --interactions`"
)


@dataclass(frozen=True)
class PchicSource:
    """Where one Roadmap cell's pcHi-C comes from."""

    cell: str
    tissue: str
    geo: str  # the tissue's name in GSE86189_<geo>.po.all.txt.bz2
    proxy: str | None = None

    @property
    def file_name(self) -> str:
        return f"GSE86189_{self.geo}.po.all.txt.bz2"


@dataclass(frozen=True)
class PchicStats:
    rows: int
    dropped_no_score: int
    score_column: str


def pchic_cells(manifest: dict | None = None) -> dict[str, PchicSource]:
    if manifest is None:
        from epx.roadmap.download import load_manifest

        manifest = load_manifest()
    cells = manifest["interactions"]["cells"]
    return {eid: PchicSource(cell=eid, tissue=v["tissue"], geo=v["geo"], proxy=v.get("proxy")) for eid, v in cells.items()}


def _open_text(path: Path):
    with open(path, "rb") as fh:
        head = fh.read(3)
    if head.startswith(b"BZh"):
        return bz2.open(path, "rt", encoding="utf-8-sig", newline=None)
    if head.startswith(b"\x1f\x8b"):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline=None)
    return open(path, encoding="utf-8-sig", newline=None)


def _read_table(path: Path) -> pd.DataFrame:
    try:
        with _open_text(path) as fh:
            return pd.read_csv(fh, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, EOFError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputError(f"{path}: unreadable pcHi-C table ({type(err).__name__}: {err}); {HINT}") from None


def _fragments(table: pd.DataFrame, column: str, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    parts = table[column].str.strip().str.split(".", n=2, expand=True)
    if parts.shape[1] != 3 or parts.isna().any(axis=None):
        bad = int(np.argmax(parts.isna().any(axis=1).to_numpy())) if parts.shape[1] == 3 else 0
        raise InputError(
            f"{path} line {bad + 2}: {column} {table[column].iloc[bad]!r} is not written chr.start.end (e.g. "
            f"chr1.1000.5000); {HINT}"
        )
    numbers = parts[[1, 2]].apply(pd.to_numeric, errors="coerce")
    bad_rows = numbers.isna().any(axis=1).to_numpy() | (numbers[1] > numbers[2]).to_numpy() | (numbers[1] < 0).to_numpy()
    if bad_rows.any():
        i = int(np.argmax(bad_rows))
        raise InputError(
            f"{path} line {i + 2}: {column} {table[column].iloc[i]!r} needs integer start <= end; {HINT}"
        )
    return parts[0].to_numpy(dtype=object), numbers[1].to_numpy(np.int64), numbers[2].to_numpy(np.int64)


def _check_assembly(chrom: np.ndarray, end: np.ndarray, sizes: dict[str, int], path: Path, column: str) -> None:
    known = np.array([c in sizes for c in chrom], dtype=bool)
    if not known.all():
        i = int(np.argmax(~known))
        raise InputError(
            f"{path} line {i + 2}: chromosome {chrom[i]!r} of {column} is not an hg19 chromosome (hg19 names are "
            "chr1 … chrX, chrY, chrM); GSE86189 is hg19 — check the file is the GEO table"
        )
    limit = np.array([sizes[c] for c in chrom], dtype=np.int64)
    past = end > limit
    if past.any():
        i = int(np.argmax(past))
        raise InputError(
            f"{path} line {i + 2}: {column} ends at {chrom[i]}:{end[i]}, past hg19's {chrom[i]} length {limit[i]}: "
            "the table is in another assembly (GRCh38?). Lift it to hg19 first (UCSC liftOver with "
            "hg38ToHg19.over.chain.gz), or use the GEO hg19 table"
        )


def pchic_to_bedpe(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    score_column: str | None,
    cell: str | None = None,
    tissue: str | None = None,
    proxy: str | None = None,
    chrom_sizes: str | os.PathLike | None = None,
) -> PchicStats:
    """Convert one GSE86189 promoter-other table (module doc); return its counts."""
    src, out = Path(src), Path(out)
    if not src.is_file():
        raise FileNotFoundError(f"pcHi-C table {src} does not exist; run `epx download roadmap --interactions ...`")
    table = _read_table(src)
    table.columns = [c.strip() for c in table.columns]
    columns = list(table.columns)
    if score_column is None:
        raise InputError(
            f"{src}: name its score column with --pchic-score COLUMN (the distance-normalised interaction "
            f"frequency Chromoformer thresholds at 1.5); its columns are {columns}"
        )
    missing = [c for c in ("frag1", "frag2", score_column) if c not in columns]
    if missing:
        raise InputError(
            f"{src} has no column {', '.join(map(repr, missing))}; its columns are {columns}. A GSE86189 "
            "promoter-other table has frag1, frag2 (chr.start.end) and a score column: pick it with --pchic-score, "
            "or convert another layout with `epx convert interactions --format custom`"
        )
    c1, s1, e1 = _fragments(table, "frag1", src)
    c2, s2, e2 = _fragments(table, "frag2", src)
    sizes = read_chrom_sizes(chrom_sizes) if chrom_sizes else _hg19_sizes()
    _check_assembly(c1, e1, sizes, src, "frag1")
    _check_assembly(c2, e2, sizes, src, "frag2")
    text = table[score_column].str.strip()
    score = pd.to_numeric(text.where(~text.isin(["", "NA", "NaN", "nan", "."])), errors="coerce").to_numpy(np.float64)
    not_number = np.isnan(score) & ~text.isin(["", "NA", "NaN", "nan", "."]).to_numpy()
    if not_number.any():
        i = int(np.argmax(not_number))
        raise InputError(f"{src} line {i + 2}: score {score_column}={text.iloc[i]!r} is not a number; {HINT}")
    keep = np.isfinite(score)
    bedpe = pd.DataFrame(
        {"chrom1": c1, "start1": s1, "end1": e1, "chrom2": c2, "start2": s2, "end2": e2,
         "name": tissue or ".", "score": score}
    )[keep]
    write_interactions(bedpe, out)
    stats = PchicStats(rows=int(keep.sum()), dropped_no_score=int((~keep).sum()), score_column=score_column)
    if cell is not None:
        source = {"cell": cell, "source": "GSE86189 (Jung et al. 2019, promoter-capture Hi-C, hg19)", "file": src.name,
                  "tissue": tissue, "proxy": proxy, "score_kind": "frequency", **asdict(stats)}
        write_text(out.with_name(f"{cell}.source.json"), json.dumps(source, indent=1) + "\n")
    return stats


# The packaged table lists chr1-22 and chrX (the synthetic genome's); UCSC's hg19.chrom.sizes adds these.
_HG19_EXTRA = {"chrY": 59_373_566, "chrM": 16_571}


def _hg19_sizes() -> dict[str, int]:
    with resources.as_file(resources.files("epx.resources").joinpath("hg19.chrom.sizes")) as path:
        return {**read_chrom_sizes(path), **_HG19_EXTRA}
