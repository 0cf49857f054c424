"""epx.io.fasta (encoding, reading, the .fai) and the dataset contract's genome checks."""

from __future__ import annotations

import os

import numpy as np
import pytest

from epx.data.prepare.contract import DatasetSpec
from epx.errors import InputError
from epx.io.chrom_sizes import write_chrom_sizes
from epx.io.fasta import (
    FastaFile,
    decode,
    encode,
    ensure_index,
    onehot,
    read_fasta_sizes,
    reverse_complement,
    write_fasta,
)

IUPAC = "RYKMSWBDHVN"


def random_codes(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 5, n).astype(np.uint8)


@pytest.mark.parametrize("line_width", [60, 7, 1000])
def test_round_trip_codes_text_and_index(tmp_path, line_width):
    seqs = {"chr1": random_codes(1_003), "chr2": "ACGTN" * 40, "chrM": b"acgt", "empty": ""}
    path = write_fasta(tmp_path / "g.fa", seqs, line_width=line_width)
    written_index = (tmp_path / "g.fa.fai").read_text()
    (tmp_path / "g.fa.fai").unlink()
    with FastaFile(path) as fasta:  # rebuilds the .fai with pyfaidx: the same five columns
        assert fasta.sizes == {"chr1": 1_003, "chr2": 200, "chrM": 4, "empty": 0}
        np.testing.assert_array_equal(fasta.codes("chr1"), seqs["chr1"])
        np.testing.assert_array_equal(fasta.codes("chr1", 995, 2_000), seqs["chr1"][995:])  # clipped at the end
        assert decode(fasta.codes("chr2", 3, 9)) == b"TNACGT"
        assert decode(fasta.codes("chrM")) == b"ACGT"
    assert (tmp_path / "g.fa.fai").read_text() == written_index
    assert read_fasta_sizes(path) == read_fasta_sizes(seqs)


def test_soft_masked_bases_upper_cased(tmp_path):
    path = write_fasta(tmp_path / "g.fa", {"chr1": "ACGT"})
    path.write_text(">chr1 soft-masked repeat\nacgtACGTnn\n")  # write by hand: lowercase kept on disk
    (tmp_path / "g.fa.fai").unlink()
    with FastaFile(path) as fasta:
        assert decode(fasta.codes("chr1")) == b"ACGTACGTNN"
    np.testing.assert_array_equal(encode("acgt"), [0, 1, 2, 3])


def test_iupac_codes_are_n_and_all_zero_onehot(tmp_path):
    letters = IUPAC + IUPAC.lower() + "-*.X"
    assert (encode(letters) == 4).all()
    assert not onehot(encode(letters)).any()
    path = tmp_path / "g.fa"
    path.write_text(f">x\n{letters}\n")
    with FastaFile(path) as fasta:
        assert (fasta.codes("x") == 4).all()


def test_onehot_layout_and_batch():
    x = onehot(encode("ACGTN"))
    assert x.dtype == np.float32 and x.shape == (4, 5)
    np.testing.assert_array_equal(x, np.c_[np.eye(4), np.zeros(4)])
    batch = onehot(np.stack([encode("AC"), encode("GT")]))
    assert batch.shape == (2, 4, 2) and batch[1, 3, 1] == 1


def test_reverse_complement():
    assert decode(reverse_complement(encode("AACGTNR"))) == b"NNACGTT"
    codes = random_codes(500, seed=3)
    np.testing.assert_array_equal(reverse_complement(reverse_complement(codes)), codes)
    two = np.stack([encode("ACG"), encode("TTN")])
    assert [decode(r) for r in reverse_complement(two)] == [b"CGT", b"NAA"]


def test_in_memory_source_and_bad_arrays():
    fasta = FastaFile({"chr1": "ACGTN", "chr2": np.array([0, 1, 4], np.uint8)})
    assert fasta.sizes == {"chr1": 5, "chr2": 3}
    assert decode(fasta.codes("chr1", 1, 3)) == b"CG"
    with pytest.raises(InputError, match="no chromosome 'chr3'"):
        fasta.codes("chr3")
    with pytest.raises(InputError, match="uint8 base codes"):
        encode(np.array([0, 9], np.uint8))


def test_missing_index_is_built(tmp_path):
    path = write_fasta(tmp_path / "g.fa", {"chr1": "ACGT" * 30})
    (tmp_path / "g.fa.fai").unlink()
    assert read_fasta_sizes(path) == {"chr1": 120}
    assert (tmp_path / "g.fa.fai").is_file()


