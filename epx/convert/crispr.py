"""CRISPR enhancer screens → epx's element table (hg19): the real enhancer benchmark.

Two sources, one output (``epx.io.elements`` layout, read back by ``read_element_table``):

- ``fulco``: CRISPRi-FlowFISH, Fulco et al. 2019 (Nature Genetics), Supplementary Table 6a
  (``41588_2019_538_MOESM3_ESM.xlsx``, sheet "Supplementary Table 6a", header on its second
  row; or that sheet saved as TSV/CSV). hg19, K562. Columns used: ``chr start end Gene
  "Fraction change in gene expr" "Adjusted p-value" Significant``. Genes are symbols; a
  GENCODE GTF (``--gtf``, the one ``epx download roadmap`` fetched) maps them to Ensembl ids
  (Fulco's ``PVT1-TSS1`` is GENCODE's ``PVT1``).
- ``encode``: the combined ENCODE CRISPR benchmark (``EPCrisprBenchmark_ensemble_data_GRCh38
  .tsv.gz``; columns ``chrom chromStart chromEnd measuredGeneSymbol measuredEnsemblID
  EffectSize pValueAdjusted Significant [Regulated] [CellType]``). **GRCh38**: lifted to hg19
  with a UCSC chain file (``--chain hg38ToHg19.over.chain.gz``) by ``pyliftover``; without a
  chain the table is refused (its coordinates would silently be ~1-2 Mb off on hg19).

Label: GraphReg's positive rule — ``significant = Significant and effect <= -0.1`` (the
element's silencing lowers the gene's expression by at least 10 %); the source's own call is
kept as ``source_significant``. Output columns: ``chrom start end gene significant
effect_size cell name source_significant p_adjusted source assembly`` (+ for lifted rows
``grch38_chrom grch38_start grch38_end``, + ``gene_symbol``). ``assembly`` is ``hg19`` in
every row: ``epx.io.elements`` refuses a table whose ``assembly`` is another, so a GRCh38 table
never reaches an hg19 dataset unnoticed.

Accounting: every source row is either written or counted in ``CrisprStats.dropped`` by reason
(``liftover_unmapped``: an end maps nowhere; ``liftover_split``: the ends map to different
chromosomes, strands, or a length changed by more than 10 %; ``no_coordinates``: a row without
start/end, e.g. ENCODE's ``not_applicable``). Gene symbols the GTF does not know are written as
given and counted in ``unmapped_symbols``: ``epx explain validation`` then reports them as
``unknown_gene``, with the rest of its unscorable-row accounting (``epx.explain.elements``).
Wrong layout (a column missing) is one ``InputError`` naming the file, the columns it has and
the fix. ``convert_crispr(src, out, *, source, gtf=None, chain=None, cell=None) -> CrisprStats``;
``CrisprStats`` is also written as ``<out>.report.json``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from epx.errors import InputError
from epx.io.atomic import write_text
from epx.io.elements import TRUE, write_elements
from epx.io.gene_ids import normalise_gene_ids
from epx.io.tables import open_text

POSITIVE_EFFECT = -0.1  # GraphReg: significant and fraction change <= -0.1
MAX_LENGTH_CHANGE = 0.1
FULCO_SHEET = "Supplementary Table 6a"
SYMBOL_FIXES = {"PVT1-TSS1": "PVT1"}  # Fulco's TSS-specific name -> GENCODE's gene


@dataclass(frozen=True)
class Layout:
    chrom: str
    start: str
    end: str
    gene: str
    effect: str
    significant: str
    p_adjusted: str | None
    assembly: str
    symbol: str | None = None  # a symbol column when ``gene`` holds Ensembl ids
    cell: str | None = None
    name: str | None = None


LAYOUTS: dict[str, Layout] = {
    "fulco": Layout(chrom="chr", start="start", end="end", gene="Gene", effect="Fraction change in gene expr",
                    significant="Significant", p_adjusted="Adjusted p-value", assembly="hg19", name="name"),
    "encode": Layout(chrom="chrom", start="chromStart", end="chromEnd", gene="measuredEnsemblID",
                     symbol="measuredGeneSymbol", effect="EffectSize", significant="Significant",
                     p_adjusted="pValueAdjusted", assembly="GRCh38", cell="CellType", name="name"),
}
DEFAULT_CELL = {"fulco": "K562"}


@dataclass
class CrisprStats:
    source: str
    rows_read: int = 0
    written: int = 0
    positives: int = 0
    lifted: bool = False
    dropped: dict[str, int] = field(default_factory=dict)
    unmapped_symbols: int = 0


def _read_source(path: Path, source: str) -> pd.DataFrame:
    if path.suffix.lower() in (".xlsx", ".xls"):
        try:
            return pd.read_excel(path, sheet_name=FULCO_SHEET if source == "fulco" else 0, header=1 if source == "fulco" else 0, dtype=str)
        except ImportError as err:
            raise InputError(f"{path}: reading Excel needs openpyxl ({err}); pip install openpyxl, or save the sheet "
                             f"{FULCO_SHEET!r} as TSV") from None
        except ValueError as err:
            raise InputError(f"{path}: {err}; give Fulco et al. 2019's supplementary workbook, or the sheet as TSV") from None
    with open_text(path, what="CRISPR screen table") as fh:
        first, second = fh.readline(), fh.readline()
    sep = "\t" if "\t" in first + second else ","
    title = sep not in first and sep in second  # the sheet saved with its title row above the header
    with open_text(path, what="CRISPR screen table") as fh:
        table = pd.read_csv(fh, sep=sep, dtype=str, keep_default_na=False, skiprows=1 if title else 0)
    return table


def _check_columns(table: pd.DataFrame, layout: Layout, path: Path, source: str) -> None:
    need = [layout.chrom, layout.start, layout.end, layout.gene, layout.effect, layout.significant]
    missing = [c for c in need if c not in table.columns]
    if missing:
        other = next((s for s, lay in LAYOUTS.items() if s != source and all(
            c in table.columns for c in (lay.chrom, lay.start, lay.gene))), None)
        hint = f" — it looks like the {other!r} layout: use --source {other}" if other else ""
        raise InputError(
            f"{path} has no column {', '.join(map(repr, missing))} for --source {source}{hint}; its columns are "
            f"{list(table.columns)[:20]}. fulco: Supplementary Table 6a of Fulco et al. 2019; encode: "
            "EPCrisprBenchmark_ensemble_data_GRCh38.tsv.gz"
        )


def gtf_symbols(gtf: str | os.PathLike) -> dict[str, str | None]:
    """``gene_name -> gene_id`` (version stripped) from a GTF's gene lines; None when ambiguous."""
    mapping: dict[str, str | None] = {}
    name_re, id_re = re.compile(r'gene_name "([^"]+)"'), re.compile(r'gene_id "([^"]+)"')
    with open_text(gtf, what="GTF") as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            fields = line.split("\t", 8)
            if len(fields) < 9 or fields[2] != "gene":
                continue
            name, gid = name_re.search(fields[8]), id_re.search(fields[8])
            if name and gid:
                ens = normalise_gene_ids([gid.group(1)]).iloc[0]
                if name.group(1) in mapping and mapping[name.group(1)] != ens:
                    mapping[name.group(1)] = None
                else:
                    mapping.setdefault(name.group(1), ens)
    return mapping


