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


def test_chromosome_naming_mismatch_is_reported(tmp_path):
    path = write_bigwig(tmp_path / "ens.bigwig", {"1": 1000}, {"1": np.ones(1000)})
    with pytest.raises(InputError, match="naming mismatch.*ens.bigwig.*'1'.*'chr1'"):
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
    with pytest.raises(InputError, match="8 BEDPE columns"):
        read_interactions(tmp_path / "bad.bedpe")


def test_chrom_sizes_from_bigwig_header(tiny_folder):
    sizes = read_chrom_sizes(tiny_folder / "signals" / "E003-H3K4me3.bigwig")
    assert sizes == {"chr1": 20_000, "chr2": 15_050}
    spec = DatasetSpec(root=tiny_folder, files={"chrom_sizes": "absent.sizes"})
    assert spec.chrom_sizes("E003", ["H3K4me3"]) == sizes
