"""``model=seq_cnn_base`` is a job like any other: trained from ``launch.py``, re-scored on
another cell by ``epx predict``, interpreted by ``epx explain`` (attribution w.r.t. the
one-hot DNA), with the same folds as every model.

One small job (``trainer.max_epochs=1`` on three batches, 20 kb chunks, chromosomes 1-4) on
the session's small synthetic folder, which carries a ``genome.fa`` with planted motifs.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from epx.explain.attribution import attribute
from epx.explain.job import ExplainJob
from epx.predict import predict
from epx.record import JobRecord

# four chromosomes (chr1 is fold 0's test chromosome, chr2-4 train and validation): a
# sequence model predicts every 100 bp of them, so this keeps a job to seconds on 2 cores
SMALL = ["model.inputs.chunk_bp=20000", "model.batch_size=2", "model.eval_batch_size=16",
         "data.exclude_chroms=['^chr([5-9]|[1-2][0-9]|X|Y)$']", "data.max_dropped_fraction=1.0"]


@pytest.fixture(scope="module")
def seq_job(small_synthetic, small_synthetic_cache, tmp_path_factory):
    root = tmp_path_factory.mktemp("seqjob")
    job = root / "job"
    proc = subprocess.run(
        [sys.executable, "launch.py", "dataset=folder", f"dataset.root={small_synthetic}", f"paths.cache_dir={small_synthetic_cache}",
         "logger=none", "model=seq_cnn_base", "mark=H3K4me3+H3K27ac", "trainer.max_epochs=1", "+trainer.limit_train_batches=3",
         "+trainer.limit_val_batches=2", "trainer.enable_progress_bar=false", f"hydra.run.dir={job}", *SMALL],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return job


def test_the_job_records_per_track_bin_metrics_and_gene_predictions(seq_job, small_synthetic):
    record = JobRecord.read(seq_job)
    assert record.status == "ok" and record.model == "seq_cnn_base" and record.primary_metric == "bin_pearson"
    assert {"bin_pearson", "bin_pearson_0", "bin_pearson_1", "bin_nll", "pearson"} <= set(record.test)
    preds = pd.read_csv(seq_job / "predictions.csv")
    assert set(preds.split) == {"train", "val", "test"} and preds.gene_id.is_unique
    folds = json.loads((seq_job / "folds.json").read_text())
    test_chroms = set(preds.loc[preds.split == "test", "chrom"])
    assert test_chroms == {"chr1"}, "fold 0 holds out Chromoformer's first group (chr1 of the four kept)"
    assert folds  # the same fold record every model writes


def test_predict_scores_it_on_another_cell(seq_job):
    record = predict(seq_job, ["cell=E114"])
    assert record.status == "ok" and record.cell == "E114" and np.isfinite(record.test["bin_nll"])
    own = pd.read_csv(seq_job / "predictions.csv")
    other = pd.read_csv(seq_job / "predict" / "cell=E114" / "predictions.csv")
    # the same DNA, so the same predictions; the other cell's tracks as targets
    assert list(other.gene_id) == list(own.gene_id)
    np.testing.assert_allclose(other.prediction, own.prediction, rtol=1e-5, atol=1e-6)
    assert not np.allclose(other.target, own.target)


def test_attribution_is_per_base_of_the_one_hot(seq_job):
    job = ExplainJob.load(seq_job)
    rows = job.rows("test")[:2]
    result = attribute(job, rows, method="input_x_gradient")
    assert result.marks == ("A", "C", "G", "T")
    assert result["x"].shape == (2, 4, 20_000)
    layout = job.adapter.layouts(rows)["x"]
    genes = job.genes.iloc[rows]
    assert layout.bin_bp == 1 and layout.start.shape == (2, 20_000)
    # the TSS base sits at offset 0 of its own chunk
    tss_at = genes["tss"].to_numpy() - layout.start[:, 0]
    assert (layout.offset_bp[np.arange(2), tss_at] == 0).all()


def test_the_fourier_prior_recipe_composes_and_its_target_is_registered():
    """experiment=seq_cnn_base_fft sets the prior through config; its _target_ is in conf/,
    so a job trained with it opens again (epx.trained refuses targets conf/ does not name)."""
    from hydra.utils import instantiate

    from epx.config import compose, registry_targets
    from epx.train.priors import FourierAttributionPrior

    cfg = compose(["experiment=seq_cnn_base_fft", "mark=H3K4me3+H3K27ac", "logger=none"])
    assert cfg.model.name == "seq_cnn_base" and "epx.train.priors.FourierAttributionPrior" in registry_targets()
    module = instantiate(cfg.model.module, _partial_=True)(net=instantiate(cfg.model.net), objective=instantiate(cfg.model.objective))
    assert isinstance(module.prior, FourierAttributionPrior) and module.prior.weight == 1.0
