"""Converters on small hand-built files, checked against naive reference computations.

tagAlign → bigWig is compared base by base with a Python-loop coverage count (sorted,
unsorted with tiny chunks, strand-aware extension with clipping, gz and plain);
GTF → tss.bed, interaction tables → BEDPE and RPKM → expression.tsv against hand-worked
rows. Bad input (unknown chromosome, malformed lines, GTF without gene_type, versioned
or duplicated ids, missing columns) gets one clear error and leaves earlier outputs intact.
"""

from __future__ import annotations

import argparse
import gzip
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pyBigWig
import pytest

from epx.errors import InputError
from epx.io.chrom_sizes import read_chrom_sizes
from epx.io.gene_ids import normalise_gene_ids
from epx.convert.expression import read_rpkm, rpkm_to_expression
from epx.convert.gtf import gtf_to_tss
from epx.convert.interactions import PRESETS, convert_interactions, resolve_format
from epx.convert.tagalign import tagalign_to_bigwig
from epx.roadmap.cli import add_subcommands, convert_roadmap

SIZES = {"chr1": 2000, "chr2": 700, "chrM": 100}


# ---------------------------------------------------------------- helpers


def make_reads(seed: int, n_per_chrom: int = 400) -> list[tuple]:
    """Random BED6 reads, including reads hanging over both chromosome ends."""
    rng = random.Random(seed)
    reads = []
    for chrom, length in [("chr1", 2000), ("chr2", 700)]:
        for _ in range(n_per_chrom):
            start = rng.randrange(0, length - 1)
            end = min(start + rng.choice([1, 5, 36, 36, 36, 80]), length + 3)
            reads.append((chrom, start, end, "N", 1000, rng.choice("+-")))
    reads.sort(key=lambda r: (r[0], r[1]))
    return reads


def write_tagalign(path: Path, reads: list[tuple]) -> Path:
    text = "".join("\t".join(map(str, r)) + "\n" for r in reads)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def naive_depth(reads: list[tuple], sizes: dict[str, int], extend: int | None) -> dict[str, np.ndarray]:
    depth = {c: np.zeros(n) for c, n in sizes.items()}
    for chrom, start, end, _, _, strand in reads:
        if extend is not None:
            start, end = (end - extend, end) if strand == "-" else (start, start + extend)
        for pos in range(max(start, 0), min(end, sizes[chrom])):
            depth[chrom][pos] += 1
    return depth


def bigwig_depth(path: Path, sizes: dict[str, int]) -> dict[str, np.ndarray]:
    bw = pyBigWig.open(str(path))
    try:
        assert bw.chroms() == sizes
        return {c: np.nan_to_num(bw.values(c, 0, n, numpy=True)) for c, n in sizes.items()}
    finally:
        bw.close()


def n_runs(depth: np.ndarray) -> int:
    """Maximal runs of equal nonzero depth: the fewest intervals that encode ``depth``."""
    change = np.flatnonzero(np.diff(depth)) + 1
    starts = np.concatenate([[0], change])
    return int((depth[starts] != 0).sum())


# ---------------------------------------------------------------- shared helpers


def test_strip_version_and_chrom_sizes(tmp_path):
    ids = ["ENSG00000116213.11", "ENSG00000182378.14_PAR_Y", "ENSG00000000003"]
    assert normalise_gene_ids(ids).tolist() == ["ENSG00000116213", "ENSG00000182378_PAR_Y", "ENSG00000000003"]
    sizes = tmp_path / "chrom.sizes"
    sizes.write_text("chr2\t700\nchr1\t2000\n")
    assert list(read_chrom_sizes(sizes).items()) == [("chr2", 700), ("chr1", 2000)]
    sizes.write_text("chr1 2000 extra\nchr2\tseven\n")
    with pytest.raises(InputError, match=r"chrom\.sizes, line 2: non-numeric length 'seven'"):
        read_chrom_sizes(sizes)


# ---------------------------------------------------------------- tagAlign


