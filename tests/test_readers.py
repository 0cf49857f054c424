"""Contract readers: exact binning, and one clear error per kind of bad input."""

import numpy as np
import pandas as pd
import pytest

from conftest import write_bigwig
from epx.io.bigwig import bin_mean, read_binned
from epx.io.chrom_sizes import read_chrom_sizes
from epx.data.prepare.contract import DatasetSpec
from epx.errors import InputError
from epx.io.expression import read_expression, read_expression_table
from epx.data.prepare.genes import classification_label, load_genes, regression_target
from epx.io.bedpe import read_interactions
from epx.io.tss import read_tss


def test_bin_mean_matches_naive_and_treats_nan_as_zero():
    v = np.arange(250, dtype=np.float32)
    v[3] = np.nan
    out = bin_mean(v, 100)
    naive = [np.nansum(v[i : i + 100]) / len(v[i : i + 100]) for i in range(0, 250, 100)]
    np.testing.assert_allclose(out, naive, rtol=1e-6)


def test_read_binned_bigwig_equals_in_memory(tiny_folder):
    sizes = read_chrom_sizes(tiny_folder / "chrom.sizes")
    from_file = read_binned(tiny_folder / "signals" / "E003-H3K27ac.bigwig", sizes, bin_bp=100)
    from_memory = read_binned({"chr1": np.r_[np.zeros(5_000), np.full(15_000, 2.0)]}, sizes, bin_bp=100)
    for chrom in sizes:
        np.testing.assert_allclose(from_file[chrom], from_memory[chrom], rtol=1e-6)
    assert from_file["chr2"].shape == (151,) and not from_file["chr2"].any()  # chromosome absent from bigWig = 0
    assert from_file["chr1"][49] == 0 and from_file["chr1"][50] == pytest.approx(2.0)


def test_dense_and_sparse_paths_agree(tmp_path, monkeypatch):
    import epx.io.bigwig as bigwig

    sizes = {"chr1": 300_000}
    v = np.zeros(300_000, np.float32)
    v[1000:1300] = 5
    v[250_000:250_050] = 1.5
    path = write_bigwig(tmp_path / "s.bigwig", sizes, {"chr1": v})
    sparse = read_binned(path, sizes)["chr1"]
    monkeypatch.setattr(bigwig, "SPARSE_FRACTION", 0.0)  # force the dense decode path
    dense = read_binned(path, sizes, span_bp=100_000)["chr1"]
    np.testing.assert_allclose(sparse, dense)
    np.testing.assert_allclose(sparse, bin_mean(v, 100))


def test_inf_and_negative_signal_are_rejected_with_file_name(tmp_path):
    sizes = {"chr1": 1000}
    bad = write_bigwig(tmp_path / "inf.bigwig", sizes, {"chr1": np.r_[np.zeros(500), np.full(500, np.inf)]})
    with pytest.raises(InputError, match="inf.bigwig.*inf"):
        read_binned(bad, sizes)
    neg = write_bigwig(tmp_path / "neg.bigwig", sizes, {"chr1": np.full(1000, -2.0)})
    with pytest.raises(InputError, match="neg.bigwig.*negative"):
        read_binned(neg, sizes)


def test_nan_in_memory_signal_counts_as_zero():
    out = read_binned({"chr1": np.r_[np.full(100, np.nan), np.full(100, 3.0)]}, {"chr1": 200})
    np.testing.assert_allclose(out["chr1"], [0.0, 3.0])


def test_a_bigwig_in_the_other_naming_is_read_under_the_datasets_names(tmp_path, caplog):
    path = write_bigwig(tmp_path / "ens.bigwig", {"1": 1000, "MT": 100}, {"1": np.ones(1000), "MT": np.full(100, 2.0)})
    binned = read_binned(path, {"chr1": 1000, "chrM": 100, "chr2": 500})
    assert binned["chr1"].tolist() == [1.0] * 10 and binned["chrM"].tolist() == [2.0]
    assert not binned["chr2"].any()  # a chromosome the bigWig lacks is uncovered: zeros
    assert "ens.bigwig: 2 chromosome(s) read under the dataset's naming (1 → chr1, MT → chrM)" in caplog.text


