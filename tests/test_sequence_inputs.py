"""The sequence builder (``SequenceChunks``) on hand-made genomes and tracks.

Checks: chunks tile each chromosome of a split from 0 (the last one N-padded), every gene
lies in exactly the chunk of its TSS at the right bin, targets are the tracks' per-bin
means (not logs), gaps without genes are left out, reverse-complement augmentation mirrors
sequence, targets and gene bins together and applies to the training split only, and the
builder satisfies the input contract.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from epx.data.genome import GenomeSequence
from epx.data.inputs.context import DataContext
from epx.data.inputs.protocol import problems
from epx.data.inputs.sequence import SequenceChunks
from epx.data.sources import SOURCES
from epx.data.tracks import SignalTracks
from epx.errors import InputError
from epx.io.fasta import encode, onehot, reverse_complement

CHUNK = 2_000
SIZES = {"chr1": 7_000, "chr2": 4_000}


def _genome(gap: bool = False) -> GenomeSequence:
    rng = np.random.default_rng(0)
    codes = {c: rng.integers(0, 4, n).astype(np.uint8) for c, n in SIZES.items()}
    if gap:
        codes["chr1"][2_000:4_000] = 4  # chunk 1 of chr1 is an assembly gap
    return GenomeSequence(codes)


def _tracks() -> SignalTracks:
    # base bin b of chr c holds (b, 10 b): easy to check by position
    return SignalTracks({c: np.stack([np.arange(n // 100), 10 * np.arange(n // 100)], axis=1).astype(np.float32) for c, n in SIZES.items()},
                        ("H3K4me3", "H3K27ac"))


def _genes() -> pd.DataFrame:
    return pd.DataFrame({
        "gene_id": ["a", "b", "c", "d"],
        "chrom": ["chr1", "chr1", "chr1", "chr2"],
        "tss": [150, 5_250, 6_999, 3_100],
        "strand": ["+", "-", "+", "+"],
        "target": [1.0, 2.0, 3.0, 4.0],
    })


def _context(genome=None) -> DataContext:
    return DataContext.of(_genes(), marks=("H3K4me3", "H3K27ac"), tracks=_tracks(), genome=genome or _genome())


def test_builder_satisfies_the_contract():
    builder = SequenceChunks(chunk_bp=CHUNK)
    assert problems(builder, tuple(SOURCES)) == []
    assert builder.sources == ("genome", "tracks") and builder.channels(["H3K4me3"]) == ("A", "C", "G", "T")
    spans = builder.intervals(_genes())
    assert spans.start.tolist() == [0, 4_000, 6_000, 2_000] and (spans.end - spans.start == CHUNK).all()
    with pytest.raises(InputError, match="multiple of bin_bp"):
        SequenceChunks(chunk_bp=2_050)


def test_chunks_tile_chromosomes_and_hold_each_gene_once():
    ds = SequenceChunks(chunk_bp=CHUNK)(_context(), np.arange(4), split="test")
    t = ds.table
    assert list(zip(t.chrom, t.start.tolist())) == [("chr1", 0), ("chr1", 2000), ("chr1", 4000), ("chr1", 6000), ("chr2", 0), ("chr2", 2000)]
    assert sorted(t.gene.tolist()) == [0, 1, 2, 3] and t.n_genes.tolist() == [1, 0, 1, 1, 0, 1]
    batch = ds.__getitems__(np.arange(len(ds)))
    assert batch["x"]["x"].shape == (6, 4, CHUNK) and batch["y"].shape == (6, 2, CHUNK // 100)
    genome = _genome()
    # the last chr1 chunk runs past the end (7,000 bp): N (all-zero) and zero signal there
    last = batch["x"]["x"][3]
    assert torch.equal(last[:, :1000], torch.from_numpy(onehot(genome.codes(np.array(["chr1"], object), np.array([6000]), 1000)[0])))
    assert last[:, 1000:].sum() == 0 and batch["y"][3, :, 10:].sum() == 0
    # targets: mean signal per bin as stored (track 0 = base bin index), never log-transformed
    assert batch["y"][2, 0].tolist() == list(range(40, 60)) and batch["y"][2, 1, 0] == 400
    # gene positions: TSS bin within its chunk, flattened over the batch
    n_bins = CHUNK // 100
    order = batch["gene"].tolist()
    pos = dict(zip(order, batch["gene_pos"].tolist()))
    assert pos[0] == 0 * n_bins + 1 and pos[1] == 2 * n_bins + 12 and pos[2] == 3 * n_bins + 9 and pos[3] == 5 * n_bins + 11
    target = dict(zip(order, batch["gene_target"].tolist()))
    assert target[1] == pytest.approx(np.log2(52 + 1))


def test_gaps_without_genes_are_left_out(caplog):
    with caplog.at_level("INFO", logger="epx.data.inputs.sequence"):
        ds = SequenceChunks(chunk_bp=CHUNK, max_n_fraction=0.5)(_context(_genome(gap=True)), np.arange(4))
    assert any("left out (more than 50% N, no TSS" in r.getMessage() for r in caplog.records), "the left-out chunks are counted"
    assert ("chr1", 2000) not in list(zip(ds.table.chrom, ds.table.start.tolist()))
    assert sorted(ds.table.gene.tolist()) == [0, 1, 2, 3]


def test_rc_augmentation_mirrors_sequence_targets_and_genes_on_train_only():
    builder = SequenceChunks(chunk_bp=CHUNK, rc_augment=True)
    plain = SequenceChunks(chunk_bp=CHUNK)(_context(), np.arange(4)).__getitems__(np.arange(6))
    assert not builder(_context(), np.arange(4), split="val").rc_augment
    ds = builder(_context(), np.arange(4), split="train")
    torch.manual_seed(1)
    flipped = ds.__getitems__(np.arange(6))
    x, y = plain["x"]["x"], plain["y"]
    rev = [i for i in range(6) if not torch.equal(flipped["x"]["x"][i], x[i])]
    assert 0 < len(rev) < 6, "seed 1 flips some chunks, not all"
    for i in rev:
        codes = x[i].argmax(0).numpy().astype(np.uint8)
        codes[x[i].sum(0).numpy() == 0] = 4
        assert torch.equal(flipped["x"]["x"][i], torch.from_numpy(onehot(reverse_complement(codes))))
        assert torch.equal(flipped["y"][i], y[i].flip(-1))
    # a gene's target is read at its (mirrored) bin: the same observed value either way
    assert dict(zip(flipped["gene"].tolist(), flipped["gene_target"].tolist())) == dict(zip(plain["gene"].tolist(), plain["gene_target"].tolist()))


def test_encode_and_genome_agree_on_n():
    assert onehot(encode("ACGTNRYacgtn")).sum(axis=0).tolist() == [1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0]


def test_a_sequence_job_without_a_genome_stops_before_any_work(tmp_path, small_synthetic):
    """model=seq_cnn_base on a folder without genome.fa: one InputError naming the file the
    contract expects and the download, before any cache (histone or genome) is built."""
    from epx.record import JobRecord
    from epx.run import train
    from test_train import job_cfg

    cfg = job_cfg(tmp_path, small_synthetic, "model=seq_cnn_base", "mark=H3K4me3+H3K27ac", "trainer=debug",
                  "dataset.files.genome=no_such_genome.fa", f"paths.cache_dir={tmp_path / 'cache'}")
    with pytest.raises(InputError) as info:
        train(cfg)
    message = str(info.value)
    assert str(small_synthetic / "no_such_genome.fa") in message and "dataset.files.genome" in message and "epx download hg19" in message
    assert JobRecord.read(tmp_path / "job").status == "failed"
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.h5")), "no cache may be built first"


def test_gene_dataset_holds_only_chunks_with_genes():
    builder = SequenceChunks(chunk_bp=CHUNK)
    ds = builder(_context(), np.arange(4), split="test")
    genes_only = builder.gene_dataset(ds)
    assert len(genes_only) == 4 < len(ds)
    batch = genes_only.__getitems__(list(range(4)))
    assert sorted(batch["gene"].tolist()) == [0, 1, 2, 3] and batch["x"]["x"].shape == (4, 4, CHUNK)