@pytest.mark.parametrize("suffix", [".tagAlign.gz", ".tagAlign"])
def test_tagalign_depth_matches_naive_count(tmp_path, suffix):
    reads = make_reads(seed=1)
    src = write_tagalign(tmp_path / f"reads{suffix}", reads)
    stats = tagalign_to_bigwig(src, SIZES, tmp_path / "out.bigwig", chunksize=97)
    got = bigwig_depth(tmp_path / "out.bigwig", SIZES)
    want = naive_depth(reads, SIZES, extend=None)
    for chrom in SIZES:
        np.testing.assert_array_equal(got[chrom], want[chrom], err_msg=chrom)
    assert stats.reads == len(reads) and stats.sorted_input
    assert stats.intervals == sum(n_runs(want[c]) for c in SIZES)  # maximal runs, no zeros


def test_tagalign_unsorted_with_extension_matches_naive_count(tmp_path):
    # plus fragments clipped at both ends: a '-' read at the start, a '+' read at the end
    reads = make_reads(seed=2) + [("chr1", 0, 10, "N", 0, "-"), ("chr1", 1990, 2003, "N", 0, "+")]
    random.Random(0).shuffle(reads)
    src = write_tagalign(tmp_path / "shuffled.tagAlign.gz", reads)
    stats = tagalign_to_bigwig(src, SIZES, tmp_path / "ext.bigwig", extend=50, chunksize=13)
    got = bigwig_depth(tmp_path / "ext.bigwig", SIZES)
    want = naive_depth(reads, SIZES, extend=50)
    for chrom in SIZES:
        np.testing.assert_array_equal(got[chrom], want[chrom], err_msg=chrom)
    assert not stats.sorted_input
    assert want["chr1"][0] > 0 and want["chr1"][-1] > 0


def test_tagalign_extension_is_strand_aware(tmp_path):
    reads = [("chr2", 100, 110, "N", 0, "+"), ("chr2", 300, 310, "N", 0, "-")]
    src = write_tagalign(tmp_path / "two.tagAlign", reads)
    tagalign_to_bigwig(src, SIZES, tmp_path / "two.bigwig", extend=40)
    bw = pyBigWig.open(str(tmp_path / "two.bigwig"))
    assert bw.intervals("chr2") == ((100, 140, 1.0), (270, 310, 1.0))
    assert bw.intervals("chr1") is None  # in the header, no reads
    bw.close()


def test_tagalign_unknown_chromosome_is_one_clear_error(tmp_path):
    reads = make_reads(seed=3, n_per_chrom=5) + [("chrUn_gl000220", 5, 41, "N", 0, "+")]
    src = write_tagalign(tmp_path / "odd.tagAlign.gz", reads)
    out = tmp_path / "odd.bigwig"
    out.write_bytes(b"earlier output")
    with pytest.raises(ValueError, match=r"odd\.tagAlign\.gz: chromosome 'chrUn_gl000220' is not in the chrom sizes.*--skip-unknown-chroms"):
        tagalign_to_bigwig(src, SIZES, out)
    assert out.read_bytes() == b"earlier output"  # nothing already written is lost

    stats = tagalign_to_bigwig(src, SIZES, out, skip_unknown_chroms=True)
    assert stats.skipped == {"chrUn_gl000220": 1}
    np.testing.assert_array_equal(bigwig_depth(out, SIZES)["chr1"], naive_depth(reads[:-1], SIZES, None)["chr1"])


