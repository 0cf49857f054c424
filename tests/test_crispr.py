"""The real enhancer benchmark: CRISPRi-FlowFISH (Fulco 2019, 6a, hg19) and the ENCODE CRISPR table
(GRCh38, lifted by pyliftover with a fixture chain) into epx's element table, with the accounting
carried through to epx.explain.elements.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from epx.convert.crispr import convert_crispr
from epx.errors import InputError
from epx.explain.elements import read_elements
from epx.io.elements import read_element_table

pytest.importorskip("pyliftover")

FULCO_HEADER = ["chr", "start", "end", "name", "class", "Gene", "Gene TSS", "Fraction change in gene expr",
                "Adjusted p-value", "Significant"]
FULCO_ROWS = [
    ["chrX", "48780000", "48781000", "GATA1|e1", "distal", "GATA1", "48786554", "-0.35", "0.0001", "TRUE"],
    ["chrX", "48790000", "48791000", "GATA1|e2", "distal", "GATA1", "48786554", "-0.05", "0.01", "TRUE"],  # too weak
    ["chrX", "48795000", "48796000", "HDAC6|e1", "distal", "HDAC6", "48801000", "0.02", "0.8", "FALSE"],
    ["chr8", "128000000", "128001000", "PVT1|e1", "distal", "PVT1-TSS1", "128806779", "-0.2", "0.001", "TRUE"],
    ["chr8", "128100000", "128101000", "X|e1", "distal", "NOTAGENE", "128806779", "-0.4", "0.001", "TRUE"],
]
GTF_GENES = [("chrX", 48786554, "+", "ENSG00000102145.9", "GATA1"), ("chrX", 48801000, "+", "ENSG00000094631.16", "HDAC6"),
             ("chr8", 128806779, "+", "ENSG00000249859.3", "PVT1")]
# hg38 -> hg19 toy chain: chr1 [1.0, 3.0) Mb -> [1.1, 3.1) Mb; chr2 two 1 kb blocks, 500 bp deleted between
CHAIN = (
    "chain 1000 chr1 248956422 + 1000000 3000000 chr1 249250621 + 1100000 3100000 1\n2000000\n\n"
    "chain 900 chr2 242193529 + 5000000 5002500 chr2 243199373 + 5000000 5002000 2\n1000 500 0\n1000\n\n"
)
ENCODE_HEADER = ["chrom", "chromStart", "chromEnd", "name", "EffectSize", "chrTSS", "startTSS", "endTSS",
                 "measuredGeneSymbol", "measuredEnsemblID", "Significant", "pValueAdjusted", "Regulated", "CellType"]
ENCODE_ROWS = [
    ["chr1", "1500000", "1501000", "e1", "-0.3", "chr1", "1600000", "1600001", "G1", "ENSG00000000001.2", "TRUE", "0.001", "TRUE", "K562"],
    ["chr1", "2500000", "2500500", "e2", "0.01", "chr1", "1600000", "1600001", "G1", "ENSG00000000001.2", "FALSE", "0.7", "FALSE", "K562"],
    ["chr1", "9000000", "9001000", "e3", "-0.5", "chr1", "1600000", "1600001", "G1", "ENSG00000000001.2", "TRUE", "0.001", "TRUE", "K562"],  # no chain
    ["chr2", "5000800", "5001800", "e4", "-0.5", "chr2", "5002000", "5002001", "G2", "ENSG00000000002.1", "TRUE", "0.001", "TRUE", "K562"],  # spans the deletion
    ["chr1", "1700000", "1701000", "e5", "-0.5", "chr1", "1600000", "1600001", "G1", "ENSG00000000001.2", "TRUE", "0.001", "TRUE", "HCT116"],
    ["chr1", "not_applicable", "not_applicable", "e6", "-0.5", "chr1", "1600000", "1600001", "G1", "ENSG00000000001.2", "TRUE", "0.001", "TRUE", "K562"],
]


def write_tsv(path: Path, header, rows) -> Path:
    path.write_text("\t".join(header) + "\n" + "".join("\t".join(r) + "\n" for r in rows))
    return path


@pytest.fixture
def gtf(tmp_path) -> Path:
    path = tmp_path / "gencode.v19.annotation.gtf.gz"
    lines = ["##description: fixture"] + [
        f'{c}\tHAVANA\tgene\t{tss}\t{tss + 5000}\t.\t{s}\t.\tgene_id "{gid}"; gene_type "protein_coding"; gene_name "{name}";'
        for c, tss, s, gid, name in GTF_GENES
    ]
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return path


def test_fulco_table_6a_graphreg_positive_rule_and_symbols(tmp_path, gtf):
    src = write_tsv(tmp_path / "fulco_6a.tsv", FULCO_HEADER, FULCO_ROWS)
    out = tmp_path / "elements.tsv"
    stats = convert_crispr(src, out, source="fulco", gtf=gtf)
    assert (stats.rows_read, stats.written, stats.positives, stats.unmapped_symbols) == (5, 5, 3, 1)
    table = read_element_table(out)
    assert table["gene_id"].tolist() == ["ENSG00000102145", "ENSG00000102145", "ENSG00000094631", "ENSG00000249859", "NOTAGENE"]
    assert table["significant"].tolist() == [True, False, False, True, True]  # -0.05 is significant but too weak
    assert set(table["cell"]) == {"K562"} and set(table["assembly"]) == {"hg19"}
    assert json.loads((tmp_path / "elements.tsv.report.json").read_text())["unmapped_symbols"] == 1

    # the unmapped symbol reaches the validation's accounting as unknown_gene
    genes = pd.DataFrame({"gene_id": [g[3].split(".")[0] for g in GTF_GENES], "chrom": [g[0] for g in GTF_GENES],
                          "tss": [g[1] for g in GTF_GENES], "strand": ["+"] * 3})
    _, report = read_elements(out, genes, {"chrX": 155_270_560, "chr8": 146_364_022})
    assert report.counts == {"unknown_gene": 1} and report.n_scorable == 4


def test_fulco_sheet_exported_with_its_title_row(tmp_path, gtf):
    src = tmp_path / "6a.tsv"
    src.write_text("Supplementary Table 6a\n" + "\t".join(FULCO_HEADER) + "\n" + "\t".join(FULCO_ROWS[0]) + "\n")
    assert convert_crispr(src, tmp_path / "e.tsv", source="fulco", gtf=gtf).positives == 1


def test_encode_grch38_is_lifted_with_a_chain_and_every_row_accounted(tmp_path):
    src = write_tsv(tmp_path / "EPCrisprBenchmark_ensemble_data_GRCh38.tsv", ENCODE_HEADER, ENCODE_ROWS)
    chain = tmp_path / "hg38ToHg19.over.chain"
    chain.write_text(CHAIN)
    out = tmp_path / "elements.tsv"
    stats = convert_crispr(src, out, source="encode", chain=chain, cell="K562")
    assert stats.lifted and stats.dropped == {"liftover_unmapped": 1, "liftover_split": 1, "no_coordinates": 1}
    table = read_element_table(out)
    assert table[["chrom", "start", "end"]].values.tolist() == [["chr1", 1_600_000, 1_601_000], ["chr1", 2_600_000, 2_600_500]]
    assert table["grch38_start"].tolist() == ["1500000", "2500000"]  # the source coordinates, kept
    assert table["gene_id"].tolist() == ["ENSG00000000001"] * 2 and table["significant"].tolist() == [True, False]


def test_grch38_without_chain_is_refused_and_grch38_table_not_read_as_hg19(tmp_path):
    src = write_tsv(tmp_path / "encode.tsv", ENCODE_HEADER, ENCODE_ROWS)
    with pytest.raises(InputError, match=r"encode.tsv: the encode table is GRCh38.*--chain hg38ToHg19.over.chain.gz"):
        convert_crispr(src, tmp_path / "e.tsv", source="encode")
    grch38 = write_tsv(tmp_path / "lifted_elsewhere.tsv", ["chrom", "start", "end", "gene", "significant", "assembly"],
                       [["chr1", "10", "20", "ENSG1", "1", "GRCh38"]])
    with pytest.raises(InputError, match=r"lifted_elsewhere.tsv, line 2: assembly 'GRCh38': epx datasets are hg19"):
        read_element_table(grch38)


def test_wrong_layout_names_the_right_source(tmp_path):
    src = write_tsv(tmp_path / "encode.tsv", ENCODE_HEADER, ENCODE_ROWS)
    with pytest.raises(InputError, match=r"encode.tsv has no column 'chr', 'start', 'end', 'Gene'.*use --source encode"):
        convert_crispr(src, tmp_path / "e.tsv", source="fulco")


def test_cli(tmp_path, gtf, capsys):
    import argparse

    from epx.roadmap.cli import add_subcommands

    parser = argparse.ArgumentParser()
    add_subcommands(parser.add_subparsers(dest="cmd"))
    src = write_tsv(tmp_path / "fulco.tsv", FULCO_HEADER, FULCO_ROWS)
    args = parser.parse_args(["convert", "crispr", str(src), str(tmp_path / "e.tsv"), "--source", "fulco", "--gtf", str(gtf)])
    assert args.func(args) == 0
    assert "5 of 5 elements (3 positive by GraphReg's rule)" in capsys.readouterr().out
