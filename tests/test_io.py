"""epx.io: every format reads back what it writes; writes are atomic; one gene-id and one
chromosome-naming rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyBigWig
import pytest

from epx.data.prepare.genes import load_genes
from epx.errors import InputError
from epx.io.atomic import TMP_MARK, atomic_path, atomic_write, stale_temps, temp_name, write_text
from epx.io.bedpe import COLUMNS, read_interactions, write_interactions
from epx.io.bigwig import open_bigwig, read_binned, value_runs, write_bigwig
from epx.io.chrom_sizes import read_chrom_sizes, write_chrom_sizes
from epx.io.expression import read_expression, read_expression_table, write_expression
from epx.io.gene_ids import normalise_gene_ids
from epx.io.naming import check_naming, chrom_sort_key, strip_chr, ucsc_name
from epx.io.tss import read_tss, write_tss

SIZES = {"chr2": 1_000, "chr1": 2_500, "chrX": 300}


def _no_temps(folder) -> bool:
    return not [p for p in folder.rglob("*") if TMP_MARK in p.name]


# ----------------------------------------------------------------------------- round trips


def test_tss_round_trip(tmp_path):
    tss = pd.DataFrame({"gene_id": ["g2", "g1", "ENSG1_PAR_Y"], "chrom": ["chr2", "chr1", "chrX"], "tss": [0, 2_499, 17], "strand": ["-", "+", "+"]})
    path = write_tss(tss, tmp_path / "tss.bed")
    assert path.read_text().splitlines()[0] == "chr2\t0\t1\tg2\t0\t-"  # BED6, 0-based, score 0
    pd.testing.assert_frame_equal(read_tss(path), tss)


def test_expression_round_trip(tmp_path):
    table = pd.DataFrame({"gene_id": ["g1", "g2"], "E003": [0.0, 12.25], "E114": [3.5, 1e-3]})
    write_expression(table, tmp_path / "a.tsv")
    back = read_expression_table(tmp_path / "a.tsv")
    pd.testing.assert_frame_equal(back, table.set_index("gene_id"))
    write_expression(back, tmp_path / "b.tsv")  # the reader's form (gene_id index) writes the same file
    assert (tmp_path / "b.tsv").read_bytes() == (tmp_path / "a.tsv").read_bytes()
    write_expression(table, tmp_path / "c.tsv", float_format="%.1f")
    assert read_expression(tmp_path / "c.tsv", "E003").tolist() == [0.0, 12.2]


def test_chrom_sizes_round_trip_keeps_order(tmp_path):
    path = write_chrom_sizes(SIZES, tmp_path / "chrom.sizes")
    assert list(read_chrom_sizes(path).items()) == list(SIZES.items())


def test_interactions_round_trip(tmp_path):
    bedpe = read_interactions(pd.DataFrame(
        [["chr1", 0, 10, "chr1", 100, 200, "g1", 2.5], ["chr2", 5, 6, "chr2", 900, 950, ".", 0.001]], columns=COLUMNS
    ))
    path = write_interactions(bedpe.assign(extra=1)[COLUMNS[::-1] + ["extra"]], tmp_path / "x.bedpe")  # any column order
    assert len(path.read_text().splitlines()[0].split("\t")) == 8  # 8 columns, no header
    pd.testing.assert_frame_equal(read_interactions(path), bedpe)
    write_interactions(bedpe.iloc[:0], tmp_path / "empty.bedpe")
    assert read_interactions(tmp_path / "empty.bedpe").empty


def test_bigwig_round_trip_per_bp(tmp_path):
    rng = np.random.default_rng(0)
    values = {
        "chr1": np.repeat(rng.integers(0, 4, 250).astype(np.float32) * 1.5, 10),  # runs, zeros among them
        "chr2": np.r_[np.zeros(400), np.full(600, 7.25)],
    }  # chrX: absent, so all zero
    path = write_bigwig(tmp_path / "s.bigwig", SIZES, values)
    back = read_binned(path, SIZES, bin_bp=1)
    for chrom, n in SIZES.items():
        np.testing.assert_array_equal(back[chrom], values.get(chrom, np.zeros(n)))
    bw = pyBigWig.open(str(path))
    assert bw.chroms() == SIZES  # header in the given order, absent chromosomes included
    starts, ends, runs = value_runs(values["chr1"])
    assert bw.intervals("chr1") == tuple(zip(starts.tolist(), ends.tolist(), runs.tolist()))  # one entry per run
    assert bw.intervals("chr2") == ((400, 1000, 7.25),) and bw.intervals("chrX") is None
    bw.close()


def test_bigwig_writer_takes_runs_in_chunks(tmp_path):
    with open_bigwig(tmp_path / "r.bigwig", SIZES) as out:
        out.add("chr2", np.array([0, 10]), np.array([5, 20]), np.array([1.0, 2.0]))
        out.add("chr2", np.array([30]), np.array([31]), np.array([3.0]))
        out.add("chr1", np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    assert out.entries == 3
    expected = np.zeros(1_000)
    expected[0:5], expected[10:20], expected[30] = 1.0, 2.0, 3.0
    np.testing.assert_array_equal(read_binned(tmp_path / "r.bigwig", SIZES, bin_bp=1)["chr2"], expected)


# ----------------------------------------------------------------------------- atomic writes


def test_atomic_path_leaves_the_old_file_when_the_writer_raises(tmp_path):
    path = write_text(tmp_path / "out.txt", "old complete file\n")
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_path(path) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("killed")
    assert path.read_text() == "old complete file\n" and _no_temps(tmp_path)

    def half(handle):
        handle.write("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, half)
    assert path.read_text() == "old complete file\n" and _no_temps(tmp_path)


def test_format_writers_are_atomic(tmp_path):
    old = write_bigwig(tmp_path / "s.bigwig", SIZES, {"chr1": np.ones(2_500)})
    before = old.read_bytes()
    with pytest.raises(RuntimeError):
        with open_bigwig(old, SIZES) as out:
            out.add("chr2", np.array([0]), np.array([10]), np.array([5.0]))
            raise RuntimeError("killed mid-write")
    assert old.read_bytes() == before and _no_temps(tmp_path)
    sizes = write_chrom_sizes(SIZES, tmp_path / "sub" / "chrom.sizes")  # parent folder created
    with pytest.raises(KeyError):
        write_tss(pd.DataFrame({"gene_id": ["a"]}), sizes)  # a bad frame fails before any byte lands
    assert read_chrom_sizes(sizes) == SIZES


def test_stale_temps_are_listed_for_lock_holders(tmp_path):
    path = tmp_path / "cell.h5"
    assert stale_temps(path) == []
    left = temp_name(path)
    left.write_bytes(b"killed writer")
    (tmp_path / "other.h5").write_bytes(b"")
    assert stale_temps(path) == [left]
    assert stale_temps(tmp_path / "absent" / "x") == []


# ----------------------------------------------------------------------------- gene ids


def test_gene_id_normaliser_strips_versions_and_keeps_par_y():
    ids = ["ENSG00000116213.11", "ENSG00000182378.14_PAR_Y", "ENSG00000182378.14", "ENSG00000182378_PAR_Y", "g1", "a.b.3"]
    assert normalise_gene_ids(ids).tolist() == [
        "ENSG00000116213", "ENSG00000182378_PAR_Y", "ENSG00000182378", "ENSG00000182378_PAR_Y", "g1", "a.b",
    ]
    series = pd.Series(["X.2", None], index=[7, 9])
    out = normalise_gene_ids(series)
    assert out.index.tolist() == [7, 9] and out[7] == "X" and pd.isna(out[9])  # missing stays missing


def test_tss_and_expression_readers_agree_on_par_y_ids(tmp_path):
    # GENCODE lists PAR genes on chrX and, tagged _PAR_Y, on chrY: both copies must survive and join
    tss = pd.DataFrame({
        "gene_id": ["ENSG00000182378.14", "ENSG00000182378.14_PAR_Y"], "chrom": ["chrX", "chrY"], "tss": [10, 20], "strand": ["+", "+"],
    })
    expr = pd.DataFrame({"gene_id": ["ENSG00000182378.9", "ENSG00000182378.9_PAR_Y"], "E003": [4.0, 0.0]})
    write_tss(tss, tmp_path / "tss.bed")
    write_expression(expr, tmp_path / "expression.tsv")
    assert read_tss(tmp_path / "tss.bed")["gene_id"].tolist() == read_expression(tmp_path / "expression.tsv", "E003").index.tolist()
    genes = load_genes(tmp_path / "tss.bed", tmp_path / "expression.tsv", "E003", {"chrX": 100, "chrY": 100})
    assert genes[["gene_id", "chrom", "rpkm"]].values.tolist() == [
        ["ENSG00000182378", "chrX", 4.0], ["ENSG00000182378_PAR_Y", "chrY", 0.0],
    ]


# ----------------------------------------------------------------------------- chromosome names


def test_chromosome_naming_rules():
    assert [strip_chr(c) for c in ["chr1", "ChrX", "1", "chrUn_gl000220", "MT"]] == ["1", "X", "1", "Un_gl000220", "MT"]
    assert [ucsc_name(c) for c in ["1", "X", "MT", "chr2", "chrM"]] == ["chr1", "chrX", "chrM", "chr2", "chrM"]
    names = ["chrUn_gl000220", "chrM", "chr10", "chrY", "chr2", "chrX", "chr1", "chr22", "chr1_gl000191_random"]
    assert sorted(names, key=chrom_sort_key) == [
        "chr1", "chr2", "chr10", "chr22", "chrX", "chrY", "chrM", "chr1_gl000191_random", "chrUn_gl000220",
    ]
    assert sorted(["MT", "X", "3", "21"], key=chrom_sort_key) == ["3", "21", "X", "MT"]  # Ensembl names, same order
    check_naming(["chr1", "chr9"], SIZES, what="a", reference_what="b")  # shares chr1: fine
    with pytest.raises(InputError, match="naming mismatch: a names chromosomes like '1'"):
        check_naming(["1"], SIZES, what="a", reference_what="b")
    with pytest.raises(InputError, match="shares no chromosome"):
        check_naming(["chr5"], SIZES, what="a", reference_what="b")


def test_a_truncated_bigwig_is_one_error_naming_the_file_and_the_fix(tmp_path):
    """A download cut short: pyBigWig's own 'Unknown error during file opening' names neither."""
    sizes = {"chr1": 200_000}
    whole = write_bigwig(tmp_path / "whole.bigwig", sizes, {"chr1": np.arange(200_000) % 7})
    size = whole.stat().st_size
    # libBigWig crashed the process (no exception) on some of these cuts before the header check
    for keep in (0, 100, 3_000, *range(size // 25, size, size // 25)):
        cut = tmp_path / f"cut{keep}.bigwig"
        cut.write_bytes(whole.read_bytes()[:keep])
        for read in (lambda p: read_binned(p, sizes), read_chrom_sizes):
            # either one clear error, or (a cut that spares what this reader needs) the same answer
            try:
                got = read(cut)
            except InputError as err:
                assert cut.name in str(err) and ("re-download" in str(err) or "truncated" in str(err))
                continue
            expected = read(whole)
            assert got.keys() == expected.keys() and all(np.array_equal(got[k], expected[k]) for k in got), (keep, read)
