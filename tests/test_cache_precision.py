"""Half-precision cache (issue 14 part 2): float16 / bfloat16 storage, float32 compute.

Round trip within each format's tolerance, the dtype in the fingerprint and the file, signals
a format cannot hold refused with the reason (or left out when only prefetched), and the
faults the float32 cache survives — no room, a killed build, concurrent builds — survived in
half precision too.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import signal
import time

import h5py
import numpy as np
import pandas as pd
import pytest

from conftest import write_folder
from epx.data.prepare import cache as cache_mod
from epx.data.prepare.cache import CellCache, decode, encode
from epx.data.prepare.contract import DatasetSpec
from epx.errors import InputError
from epx.io.atomic import TMP_MARK
from epx.io.bigwig import read_binned
from test_faults import NO_ROOM_PRELUDE, kill_cache_build_midway, run_python

HALF = ["float16", "bfloat16"]
# unit roundoff: the largest relative error of a value in the format's normal range
ROUNDOFF = {"float32": 0.0, "float16": 2.0**-11, "bfloat16": 2.0**-8}


def _cache(folder, cache_dir, dtype="float32", cell="E003", **kw) -> CellCache:
    return CellCache(DatasetSpec(root=folder), cell, cache_dir, dtype=dtype, **kw)


def _folder(tmp_path, values: dict[str, dict[str, np.ndarray]], sizes=None):
    sizes = sizes or {"chr1": 20_000, "chr2": 15_050}
    tss = pd.DataFrame({"gene_id": ["g1"], "chrom": ["chr1"], "tss": [5_000], "strand": ["+"]})
    expr = pd.DataFrame({"gene_id": ["g1"], "E003": [1.0]})
    signals = {("E003", mark): v for mark, v in values.items()}
    return write_folder(tmp_path / "ds", signals=signals, tss=tss, expression=expr, chrom_sizes=sizes)


@pytest.mark.parametrize("dtype", HALF)
def test_half_round_trip_is_within_the_format_and_computes_in_float32(tiny_folder, tmp_path, dtype):
    cache = _cache(tiny_folder, tmp_path / "cache", dtype)
    tracks = cache.load(["H3K4me3", "H3K27ac"])
    with h5py.File(cache.path, "r") as f:
        assert f.attrs["dtype"] == dtype
        stored = f["H3K4me3"]["chr1"]
        assert stored.dtype == (np.float16 if dtype == "float16" else np.uint16)
        assert stored.attrs.get("encoding") == ("bfloat16" if dtype == "bfloat16" else None)
    for index, mark in enumerate(["H3K4me3", "H3K27ac"]):
        exact = read_binned(tiny_folder / "signals" / f"E003-{mark}.bigwig", cache.chrom_sizes)
        for chrom, values in exact.items():
            got = tracks[chrom][:, index]
            assert got.dtype == np.float32 and tracks[chrom].flags.c_contiguous
            np.testing.assert_array_equal(got, decode(encode(values, dtype), "bfloat16" if dtype == "bfloat16" else None))
            np.testing.assert_allclose(got, values, rtol=ROUNDOFF[dtype], atol=0)
            # what the models see: ln(mean + 1), within the same bound absolutely
            assert np.abs(np.log1p(got) - np.log1p(values)).max() <= ROUNDOFF[dtype]
    assert not np.array_equal(tracks["chr1"][:, 0], read_binned(tiny_folder / "signals" / "E003-H3K4me3.bigwig", cache.chrom_sizes)["chr1"])


def test_bfloat16_encoding_rounds_like_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.gamma(0.5, 2.0, 10_000), rng.random(100) * 1e-30, [0.0, 1.0, 1.00390625, 1.01171875, 3e38]]).astype(np.float32)
    expected = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(encode(x, "bfloat16"), expected)
    np.testing.assert_array_equal(decode(expected, "bfloat16"), torch.from_numpy(x).to(torch.bfloat16).float().numpy())


def test_each_dtype_has_its_own_fingerprint_and_file(tiny_folder, tmp_path):
    caches = {dtype: _cache(tiny_folder, tmp_path / "cache", dtype) for dtype in ["float32", *HALF]}
    assert len({c.dir for c in caches.values()}) == 3
    for c in caches.values():
        c.ensure(["H3K4me3"])
    sizes = {}
    for dtype, c in caches.items():
        assert set(c.valid_marks()) == {"H3K4me3", "H3K27ac"}
        with h5py.File(c.path, "r") as f:
            sizes[dtype] = sum(f["H3K4me3"][chrom].id.get_storage_size() for chrom in f["H3K4me3"])
    assert sizes["float16"] < 0.6 * sizes["float32"] and sizes["bfloat16"] < 0.6 * sizes["float32"]
    # a file of another dtype in a dir (copied by hand) is rebuilt, never read as this dtype
    shutil.copy(caches["float32"].path, caches["float16"].path)
    assert caches["float16"].valid_marks() == {}
    tracks = caches["float16"].load(["H3K4me3"])
    with h5py.File(caches["float16"].path, "r") as f:
        assert f.attrs["dtype"] == "float16" and f["H3K4me3"]["chr1"].dtype == np.float16
    assert tracks["chr1"].dtype == np.float32


def test_unknown_dtype_is_one_input_error(tiny_folder, tmp_path):
    with pytest.raises(InputError, match=r"cache dtype 'half' is not one of float32, float16, bfloat16 \(data.cache_dtype\)"):
        _cache(tiny_folder, tmp_path / "cache", "half")


def _overflowing(tmp_path, peak=70_000.0):
    big = np.full(20_000, 3.0, np.float32)
    big[12_300:12_400] = peak  # one 100 bp bin above float16's 65504
    ok = {c: np.random.default_rng(0).random(n).astype(np.float32) * 10 for c, n in {"chr1": 20_000, "chr2": 15_050}.items()}
    return _folder(tmp_path, {"H3K4me3": ok, "H3K27ac": {"chr1": big}})


def test_float16_overflow_is_refused_with_the_reason_and_the_old_cache_kept(tmp_path):
    folder = _overflowing(tmp_path)
    cache = _cache(folder, tmp_path / "cache", "float16", prefetch_all_marks=False)
    path = cache.ensure(["H3K4me3"])
    before = path.read_bytes()
    with pytest.raises(InputError) as info:
        cache.ensure(["H3K27ac"])
    message = str(info.value)
    src = folder / "signals" / "E003-H3K27ac.bigwig"
    assert message.startswith(f"cannot cache cell E003, mark H3K27ac in float16: {src}: its largest 100 bp bin mean is 70000")
    assert "(chr1:12300-12400; 1 bin(s) above 65504, float16's largest value: they would be stored as inf)" in message
    assert "data.cache_dtype=bfloat16" in message and "data.cache_dtype=float32" in message
    assert path.read_bytes() == before and set(cache.valid_marks()) == {"H3K4me3"}
    assert list(path.parent.glob(f"*{TMP_MARK}*")) == []
    # the fix works: bfloat16 holds it (8 significant bits), float32 exactly
    for dtype in ("bfloat16", "float32"):
        value = _cache(folder, tmp_path / "cache", dtype).load(["H3K27ac"])["chr1"][123, 0]
        assert value == pytest.approx(70_000.0, rel=ROUNDOFF[dtype], abs=0)


def test_a_prefetched_mark_float16_cannot_hold_is_left_out_with_a_warning(tmp_path, caplog):
    folder = _overflowing(tmp_path)
    cache = _cache(folder, tmp_path / "cache", "float16")
    tracks = cache.load(["H3K4me3"])  # the job's mark is cached; the prefetch of H3K27ac fails
    assert set(cache.valid_marks()) == {"H3K4me3"} and tracks["chr1"].shape == (200, 1)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "mark H3K27ac in float16" in warnings[0] and "left out of" in warnings[0]
    with pytest.raises(InputError, match="mark H3K27ac in float16"):
        cache.load(["H3K4me3", "H3K27ac"])
    assert set(cache.valid_marks()) == {"H3K4me3"}


def test_float16_refuses_a_track_on_a_tiny_scale(tmp_path):
    rng = np.random.default_rng(0)
    tiny = {c: (rng.random(n) * 1e-6).astype(np.float32) for c, n in {"chr1": 20_000, "chr2": 15_050}.items()}
    folder = _folder(tmp_path, {"H3K4me3": tiny})
    with pytest.raises(InputError) as info:
        _cache(folder, tmp_path / "cache", "float16").load(["H3K4me3"])
    message = str(info.value)
    assert "non-zero 100 bp bin means (100.0%" in message and "below 6.1e-05" in message and "rescale the track" in message
    got = _cache(folder, tmp_path / "cache", "bfloat16").load(["H3K4me3"])["chr1"][:, 0]
    exact = read_binned(folder / "signals" / "E003-H3K4me3.bigwig", {"chr1": 20_000, "chr2": 15_050})["chr1"]
    np.testing.assert_allclose(got, exact, rtol=ROUNDOFF["bfloat16"], atol=0)


@pytest.mark.parametrize("dtype", HALF)
def test_half_cache_build_without_room_is_a_storage_error(tiny_folder, tmp_path, dtype):
    cache_dir = tmp_path / "cache"
    first = _cache(tiny_folder, cache_dir, dtype, prefetch_all_marks=False)
    path = first.ensure(["H3K4me3"])
    before = path.read_bytes()
    result = run_python(
        NO_ROOM_PRELUDE
        + f"""
    from pathlib import Path
    from epx.data.prepare.cache import CellCache
    from epx.data.prepare.contract import DatasetSpec
    from epx.errors import StorageError
    cache = CellCache(DatasetSpec(root=Path({str(tiny_folder)!r})), "E003", Path({str(cache_dir)!r}), dtype={dtype!r},
                      prefetch_all_marks=False)
    limit({len(before) // 2})  # the new file (both marks) is larger than the old one
    try:
        cache.ensure(["H3K4me3", "H3K27ac"])
    except StorageError as err:
        print("StorageError:", err)
    """
    )
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    assert line.startswith(f"StorageError: cannot write {path}: file too large") and "paths.cache_dir" in line
    assert path.read_bytes() == before and list(first.valid_marks()) == ["H3K4me3"]
    assert list(path.parent.glob(f"*{TMP_MARK}*")) == []


@pytest.mark.parametrize("dtype", HALF)
def test_killed_half_build_is_rebuilt_on_rerun(tiny_folder, tmp_path, dtype):
    cache_dir = tmp_path / "cache"
    result = kill_cache_build_midway(tiny_folder, cache_dir, dtype)
    assert result.returncode == -signal.SIGKILL, result.stderr
    cache = _cache(tiny_folder, cache_dir, dtype)
    assert not cache.path.exists() and len(list(cache.dir.glob(f"*{TMP_MARK}*"))) == 1
    tracks = cache.load(["H3K4me3", "H3K27ac"])
    assert list(cache.dir.glob(f"*{TMP_MARK}*")) == []
    exact = read_binned(tiny_folder / "signals" / "E003-H3K4me3.bigwig", cache.chrom_sizes)
    np.testing.assert_allclose(tracks["chr1"][:, 0], exact["chr1"], rtol=ROUNDOFF[dtype], atol=0)


def _build_in_child(folder, cache_dir, log_path, dtype):
    real = cache_mod.CellCache._write

    def counting(self, keep, build):
        with open(log_path, "a") as fh:
            fh.write(f"{os.getpid()} {self.dtype}\n")
        time.sleep(0.3)  # widen the race window
        return real(self, keep, build)

    cache_mod.CellCache._write = counting
    CellCache(DatasetSpec(root=folder), "E003", cache_dir, dtype=dtype).ensure(["H3K4me3"])


def test_concurrent_jobs_build_each_precision_once(tiny_folder, tmp_path):
    """Three jobs per dtype at once: each precision is built exactly once, side by side."""
    log_path = tmp_path / "builds.log"
    ctx = mp.get_context("fork")
    procs = [
        ctx.Process(target=_build_in_child, args=(tiny_folder, tmp_path / "cache", log_path, dtype))
        for dtype in ["float16", "bfloat16", "float32"] * 3
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    built = sorted(line.split()[1] for line in log_path.read_text().splitlines())
    assert built == ["bfloat16", "float16", "float32"]
    for dtype in ["float16", "bfloat16", "float32"]:
        assert set(_cache(tiny_folder, tmp_path / "cache", dtype).valid_marks()) == {"H3K4me3", "H3K27ac"}


def test_a_job_reads_its_signals_from_a_half_precision_cache_when_asked(tmp_path, small_synthetic):
    from epx.run import train
    from test_train import job_cfg, read_metrics

    train(job_cfg(tmp_path, small_synthetic, "trainer=debug", "data.cache_dtype=float16"))
    assert read_metrics(tmp_path).status == "ok"
    cached = list((tmp_path.parent / "shared_cache").glob("*/E003.h5"))
    dtypes = set()
    for path in cached:
        with h5py.File(path, "r") as f:
            dtypes.add(f.attrs.get("dtype"))
    assert "float16" in dtypes


def test_predict_on_a_cache_of_another_dtype_does_not_claim_the_inputs_changed(tmp_path, small_synthetic, caplog):
    """The cache fingerprint includes its dtype; scoring a float16-trained model on a float32
    cache of the same, unchanged inputs compares like with like (only the dtype is noted)."""
    import logging

    from epx.predict import predict
    from epx.run import train
    from test_train import job_cfg

    train(job_cfg(tmp_path, small_synthetic, "trainer=debug", "data.cache_dtype=float16"))
    with caplog.at_level(logging.INFO, logger="epx.predict"):
        record = predict(tmp_path / "job", ["data.cache_dtype=float32"], out=tmp_path / "scored")
    assert record.status == "ok"
    assert "inputs changed" not in caplog.text
    assert "trained on a float16 cache, scored on a float32 cache" in caplog.text


def _batch_arrays(batch) -> list:
    if isinstance(batch, dict):
        return [a for key in sorted(batch, key=str) for a in _batch_arrays(batch[key])]
    return [batch]


@pytest.mark.parametrize("model", ["promoter_cnn", "chromoformer", "graphreg"])
def test_a_float16_cache_stays_half_in_memory_and_batches_are_those_of_float32_decoding(tmp_path, small_synthetic, model, monkeypatch):
    """The DataModule keeps a float16 cache's tracks as float16 (half the RAM at genome scale:
    ~0.4 GB per cell with 7 marks); every builder widens what it reads, so each batch equals,
    bit for bit, the batch built from the same cache decoded to float32."""
    from hydra.utils import instantiate

    from test_train import job_cfg

    def datamodule():
        cfg = job_cfg(tmp_path, small_synthetic, f"model={model}", "mark=H3K4me3+H3K27ac", "data.cache_dtype=float16")
        dm = instantiate(cfg.data, target_column="target")
        dm.prepare_data()
        dm.setup()
        return dm

    half = datamodule()
    tracks = half.datasets["train"].tracks if hasattr(half.datasets["train"], "tracks") else None
    loaded = half.caches["E003"].load(list(half.marks), half=True)
    assert {a.dtype for a in loaded.values()} == {np.dtype(np.float16)}
    if tracks is not None:
        assert {a.dtype for a in tracks.tracks.values()} == {np.dtype(np.float16)}

    original = CellCache.load
    monkeypatch.setattr(CellCache, "load", lambda self, marks, chroms=None, half=False: original(self, marks, chroms))
    wide = datamodule()
    for split in ("train", "test"):
        rows = list(range(min(4, len(half.datasets[split]))))
        got, want = half.datasets[split].__getitems__(rows), wide.datasets[split].__getitems__(rows)
        for a, b in zip(_batch_arrays(got), _batch_arrays(want), strict=True):
            assert a.dtype == b.dtype and bool((a == b).all()), split
