"""Distal-driven vs other genes: how much a model gains where the promoter is uninformative.

Contract: ``distal_report(job_dirs, truth) -> DataFrame`` with one row per job (model, mark,
fold, and test Spearman ρ / Pearson r over the genes ``truth.tsv`` marks distal-driven, over
the other genes, and over all), computed from each job's ``predictions.csv`` (split == test);
model, mark and fold come from the job record (``epx.record.JobRecord``, any schema version;
an unreadable one raises ``RecordError`` naming the file).
``truth.tsv`` ships with the synthetic dataset (``gene_id``, ``distal_driven``).

    python -m epx.analysis.distal data/synthetic/seed0/truth.tsv outputs/runs/A outputs/runs/B
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from epx.errors import InputError
from epx.io.truth import read_truth
from epx.record import JobRecord, RecordError


def _scores(frame: pd.DataFrame) -> dict:
    if len(frame) < 3:
        return {"spearman": float("nan"), "pearson": float("nan"), "n": len(frame)}
    return {
        "spearman": frame["target"].corr(frame["prediction"], method="spearman"),
        "pearson": frame["target"].corr(frame["prediction"]),
        "n": len(frame),
    }


def distal_report(job_dirs, truth) -> pd.DataFrame:
    truth = read_truth(truth, columns=["gene_id", "distal_driven"]) if not isinstance(truth, pd.DataFrame) else truth
    rows = []
    for job in map(Path, job_dirs):
        record = JobRecord.read(job)
        preds = pd.read_csv(job / "predictions.csv")
        test = preds[preds["split"] == "test"].merge(truth, on="gene_id")
        row = {"job": str(job), "model": record.model, "mark": record.mark, "fold": record.fold}
        for name, part in (("distal", test[test["distal_driven"] == 1]), ("other", test[test["distal_driven"] == 0]), ("all", test)):
            for key, value in _scores(part).items():
                row[f"{name}_{key}"] = value
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("truth", help="truth.tsv of the synthetic dataset")
    parser.add_argument("jobs", nargs="+", help="job directories (with predictions.csv and metrics.json)")
    args = parser.parse_args(argv)
    try:
        report = distal_report(args.jobs, args.truth)
    except (RecordError, InputError) as exc:  # an unreadable record or truth table: say which, no traceback
        parser.error(str(exc))
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(report.drop(columns="job").round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