def _lift(chain: str | os.PathLike, chrom: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """(hg19 chrom/start/end, reason per row: '' lifted, else why not)."""
    try:
        from pyliftover import LiftOver
    except ImportError as err:
        raise InputError(f"lifting GRCh38 to hg19 needs pyliftover ({err}); pip install pyliftover") from None
    chain = Path(chain)
    if not chain.is_file():
        raise FileNotFoundError(f"chain file {chain} does not exist; get UCSC's hg38ToHg19.over.chain.gz")
    lifter = LiftOver(str(chain))  # a path: pyliftover reads it, never the web
    out_c = np.empty(len(chrom), object)
    out_s = np.zeros(len(chrom), np.int64)
    out_e = np.zeros(len(chrom), np.int64)
    reason = np.full(len(chrom), "", object)
    for i, (c, s, e) in enumerate(zip(chrom, start, end, strict=True)):
        a, b = lifter.convert_coordinate(c, int(s)), lifter.convert_coordinate(c, int(e) - 1)
        if not a or not b:
            reason[i] = "liftover_unmapped"
            continue
        (ca, pa, sa, _), (cb, pb, sb, _) = a[0], b[0]
        lo, hi = min(pa, pb), max(pa, pb) + 1
        if ca != cb or sa != sb or abs((hi - lo) - (e - s)) > MAX_LENGTH_CHANGE * max(e - s, 1):
            reason[i] = "liftover_split"
            continue
        out_c[i], out_s[i], out_e[i] = ca, lo, hi
    return pd.DataFrame({"chrom": out_c, "start": out_s, "end": out_e}), reason


def convert_crispr(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    source: str,
    gtf: str | os.PathLike | None = None,
    chain: str | os.PathLike | None = None,
    cell: str | None = None,
) -> CrisprStats:
    """Convert one screen table (module doc) to an hg19 element table at ``out``."""
    if source not in LAYOUTS:
        raise InputError(f"unknown CRISPR source {source!r}; choose one of {sorted(LAYOUTS)}")
    src, out, layout = Path(src), Path(out), LAYOUTS[source]
    if not src.is_file():
        raise FileNotFoundError(f"CRISPR table {src} does not exist")
    if layout.assembly != "hg19" and chain is None:
        raise InputError(
            f"{src}: the {source} table is {layout.assembly}, the datasets are hg19; give --chain "
            "hg38ToHg19.over.chain.gz (UCSC) to lift it with pyliftover. Refused without one: GRCh38 coordinates "
            "on hg19 are off by up to megabases and would score the wrong elements"
        )
    table = _read_source(src, source)
    table.columns = [str(c).strip() for c in table.columns]
    _check_columns(table, layout, src, source)
    stats = CrisprStats(source=source, rows_read=len(table), lifted=layout.assembly != "hg19")
    symbols = gtf_symbols(gtf) if gtf is not None else None

    start = pd.to_numeric(table[layout.start], errors="coerce")
    end = pd.to_numeric(table[layout.end], errors="coerce")
    reason = np.where(start.isna() | end.isna(), "no_coordinates", "").astype(object)
    frame = pd.DataFrame({"chrom": table[layout.chrom].str.strip().to_numpy(object),
                          "start": start.fillna(0).astype(np.int64).to_numpy(),
                          "end": end.fillna(0).astype(np.int64).to_numpy()})
    if stats.lifted:
        ok = reason == ""
        lifted, why = _lift(chain, frame["chrom"].to_numpy()[ok], frame["start"].to_numpy()[ok], frame["end"].to_numpy()[ok])
        grch38 = frame.rename(columns=lambda c: f"grch38_{c}")
        frame.loc[ok, ["chrom", "start", "end"]] = lifted.to_numpy()
        reason[np.flatnonzero(ok)] = why
    effect = pd.to_numeric(table[layout.effect], errors="coerce").to_numpy(np.float64)
    called = table[layout.significant].str.strip().str.lower().isin(TRUE).to_numpy()
    genes = table[layout.gene].str.strip()
    symbol = table[layout.symbol].str.strip() if layout.symbol else genes
    if layout.symbol is None:  # symbols: map to Ensembl ids through the GTF
        fixed = genes.replace(SYMBOL_FIXES)
        if symbols is not None:
            mapped = fixed.map(lambda g: symbols.get(g))
            stats.unmapped_symbols = int(mapped.isna().sum())
            genes = mapped.fillna(genes)
    result = pd.DataFrame({
        "chrom": frame["chrom"], "start": frame["start"], "end": frame["end"],
        "gene": normalise_gene_ids(genes).to_numpy(object),
        "significant": (called & (effect <= POSITIVE_EFFECT)).astype(int),
        "effect_size": effect,
        "cell": (table[layout.cell].str.strip() if layout.cell and layout.cell in table.columns
                 else pd.Series(cell or DEFAULT_CELL.get(source, "."), index=table.index)).to_numpy(object),
        "name": table[layout.name].to_numpy(object) if layout.name and layout.name in table.columns else ".",
        "source_significant": called.astype(int),
        "p_adjusted": table[layout.p_adjusted].to_numpy(object) if layout.p_adjusted in table.columns else "",
        "source": source,
        "assembly": "hg19",
        "gene_symbol": symbol.to_numpy(object),
    })
    if stats.lifted:
        result = pd.concat([result, grch38], axis=1)
    if cell is not None and layout.cell and layout.cell in table.columns:
        result = result[result["cell"] == cell]
        reason = reason[result.index.to_numpy()]
    keep = reason == ""
    for why, n in pd.Series(reason[~keep]).value_counts().items():
        stats.dropped[str(why)] = int(n)
    result = result[keep].reset_index(drop=True)
    stats.written, stats.positives = len(result), int(result["significant"].sum())
    write_elements(result, out)
    write_text(out.with_name(out.name + ".report.json"), json.dumps(asdict(stats), indent=1) + "\n")
    return stats
