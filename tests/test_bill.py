"""The study's bill (benchmarks/bench_bill.py, issue 14 part 4): its arithmetic on stated
per-job figures, the recipes' epochs composed from conf/, and GPU-hours left open without
GPU figures."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from conftest import REPO


def load_bill():
    spec = importlib.util.spec_from_file_location("bench_bill", REPO / "benchmarks" / "bench_bill.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


COST = {"model": "chromoformer", "threads": 2, "genes": {"train": 100, "val": 10, "test": 40},
        "setup_s": 60.0, "prepare_s": 50.0, "fit_epoch_s": 36.0}  # fmt: skip


def test_a_job_is_setup_without_the_cache_plus_one_epoch_more_than_the_recipe():
    bill = load_bill()
    most, least, recipe = bill.epochs("chromoformer")
    assert recipe == "experiment=chromoformer_paper" and most == 10 and least <= most
    (row,) = bill.bill([COST], [], jobs=308, cells=11, cache_s=36.0)
    # (60 - 50) s setup + (10 + 1) × 36 s = 406 s per job at most
    assert row["cpu_job_h"][1] == pytest.approx(406 / 3600)
    # 308 jobs × 2 threads, plus 11 caches of 36 s once
    assert row["cpu_core_h"][1] == pytest.approx(308 * 406 / 3600 * 2 + 11 * 36 / 3600)
    assert "gpu_h" not in row


def test_gpu_figures_add_device_hours_and_their_absence_is_said(tmp_path):
    bill = load_bill()
    (row,) = bill.bill([COST], [{**COST, "fit_epoch_s": 3.6}], jobs=308, cells=11, cache_s=0.0)
    assert row["gpu_h"][1] == pytest.approx(308 * (10 + 11 * 3.6) / 3600)
    cost = tmp_path / "cost.json"
    cost.write_text(json.dumps([COST, {"model": "graphreg", "error": "over 1800 s"}]))
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_bill.py"), "--cpu", str(cost)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "graphreg      not measured: over 1800 s" in out.stdout
    assert "GPU: open" in out.stdout
