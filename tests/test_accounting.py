"""Every gene and every interaction accounted for (issue 11, parts 1-2).

Unit tests of ``epx.data.prepare.genes.account_genes`` on hand-made tables (one gene per drop
reason, exactly-once property), chromosome-name reconciliation, the interaction counts; then
whole jobs on a copy of the real E003 slice with the issue's own broken inputs.
"""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pandas as pd
import pytest

from epx.analysis.collect import collect_rows
from epx.data.prepare.genes import DEFAULT_EXCLUDE, REASONS, account_genes
from epx.data.prepare.interactions import ContactFilter, prepare_contacts
from epx.errors import InputError
from epx.io.bedpe import read_interactions, write_interactions
from epx.io.naming import reconcile, rename_column
from epx.io.tss import read_tss, write_tss
from epx.run import train
from test_train import job_cfg, read_metrics

SIZES = {"chr1": 100_000, "chr2": 50_000, "chrM": 16_569, "chr1_gl000191_random": 10_000}


def _tables(tmp_path):
    tss = pd.DataFrame(
        [
            ("used1", "chr1", 50_000, "+"),
            ("used2", "2", 20_000, "-"),  # Ensembl naming: reconciled, used
            ("used1", "chr1", 60_000, "+"),  # duplicate_id
            ("mito", "MT", 100, "+"),  # excluded_chrom (after MT -> chrM would also match)
            ("contig", "chr1_gl000191_random", 5_000, "+"),  # excluded_chrom
            ("nochrom", "chr9", 1_000, "+"),  # chrom_not_in_signals
            ("offchrom", "chr2", 70_000, "+"),  # tss_off_chrom
            ("edge", "chr2", 49_000, "-"),  # near_chrom_end for a 3 kb reach
            ("noexpr", "chr1", 30_000, "+"),  # no_expression
            ("nanexpr", "chr1", 40_000, "-"),  # non_finite_target
        ],
        columns=["gene_id", "chrom", "tss", "strand"],
    )
    expr = pd.DataFrame(
        {
            "gene_id": ["used1", "used2", "mito", "contig", "nochrom", "offchrom", "edge", "nanexpr", "exprOnly", "used2"],
            "E003": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, "NA", 9.0, 2.5],
        }
    )
    write_tss(tss, tmp_path / "tss.bed")
    expr.to_csv(tmp_path / "expression.tsv", sep="\t", index=False)
    return tmp_path / "tss.bed", tmp_path / "expression.tsv"


def test_every_gene_is_used_or_dropped_for_exactly_one_named_reason(tmp_path):
    tss_path, expr_path = _tables(tmp_path)
    account = account_genes(tss_path, expr_path, "E003", SIZES, exclude_chroms=DEFAULT_EXCLUDE, flank_bp=3000)
    assert account.genes["gene_id"].tolist() == ["used1", "used2"]
    assert account.genes["chrom"].tolist() == ["chr1", "chr2"]  # reconciled per record
    reasons = {(g, src): r for g, src, r in account.dropped[["gene_id", "source", "reason"]].itertuples(index=False)}
    assert reasons[("used1", "tss")] == "duplicate_id" and reasons[("used2", "expression")] == "duplicate_id"
    assert reasons[("mito", "tss")] == reasons[("contig", "tss")] == "excluded_chrom"
    assert reasons[("nochrom", "tss")] == "chrom_not_in_signals"
    assert reasons[("offchrom", "tss")] == "tss_off_chrom"
    assert reasons[("edge", "tss")] == "near_chrom_end"
    assert reasons[("noexpr", "tss")] == "no_expression"
    assert reasons[("nanexpr", "tss")] == "non_finite_target"
    assert reasons[("exprOnly", "expression")] == "no_tss"
    # exactly once: every TSS row is a used gene or one dropped row, and so is every expression row
    tss_rows = account.dropped["source"].eq("tss").sum()
    assert len(account.genes) + tss_rows == account.n_tss == 10
    expr_rows = account.dropped["source"].eq("expression").sum()
    assert account.n_expression == 10 and expr_rows == 2  # exprOnly + the repeated used2 row
    assert set(account.counts()) <= set(REASONS)
    summary = account.summary()
    assert summary["used"] == 2 and summary["dropped_total"] == 10 and summary["renamed"]["records"] == 1


def test_without_a_reach_or_exclusions_nothing_is_dropped_for_them(tmp_path):
    tss_path, expr_path = _tables(tmp_path)
    account = account_genes(tss_path, expr_path, "E003", SIZES)
    reasons = {(g, src): r for g, src, r in account.dropped[["gene_id", "source", "reason"]].itertuples(index=False)}
    assert "edge" in account.genes["gene_id"].tolist()  # no reach: no near_chrom_end
    assert {"mito", "contig"} <= set(account.genes["gene_id"])  # chrM and the contig are in SIZES
    assert ("mito", "tss") not in reasons


