"""Folds: every gene is a test gene exactly once; splits disjoint; deterministic everywhere."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from epx.errors import InputError
from epx.data.prepare.folds import CHROMOFORMER_GROUPS, assign_splits, gene_folds
from epx.io.naming import strip_chr


def human_genes(prefix="chr", per_chrom=10):
    chroms = [f"{prefix}{c}" for c in [*map(str, range(1, 23)), "X", "Y"]]
    return pd.DataFrame(
        {"gene_id": [f"g{c}_{i}" for c in chroms for i in range(per_chrom)], "chrom": [c for c in chroms for _ in range(per_chrom)]}
    )


@pytest.mark.parametrize("scheme", ["chromoformer", "balanced"])
@pytest.mark.parametrize("prefix", ["chr", ""])
def test_each_gene_tested_exactly_once_and_splits_disjoint(scheme, prefix):
    genes = human_genes(prefix)
    tested = pd.Series(0, index=genes.index)
    for fold in range(4):
        split = assign_splits(genes, fold, scheme=scheme)
        assert set(split) == {"train", "val", "test"}
        tested += split == "test"
        for a, b in [("train", "val"), ("train", "test"), ("val", "test")]:
            assert not set(genes.chrom[split == a]) & set(genes.chrom[split == b])
    assert (tested == 1).all()


def test_chromoformer_grouping():
    genes = human_genes()
    split = assign_splits(genes, 0)
    assert sorted(genes.chrom[split == "test"].unique()) == sorted(f"chr{c}" for c in CHROMOFORMER_GROUPS[0])
    val = genes.chrom[split == "val"].unique()
    assert 0 < len(val) and all(strip_chr(c) not in CHROMOFORMER_GROUPS[0] for c in val)


def test_balanced_matches_the_e003_slice_grouping():
    counts = {"chr1": 34, "chr6": 25, "chr5": 22, "chr14": 10, "chr8": 8, "chrY": 1}
    genes = pd.DataFrame({"gene_id": range(100), "chrom": [c for c, n in counts.items() for _ in range(n)]})
    folds = gene_folds(genes, "balanced")
    groups = {k: sorted(genes.chrom[folds == k].unique()) for k in range(4)}
    assert groups == {0: ["chr1"], 1: ["chr6"], 2: ["chr5"], 3: ["chr14", "chr8", "chrY"]}


def test_column_scheme(tmp_path):
    genes = pd.DataFrame({"gene_id": ["a", "b", "c", "d"], "chrom": ["c1", "c1", "c2", "c3"]})
    table = tmp_path / "folds.tsv"
    table.write_text("gene_id\tfold\na\t0\nb\t1\nc\t1\nd\t0\n")
    split = assign_splits(genes, 1, scheme="column", n_folds=2, table=table, val_fraction=0)
    assert split.tolist() == ["train", "test", "test", "train"]


def test_bad_fold_and_scheme():
    genes = human_genes()
    with pytest.raises(InputError, match="valid folds: 0, 1, 2, 3"):
        assign_splits(genes, 4)
    with pytest.raises(InputError, match="chromoformer, balanced, column"):
        assign_splits(genes, 0, scheme="random")
    with pytest.raises(InputError, match="balanced"):
        assign_splits(pd.DataFrame({"gene_id": ["a"], "chrom": ["scaffold_1"]}), 0)


def test_deterministic_across_processes_and_hash_seeds():
    code = (
        "import json,sys; sys.path.insert(0,'tests');"
        "from test_folds import human_genes; from epx.data.prepare.folds import assign_splits;"
        "g=human_genes(); print(json.dumps({f: assign_splits(g,f,scheme=s).tolist() for f in range(4) for s in ['balanced']} ))"
    )
    outs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": seed, "PATH": ""}).stdout
        for seed in ("1", "2")
    }
    assert len(outs) == 1 and json.loads(outs.pop())
