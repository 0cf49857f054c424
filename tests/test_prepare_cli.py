"""`epx prepare` builds a cell's cache before a grid; a later job reuses it untouched."""

import subprocess
import sys

from conftest import REPO


def test_prepare_then_train_reuses_cache(tmp_path, small_synthetic):
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-m", "epx.cli", "prepare", "dataset=folder", f"dataset.root={small_synthetic}", f"paths.cache_dir={cache}", "cell=E003,E114"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    built = sorted(p for p in cache.glob("*/*.h5") if not p.parent.name.startswith("genome-"))
    assert [p.name for p in built] == ["E003.h5", "E114.h5"]
    # the folder has a genome.fa: its cell-independent cache is built too, for sequence models
    assert len(list(cache.glob("genome-*/genome.h5"))) == 1 and "genome: " in proc.stdout
    mtimes = {p: p.stat().st_mtime_ns for p in built}
    assert "E003: H3K4me1, H3K4me3" in proc.stdout

    from test_train import job_cfg
    from epx.run import train

    cfg = job_cfg(tmp_path / "job", small_synthetic, "trainer=debug", f"paths.cache_dir={cache}", "mark=H3K27ac")
    assert train(cfg).status == "ok"
    assert {p: p.stat().st_mtime_ns for p in built} == mtimes


def test_prepare_unknown_cell_is_one_clear_error(tmp_path, small_synthetic):
    cmd = [sys.executable, "-m", "epx.cli", "prepare", "dataset=synthetic", f"paths.data_dir={tmp_path}", "cell=E999"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "valid cells: E003" in proc.stderr
    assert not (tmp_path / "synthetic").exists()
