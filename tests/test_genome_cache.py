"""The genome cache (epx.data.prepare.genome) and the GenomeSequence source (epx.data.genome)."""

from __future__ import annotations

import logging
import os

import h5py
import numpy as np
import pytest

import epx.data.prepare.genome as genome_module
from epx.data.genome import GenomeSequence
from epx.data.prepare.contract import DatasetSpec
from epx.data.prepare.genome import GenomeCache
from epx.errors import InputError
from epx.io.chrom_sizes import write_chrom_sizes
from epx.io.fasta import decode, encode, write_fasta

SIZES = {"chr1": 5_000, "chr2": 3_001, "chrM": 16}


@pytest.fixture
def genome_folder(tmp_path):
    rng = np.random.default_rng(1)
    seqs = {c: rng.integers(0, 5, n).astype(np.uint8) for c, n in SIZES.items()}
    write_fasta(tmp_path / "data" / "genome.fa", seqs)
    write_chrom_sizes(SIZES, tmp_path / "data" / "chrom.sizes")
    return tmp_path / "data", seqs


def _cache(root, tmp_path, **kw) -> GenomeCache:
    return GenomeCache(DatasetSpec(root=root, name="mine"), tmp_path / "cache", **kw)


def _count_writes(monkeypatch) -> list:
    calls = []
    real = GenomeCache._write
    monkeypatch.setattr(GenomeCache, "_write", lambda self, path: (calls.append(path), real(self, path))[1])
    return calls


def test_built_once_and_loaded_in_the_datasets_naming(genome_folder, tmp_path, monkeypatch):
    root, seqs = genome_folder
    calls = _count_writes(monkeypatch)
    cache = _cache(root, tmp_path)
    path = cache.ensure()
    assert path.name == "genome.h5" and path.parent.name.startswith("genome-") and path.parent.parent == tmp_path / "cache"
    assert cache.ensure() == path and len(calls) == 1  # the second ensure does not rebuild
    loaded = cache.load()
    assert list(loaded) == list(SIZES)
    for chrom, codes in seqs.items():
        assert loaded[chrom].dtype == np.uint8
        np.testing.assert_array_equal(loaded[chrom], codes)
    assert list(cache.load(["chr2"])) == ["chr2"]
    np.testing.assert_array_equal(cache.load(["2"])["2"], seqs["chr2"])  # names asked for are reconciled too
    assert len(calls) == 1
    with h5py.File(path) as f:
        data = f["chr1"]
        assert data.fletcher32 and data.compression == "gzip" and data.chunks is not None


def test_rebuilt_when_the_fasta_changes(genome_folder, tmp_path, monkeypatch):
    root, seqs = genome_folder
    calls = _count_writes(monkeypatch)
    cache = _cache(root, tmp_path)
    first = cache.ensure()
    changed = dict(seqs, chr2=np.zeros(SIZES["chr2"], np.uint8))
    write_fasta(root / "genome.fa", changed)
    os.utime(root / "genome.fa", ns=(10**18, 10**18))  # a distinct mtime even on a coarse clock
    os.utime(root / "genome.fa.fai", ns=(10**18, 10**18))
    second = cache.ensure()
    assert second != first and len(calls) == 2
    assert (cache.load(["chr2"])["chr2"] == 0).all()


@pytest.mark.parametrize("damage", ["truncate", "foreign", "incomplete", "bytes"])
def test_corrupt_cache_is_rebuilt(genome_folder, tmp_path, damage, caplog):
    root, seqs = genome_folder
    cache = _cache(root, tmp_path)
    path = cache.ensure()
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "foreign":
        path.write_bytes(b"not an hdf5 file" * 100)
    elif damage == "incomplete":
        with h5py.File(path, "r+") as f:
            f.attrs["complete"] = False
    else:  # flip bytes inside chr1's data: only the checksum sees it
        with h5py.File(path, "r") as f:
            offset = f["chr1"].id.get_chunk_info(0).byte_offset
        data = bytearray(path.read_bytes())
        data[offset + 10 : offset + 20] = bytes(10)
        path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="epx.data.prepare.genome"):
        loaded = cache.load()
    np.testing.assert_array_equal(loaded["chr1"], seqs["chr1"])
    assert "rebuilding" in caplog.text