def test_missing_index_on_read_only_folder_is_one_error(tmp_path):
    folder = tmp_path / "ro"
    path = write_fasta(folder / "g.fa", {"chr1": "ACGT"})
    (folder / "g.fa.fai").unlink()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: chmod does not make the folder read-only")
        with pytest.raises(InputError) as err:
            read_fasta_sizes(path)
        message = str(err.value)
        assert str(folder / "g.fa.fai") in message and "samtools faidx" in message and "writable" in message
    finally:
        folder.chmod(0o755)


def test_read_only_folder_refusal_without_chmod(tmp_path, monkeypatch):
    """The same refusal where chmod cannot make a folder read-only (root): os.access says no."""
    path = write_fasta(tmp_path / "g.fa", {"chr1": "ACGT"})
    (tmp_path / "g.fa.fai").unlink()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if os.fspath(p) == str(tmp_path) else real(p, mode))
    with pytest.raises(InputError, match=r"g\.fa\.fai is missing .* not writable; run `samtools faidx"):
        read_fasta_sizes(path)
    assert not (tmp_path / "g.fa.fai").exists()


def test_stale_index_is_rebuilt(tmp_path):
    path = write_fasta(tmp_path / "g.fa", {"chr1": "ACGT"})
    path.write_text(">chr1\nACGTACGT\n")
    os.utime(tmp_path / "g.fa.fai", ns=(1, 1))  # the index is older than the FASTA
    assert read_fasta_sizes(path) == {"chr1": 8}


@pytest.mark.parametrize(
    "text,match",
    [(b"\x1f\x8b\x08\x00junk", "gzip-compressed"), (b"ACGT\n>chr1\nACGT\n", "not a valid FASTA"),
     (b">chr1\nACGT\nAC\nACGT\n", "not a valid FASTA"), (b">chr1\nACGT\n>chr1\nAC\n", "must be unique")],
)
def test_bad_fasta_is_one_error(tmp_path, text, match):
    path = tmp_path / "g.fa"
    path.write_bytes(text)
    with pytest.raises(InputError, match=match) as err:
        read_fasta_sizes(path)
    assert str(path) in str(err.value)


# ----------------------------------------------------------------------------- the contract


def _spec(root, **files) -> DatasetSpec:
    return DatasetSpec(root=root, files=files, name="mine")


def test_genome_path_absent_and_check_names_the_file(tmp_path):
    spec = _spec(tmp_path)
    assert spec.files["genome"] == "genome.fa" and spec.genome_path() is None
    with pytest.raises(InputError) as err:
        spec.check_genome({"chr1": 10})
    message = str(err.value)
    assert f"dataset mine has no genome FASTA at {tmp_path / 'genome.fa'}" in message
    assert "dataset.files.genome='genome.fa'" in message and "epx download hg19" in message


def test_names_1_vs_chr1_are_reconciled(tmp_path):
    write_fasta(tmp_path / "genome.fa", {"1": "ACGT" * 5, "MT": "AC", "GL000191.1": "A"})
    write_chrom_sizes({"chr1": 20, "chrM": 2, "chr2": 7}, tmp_path / "chrom.sizes")
    spec = _spec(tmp_path)
    assert spec.genome_path() == tmp_path / "genome.fa"
    assert spec.check_genome() == {"chr1": "1", "chrM": "MT"}  # chr2 missing: read as N
    exact = DatasetSpec(root=tmp_path, chrom_names="exact")
    with pytest.raises(InputError, match="naming mismatch"):
        exact.check_genome()


def test_fasta_of_another_assembly_is_one_error_naming_both_files(tmp_path):
    write_fasta(tmp_path / "genome.fa", {f"chr{i}": "A" * (100 + i) for i in range(1, 8)})
    write_chrom_sizes({f"chr{i}": 200 + i for i in range(1, 8)}, tmp_path / "chrom.sizes")
    with pytest.raises(InputError) as err:
        _spec(tmp_path).check_genome()
    message = str(err.value)
    assert str(tmp_path / "genome.fa") in message and str(tmp_path / "chrom.sizes") in message
    assert "another assembly" in message and "7 of 7" in message and "chr1: 201 bp vs 101 bp" in message
    assert "chr6" not in message  # a few chromosomes, not all


def test_custom_genome_pattern_and_sizes_from_caller(tmp_path):
    write_fasta(tmp_path / "ref" / "hg.fa", {"chr1": "ACGT"})
    spec = _spec(tmp_path, genome="ref/hg.fa")
    assert spec.genome_path() == tmp_path / "ref" / "hg.fa"
    assert spec.check_genome() == {"chr1": "chr1"}  # no chrom.sizes: the FASTA's own naming
    with pytest.raises(InputError, match="the bigWig headers of dataset mine"):
        spec.check_genome({"chr1": 5})