def test_the_share_counts_losses_not_choices_and_the_error_names_file_reason_and_fix(tmp_path):
    tss_path, expr_path = _tables(tmp_path)
    account = account_genes(tss_path, expr_path, "E003", SIZES, exclude_chroms=DEFAULT_EXCLUDE, flank_bp=3000)
    # 6 lost (duplicate, chrom, off, edge, no expr, nan) of 10; the 2 excluded ones are a choice
    assert len(account.lost()) == 6
    account.check(0.6)  # 6 <= 0.6 * 10: allowed
    with pytest.raises(InputError) as err:
        account.check(0.05)
    msg = str(err.value)
    assert f"6 of 10 genes in {tss_path} (60%)" in msg
    assert "1 lie on chromosomes that the signals do not have (e.g. 'nochrom'" in msg and "on `chr9`" in msg
    assert f"1 have no row in the expression table (e.g. 'noexpr') [{expr_path}]" in msg
    assert "data.max_dropped_fraction=1" in msg and "genes_dropped.tsv" in msg
    assert "excluded" not in msg


def test_one_warning_line_per_reason(tmp_path, caplog):
    tss_path, expr_path = _tables(tmp_path)
    account = account_genes(tss_path, expr_path, "E003", SIZES, exclude_chroms=DEFAULT_EXCLUDE, flank_bp=3000)
    with caplog.at_level(logging.WARNING, logger="epx.data.prepare.genes"):
        account.log()
    lines = [r.getMessage() for r in caplog.records if r.name == "epx.data.prepare.genes"]
    assert len(lines) == len(account.counts()) == 8
    assert any(line.startswith("E003: 2 lie on chromosomes excluded") for line in lines)


def test_names_reconcile_both_ways_or_stay_unknown():
    assert reconcile(["1", "MT", "chrX", "chrM", "M"], ["chr1", "chrM", "chrX"]) == {"1": "chr1", "MT": "chrM", "chrX": "chrX", "chrM": "chrM", "M": "chrM"}
    assert reconcile(["chr1", "chrM", "chrUn_gl000220"], ["1", "MT"]) == {"chr1": "1", "chrM": "MT", "chrUn_gl000220": None}
    assert reconcile(["1"], ["chr1"], exact=True) == {"1": None}
    names, report = rename_column(["1", "chr2", "1", "scaffold"], ["chr1", "chr2"], what="t")
    assert names.tolist() == ["chr1", "chr2", "chr1", "scaffold"]
    assert report.n_renamed == 2 and report.renamed == {"1": "chr1"} and report.unknown == {"scaffold": 1}


def _bedpe(rows):
    return pd.DataFrame(rows, columns=["chrom1", "start1", "end1", "chrom2", "start2", "end2", "name", "score"])


def test_interactions_are_counted_read_kept_matched_and_linked():
    genes = pd.DataFrame({"gene_id": ["a", "b"], "chrom": ["chr1", "chr1"], "tss": [10_000, 50_000], "strand": ["+", "+"]})
    raw = _bedpe(
        [
            ("1", 10_000, 10_001, "1", 30_000, 32_000, "a", 3.0),  # Ensembl naming, reconciled, links a
            ("chr1", 30_000, 32_000, "chr1", 9_500, 10_500, "a", 2.0),  # other orientation, links a
            ("chr1", 50_000, 50_001, "chr1", 80_000, 81_000, "b", 1.0),  # below the threshold
            ("chr1", 70_000, 71_000, "chr1", 80_000, 81_000, "x", 5.0),  # kept, reaches no promoter
            ("chr9", 1, 2, "chr9", 100, 200, "y", 9.0),  # chromosome the signals lack
        ]
    )
    contacts, account = prepare_contacts(raw, ContactFilter("frequency", 1.5), {"chr1": 100_000}, what="ints.bedpe")
    account.link(genes, contacts, tolerance_bp=1000)
    assert account.summary() == {"file": "ints.bedpe", "read": 5, "kept": 3, "matched": 2, "genes_linked": 1, "unknown_chrom": 1, "renamed": 2}
    account.check()


def test_interactions_that_reach_no_gene_are_refused_with_where_they_were_lost():
    genes = pd.DataFrame({"gene_id": ["a"], "chrom": ["chr1"], "tss": [10_000], "strand": ["+"]})
    raw = _bedpe([("chr1", 70_000, 71_000, "chr1", 80_000, 81_000, "x", 5.0), ("chr1", 10_000, 10_001, "chr1", 30_000, 31_000, "a", 1.0)])
    contacts, account = prepare_contacts(raw, ContactFilter("frequency", 1.5), {"chr1": 100_000}, what="ints.bedpe")
    account.link(genes, contacts, tolerance_bp=1000)
    with pytest.raises(InputError, match=r"ints.bedpe: none of its 2 interactions reaches a gene \(1 below the threshold \(frequency >= 1.5\); 1 kept"):
        account.check()
    empty, account = prepare_contacts(read_interactions(None), ContactFilter(), {"chr1": 1}, what="missing.bedpe")
    account.link(genes, empty, tolerance_bp=1000)
    with pytest.raises(InputError, match="missing.bedpe: no interactions .*model=promoter_cnn"):
        account.check()


# -- whole jobs on a copy of the real E003 slice --------------------------------------------

