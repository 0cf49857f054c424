"""Binned cache: built once, reused, rebuilt on change/corruption, atomic, locked."""

import multiprocessing as mp
import os
import time

import h5py
import numpy as np
import pytest

from conftest import write_bigwig
from epx.data.prepare import cache as cache_mod
from epx.io.bigwig import read_binned
from epx.data.prepare.cache import CellCache
from epx.data.prepare.contract import DatasetSpec
from epx.io.atomic import TMP_MARK, temp_name


def _cache(folder, tmp_path, **kw):
    return CellCache(DatasetSpec(root=folder), "E003", tmp_path / "cache", **kw)


def test_build_then_reuse_without_rewrite(tiny_folder, tmp_path):
    c = _cache(tiny_folder, tmp_path)
    path = c.ensure(["H3K4me3"])
    assert set(c.valid_marks()) == {"H3K4me3", "H3K27ac"}  # every mark on disk prefetched
    mtime = path.stat().st_mtime_ns
    time.sleep(0.01)
    assert _cache(tiny_folder, tmp_path).ensure(["H3K27ac", "H3K4me3"]) == path
    assert path.stat().st_mtime_ns == mtime
    tracks = c.load(["H3K27ac", "H3K4me3"])
    expected = read_binned(tiny_folder / "signals" / "E003-H3K4me3.bigwig", c.chrom_sizes)
    np.testing.assert_allclose(tracks["chr1"][:, 1], expected["chr1"])
    assert tracks["chr2"].shape == (151, 2)


def test_changed_input_rebuilds_only_that_mark(tiny_folder, tmp_path, monkeypatch):
    c = _cache(tiny_folder, tmp_path)
    c.ensure(["H3K4me3"])
    src = tiny_folder / "signals" / "E003-H3K27ac.bigwig"
    write_bigwig(src, c.chrom_sizes, {"chr1": np.full(20_000, 7.0)})
    built = []
    real = cache_mod.read_binned
    monkeypatch.setattr(cache_mod, "read_binned", lambda p, *a, **k: built.append(p.name) or real(p, *a, **k))
    tracks = _cache(tiny_folder, tmp_path).load(["H3K27ac"])
    assert built == ["E003-H3K27ac.bigwig"]
    assert tracks["chr1"][0, 0] == pytest.approx(7.0)


@pytest.mark.parametrize("damage", ["truncate", "foreign", "incomplete"])
def test_corrupt_cache_is_rebuilt_never_read(tiny_folder, tmp_path, damage):
    c = _cache(tiny_folder, tmp_path)
    path = c.ensure(["H3K4me3"])
    good = c.load(["H3K4me3"])["chr1"].copy()
    if damage == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif damage == "foreign":
        path.write_bytes(b"not an hdf5 file at all" * 100)
    else:
        with h5py.File(path, "r+") as f:
            f.attrs["complete"] = False
            f["H3K4me3"]["chr1"][:] = 123.0
    assert c.valid_marks() == {}
    np.testing.assert_allclose(c.load(["H3K4me3"])["chr1"], good)


def test_killed_build_leaves_nothing_trusted(tiny_folder, tmp_path, monkeypatch):
    c = _cache(tiny_folder, tmp_path)
    calls = []

    def dies_on_second_mark(path, *a, **k):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return read_binned(path, *a, **k)

    monkeypatch.setattr(cache_mod, "read_binned", dies_on_second_mark)
    with pytest.raises(KeyboardInterrupt):
        c.ensure(["H3K4me3"])
    assert not c.path.exists()
    assert list(c.dir.glob("*.tmp-*")) == []
    assert list(c.dir.glob(f"*{TMP_MARK}*")) == []
    monkeypatch.undo()
    assert set(_cache(tiny_folder, tmp_path).valid_marks()) == set()
    _cache(tiny_folder, tmp_path).ensure(["H3K4me3"])
    assert set(c.valid_marks()) == {"H3K4me3", "H3K27ac"}


def test_stale_temp_from_dead_process_is_ignored(tiny_folder, tmp_path):
    c = _cache(tiny_folder, tmp_path)
    c.dir.mkdir(parents=True)
    (c.dir / "E003.h5.tmp-99999-deadbeef").write_bytes(b"half")  # an earlier epx's temp name
    stale = temp_name(c.path)  # epx.io.atomic's temp name, left by a killed build
    stale.write_bytes(b"half")
    c.ensure(["H3K4me3"])
    assert not (c.dir / "E003.h5.tmp-99999-deadbeef").exists()
    assert not stale.exists()


def _build_in_child(folder, cache_dir, log_path):
    real = cache_mod.CellCache._write

    def counting(self, keep, build):
        with open(log_path, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        time.sleep(0.3)  # widen the race window
        return real(self, keep, build)

    cache_mod.CellCache._write = counting
    CellCache(DatasetSpec(root=folder), "E003", cache_dir).ensure(["H3K4me3"])


def test_parallel_jobs_build_a_cell_once(tiny_folder, tmp_path):
    log_path = tmp_path / "builds.log"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_build_in_child, args=(tiny_folder, tmp_path / "cache", log_path)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert len(log_path.read_text().split()) == 1