def test_a_bigwig_sharing_no_chromosome_in_any_spelling_is_refused(tmp_path):
    path = write_bigwig(tmp_path / "other.bigwig", {"scaffold_1": 1000}, {"scaffold_1": np.ones(1000)})
    with pytest.raises(InputError, match="other.bigwig shares no chromosome"):
        read_binned(path, {"chr1": 1000})


def test_missing_bigwig_names_cell_mark_and_path(tiny_folder):
    spec = DatasetSpec(root=tiny_folder)
    with pytest.raises(InputError) as err:
        spec.check(["E003"], ["H3K4me3", "H3K9me3"])
    msg = str(err.value)
    assert "cell E003, mark H3K9me3" in msg and str(tiny_folder / "signals" / "E003-H3K9me3.bigwig") in msg
    assert "H3K4me3:" not in msg


def test_tss_reader_keeps_every_row_for_the_gene_accounting(tmp_path):
    # duplicates, unknown chromosomes and TSSs past a chromosome end are drop reasons
    # downstream (epx.data.prepare.genes), not reader errors
    tss = pd.DataFrame(
        {"gene_id": ["a", "a", "b"], "chrom": ["chr1", "1", "chr1"], "tss": [10, 20, 5000], "strand": ["+", "-", "+"]}
    )
    pd.testing.assert_frame_equal(read_tss(tss), tss)


def test_expression_duplicates_keep_first_and_bad_values_become_nan(tmp_path):
    expr = pd.DataFrame(
        {"gene_id": ["x.1", "y", "x.2", "z", "w", "v", "y"], "E003": [1.0, 2.0, 3.0, -1.0, np.inf, np.nan, 5.0]}
    )
    table = read_expression_table(expr)
    assert table.attrs["duplicate_ids"] == ["x", "y"]
    rpkm = read_expression(expr, "E003")
    assert rpkm.dtype == np.float64 and list(rpkm.index) == ["x", "y", "z", "w", "v"]
    assert rpkm.tolist()[:2] == [1.0, 2.0] and rpkm.iloc[2:].isna().all()
    path = tmp_path / "e.tsv"
    path.write_text("gene_id\tE003\na\t1.5\nb\tn/a\nc\tabc\nd\t\ne\t-3\nf\tinf\n")
    rpkm = read_expression(path, "E003")
    assert rpkm.iloc[0] == 1.5 and rpkm.iloc[1:].isna().all() and rpkm.attrs["source"] == str(path)


def test_expression_without_cell_lists_cells(tiny_folder):
    with pytest.raises(InputError, match="no column for cell 'E114'.*has: E003"):
        read_expression(tiny_folder / "expression.tsv", "E114")


def test_targets_and_median_label_over_all_genes(tiny_folder):
    genes = load_genes(tiny_folder / "tss.bed", tiny_folder / "expression.tsv", "E003", read_chrom_sizes(tiny_folder / "chrom.sizes"))
    assert list(genes.gene_id) == ["g1", "g2", "g3", "g4"]
    np.testing.assert_allclose(genes.target, np.log2(np.array([0, 10, 3, 100]) + 1))
    # median over all 5 genes of the table (incl. g5 without TSS) is 3.0
    assert list(genes.label) == [0, 1, 1, 1]
    assert list(classification_label([1, 5], [1, 2, 3, 4, 5])) == [0, 1]
    np.testing.assert_allclose(regression_target([0, 1, 3]), [0, 1, 2])


def test_version_suffixes_stripped_so_ids_join(tmp_path):
    expr = pd.DataFrame({"gene_id": ["ENSG01.5", "ENSG02.1"], "E003": [1.0, 2.0]})
    assert list(read_expression(expr, "E003").index) == ["ENSG01", "ENSG02"]