E003_JOB = ("dataset.folds.scheme=balanced", "model=linear", "trainer=debug", "mark=H3K4me3")


@pytest.fixture
def e003_copy(tmp_path, e003_demo):
    root = tmp_path / "e003"
    shutil.copytree(e003_demo, root, ignore=shutil.ignore_patterns("README*"))
    return root


def _rename_chr1(root, to="1"):
    tss = read_tss(root / "tss.bed")
    n = int((tss["chrom"] == "chr1").sum())
    tss.loc[tss["chrom"] == "chr1", "chrom"] = to
    write_tss(tss, root / "tss.bed")
    return n


@pytest.mark.realdata
def test_e003_tss_on_ensembl_chr1_is_reconciled_and_every_gene_used(tmp_path, e003_copy, caplog):
    assert _rename_chr1(e003_copy) == 34  # the case: chr1 written `1`, the rest `chr…`
    job = tmp_path / "run"
    with caplog.at_level(logging.WARNING):
        train(job_cfg(job, e003_copy, *E003_JOB))
    record = read_metrics(job)
    assert record.status == "ok"
    assert record.genes["used"] == 100 and record.genes["dropped_total"] == 0
    assert record.genes["renamed"] == {"records": 34, "names": {"1": "chr1"}}
    assert sum(record.n_genes.values()) == 100
    assert "34 record(s) renamed to the signals' chromosome naming (1 → chr1)" in caplog.text


@pytest.mark.realdata
def test_e003_exact_names_refuse_the_job_naming_file_reason_and_fix(tmp_path, e003_copy):
    _rename_chr1(e003_copy)
    job = tmp_path / "run"
    with pytest.raises(InputError) as err:
        train(job_cfg(job, e003_copy, *E003_JOB, "dataset.chrom_names=exact"))
    msg = str(err.value)
    assert f"34 of 100 genes in {e003_copy / 'tss.bed'} (34%)" in msg
    assert "on `1`, which the signals do not have (they have chr1, chr2, chr3, …)" in msg
    assert "rename those chromosomes" in msg and "dataset.chrom_names=exact" in msg
    record = read_metrics(job)
    assert record.status == "failed" and record.genes["dropped"] == {"chrom_not_in_signals": 34}
    dropped = pd.read_csv(job / "job" / "genes_dropped.tsv", sep="\t", dtype={"chrom": str})
    assert len(dropped) == 34 and set(dropped["reason"]) == {"chrom_not_in_signals"} and set(dropped["chrom"]) == {"1"}
    assert not (job / "job" / "checkpoints").exists()  # stopped before training


@pytest.mark.realdata
def test_e003_a_few_genes_dropped_train_with_the_account_in_record_table_and_summary(tmp_path, e003_copy):
    expr = pd.read_csv(e003_copy / "expression.tsv", sep="\t")
    expr.loc[:1, "E003"] = np.nan  # 2 of 100: under the 5% threshold
    expr.to_csv(e003_copy / "expression.tsv", sep="\t", index=False)
    job = tmp_path / "run"
    train(job_cfg(job, e003_copy, *E003_JOB))
    record = read_metrics(job)
    assert record.status == "ok" and record.genes["used"] == 98 and record.genes["dropped"] == {"non_finite_target": 2}
    assert record.genes["split"] == record.n_genes and sum(record.n_genes.values()) == 98
    dropped = pd.read_csv(job / "job" / "genes_dropped.tsv", sep="\t")
    assert dropped["gene_id"].tolist() == expr["gene_id"][:2].tolist()
    # `job` holds one job dir: a sweep of one. trainer=debug makes it a smoke run, which
    # summaries leave out unless asked (epx summarize --include-smoke, issue 24)
    assert collect_rows(job) == []
    (row,) = collect_rows(job, include_smoke=True)
    assert row["smoke"] and int(row["genes_used"]) == 98 and int(row["genes_dropped"]) == 2


@pytest.mark.realdata
def test_e003_chromoformer_counts_its_interactions_and_refuses_unreachable_ones(tmp_path, e003_copy):
    job = tmp_path / "ok"
    train(job_cfg(job, e003_copy, "dataset.folds.scheme=balanced", "model=chromoformer", "trainer=debug", "mark=H3K4me3"))
    counts = read_metrics(job).interactions
    assert counts["read"] == 580 and counts["kept"] == 580 and counts["matched"] > 0 and 0 < counts["genes_linked"] <= 100
    # the same contacts moved 100 Mb away (another assembly, say): no row reaches a gene
    bedpe = read_interactions(e003_copy / "interactions" / "E003.bedpe")
    for col in ("start1", "end1", "start2", "end2"):
        bedpe[col] += 100_000_000
    write_interactions(bedpe, e003_copy / "interactions" / "E003.bedpe")
    refused = tmp_path / "refused"
    with pytest.raises(InputError, match="E003.bedpe: none of its 580 interactions reaches a gene"):
        train(job_cfg(refused, e003_copy, "dataset.folds.scheme=balanced", "model=chromoformer", "trainer=debug", "mark=H3K4me3"))
    assert read_metrics(refused).interactions["matched"] == 0
