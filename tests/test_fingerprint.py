"""Inputs are fingerprinted by content (issue 23, part 2): the cache and a checkpoint's
provenance record a hash of every byte, so a same-size in-place edit that restores the mtime
rebuilds the cache, a file replaced while it is read is refused, and ``epx predict`` names
the inputs that changed since training."""

from __future__ import annotations

import logging
import os
import shutil

import numpy as np
import pytest

from epx.data.prepare.cache import CellCache
from epx.data.prepare.contract import DatasetSpec
from epx.errors import InputError
from epx.io.bigwig import write_bigwig
from epx.io.fingerprint import ALGORITHM, changed_files, fingerprint, same_content

SIZES = {"chr1": 20_000, "chr2": 15_050}


def constant_bigwig(path, value: float):
    """2.0 and 8.0 compress to the same size (698 bytes): an in-place edit that keeps the size."""
    return write_bigwig(path, SIZES, {c: np.full(n, value, np.float32) for c, n in SIZES.items()})


def test_a_fingerprint_is_the_content_not_the_mtime(tmp_path):
    a, b = constant_bigwig(tmp_path / "a.bw", 2.0), constant_bigwig(tmp_path / "b.bw", 8.0)
    assert a.stat().st_size == b.stat().st_size  # the attack's premise: same size
    recorded = fingerprint(a)
    os.utime(a, ns=(0, 12345))  # touched: same bytes
    assert same_content(recorded, a)
    stat = a.stat()
    a.write_bytes(b.read_bytes())  # edited in place, same size, mtime restored
    os.utime(a, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert not same_content(recorded, a)
    assert changed_files({"a.bw": recorded, "gone": recorded}, {"a.bw": fingerprint(a)}) == ["a.bw"]


def test_a_same_size_edit_with_the_mtime_restored_rebuilds_the_cached_mark(tiny_folder, tmp_path):
    signal = tiny_folder / "signals" / "E003-H3K4me3.bigwig"
    constant_bigwig(signal, 2.0)
    cache = CellCache(DatasetSpec(root=tiny_folder), "E003", tmp_path / "cache")
    assert float(cache.load(["H3K4me3"])["chr1"].mean()) == pytest.approx(2.0)
    stat = signal.stat()
    constant_bigwig(tmp_path / "other.bw", 8.0)
    signal.write_bytes((tmp_path / "other.bw").read_bytes())
    os.utime(signal, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert signal.stat().st_size == stat.st_size and signal.stat().st_mtime_ns == stat.st_mtime_ns
    fresh = CellCache(DatasetSpec(root=tiny_folder), "E003", tmp_path / "cache")
    assert "H3K4me3" not in fresh.valid_marks()
    assert float(fresh.load(["H3K4me3"])["chr1"].mean()) == pytest.approx(8.0)  # never the stale cache
    os.utime(signal)  # a touch alone rebuilds nothing
    assert "H3K4me3" in CellCache(DatasetSpec(root=tiny_folder), "E003", tmp_path / "cache").valid_marks()


def test_a_bigwig_replaced_while_the_cache_reads_it_is_refused(tiny_folder, tmp_path, monkeypatch):
    import epx.data.prepare.cache as cache_module

    signal = tiny_folder / "signals" / "E003-H3K4me3.bigwig"
    real = cache_module.read_binned

    def read_then_replace(path, *args, **kwargs):
        values = real(path, *args, **kwargs)
        if path == signal:
            shutil.copy(tiny_folder / "signals" / "E003-H3K27ac.bigwig", tmp_path / "new.bw")
            os.replace(tmp_path / "new.bw", signal)  # another process swaps the file mid-build
        return values

    monkeypatch.setattr(cache_module, "read_binned", read_then_replace)
    cache = CellCache(DatasetSpec(root=tiny_folder), "E003", tmp_path / "cache", prefetch_all_marks=False)
    with pytest.raises(InputError, match=rf"{signal} changed while epx read it"):
        cache.ensure(["H3K4me3"])
    assert not cache.path.exists()  # nothing recorded with the new file's hash over the old data


def test_the_cache_records_a_content_hash_of_each_source(tiny_folder, tmp_path):
    import json

    import h5py

    cache = CellCache(DatasetSpec(root=tiny_folder), "E003", tmp_path / "cache")
    with h5py.File(cache.ensure(["H3K4me3"]), "r") as f:
        source = json.loads(f["H3K4me3"].attrs["source"])
    assert source[ALGORITHM] == fingerprint(tiny_folder / "signals" / "E003-H3K4me3.bigwig")[ALGORITHM]


def test_predict_on_changed_inputs_warns_naming_the_files(small_synthetic, tmp_path, caplog):
    from epx.config import compose
    from epx.predict import predict
    from epx.run import train
    from test_faults import job_overrides

    folder = tmp_path / "folder"
    folder.mkdir()
    for entry in small_synthetic.iterdir():
        if entry.name != "signals":
            (folder / entry.name).symlink_to(entry)
    shutil.copytree(small_synthetic / "signals", folder / "signals")
    cfg = compose(job_overrides(tmp_path, folder, "model=linear", "mark=H3K4me3", "trainer.max_epochs=1", f"paths.output_dir={tmp_path / 'job'}"))
    assert train(cfg).finished
    with caplog.at_level(logging.WARNING, logger="epx.predict"):
        assert "inputs_changed" not in predict(tmp_path / "job", out=tmp_path / "same").extra
    assert "changed since the model was trained" not in caplog.text
    signal = folder / "signals" / "E003-H3K4me3.bigwig"
    signal.write_bytes((folder / "signals" / "E114-H3K4me3.bigwig").read_bytes())
    with caplog.at_level(logging.WARNING, logger="epx.predict"):
        record = predict(tmp_path / "job", out=tmp_path / "changed")
    assert record.extra["inputs_changed"] == ["signals/E003-H3K4me3.bigwig"]
    assert "1 input(s) changed since the model was trained (other content under the same name): signals/E003-H3K4me3.bigwig" in caplog.text