def test_tagalign_malformed_line_names_the_file(tmp_path):
    src = tmp_path / "bad.tagAlign"
    src.write_text("chr1\t10\t46\tN\t0\t+\nchr1\tten\t46\tN\t0\t+\n")
    with pytest.raises(InputError, match=r"bad\.tagAlign, line 2: non-numeric start 'ten'"):
        tagalign_to_bigwig(src, SIZES, tmp_path / "bad.bigwig")
    assert not (tmp_path / "bad.bigwig").exists()
    for text, message in [
        ("chr1\t10\n", r"line 1: 2 columns, expected at least 3"),
        ("chr1\t50\t10\tN\t0\t+\n", r"line 1: end 10 before start 50"),
        ("chr1\t-4\t10\tN\t0\t+\n", r"line 1: negative start '-4'"),
        ("", r"bad\.tagAlign is not a readable tagAlign/BED file: no data"),
    ]:
        src.write_text(text)
        with pytest.raises(InputError, match=message):
            tagalign_to_bigwig(src, SIZES, tmp_path / "bad.bigwig")
    src = tmp_path / "cut.tagAlign.gz"
    data = gzip.compress("".join(f"chr1\t{k}\t{k + 36}\tN\t0\t+\n" for k in range(1500)).encode())
    src.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.tagAlign\.gz: truncated gzip.*re-download"):
        tagalign_to_bigwig(src, SIZES, tmp_path / "bad.bigwig")
    crlf = tmp_path / "crlf.tagAlign"
    crlf.write_bytes(b"\xef\xbb\xbfchr1\t10\t46\tN\t0\t+\r\nchr1\t20\t30\tN\t0\t-\r\n")
    assert tagalign_to_bigwig(crlf, SIZES, tmp_path / "crlf.bigwig").reads == 2


# ---------------------------------------------------------------- GTF

GENCODE = """\
##description: evidence-based annotation of the human genome (GRCh37), version 19
chr1\tHAVANA\tgene\t11869\t14412\t.\t+\t.\tgene_id "ENSG00000223972.4"; transcript_id "ENSG00000223972.4"; gene_type "pseudogene"; gene_name "DDX11L1";
chr1\tHAVANA\tgene\t3547332\t3566671\t.\t-\t.\tgene_id "ENSG00000116213.11"; transcript_id "ENSG00000116213.11"; gene_type "protein_coding"; gene_name "WRAP73";
chr1\tHAVANA\ttranscript\t3547332\t3566600\t.\t-\t.\tgene_id "ENSG00000116213.11"; transcript_id "ENST00000270708.7"; gene_type "protein_coding";
chr1\tHAVANA\texon\t3566500\t3566600\t.\t-\t.\tgene_id "ENSG00000116213.11"; transcript_id "ENST00000270708.7"; gene_type "protein_coding";
chr1\tHAVANA\tgene\t14070000\t14100000\t.\t+\t.\tgene_id "ENSG00000116731.17"; gene_type "protein_coding"; gene_name "PRDM2";
chrX\tHAVANA\tgene\t192991\t220023\t.\t+\t.\tgene_id "ENSG00000182378.9"; gene_type "protein_coding"; gene_name "PLCXD1";
chrY\tHAVANA\tgene\t142991\t170023\t.\t+\t.\tgene_id "ENSG00000182378.9"; gene_type "protein_coding"; gene_name "PLCXD1";
chr5\tENSEMBL\tgene\t100\t200\t.\t-\t.\tgene_id "ENSG00000000005.5"; gene_type "lincRNA"; gene_name "X";
"""


def test_gtf_protein_coding_tss_strand_aware_and_versionless(tmp_path):
    src = tmp_path / "gencode.gtf.gz"
    src.write_bytes(gzip.compress(GENCODE.encode()))
    stats = gtf_to_tss(src, tmp_path / "tss.bed")
    bed = (tmp_path / "tss.bed").read_text().splitlines()
    assert bed == [
        "chr1\t3566670\t3566671\tENSG00000116213\t0\t-",  # '-': GTF end - 1
        "chr1\t14069999\t14070000\tENSG00000116731\t0\t+",  # '+': GTF start - 1
        "chrX\t192990\t192991\tENSG00000182378\t0\t+",  # chrY PAR copy dropped
    ]
    assert (stats.genes, stats.duplicates_dropped) == (3, 1)


def test_gtf_ensembl_biotype_ucsc_names_and_no_gene_lines(tmp_path):
    src = tmp_path / "ensembl.gtf"
    src.write_text(
        '1\tensembl\texon\t500\t600\t.\t+\t.\tgene_id "ENSG1"; gene_biotype "protein_coding";\n'
        '1\tensembl\texon\t900\t1000\t.\t+\t.\tgene_id "ENSG1"; gene_biotype "protein_coding";\n'
        'MT\tensembl\texon\t10\t50\t.\t-\t.\tgene_id "ENSG2"; gene_biotype "protein_coding";\n'
        'MT\tensembl\texon\t70\t90\t.\t-\t.\tgene_id "ENSG2"; gene_biotype "protein_coding";\n'
        '2\tensembl\texon\t10\t50\t.\t-\t.\tgene_id "ENSG3"; gene_biotype "miRNA";\n'
    )
    gtf_to_tss(src, tmp_path / "tss.bed", ucsc_names=True)
    assert (tmp_path / "tss.bed").read_text().splitlines() == [
        "chr1\t499\t500\tENSG1\t0\t+",
        "chrM\t89\t90\tENSG2\t0\t-",
    ]


