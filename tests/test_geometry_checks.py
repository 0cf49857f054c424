"""Geometry that cannot be right is reported by reason, never used silently (issue 23, part 3):
TSS rows that are not 1-bp intervals and TSSs past their chromosome's end (the gene account),
BEDPE anchors past a chromosome's end (the interactions account), elements past a
chromosome's end (the element table's unscorable rows). Each case is counted, logged and
named in the error that stops a job when nothing usable is left."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from epx.data.prepare.genes import REASONS, account_genes
from epx.data.prepare.interactions import ContactFilter, prepare_contacts
from epx.errors import InputError
from epx.explain.elements import read_elements

SIZES = {"chr1": 100_000, "chr2": 50_000}


def _bed6(path, rows):
    path.write_text("".join(f"{c}\t{s}\t{e}\t{g}\t0\t{strand}\n" for c, s, e, g, strand in rows))
    return path


def _expression(path, ids):
    pd.DataFrame({"gene_id": ids, "E003": [1.0 + k for k in range(len(ids))]}).to_csv(path, sep="\t", index=False)
    return path


# ---------------------------------------------------------------- TSS rows (the gene account)


def test_tss_rows_that_are_not_1bp_or_past_the_chromosome_end_are_dropped_by_reason(tmp_path, caplog):
    rows = [
        ("chr1", 50_000, 50_001, "ok1", "+"),
        ("chr2", 20_000, 20_001, "ok2", "-"),
        ("chr1", 10_000, 12_500, "body", "+"),  # a gene body given as a TSS
        ("chr1", 30_000, 30_000, "empty", "-"),  # zero-width
        ("chr2", 70_000, 70_001, "past", "+"),  # beyond chr2's 50 kb
        ("chr2", 50_000, 50_001, "at_end", "+"),  # the first base past the end
    ]
    tss = _bed6(tmp_path / "tss.bed", rows)
    expr = _expression(tmp_path / "expression.tsv", [r[3] for r in rows])
    account = account_genes(tss, expr, "E003", SIZES)
    assert account.genes["gene_id"].tolist() == ["ok1", "ok2"]
    reason = dict(zip(account.dropped["gene_id"], account.dropped["reason"]))
    assert reason == {"body": "tss_not_1bp", "empty": "tss_not_1bp", "past": "tss_off_chrom", "at_end": "tss_off_chrom"}
    detail = dict(zip(account.dropped["gene_id"], account.dropped["detail"]))
    assert detail["body"] == "[10,000, 12,500): 2,500 bp" and detail["empty"] == "[30,000, 30,000): 0 bp"
    assert account.counts() == {"tss_not_1bp": 2, "tss_off_chrom": 2}
    assert account.summary()["dropped"] == {"tss_not_1bp": 2, "tss_off_chrom": 2}
    with caplog.at_level(logging.WARNING, logger="epx.data.prepare.genes"):
        account.log()
    lines = [r.getMessage() for r in caplog.records]
    assert any("2 have a TSS row that is not a 1-bp interval" in line and "'body'" in line for line in lines)
    assert any("2 have a TSS beyond their chromosome's end" in line for line in lines)
    with pytest.raises(InputError) as err:
        account.check(0.05)
    msg = str(err.value)
    assert f"4 of 6 genes in {tss}" in msg and "not a 1-bp interval" in msg and "`epx convert gtf`" in msg
    assert "beyond their chromosome's end" in msg and "same genome assembly" in msg


def test_a_gene_body_file_given_as_tss_stops_with_one_error_naming_the_reason(tmp_path):
    rows = [("chr1", 1_000 * k, 1_000 * k + 800, f"g{k}", "+") for k in range(1, 20)]
    tss = _bed6(tmp_path / "genes.bed", rows)
    expr = _expression(tmp_path / "expression.tsv", [r[3] for r in rows])
    account = account_genes(tss, expr, "E003", SIZES)
    assert account.genes.empty and account.counts() == {"tss_not_1bp": 19}
    with pytest.raises(InputError, match=r"(?s)19 of 19 genes .*19 have a TSS row that is not a 1-bp interval .*'g1'"):
        account.check(0.05)


def test_a_tss_frame_without_an_end_is_taken_as_1bp():
    frame = pd.DataFrame({"gene_id": ["a"], "chrom": ["chr1"], "tss": [10], "strand": ["+"]})
    account = account_genes(frame, pd.DataFrame({"gene_id": ["a"], "E003": [1.0]}), "E003", SIZES)
    assert account.genes["gene_id"].tolist() == ["a"] and account.dropped.empty
    assert "tss_not_1bp" in REASONS and not REASONS["tss_not_1bp"].chosen  # a loss: counts against the share


# ---------------------------------------------------------------- BEDPE anchors


def _bedpe(rows) -> pd.DataFrame:
    cols = ["chrom1", "start1", "end1", "chrom2", "start2", "end2", "name", "score"]
    return pd.DataFrame([(*r, ".", 5.0) for r in rows], columns=cols)


def test_bedpe_anchors_past_a_chromosome_end_are_counted_logged_and_left_out(caplog):
    raw = _bedpe(
        [
            ("chr1", 49_000, 51_000, "chr1", 80_000, 82_000),  # fine
            ("chr1", 49_000, 51_000, "chr1", 99_000, 101_000),  # partner ends past chr1's 100 kb
            ("chr2", 60_000, 62_000, "chr2", 10_000, 12_000),  # first anchor past chr2's 50 kb
            ("chr2", 48_000, 50_000, "chr2", 10_000, 12_000),  # ends exactly at the end: fine
        ]
    )
    with caplog.at_level(logging.WARNING, logger="epx.data.prepare.interactions"):
        contacts, account = prepare_contacts(raw, ContactFilter(), SIZES, what="E003.bedpe")
    assert account.read == 4 and account.off_chrom == 2 and account.kept == 2
    assert contacts[["end1", "end2"]].values.tolist() == [[51_000, 82_000], [50_000, 12_000]]
    assert account.summary()["off_chrom"] == 2
    (line,) = [r.getMessage() for r in caplog.records]
    assert "E003.bedpe: 2 of 4 interactions have an anchor beyond its chromosome's end" in line
    assert "chr1:49,000-51,000 / chr1:99,000-101,000" in line and "same genome assembly" in line


def test_a_bedpe_file_whose_anchors_are_all_past_the_end_is_one_error_naming_why():
    raw = _bedpe([("chr2", 60_000 + k, 62_000 + k, "chr2", 70_000, 72_000) for k in range(5)])
    contacts, account = prepare_contacts(raw, ContactFilter(), SIZES, what="E003.bedpe")
    assert contacts.empty and account.off_chrom == 5
    genes = pd.DataFrame({"gene_id": ["a"], "chrom": ["chr2"], "tss": [61_000], "strand": ["+"]})
    account.link(genes, contacts, tolerance_bp=1_000)
    with pytest.raises(InputError, match=r"E003.bedpe: none of its 5 interactions reaches a gene \(5 with an anchor beyond its chromosome's end; 0 kept"):
        account.check()


def test_without_chromosome_sizes_no_anchor_is_judged():
    raw = _bedpe([("chr2", 60_000, 62_000, "chr2", 70_000, 72_000)])
    contacts, account = prepare_contacts(raw, ContactFilter(), ["chr1", "chr2"], what="E003.bedpe")
    assert len(contacts) == 1 and account.off_chrom == 0 and "off_chrom" not in account.summary()


# ---------------------------------------------------------------- element tables


def test_elements_past_a_chromosome_end_are_unscorable_by_reason(tmp_path, caplog):
    path = tmp_path / "elements.tsv"
    path.write_text(
        "chrom\tstart\tend\tgene\tsignificant\n"
        "chr1\t40000\t41000\ta\t1\n"
        "chr1\t60000\t61000\ta\t0\n"
        "chr1\t99500\t100500\ta\t1\n"  # ends past chr1's 100 kb
    )
    genes = pd.DataFrame({"gene_id": ["a"], "chrom": ["chr1"], "tss": [50_000], "strand": ["+"]})
    table, report = read_elements(path, genes, SIZES)
    assert table["unscorable"].tolist() == ["", "", "beyond_chrom_end"]
    assert report.counts == {"beyond_chrom_end": 1} and report.n_scorable == 2
    with caplog.at_level(logging.INFO, logger="epx.explain.elements"):
        report.log()
    assert any("1 element(s) end past their chromosome's end (e.g. line 4: chr1:99500-100500" in r.getMessage() for r in caplog.records)