def test_interactions_reader(tmp_path):
    path = tmp_path / "x.bedpe"
    path.write_text("chr1\t0\t10\tchr1\t100\t200\tg1\t2.5\n")
    df = read_interactions(path)
    assert df.iloc[0].tolist() == ["chr1", 0, 10, "chr1", 100, 200, "g1", 2.5]
    assert read_interactions(tmp_path / "absent.bedpe").empty
    (tmp_path / "bad.bedpe").write_text("chr1\t0\t10\n")
    with pytest.raises(InputError, match=r"bad\.bedpe, line 1: 3 columns, expected 8"):
        read_interactions(tmp_path / "bad.bedpe")
    # what pandas' fast path would misread (a '#' inside a field, quotes, 1e3) takes the exact line reader
    (tmp_path / "odd.bedpe").write_text('# comment\nchr1\t1e3\t2000\tchr1\t5\t6\tgene#"1"\tNA\n')
    odd = read_interactions(tmp_path / "odd.bedpe")
    assert odd.iloc[0, :7].tolist() == ["chr1", 1000, 2000, "chr1", 5, 6, 'gene#"1"'] and np.isnan(odd.score[0])
    for empty in ("", "\n\n", "# no interactions\n"):  # an empty BEDPE is "no interactions", not an error
        (tmp_path / "empty.bedpe").write_text(empty)
        assert read_interactions(tmp_path / "empty.bedpe").empty


def test_chrom_sizes_from_bigwig_header(tiny_folder):
    sizes = read_chrom_sizes(tiny_folder / "signals" / "E003-H3K4me3.bigwig")
    assert sizes == {"chr1": 20_000, "chr2": 15_050}
    spec = DatasetSpec(root=tiny_folder, files={"chrom_sizes": "absent.sizes"})
    assert spec.chrom_sizes("E003", ["H3K4me3"]) == sizes


# ----------------------------------------------------------------------------- broken text files (issue 11, part 3)

TSS_TEXT = "chr1\t10\t11\tENSG1.2\t0\t+\nchr2\t20\t21\tENSG2\t0\t-\n"


def test_crlf_bom_gzip_and_comments_read_like_plain_text(tmp_path):
    import gzip

    plain = tmp_path / "tss.bed"
    plain.write_text(TSS_TEXT)
    expected = read_tss(plain)
    assert expected["gene_id"].tolist() == ["ENSG1", "ENSG2"]
    variants = {
        "crlf.bed": TSS_TEXT.replace("\n", "\r\n").encode(),
        "bom.bed": b"\xef\xbb\xbf" + TSS_TEXT.encode(),
        "comment.bed": b"# made by hand\n\n" + TSS_TEXT.encode(),
        "tss.bed.gz": gzip.compress(b"\xef\xbb\xbf" + TSS_TEXT.replace("\n", "\r\n").encode()),
        "gz-under-a-plain-name.bed": gzip.compress(TSS_TEXT.encode()),
    }
    for name, data in variants.items():
        (tmp_path / name).write_bytes(data)
        pd.testing.assert_frame_equal(read_tss(tmp_path / name), expected)


@pytest.mark.parametrize(
    "text, message",
    [
        ("chrom\tstart\tend\tname\tscore\tstrand\n" + TSS_TEXT, r"tss\.bed, line 1: non-numeric start 'start'.*header line must start with '#'"),
        (TSS_TEXT + "chr1\t30\t31\tENSG3\n", r"tss\.bed, line 3: 4 columns, expected 6 \(chrom, tss, tss\+1, gene_id, score, strand\)"),
        ("chr1\tten\t11\tg\t0\t+\n", r"line 1: non-numeric start 'ten'"),
        ("chr1\t-5\t11\tg\t0\t+\n", r"line 1: negative start '-5'"),
        ("chr1\t1.5\t11\tg\t0\t+\n", r"line 1: non-integer start '1.5'"),
        ("chr1\t20\t11\tg\t0\t+\n", r"line 1: end 11 before start 20 \(reversed coordinates\?\)"),
        ("chr1\t10\t11\tg\t0\t.\n", r"line 1: strand '.' \(must be '\+' or '-'\)"),
        ("chr1\t10\t11\t\t0\t+\n", r"line 1: empty gene id"),
        ("", r"tss\.bed has no data lines: an empty or truncated TSS file"),
        ("# only a comment\n\n", r"has no data lines"),
    ],
)
def test_broken_tss_lines_name_file_line_and_fix(tmp_path, text, message):
    (tmp_path / "tss.bed").write_text(text)
    with pytest.raises(InputError, match=message):
        read_tss(tmp_path / "tss.bed")