def test_gtf_without_gene_type_is_one_clear_error(tmp_path):
    src = tmp_path / "plain.gtf"
    src.write_text('chr1\tx\tgene\t100\t200\t.\t-\t.\tgene_id "G1.3"; gene_name "A";\n')
    with pytest.raises(ValueError, match=r"plain\.gtf has no gene_type .* or gene_biotype .*--all-genes"):
        gtf_to_tss(src, tmp_path / "tss.bed")
    gtf_to_tss(src, tmp_path / "tss.bed", all_genes=True)
    assert (tmp_path / "tss.bed").read_text() == "chr1\t199\t200\tG1\t0\t-\n"


def test_gtf_broken_lines_name_the_file_and_line(tmp_path):
    src = tmp_path / "bad.gtf"
    good = 'chr1\tHAVANA\tgene\t100\t200\t.\t+\t.\tgene_id "G1"; gene_type "protein_coding";\n'
    for text, message in [
        (good + 'chr1\tHAVANA\tgene\tten\t200\t.\t+\t.\tgene_id "G2";\n', r"bad\.gtf, line 2: non-numeric start 'ten'"),
        (good + "chr1\tHAVANA\tgene\t100\n", r"bad\.gtf, line 2: 4 columns, expected 9"),
        (good + 'chr1\tHAVANA\tgene\t300\t200\t.\t+\t.\tgene_id "G2";\n', r"line 2: end 200 before start 300"),
        (good + 'chr1\tHAVANA\tgene\t100\t200\t.\tx\t.\tgene_id "G2";\n', r"line 2: strand 'x'"),
        ('chr1\tHAVANA\tgene\t100\t200\t.\t.\t.\tgene_id "G1"; gene_type "protein_coding";\n', r"gene G1 has no strand"),
        ('chr1\tHAVANA\tgene\t100\t200\t.\t+\t.\tgene_id "G1"; gene_type "lincRNA";\n', r"no protein_coding gene among its 1 genes \(types: lincRNA\)"),
        ("##only a comment\n", r"bad\.gtf is not a readable GTF: no data"),
    ]:
        src.write_text(text)
        with pytest.raises(InputError, match=message):
            gtf_to_tss(src, tmp_path / "tss.bed")
    src = tmp_path / "cut.gtf.gz"
    src.write_bytes(gzip.compress(good.encode() * 500)[:200])
    with pytest.raises(InputError, match=r"cut\.gtf\.gz: truncated gzip"):
        gtf_to_tss(src, tmp_path / "tss.bed")
    src = tmp_path / "crlf.gtf"
    src.write_bytes(b"\xef\xbb\xbf##header\r\n" + good.replace("\n", "\r\n").encode())
    gtf_to_tss(src, tmp_path / "tss.bed")
    assert (tmp_path / "tss.bed").read_text() == "chr1\t99\t100\tG1\t0\t+\n"


# ---------------------------------------------------------------- interactions


def test_pchic_ibed_preset_and_frequency_threshold(tmp_path):
    src = tmp_path / "calls.ibed"
    src.write_text(
        "bait_chr\tbait_start\tbait_end\tbait_name\totherEnd_chr\totherEnd_start\totherEnd_end\totherEnd_name\tN_reads\tscore\n"
        "chr1\t1000\t5000\tGENE1\tchr1\t90000\t95000\t.\t40\t7.5\n"
        "chr1\t1000\t5000\tGENE1\tchr1\t20000\t21000\t.\t12\t4.9\n"
    )
    assert convert_interactions(src, tmp_path / "E003.bedpe", PRESETS["pchic"], threshold=5) == 1
    assert (tmp_path / "E003.bedpe").read_text() == "chr1\t1000\t5000\tchr1\t90000\t95000\tGENE1\t7.5\n"


