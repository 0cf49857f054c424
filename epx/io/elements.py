"""Element tables (CRISPRi-FlowFISH and the ENCODE enhancer–gene benchmark): read + write.

Contract: ``read_element_table(path, *, reserved=()) -> DataFrame`` and
``write_elements(table, path) -> Path`` (atomic; floats as ``%.4f``, as the synthetic dataset
writes its ``elements.tsv``).

The file is a tab-separated table with a header line in the CRISPRi-FlowFISH layout
(Fulco et al. 2019; ``docs/explain.md``): ``chrom``, ``start``, ``end`` (0-based, half-open,
as BED), ``gene`` (the dataset's gene id; Ensembl versions are stripped), ``significant``
(1/0, true/false, yes/no, any case) and, optionally, ``effect_size`` (the fraction change in
the gene's expression when the element is silenced; NaN where absent) and ``cell``. Header
names are matched case-insensitively, with the spellings of Fulco's table and of the ENCODE
benchmark (``ALIASES``: ``chr``, ``chromStart``, ``measuredEnsemblID``, ``Significant``,
``EffectSize``, ...). A broken file (no header, a missing column, a non-numeric coordinate,
an unreadable ``significant``) is one ``InputError`` naming the file, the line and the fix
(``epx.io.tables``). A table with an ``assembly`` column (``epx convert crispr`` writes one)
must say ``hg19`` (or ``GRCh37``) in every row, the assembly of every epx dataset; another
(GRCh38) is one ``InputError`` saying how to lift it.

The table read has the columns ``element`` (row number in the file, 0-based, in file order),
``line`` (line number in the file), ``chrom`` (as written), ``start``, ``end``, ``gene_id``,
``significant`` (bool), ``effect_size``, [``cell``], then the file's extra columns, kept as
text; an extra column whose name is taken (by those, or by one of ``reserved``: the columns a
caller adds) is kept as ``file_<name>``. Matching the rows to a dataset's genes, chromosomes
and a model's window is ``epx.explain.elements``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from epx.errors import InputError
from epx.io.atomic import write_csv
from epx.io.gene_ids import normalise_gene_ids
from epx.io.tables import MISSING, read_rows

REQUIRED = ("chrom", "start", "end", "gene", "significant")
OPTIONAL = ("effect_size", "cell")
# Header spellings accepted for each column (matched case-insensitively): ours, Fulco et al.
# 2019 (Supplementary Table 6a) and the ENCODE-rE2G / ABC CRISPR benchmark.
ALIASES: dict[str, tuple[str, ...]] = {
    "chrom": ("chrom", "chr", "chromosome"),
    "start": ("start", "chromStart"),
    "end": ("end", "chromEnd"),
    "gene": ("gene", "gene_id", "measuredEnsemblID", "measuredGeneSymbol", "GeneSymbol", "Gene"),
    "significant": ("significant", "Significant", "Regulated"),
    "effect_size": ("effect_size", "EffectSize", "Fraction change in gene expr", "effect"),
    "cell": ("cell", "CellType", "cell_type"),
}
TRUE = frozenset({"1", "true", "t", "yes", "y", "1.0"})
FALSE = frozenset({"0", "false", "f", "no", "n", "0.0"})
HINT = (
    "an element table is tab-separated with a header line: chrom, start, end, gene, significant[, effect_size] "
    "(docs/explain.md)"
)


def _columns(header: list[str], path: Path) -> dict[str, int]:
    lower = [h.strip().lower() for h in header]
    found: dict[str, int] = {}
    for column, names in ALIASES.items():
        for name in names:
            if name.lower() in lower:
                found[column] = lower.index(name.lower())
                break
    missing = [c for c in REQUIRED if c not in found]
    if missing:
        raise InputError(
            f"{path}: the header has no {', '.join(missing)} column (found: {', '.join(h.strip() for h in header)}); "
            f"{HINT}. Accepted spellings: " + "; ".join(f"{c}: {', '.join(ALIASES[c])}" for c in missing)
        )
    return found


def _booleans(rows, index: int) -> np.ndarray:
    col = rows.column(index).str.strip().str.lower()
    yes, no = col.isin(TRUE).to_numpy(), col.isin(FALSE).to_numpy()
    bad = ~(yes | no)
    if bad.any():
        i = int(np.argmax(bad))
        raise rows.fail(i, f"significant {rows.fields[i][index]!r} (must be 1/0, true/false or yes/no)")
    return yes


HG19_NAMES = frozenset({"hg19", "grch37"})


def _check_assembly(rows, path: Path) -> None:
    lower = [h.strip().lower() for h in rows.header]
    if "assembly" not in lower:
        return
    values = rows.column(lower.index("assembly")).str.strip()
    bad = ~values.str.lower().isin(HG19_NAMES).to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise rows.fail(i, f"assembly {values.iloc[i]!r}: epx datasets are hg19; lift the table first "
                           "(`epx convert crispr --source encode --chain hg38ToHg19.over.chain.gz`)")


def read_element_table(path: str | Path, *, reserved: Iterable[str] = ()) -> pd.DataFrame:
    """The element table of ``path`` (module doc)."""
    path = Path(path)
    reserved = set(reserved)
    rows = read_rows(path, what="element table", hint=HINT, header=True)
    if rows.header is None:  # pragma: no cover - read_rows raises on an empty file
        raise InputError(f"{path}: no header line; {HINT}")
    cols = _columns(rows.header, path)
    rows.check_width(len(rows.header), len(rows.header), expected=f"{len(rows.header)} (as the header)")
    start = rows.integers(cols["start"], "start")
    end = rows.integers(cols["end"], "end")
    rows.ordered(start, end, "start", "end")
    table = pd.DataFrame(
        {
            "element": np.arange(len(rows), dtype=np.int64),
            "line": np.asarray(rows.lines, dtype=np.int64),
            "chrom": rows.texts(cols["chrom"], "chromosome"),
            "start": start,
            "end": end,
            "gene_id": normalise_gene_ids(pd.Series(rows.texts(cols["gene"], "gene"))).to_numpy(dtype=object),
            "significant": _booleans(rows, cols["significant"]),
            "effect_size": (
                rows.floats(cols["effect_size"], "effect_size", missing=MISSING)
                if "effect_size" in cols
                else np.full(len(rows), np.nan)
            ),
        }
    )
    if "cell" in cols:
        table["cell"] = rows.texts(cols["cell"], "cell")
    _check_assembly(rows, path)
    used = set(cols.values())
    for i, name in enumerate(rows.header):
        name = name.strip()
        if i in used or not name:
            continue
        if name in table.columns or name in reserved:  # a file column never overwrites ours, nor ours it
            name = f"file_{name}"
        if name not in table.columns:
            table[name] = rows.column(i).to_numpy(dtype=object)
    return table


def write_elements(table: pd.DataFrame, path: str | Path) -> Path:
    """``table`` as an element table at ``path`` (atomic), floats as ``%.4f``."""
    return write_csv(path, table, sep="\t", float_format="%.4f")
