"""GraphReg and Epi-CNN jobs end to end (in-process ``train``) on the small synthetic folder.

small_synthetic has 1 Mb chromosomes, so each is one 6 Mb window that is mostly padding:
enough to exercise windows, graph, loss, metrics and outputs. The nets are run narrower
(``model.net.d=16``) so each job takes seconds on 2 cores; the architecture is otherwise the
configured one.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from epx.errors import InputError
from epx.run import train
from test_train import job_cfg, read_metrics

FAST = ("trainer=debug", "mark=H3K4me3+H3K27ac", "model.net.d=16")
GENE_METRICS = {"pearson", "spearman", "mse"}
BIN_METRICS = {f"bin_{s}_{b}" for s in ("nll", "pearson") for b in ("tss", "expressed", "expressed_contact")}


def _predictions(tmp_path) -> pd.DataFrame:
    return pd.read_csv(tmp_path / "job" / "predictions.csv")


@pytest.mark.parametrize("model", ["graphreg", "graphreg_gatv2", "epi_cnn"])
def test_fast_dev_run_writes_gene_and_bin_metrics(tmp_path, small_synthetic, model):
    record = train(job_cfg(tmp_path, small_synthetic, f"model={model}", *FAST))
    on_disk = read_metrics(tmp_path)
    assert on_disk.status == "ok" and on_disk.model == model and on_disk.n_params == record.n_params > 0
    assert set(on_disk.test) >= GENE_METRICS | BIN_METRICS | {"loss"}
    assert math.isfinite(on_disk.test["bin_nll_tss"]) and math.isfinite(on_disk.test["mse"])
    preds = _predictions(tmp_path)
    # fast_dev_run predicts one batch per split: 2 windows (chromosomes) of 12 genes each
    assert preds.gene_id.is_unique and preds.groupby("split").size().to_dict() == {"train": 24, "val": 24, "test": 24}
    assert (preds.prediction >= 0).all()  # log2(count + 1) of a count >= 0


def test_classification_is_rejected_with_a_clear_error(tmp_path, small_synthetic):
    with pytest.raises(InputError, match="model=graphreg does not support task=classification; it supports: regression"):
        train(job_cfg(tmp_path, small_synthetic, "model=graphreg", "task=classification", *FAST))
    assert read_metrics(tmp_path).status == "failed"


def test_an_empty_interactions_file_is_refused_and_a_graph_free_run_predicts_every_gene_once(tmp_path, small_synthetic):
    empty = tmp_path / "empty.bedpe"
    empty.write_text("")
    one_epoch = ("trainer.max_epochs=1", "+trainer.limit_train_batches=2", "callbacks=none")
    refused = tmp_path / "refused"
    with pytest.raises(InputError, match="empty.bedpe: no interactions"):
        train(job_cfg(refused, small_synthetic, "model=graphreg", f"dataset.files.interactions={empty}", *one_epoch, *FAST[1:]))
    assert read_metrics(refused).status == "failed"  # refused: not a promoter-only run in disguise
    # asked for explicitly, the graph-free run trains on windows without edges
    train(job_cfg(tmp_path, small_synthetic, "model=graphreg", "model.inputs.requires_contacts=false", f"dataset.files.interactions={empty}", *one_epoch, *FAST[1:]))
    record = read_metrics(tmp_path)
    assert record.status == "ok" and math.isfinite(record.test["bin_nll_tss"])
    assert record.test["bin_pearson_expressed_contact"] is None  # no contact anywhere: undefined, null
    assert record.undefined_metrics["bin_pearson_expressed_contact"].startswith("no values seen")
    # a full prediction pass covers every gene of every split exactly once (its one window)
    preds = _predictions(tmp_path)
    assert preds.gene_id.is_unique and preds.groupby("split").size().to_dict() == record.n_genes


def test_cross_cell_mode_tests_on_the_other_cells_expression(tmp_path, small_synthetic):
    train(job_cfg(tmp_path, small_synthetic, "model=graphreg", "test_cell=E114", *FAST))
    record = read_metrics(tmp_path)
    assert record.status == "ok" and record.test_cell == "E114"
    expr = pd.read_csv(small_synthetic / "expression.tsv", sep="\t").set_index("gene_id")
    test = _predictions(tmp_path).query("split == 'test'").set_index("gene_id")
    np.testing.assert_allclose(test.target, np.log2(expr.loc[test.index, "E114"] + 1), rtol=1e-5)


@pytest.mark.realdata
def test_both_models_run_on_the_real_e003_slice(tmp_path, e003_demo):
    for model in ("graphreg", "epi_cnn"):
        job = tmp_path / model
        train(job_cfg(job, e003_demo, f"model={model}", "dataset.folds.scheme=balanced", "trainer=debug", "mark=all", "model.net.d=16"))
        record = read_metrics(job)
        assert record.status == "ok" and record.marks == ["H3K4me1", "H3K4me3", "H3K9me3", "H3K27me3", "H3K36me3", "H3K27ac", "H3K9ac"]
        # pcHi-C contacts reach the expressed test genes' bins, so the contact subset is scored
        assert math.isfinite(record.test["bin_nll_expressed_contact"])


def test_paper_recipe_composes_for_both_models():
    from epx.config import compose

    for model in ("graphreg", "epi_cnn"):
        cfg = compose(["experiment=graphreg_paper", f"model={model}", "mark=all"])
        assert cfg.model.name == model and cfg.model.objective._target_ == "epx.train.counts.PoissonCounts"
        assert cfg.model.module.optimizer.lr == 2e-4 and cfg.model.batch_size == 1
        assert cfg.callbacks.early_stopping.monitor == "val/loss" and cfg.callbacks.early_stopping.patience == 4
        assert cfg.model.net.n_marks == 7 and "threshold" not in cfg.model.inputs  # the dataset applies it


def test_distal_benchmark_recipe_differs_between_models_only_in_the_graph():
    from epx.config import compose

    gatv2 = compose(["experiment=graphreg_distal"])
    gat = compose(["experiment=graphreg_distal", "model=graphreg"])
    cnn = compose(["experiment=graphreg_distal", "model=epi_cnn"])
    assert gatv2.model.name == "graphreg_gatv2" and gatv2.model.net.attention == "gatv2" and gat.model.net.attention == "gat"
    for cfg in (gatv2, gat, cnn):
        assert cfg.mark == "all" and cfg.trainer.max_epochs == 8 and cfg.model.batch_size == 1
        assert cfg.model.module.optimizer.lr == 1e-3 and cfg.model.net.dropout == 0.1
        assert cfg.callbacks.early_stopping.patience == 4
    # the paper recipe keeps the published dropout whichever GraphReg-family model it runs
    paper = compose(["experiment=graphreg_paper", "model=graphreg_gatv2"])
    assert paper.model.module.optimizer.lr == 2e-4 and paper.model.net.dropout == 0.5