def test_hichip_preset_keeps_small_qvalues(tmp_path):
    src = tmp_path / "fithichip.bed"
    src.write_text(
        "chr1\ts1\te1\tchr2\ts2\te2\tcc\tP-Value_Bias\tQ-Value_Bias\n"
        "chr1\t0\t5000\tchr1\t50000\t55000\t30\t1e-6\t0.001\n"
        "chr1\t0\t5000\tchr1\t80000\t85000\t8\t0.01\t0.2\n"
    )
    assert convert_interactions(src, tmp_path / "out.bedpe", PRESETS["hichip"], threshold=0.01) == 1
    assert (tmp_path / "out.bedpe").read_text() == "chr1\t0\t5000\tchr1\t50000\t55000\t.\t0.001\n"


def test_hicdcplus_one_based_starts_become_zero_based(tmp_path):
    src = tmp_path / "hicdc.txt"
    src.write_text(
        "chrI\tstartI\tendI\tchrJ\tstartJ\tendJ\tD\tcounts\tpvalue\tqvalue\tmu\tsdev\n"
        "chr22\t16000001\t16005000\tchr22\t16050001\t16055000\t50000\t9\t1e-5\t0.003\t2.1\t1.4\n"
    )
    convert_interactions(src, tmp_path / "out.bedpe", PRESETS["hicdcplus"])
    assert (tmp_path / "out.bedpe").read_text() == "chr22\t16000000\t16005000\tchr22\t16050000\t16055000\t.\t0.003\n"
    counts = resolve_format("hicdcplus", score="counts", score_kind="frequency")
    convert_interactions(src, tmp_path / "counts.bedpe", counts)
    assert (tmp_path / "counts.bedpe").read_text().split("\t")[-1] == "9.0\n"


def test_interaction_table_broken_lines(tmp_path):
    src = tmp_path / "loops.bed"
    head = "chr1\ts1\te1\tchr2\ts2\te2\tcc\tP-Value_Bias\tQ-Value_Bias\n"
    for text, message in [
        (head + "chr1\t0\t5000\tchr1\t50000\t55000\t30\t1e-6\n", r"loops\.bed, line 2: 8 columns, expected 9"),
        (head + "chr1\t0\t5000\tchr1\tfifty\t55000\t30\t1e-6\t0.1\n", r"line 2: non-numeric start2 'fifty'"),
        (head + "chr1\t0\t5000\tchr1\t50000\t55000\t30\t1e-6\tlow\n", r"line 2: non-numeric score 'low'"),
        (head + "chr1\t9000\t5000\tchr1\t50000\t55000\t30\t1e-6\t0.1\n", r"line 2: end1 5000 before start1 9000"),
        ("", r"loops\.bed is empty: no header and no interactions"),
    ]:
        src.write_text(text)
        with pytest.raises(InputError, match=message):
            convert_interactions(src, tmp_path / "out.bedpe", PRESETS["hichip"])
    src.write_text(head)  # a header and no loops: an empty BEDPE
    assert convert_interactions(src, tmp_path / "out.bedpe", PRESETS["hichip"]) == 0
    assert (tmp_path / "out.bedpe").read_text() == ""


def test_interaction_missing_column_lists_existing(tmp_path):
    src = tmp_path / "wrong.tsv"
    src.write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match=r"wrong\.tsv has no column 'bait_chr', 'bait_start', .*'score', 'bait_name'; its columns are \['a', 'b'\]"):
        convert_interactions(src, tmp_path / "out.bedpe", PRESETS["pchic"])
    with pytest.raises(ValueError, match="score_kind 'pvalue' is not one of"):
        resolve_format("hichip", score_kind="pvalue")


