"""Signals that say nothing are reported, and refused past a limit (issue 23, parts 3 and 6):
a TSS file shifted by 1 Mb, a bigWig without coverage on a chromosome or whose header lacks
one, chrom sizes that disagree with a bigWig header, and ids that match nothing reported
with their reasons before the fold check. One folder is written per module; each test links
it and replaces the one file its case changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import write_bigwig, write_folder
from epx.config import compose
from epx.data.prepare.silence import signal_account
from epx.errors import InputError
from epx.io.chrom_sizes import write_chrom_sizes
from epx.io.tss import write_tss
from epx.run import train
from test_faults import job_overrides

SIZES = {"chr1": 1_600_000, "chr2": 1_600_000, "chr3": 1_600_000, "chr4": 1_600_000}
SHIFT = 1_000_000 + 7  # the true TSSs end at 550 kb: shifted, they stay inside the chromosome


def _tss(shift: int = 0) -> pd.DataFrame:
    genes = [(f"{c}_g{k}", c, 100_000 + k * 50_000 + shift, "+") for c in SIZES for k in range(10)]
    return pd.DataFrame(genes, columns=["gene_id", "chrom", "tss", "strand"])


def _signals(empty_chrom: str | None = None) -> dict:
    rng = np.random.default_rng(0)
    near = {c: np.zeros(n, np.float32) for c, n in SIZES.items()}
    for _, gene in _tss().iterrows():
        near[gene.chrom][gene.tss - 5_000 : gene.tss + 5_000] = rng.random(10_000) * 5 + 0.1  # signal only around the true TSSs
    if empty_chrom:
        near[empty_chrom][:] = 0
    return {("E003", m): near for m in ("H3K4me3", "H3K27ac")}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """The well-formed folder, written once; each test links it and replaces one file."""
    tss = _tss()
    expr = pd.DataFrame({"gene_id": tss["gene_id"], "E003": np.random.default_rng(1).gamma(1.0, 5.0, len(tss))})
    return write_folder(tmp_path_factory.mktemp("signals") / "base", signals=_signals(), tss=tss, expression=expr, chrom_sizes=SIZES)


def folder(tmp_path: Path, base: Path) -> Path:
    """A folder whose files are links to ``base``'s: replace one (unlink it first) to change it."""
    root = tmp_path / "folder"
    for path in base.rglob("*"):
        if path.is_file():
            (root / path.relative_to(base)).parent.mkdir(parents=True, exist_ok=True)
            (root / path.relative_to(base)).symlink_to(path)
    return root


def replaced(path: Path) -> Path:
    path.unlink()
    return path


def job(tmp_path, root, *extra):
    cfg = compose(job_overrides(tmp_path, root, "model=linear", "mark=H3K4me3+H3K27ac", "trainer.max_epochs=1",
                                "dataset.folds.scheme=balanced", "dataset.folds.n_folds=4", f"paths.output_dir={tmp_path / 'job'}", *extra))
    return train(cfg)


def test_the_account_counts_all_zero_windows_and_missing_or_empty_chromosomes():
    tracks = {"chr1": np.c_[np.zeros(100), np.r_[np.zeros(50), np.ones(50)]].astype(np.float32)}
    genes = pd.DataFrame({"gene_id": ["a", "b", "c"], "chrom": ["chr1", "chr1", "chr9"], "tss": [1_000, 8_000, 10]})
    account = signal_account("E003", tracks, genes, ("H3K4me3", "H3K27ac"), 100, 500, {"H3K4me3": ["chr1"], "H3K27ac": ["chr1"]})
    assert account.summary()["H3K4me3"] == {"genes_silent": 2, "chroms_missing": ["chr9"], "chroms_empty": ["chr1"]}
    assert account.summary()["H3K27ac"] == {"genes_silent": 1, "chroms_missing": ["chr9"], "chroms_empty": []}
    with pytest.raises(InputError, match=r"more than data.max_silent_fraction=0.5 of the 3 genes read only zeros:\n  - H3K4me3.bw: 2 of 3"):
        account.check(0.5, {"H3K4me3": "H3K4me3.bw", "H3K27ac": "H3K27ac.bw"})
    assert set(account.rows()["what"]) == {"chrom_not_in_header", "chrom_without_coverage", "genes_all_zero"}


def test_a_tss_file_shifted_by_1_mb_stops_before_training_naming_the_bigwigs(tmp_path, base):
    root = folder(tmp_path, base)
    write_tss(_tss(SHIFT), replaced(root / "tss.bed"))
    with pytest.raises(InputError, match=r"(?s)signals that say nothing for cell E003: .*signals/E003-H3K4me3.bigwig: \d+ of \d+ genes read an all-zero window"):
        job(tmp_path, root)
    assert not (tmp_path / "job" / "checkpoints").exists()


def test_a_chromosome_without_coverage_is_counted_in_the_record_and_table(tmp_path, base):
    root = folder(tmp_path, base)
    empty = _signals(empty_chrom="chr3")[("E003", "H3K4me3")]  # H3K27ac keeps its coverage
    write_bigwig(replaced(root / "signals" / "E003-H3K4me3.bigwig"), SIZES, empty)
    record = job(tmp_path, root)
    assert record.finished
    signals = record.extra["signals"]["E003"]
    assert signals["H3K4me3"]["chroms_empty"] == ["chr3"] and signals["H3K4me3"]["genes_silent"] >= 10
    table = pd.read_csv(tmp_path / "job" / "signals_silent.tsv", sep="\t")
    assert {"chrom_without_coverage"} <= set(table["what"]) and "chr3" in set(table["chrom"])


def test_chrom_sizes_that_disagree_with_a_bigwig_header_are_one_error_naming_both(tmp_path, base):
    root = folder(tmp_path, base)
    write_chrom_sizes({**SIZES, "chr2": 1_500_000}, replaced(root / "chrom.sizes"))
    with pytest.raises(InputError, match=r"'chr2': 1,500,000 bp in .*chrom.sizes, 1,600,000 bp in .*E003-H3K4me3.bigwig"):
        job(tmp_path, root)


def test_ids_that_match_nothing_are_named_before_the_fold_check(tmp_path, base):
    root = folder(tmp_path, base)
    expr = pd.read_csv(root / "expression.tsv", sep="\t")
    expr["gene_id"] = "ENSG" + expr.index.astype(str)  # Ensembl ids against symbols: nothing matches
    expr.to_csv(replaced(root / "expression.tsv"), sep="\t", index=False)
    with pytest.raises(InputError, match=r"(?s)40 of 40 genes .* would be dropped .*40 have no row in the expression table \(e.g. 'chr1_g0'"):
        job(tmp_path, root)
