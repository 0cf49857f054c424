"""The distal-vs-other report computes Spearman over exactly the right genes."""

import json

import pandas as pd
import pytest

from epx.analysis.distal import distal_report


def test_report_splits_test_genes_by_truth(tmp_path):
    job = tmp_path / "job"
    job.mkdir()
    (job / "metrics.json").write_text(json.dumps({"model": "m", "mark": "all", "fold": 0}))
    pd.DataFrame({
        "gene_id": list("abcdefg"),
        "chrom": "chr1",
        "split": ["test"] * 6 + ["train"],
        "target": [1, 2, 3, 1, 2, 3, 9],
        "prediction": [1, 2, 3, 3, 2, 1, 0],
    }).to_csv(job / "predictions.csv", index=False)
    truth = pd.DataFrame({"gene_id": list("abcdefg"), "distal_driven": [0, 0, 0, 1, 1, 1, 1]})
    row = distal_report([job], truth).iloc[0]
    assert row.other_spearman == pytest.approx(1.0) and row.distal_spearman == pytest.approx(-1.0)
    assert row.distal_n == 3 and row.all_n == 6