def test_cli_custom_headerless_interactions(tmp_path, capsys):
    src = tmp_path / "loops.txt"
    src.write_text("x\tchr3\t10\t20\tchr3\t500\t600\t2.5\n")
    args = _parse(["convert", "interactions", str(src), str(tmp_path / "o.bedpe"), "--format", "custom",
                   "--no-header", "--chrom1", "1", "--start1", "2", "--end1", "3", "--chrom2", "4",
                   "--start2", "5", "--end2", "6", "--score", "7", "--score-kind", "frequency"])
    assert args.func(args) == 0
    assert (tmp_path / "o.bedpe").read_text() == "chr3\t10\t20\tchr3\t500\t600\t.\t2.5\n"
    assert "score kind frequency" in capsys.readouterr().out


# ---------------------------------------------------------------- expression


def test_rpkm_versions_stripped_trailing_tabs_tolerated(tmp_path):
    src = tmp_path / "57epigenomes.RPKM.pc.gz"
    src.write_bytes(gzip.compress(b"gene_id\tE000\tE003\nENSG00000116213.11\t1.5\t4.554\t\nENSG00000116731\t0\t5.486\t\n"))
    assert rpkm_to_expression(src, tmp_path / "expression.tsv") == 2
    table = pd.read_csv(tmp_path / "expression.tsv", sep="\t")
    assert table.columns.tolist() == ["gene_id", "E000", "E003"]
    assert table["gene_id"].tolist() == ["ENSG00000116213", "ENSG00000116731"]
    assert table["E003"].tolist() == [4.554, 5.486]


def test_rpkm_duplicate_after_stripping_and_text_values_are_errors(tmp_path):
    src = tmp_path / "dup.tsv"
    src.write_text("gene_id\tE003\nENSG1.1\t1\nENSG1.2\t2\n")
    with pytest.raises(InputError, match=r"dup\.tsv, line 3: gene id 'ENSG1' occurs again once versions are stripped \(first on line 2"):
        read_rpkm(src)
    src.write_text("gene_id\tE003\nENSG1\thigh\n")
    with pytest.raises(InputError, match=r"dup\.tsv, line 2: non-numeric RPKM of E003 'high'"):
        read_rpkm(src)
    src.write_text("gene_id\tE003\nENSG1\tNA\nENSG2\t\n")  # missing values are NaN, not errors
    assert read_rpkm(src)["E003"].isna().all()


# ---------------------------------------------------------------- a download folder end to end


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="epx")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_convert_roadmap_folder_into_contract(tmp_path):
    root = tmp_path / "roadmap"
    (root / "raw").mkdir(parents=True)
    (root / "chrom.sizes").write_text("".join(f"{c}\t{n}\n" for c, n in SIZES.items()))
    reads = make_reads(seed=4, n_per_chrom=50)
    write_tagalign(root / "raw/E003-H3K4me3.tagAlign.gz", reads)
    (root / "raw/gencode.v19.annotation.gtf.gz").write_bytes(gzip.compress(GENCODE.encode()))
    (root / "raw/57epigenomes.RPKM.pc.gz").write_bytes(gzip.compress(b"gene_id\tE003\nENSG00000116213\t4.5\n"))

    written = convert_roadmap(root)
    assert {p.relative_to(root).as_posix() for p in written} == {
        "signals/E003-H3K4me3.bigwig", "tss.bed", "expression.tsv",
    }
    np.testing.assert_array_equal(
        bigwig_depth(root / "signals/E003-H3K4me3.bigwig", SIZES)["chr2"], naive_depth(reads, SIZES, None)["chr2"]
    )
    assert convert_roadmap(root) == []  # up to date: nothing redone
    args = _parse(["convert", "roadmap", "--dest", str(root), "--force"])
    assert args.func(args) == 0


def test_cli_convert_tagalign(tmp_path):
    reads = [("chr1", 5, 41, "N", 0, "+")]
    src = write_tagalign(tmp_path / "r.tagAlign", reads)
    sizes = tmp_path / "chrom.sizes"
    sizes.write_text("chr1\t100\n")
    args = _parse(["convert", "tagalign", str(src), str(tmp_path / "r.bigwig"), "--chrom-sizes", str(sizes)])
    assert args.func(args) == 0
    bw = pyBigWig.open(str(tmp_path / "r.bigwig"))
    assert bw.intervals("chr1") == ((5, 41, 1.0),)
    bw.close()
