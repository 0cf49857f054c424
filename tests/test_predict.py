"""``epx predict``: a trained job's checkpoint rebuilds its net and inputs and scores elsewhere.

The source jobs run through ``launch.py`` (a real Hydra run), as users' jobs do, so their
records hold the overrides that ``predict`` composes again.
"""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import torch

from conftest import REPO
from epx.errors import InputError
from epx.predict import main as predict_main
from epx.predict import predict
from epx.record import JobRecord


def _launch(job_dir, folder, cache, *overrides) -> subprocess.Popen:
    with open(job_dir.parent / f"{job_dir.name}.log", "w") as log:
        return subprocess.Popen(
            [
                sys.executable, "launch.py", "dataset=folder", f"dataset.root={folder}", f"paths.cache_dir={cache}",
                "logger=none", "trainer.max_epochs=2", "+trainer.limit_train_batches=3", "trainer.enable_progress_bar=false",
                f"hydra.run.dir={job_dir}", *overrides,
            ],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip


def _finished(proc: subprocess.Popen, job_dir):
    assert proc.wait(300) == 0, (job_dir.parent / f"{job_dir.name}.log").read_text()[-3000:]
    return job_dir


@pytest.fixture(scope="module")
def trained(small_synthetic, small_synthetic_cache, tmp_path_factory):
    """{model: job dir} for two models trained on E003, fold 0, H3K4me3+H3K27ac (side by side:
    two processes on 2 cores, the signal cache built once under its lock)."""
    grid = tmp_path_factory.mktemp("predict") / "grid"
    grid.mkdir()
    procs = {
        model: _launch(grid / model, small_synthetic, small_synthetic_cache, f"model={model}", "mark=H3K4me3+H3K27ac")
        for model in ("promoter_cnn", "linear")
    }
    return {model: _finished(proc, grid / model) for model, proc in procs.items()}


@pytest.mark.parametrize("model", ["promoter_cnn", "linear"])
def test_predict_reproduces_the_jobs_own_predictions_exactly(trained, tmp_path, model):
    job = trained[model]
    record = predict(job, [], out=tmp_path / "again")
    source = JobRecord.read(job)
    assert record.status == "ok" and record.kind == "predict" and record.source_job == str(job.resolve())
    assert record.checkpoint == source.checkpoint and record.checkpoint.endswith("best.ckpt")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "again" / "predictions.csv"), pd.read_csv(job / "predictions.csv"))
    assert record.test == source.test and record.n_genes == source.n_genes and record.n_params == source.n_params


def test_predict_scores_the_model_on_a_second_cell(trained, small_synthetic):
    job = trained["promoter_cnn"]
    record = predict(job, ["cell=E114"])
    out = job / "predict" / "cell=E114"
    assert JobRecord.read(out).cell == "E114" and record.status == "ok"
    preds = pd.read_csv(out / "predictions.csv")
    own = pd.read_csv(job / "predictions.csv")
    # same genes and folds, the other cell's signal and expression
    assert list(preds.gene_id) == list(own.gene_id) and list(preds.split) == list(own.split)
    expr = pd.read_csv(small_synthetic / "expression.tsv", sep="\t").set_index("gene_id")
    assert preds.set_index("gene_id")["target"].to_numpy() == pytest.approx(
        (expr.loc[preds.gene_id, "E114"].pipe(lambda s: (s + 1).apply(__import__("math").log2))).to_numpy(), abs=1e-5
    )
    assert not (preds.prediction.to_numpy() == own.prediction.to_numpy()).all()
    assert 0 < record.n_genes["test"] and -1 <= record.test["pearson"] <= 1


@pytest.mark.parametrize(
    "override,message",
    [
        ("mark=H3K4me3", "trained on H3K4me3\\+H3K27ac, asked H3K4me3"),
        ("model.inputs.window_bp=4000", "model.inputs.window_bp: trained 6000, asked 4000"),
        ("model=linear", "model: trained 'promoter_cnn', asked 'linear'"),
        ("cell=E999", "valid cells"),
    ],
)
def test_a_mismatch_is_one_clear_error_before_any_work(trained, tmp_path, override, message):
    with pytest.raises(InputError, match=message):
        predict(trained["promoter_cnn"], [override], out=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_a_checkpoint_without_provenance_is_refused(trained, tmp_path):
    job = trained["linear"]
    ckpt = torch.load(JobRecord.read(job).checkpoint, weights_only=False)
    del ckpt["hyper_parameters"]
    copy = tmp_path / "job"
    (copy / "checkpoints").mkdir(parents=True)
    torch.save(ckpt, copy / "checkpoints" / "best.ckpt")
    record = JobRecord.read(job)
    record.checkpoint = None
    record.write(copy / "metrics.json")
    with pytest.raises(InputError, match="no provenance"):
        predict(copy)


def test_cli_scores_every_job_of_a_sweep_dir(trained, capsys):
    sweep = trained["linear"].parent
    assert predict_main([str(sweep), "fold=1"]) == 0
    for job in trained.values():
        record = JobRecord.read(job / "predict" / "fold=1")
        assert record.fold == 1 and record.status == "ok"
    assert capsys.readouterr().out.count("test pearson") == 2
    assert predict_main([str(sweep / "nothing")]) == 2
