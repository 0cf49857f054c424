"""A 2×2×1 grid as a real Hydra multirun subprocess: grid.json, summary table, figure, offline W&B runs."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from conftest import REPO
from wandb_records import read_run

from epx.analysis.grid import grid_from_multirun


@pytest.fixture(scope="module")
def sweep(small_synthetic, small_synthetic_cache, tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    env.pop("WANDB_API_KEY", None)
    proc = subprocess.run(
        [
            sys.executable, "launch.py", "-m",
            "cell=E003,E114", "mark=H3K4me3,H3K4me3+H3K27ac", "fold=0",
            "dataset=folder", f"dataset.root={small_synthetic}",
            f"paths.cache_dir={small_synthetic_cache}", "trainer=cpu", "trainer.max_epochs=1",  # not a smoke run: summaries keep it
            f"hydra.sweep.dir={root / 'grid'}",
        ],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "grid"


def test_summary_has_one_ok_row_per_job(sweep):
    table = pd.read_csv(sweep / "summary.csv")
    assert len(table) == 4 and set(table.status) == {"ok"}
    assert set(zip(table.cell, table.mark)) == {(c, m) for c in ("E003", "E114") for m in ("H3K4me3", "H3K4me3+H3K27ac")}
    assert table.n_params.gt(0).all() and table.test_pearson.notna().all()
    png = (sweep / "summary.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert set(table.primary_metric) == {"pearson"}


def test_grid_json_lists_the_jobs_hydra_launched(sweep):
    """The callback's expansion (public override parser) equals what Hydra actually ran,
    job by job, and so does re-expanding multirun.yaml (sweeps made before grid.json)."""
    jobs = json.loads((sweep / "grid.json").read_text())["jobs"]
    launched = [yaml.safe_load((sweep / str(num) / ".hydra" / "overrides.yaml").read_text()) for num in range(len(jobs))]
    assert len(jobs) == 4 and jobs == launched
    assert jobs[1][:3] == ["cell=E003", "mark=H3K4me3+H3K27ac", "fold=0"]
    assert grid_from_multirun(sweep) == launched
    table = pd.read_csv(sweep / "summary.csv", dtype=str)
    assert list(table.overrides) == [" ".join(job) for job in jobs]


def test_offline_wandb_run_reads_back(sweep):
    job = sweep / "0"
    files = list(job.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1
    run = read_run(files[0])
    assert run["group"] == f"{sweep.parent.name}_{sweep.name}"
    assert run["name"] == "cell=E003,mark=H3K4me3,fold=0,dataset=folder,trainer=cpu,trainer.max_epochs=1"
    assert run["job_type"] == "promoter_cnn"
    assert {"cell:E003", "mark:H3K4me3", "fold:0", "model:promoter_cnn"} <= set(run["tags"])
    assert run["config"]["cell"] == "E003" and run["config"]["model"]["name"] == "promoter_cnn"
    assert "${" not in repr(run["config"])
    assert "test/pearson" in run["summary"] and run["summary"]["status"] == "ok"


def test_unnamed_sweep_keeps_numbered_job_dirs_with_a_config_digest(sweep):
    """Without sweep=<name>: job dirs 0..3 as before; each record carries its config digest
    (what a named sweep compares to reuse a job) and is not reused."""
    from epx.record import JobRecord

    records = [JobRecord.read(sweep / str(num)) for num in range(4)]
    assert all(len(r.config_digest or "") == 64 and r.reused is False for r in records)
    assert len({r.config_digest for r in records}) == 4  # four different jobs
