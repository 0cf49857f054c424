"""The distal-vs-other report computes Spearman over exactly the right genes."""

import json

import pandas as pd
import pytest

from epx.analysis.distal import distal_report, main
from epx.record import JobRecord


def _write_predictions(job):
    pd.DataFrame({
        "gene_id": list("abcdefg"),
        "chrom": "chr1",
        "split": ["test"] * 6 + ["train"],
        "target": [1, 2, 3, 1, 2, 3, 9],
        "prediction": [1, 2, 3, 3, 2, 1, 0],
    }).to_csv(job / "predictions.csv", index=False)


TRUTH = pd.DataFrame({"gene_id": list("abcdefg"), "distal_driven": [0, 0, 0, 1, 1, 1, 1]})


def test_report_splits_test_genes_by_truth(tmp_path):
    job = tmp_path / "job"
    job.mkdir()
    (job / "metrics.json").write_text(json.dumps({"model": "m", "mark": "all", "fold": 0}))
    _write_predictions(job)
    row = distal_report([job], TRUTH).iloc[0]
    assert row.other_spearman == pytest.approx(1.0) and row.distal_spearman == pytest.approx(-1.0)
    assert row.distal_n == 3 and row.all_n == 6


def test_report_reads_a_schema_2_record(tmp_path):
    job = tmp_path / "job"
    job.mkdir()
    JobRecord(model="chromoformer", mark="all", fold=2, task="regression", primary_metric="spearman", status="ok").write(job)
    _write_predictions(job)
    row = distal_report([job], TRUTH).iloc[0]
    assert (row.model, row.mark, row.fold) == ("chromoformer", "all", 2)
    assert row.distal_spearman == pytest.approx(-1.0)


def test_job_without_record_is_a_one_line_error(tmp_path, capsys):
    job = tmp_path / "job"
    job.mkdir()
    _write_predictions(job)
    TRUTH.to_csv(tmp_path / "truth.tsv", sep="\t", index=False)
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "truth.tsv"), str(job)])
    assert exit_info.value.code == 2
    assert "metrics.json" in capsys.readouterr().err
