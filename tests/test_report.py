"""``epx report``: every section on a finished tiny synthetic grid, what a partial grid lacks, one
error for a sweep with no finished job, smoke runs left out, the W&B artifact, and the page opened
in a real headless browser (Debian's chromium) with a screenshot.

The grid is written with test_summary's helpers (multirun.yaml + job dirs + records), 2 models ×
2 cells × 2 marks × 2 folds, plus the explain tables `epx explain` writes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_summary import metrics_for, write_job, write_sweep

from epx.errors import InputError
from epx.report.build import build_report, main
from epx.report.sections import SECTIONS

MODELS = ("promoter_cnn", "chromoformer")
CELLS = ("E003", "E116")
MARKS = ("H3K4me3", "H3K27ac")
GRID = [f"model={','.join(MODELS)}", f"cell={','.join(CELLS)}", f"mark={','.join(MARKS)}", "fold=0,1"]
JOBS = [[f"model={m}", f"cell={c}", f"mark={k}", f"fold={f}"] for m in MODELS for c in CELLS for k in MARKS for f in (0, 1)]


def explain_tables(job: Path, model: str, cell: str, rng: np.random.Generator) -> None:
    offsets = np.arange(-20_000, 20_001, 2_000)
    act = pd.DataFrame([{"cell": cell, "mark": m, "expressed": e, "offset_bp": o, "mean": float(rng.random() + e), "sem": 0.1, "n": 50}
                        for m in MARKS for e in (True, False) for o in offsets])
    att = pd.DataFrame([{"input": "signal", "resolution_bp": 100, "slot": -1, "mark": m, "offset_bp": o, "group": "all",
                         "attribution": float(rng.normal()), "abs_attribution": float(np.exp(-abs(o) / 5000) + 0.01)}
                        for m in MARKS for o in offsets])
    val = pd.DataFrame([{"scorer": s, "auprc": float(rng.uniform(0.2, 0.6)), "positive_rate": 0.1, "n": 200, "n_positive": 20, "n_genes": 30}
                        for s in ("graphreg_rule", "distance", "abc")])
    for name, file, table in (("activity", "activity_profile_summary.tsv", act), ("attribution", "attribution_profile.tsv", att),
                              ("validation", "validation_pooled.tsv", val)):
        (job / "explain" / name).mkdir(parents=True, exist_ok=True)
        table.to_csv(job / "explain" / name / file, sep="\t", index=False)


def write_grid(sweep: Path, *, drop: tuple[int, ...] = (), explain: bool = True, failed: tuple[int, ...] = ()) -> Path:
    write_sweep(sweep, GRID)
    rng = np.random.default_rng(0)
    for num, overrides in enumerate(JOBS):
        if num in drop:
            continue
        values = dict(o.split("=") for o in overrides)
        model = values["model"]
        gain = 0.08 if model == "chromoformer" else 0.0
        test = {"pearson": 0.6 + gain + 0.05 * rng.standard_normal(), "spearman": 0.55 + gain, "mse": 1.2}
        status = "failed" if num in failed else "ok"
        record = metrics_for(overrides, status=status, test={} if status == "failed" else test, model=model,
                             error="RuntimeError: boom" if status == "failed" else None, primary_metric="pearson")
        job = write_job(sweep, num, overrides, record, model=model,
                        config={"model": {"name": model, "hidden": 64 if model == "chromoformer" else 32}, "trainer": {"max_epochs": 5}})
        if explain and status == "ok":
            explain_tables(job, model, values["cell"], rng)
    return sweep


@pytest.fixture()
def grid(tmp_path: Path) -> Path:
    return write_grid(tmp_path / "study")


def test_every_section_is_present_and_filled_on_a_finished_grid(grid: Path) -> None:
    report = build_report(grid)
    page = report.path.read_text()
    assert report.path == grid / "report.html" and report.finished == report.jobs == 16
    for sid in SECTIONS:
        assert f'<section id="{sid}">' in page
    missing = report.missing
    # a finished grid lacks nothing except W&B links (its records are offline runs without a URL: still listed)
    assert set(missing) <= {"wandb"}, missing
    assert page.count("data:image/png;base64,") >= 4  # metric heatmaps, distal gain, activity, attribution
    assert "chromoformer − promoter_cnn" in page and "graphreg_rule" in page and "| key |" in page  # diff --markdown table
    assert "http://" not in page and "<script" not in page  # self-contained: no network, no script
    print(f"report: {report.seconds:.2f} s, {report.path.stat().st_size / 1024:.0f} KiB")


def test_partial_grid_says_what_is_missing(tmp_path: Path) -> None:
    sweep = write_grid(tmp_path / "partial", drop=tuple(range(8)), explain=False, failed=(9,))  # no promoter CNN at all
    report = build_report(sweep, tmp_path / "out.html")
    page = (tmp_path / "out.html").read_text()
    assert "no finished promoter_cnn job" in " ".join(report.missing["distal_gain"])
    for sid in ("activity", "attribution", "enhancers"):
        assert "epx explain" in " ".join(report.missing[sid])
    assert "9 of 16 jobs have no result yet" in " ".join(report.missing["accounting"])
    assert 'id="missing-summary"' in page and "RuntimeError: boom" in page


def test_a_cell_with_one_fold_has_no_spread_but_a_value(tmp_path: Path) -> None:
    one_fold = tuple(i for i, job in enumerate(JOBS) if "cell=E116" in job and "fold=1" in job)
    report = build_report(write_grid(tmp_path / "one_fold", drop=one_fold, explain=False))
    assert not any("fold" in m for m in report.missing.get("metrics", []))
    assert "test pearson" in report.path.read_text()


def test_no_finished_job_is_one_error(tmp_path: Path, capsys) -> None:
    sweep = write_grid(tmp_path / "none", drop=tuple(range(1, 16)), failed=(0,))
    with pytest.raises(InputError, match=r"none: no finished job to report on \(16 jobs.*epx status"):
        build_report(sweep)
    assert main([str(sweep), "--no-wandb"]) == 2
    assert "no finished job" in capsys.readouterr().err


def test_smoke_runs_are_left_out(tmp_path: Path) -> None:
    sweep = write_grid(tmp_path / "smoke")
    record = json.loads((sweep / "0" / "metrics.json").read_text())
    (sweep / "0" / "metrics.json").write_text(json.dumps({**record, "smoke": True}))
    report = build_report(sweep)
    assert report.jobs == 15 and "1 smoke runs left out" in report.path.read_text()


def test_report_is_logged_to_wandb_as_one_artifact(grid: Path) -> None:
    import sys

    from test_summary import offline_env
    from wandb_records import records

    # a process of its own, as the CLI runs: W&B's service has written the run file when it exits
    result = subprocess.run([sys.executable, "-m", "epx.cli", "report", str(grid), "--wandb"], check=False,
                            capture_output=True, text=True, cwd=grid.parent, env=offline_env(), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "W&B report artifact in run report-" in result.stdout
    (run_file,) = grid.glob("wandb/offline-run-*/run-*.wandb")
    kinds = [r.WhichOneof("record_type") for r in records(run_file)]
    assert "artifact" in kinds
    artifact = next(r.artifact for r in records(run_file) if r.WhichOneof("record_type") == "artifact")
    assert artifact.type == "report" and any(e.path == "report.html" for e in artifact.manifest.contents)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run installs it: apt-get install -y chromium)")
def test_page_opens_in_headless_chromium_with_a_screenshot(grid: Path, tmp_path: Path) -> None:
    from matplotlib.image import imread

    report = build_report(grid)
    shot = tmp_path / "report.png"
    args = ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--hide-scrollbars", "--window-size=1280,3000", f"--user-data-dir={tmp_path / 'profile'}"]
    env = {**os.environ, "HOME": str(tmp_path)}
    dom = subprocess.run([*args, "--dump-dom", report.path.resolve().as_uri()], check=False, capture_output=True, text=True, timeout=120, env=env)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for sid in SECTIONS:
        assert f'id="{sid}"' in dom.stdout  # the browser parsed every section
    run = subprocess.run([*args, f"--screenshot={shot}", report.path.resolve().as_uri()], check=False, capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    pixels = imread(shot)
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1000 and float(pixels.std()) > 0.05  # not a blank page