def test_unreadable_after_rebuild_is_one_error(genome_folder, tmp_path, monkeypatch):
    root, _ = genome_folder
    cache = _cache(root, tmp_path)
    path = cache.ensure()

    def broken(self, path, chroms):
        raise OSError("Can't read data (checksum error)")

    monkeypatch.setattr(GenomeCache, "_read", broken)
    with pytest.raises(InputError, match=f"genome cache {path} cannot be read even after rebuilding it.*delete"):
        cache.load()


def test_stale_temps_of_a_killed_build_are_removed(genome_folder, tmp_path, monkeypatch):
    root, seqs = genome_folder
    cache = _cache(root, tmp_path)

    def killed(*a, **k):
        raise KeyboardInterrupt("killed")

    with monkeypatch.context() as m:
        m.setattr(genome_module.FastaFile, "codes", killed)
        with pytest.raises(KeyboardInterrupt):
            cache.ensure()
    assert not cache.path.exists()
    stale = cache.path.with_name(".genome.h5.epx-tmp-1-dead")
    stale.write_bytes(b"half")
    cache.ensure()
    assert not stale.exists()
    np.testing.assert_array_equal(cache.load(["chrM"])["chrM"], seqs["chrM"])


def test_ensembl_fasta_keyed_by_the_datasets_names(tmp_path):
    root = tmp_path / "data"
    write_fasta(root / "genome.fa", {"1": "ACGT" * 10, "MT": "ACGTN"})
    write_chrom_sizes({"chr1": 40, "chrM": 5, "chr2": 9}, root / "chrom.sizes")
    loaded = _cache(root, tmp_path).load()
    assert list(loaded) == ["chr1", "chrM"]  # chr2 is not in the FASTA: GenomeSequence reads it as N
    assert decode(loaded["chrM"]) == b"ACGTN"


def test_other_assembly_and_missing_fasta_refused(tmp_path):
    root = tmp_path / "data"
    with pytest.raises(InputError, match="has no genome FASTA at .*genome.fa.*epx download hg19"):
        _cache(root, tmp_path).ensure()
    write_fasta(root / "genome.fa", {"chr1": "ACGT"})
    write_chrom_sizes({"chr1": 41}, root / "chrom.sizes")
    with pytest.raises(InputError, match="another assembly"):
        _cache(root, tmp_path).ensure()


# ----------------------------------------------------------------------------- GenomeSequence


def test_codes_and_out_of_bounds_padding():
    g = GenomeSequence({"chr1": encode("ACGTACGTAC"), "chr2": encode("GGGG")})
    assert g.lengths == {"chr1": 10, "chr2": 4}
    chroms = np.array(["chr1", "chr1", "chr2", "chr1", "chrX", "chr2"], dtype=object)
    starts = np.array([2, -3, 1, 8, 0, -2])
    codes = g.codes(chroms, starts, 5)
    assert codes.dtype == np.uint8 and codes.shape == (6, 5)
    assert [decode(r) for r in codes] == [b"GTACG", b"NNNAC", b"GGGNN", b"ACNNN", b"NNNNN", b"NNGGG"]
    assert decode(g.codes(["chr2"], [0], 7)[0]) == b"GGGGNNN"  # a window longer than the chromosome


def test_onehot_padding_and_reverse():
    g = GenomeSequence({"chr1": encode("AACGTTN")})
    x = g.onehot(["chr1", "chr1", "chr1"], [0, 0, 5], 4, reverse=[False, True, True])
    assert x.dtype == np.float32 and x.shape == (3, 4, 4)
    bases = lambda row: "".join("ACGT"[k] if row[:, i].any() else "N" for k, i in zip(row.argmax(0), range(row.shape[1])))  # noqa: E731
    assert bases(x[0]) == "AACG"
    assert bases(x[1]) == "CGTT"  # reverse complement of AACG
    assert bases(x[2]) == "NNNA"  # of "TN" + two positions past the end
    assert not x[2][:, :3].any()
    np.testing.assert_array_equal(g.onehot(["chr1"], [0], 4), x[:1])  # reverse=None


def test_large_windows_match_a_direct_slice():
    rng = np.random.default_rng(2)
    seq = rng.integers(0, 5, 200_000).astype(np.uint8)
    g = GenomeSequence({"chr1": seq})
    starts = np.array([0, 50_000, 150_000, -10])
    codes = g.codes(np.array(["chr1"] * 4, dtype=object), starts, 60_000)
    np.testing.assert_array_equal(codes[1], seq[50_000:110_000])
    np.testing.assert_array_equal(codes[2, :50_000], seq[150_000:])
    assert (codes[2, 50_000:] == 4).all() and (codes[3, :10] == 4).all()