def test_truncated_gzip_binary_and_misnamed_files_are_one_clear_error(tmp_path):
    import gzip

    data = gzip.compress(TSS_TEXT.encode() * 50)
    cut = tmp_path / "tss.bed.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"tss\.bed\.gz: truncated gzip.*re-download"):
        read_tss(cut)
    binary = tmp_path / "binary.bed"
    binary.write_bytes(b"chr1\t10\xff\xfe\x00\x01")
    with pytest.raises(InputError, match=r"binary\.bed: not UTF-8 text \(byte 0xff on line 1\)"):
        read_tss(binary)
    plain = tmp_path / "plain.bed.gz"
    plain.write_text(TSS_TEXT)
    with pytest.raises(InputError, match=r"plain\.bed\.gz is named \.gz but is not gzip-compressed"):
        read_tss(plain)


def test_expression_table_errors_name_file_and_line(tmp_path):
    path = tmp_path / "expression.tsv"
    path.write_text("gene_id\tE003\tE004\ng1\t1\t2\ng2\t3\n")
    with pytest.raises(InputError, match=r"expression\.tsv, line 3: 2 columns, expected 3"):
        read_expression_table(path)
    path.write_text("gene_id\tE003\tE003\ng1\t1\t2\n")
    with pytest.raises(InputError, match=r"column 'E003' appears twice in the header"):
        read_expression_table(path)
    path.write_text("gene_id\tE003\n")
    with pytest.raises(InputError, match=r"has only a header line"):
        read_expression_table(path)
    path.write_text("gene_id\tE003\tE004\t\ng1\t1\t2.5\t\n")  # trailing tabs are not columns
    assert read_expression_table(path).loc["g1"].tolist() == [1, 2.5]


def test_chrom_sizes_errors(tmp_path):
    path = tmp_path / "chrom.sizes"
    path.write_text("chr1 2000\r\nchr2\t100\tchr2.fa\n")  # spaces, CRLF and a 3rd column are fine
    assert read_chrom_sizes(path) == {"chr1": 2000, "chr2": 100}
    for text, message in [
        ("chr1\t2000\nchr1\t2000\n", r"line 2: chromosome 'chr1' listed again \(first on line 1\)"),
        ("chr1\t0\n", r"line 1: too small length '0'"),
        ("chr1\n", r"line 1: 1 column, expected 2"),
        ("\n", r"has no data lines"),
    ]:
        path.write_text(text)
        with pytest.raises(InputError, match=message):
            read_chrom_sizes(path)


def test_fold_table_errors(tmp_path):
    from epx.data.prepare.folds import column_folds

    genes = pd.DataFrame({"gene_id": ["g1", "g2", "g3"], "chrom": "chr1"})
    path = tmp_path / "folds.tsv"
    path.write_text("gene_id\tfold\ng1.4\t0\ng2\t\n")  # versions stripped; an empty fold is "none"
    assert column_folds(genes, table=path).tolist() == [0, -1, -1]
    for text, message in [
        ("gene_id\tfold\ng1\tA\n", r"folds\.tsv, line 2: non-numeric fold \(fold\) 'A'"),
        ("gene_id\tfold\ng1\t1\ng1\t2\n", r"line 3: gene 'g1' listed again"),
        ("gene_id\tfold\n", r"only a header line"),
    ]:
        path.write_text(text)
        with pytest.raises(InputError, match=message):
            column_folds(genes, table=path)
