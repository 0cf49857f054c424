"""``epx explain`` and ``analysis=[...]``: the analyses as files, for a job, at a job's end, and
over the fold models of a sweep; what does not apply is refused before any work (issue 13)."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from epx.cli import main as cli
from epx.errors import InputError
from epx.explain.run import explain_sweep, parse_request
from epx.record import JobRecord
from epx.run import train
from test_train import job_cfg, read_metrics

MARKS = "H3K4me3+H3K36me3+H3K27ac"
FAST = ("trainer=debug", f"mark={MARKS}")


def launched(root, folder, *overrides):
    """Train in-process and record the overrides as Hydra would for ``python launch.py …``,
    so ``epx explain`` can rebuild the job from its record as it does a launched one."""
    train(job_cfg(root, folder, *overrides))
    record = JobRecord.read(root / "job")
    record.overrides = [
        "dataset=folder", f"dataset.root={folder}", f"paths.data_dir={root / 'data'}", f"paths.cache_dir={root.parent / 'shared_cache'}",
        "logger=none", *overrides,
    ]
    record.write(root / "job")
    return root / "job"


@pytest.fixture(scope="module")
def cnn_job(small_synthetic, tmp_path_factory):
    root = tmp_path_factory.mktemp("explain_run") / "cnn"
    return launched(root, small_synthetic, *FAST, "analysis=[attribution,perturb]", "analysis.attribution.max_genes=20", "analysis.perturb.marks=[H3K4me3,H3K27ac]")


def test_a_job_asking_for_analyses_writes_them_at_its_end(cnn_job):
    assert read_metrics(cnn_job.parent).status == "ok"
    assert "explain_error" not in read_metrics(cnn_job.parent).extra
    profile = pd.read_csv(cnn_job / "explain" / "attribution" / "attribution_profile.tsv", sep="\t")
    assert set(profile["mark"]) == set(MARKS.split("+")) and set(profile["group"]) == {"expressed", "not_expressed", "all"}
    genes = pd.read_csv(cnn_job / "explain" / "attribution" / "attribution_genes.tsv", sep="\t")
    assert len(genes) == 20 and (genes["delta"].abs() <= 0.05).mean() > 0.9  # IG completeness
    curves = pd.read_csv(cnn_job / "explain" / "perturb" / "perturb_curves.tsv", sep="\t")
    assert set(curves["mark"]) == {"H3K4me3", "H3K27ac"} and set(curves["region"]) == {"promoter"}
    assert {"expressed", "not_expressed", "distal_driven", "other"} <= set(curves["gene_class"])
    # factor 1.0 is the input itself; the copies go through forward passes of another batch
    # size, and oneDNN may pick another kernel per shape on some CPUs: float32 rounding only
    assert (curves.loc[curves["factor"] == 1.0, "mean_delta"].abs() <= 1e-6).all()
    assert (cnn_job / "explain" / "perturb" / "perturb_curves.png").stat().st_size > 0


def test_an_analysis_that_does_not_apply_is_refused_before_training(tmp_path, small_synthetic):
    with pytest.raises(InputError, match="region 'pcres' does not apply to model 'promoter_cnn'"):
        train(job_cfg(tmp_path, small_synthetic, *FAST, "analysis=[perturb]", "analysis.perturb.regions=[pcres]"))
    assert read_metrics(tmp_path).status == "failed"
    assert not (tmp_path / "job" / "checkpoints").exists()
    with pytest.raises(InputError, match="mark 'H3K9me3' is not one this job trains on"):
        train(job_cfg(tmp_path / "b", small_synthetic, *FAST, "analysis=[perturb]", "analysis.perturb.marks=[H3K9me3]"))


def test_the_command_runs_named_analyses_with_options(cnn_job, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli(["explain", str(cnn_job), "activity", "validation", "--out", str(out), "--no-wandb"]) == 0
    assert (out / "activity" / "activity_correlation.tsv").exists()
    pooled = pd.read_csv(out / "validation" / "validation_pooled.tsv", sep="\t")
    assert {"distance", "abc"} <= set(pooled.iloc[:, 0])
    assert "validation\t" in capsys.readouterr().out


def test_bad_requests_are_one_line(cnn_job, tmp_path, capsys):
    assert cli(["explain", str(cnn_job), "saliency"]) == 2
    assert "unknown analysis 'saliency'" in capsys.readouterr().err
    assert cli(["explain", str(cnn_job)]) == 2
    assert "name the analyses to run" in capsys.readouterr().err
    assert cli(["explain", str(tmp_path / "nowhere"), "attribution"]) == 2
    assert "no such job or sweep dir" in capsys.readouterr().err
    bare = tmp_path / "bare"
    bare.mkdir()
    assert cli(["explain", str(bare), "attribution"]) == 2
    assert "no finished training job" in capsys.readouterr().err
    assert cli(["explain", str(cnn_job), "attention"]) == 2
    assert "attention applies to Chromoformer" in capsys.readouterr().err


def test_request_parsing_composes_the_analysis_configs():
    req = parse_request(["attribution,perturb", "perturb.marks=[H3K27ac]", "attribution.n_steps=8"])
    assert req["attribution"]["n_steps"] == 8 and req["attribution"]["method"] == "ig"
    assert req["perturb"]["marks"] == ["H3K27ac"] and req["perturb"]["n_factors"] == 11


def test_a_sweep_is_explained_job_by_job_and_averaged_over_folds(cnn_job, tmp_path, small_synthetic):
    sweep = tmp_path / "sweep"
    shutil.copytree(cnn_job, sweep / "0")
    shutil.copytree(launched(tmp_path / "f1", small_synthetic, *FAST, "fold=1"), sweep / "1")
    written = explain_sweep(sweep, parse_request(["perturb", "perturb.max_genes=10"]))
    mean = pd.read_csv(written["perturb"][0], sep="\t")
    assert set(mean["n_folds"]) == {2} and set(mean["model"]) == {"promoter_cnn"}
    assert (sweep / "1" / "explain" / "perturb" / "perturb.tsv").exists()


def test_results_go_to_the_jobs_own_wandb_run(tmp_path, small_synthetic, monkeypatch):
    import wandb
    from wandb_records import read_run

    if wandb.run is not None:  # a run another test left open would be reused by the job's logger
        wandb.finish()
    monkeypatch.setenv("WANDB_MODE", "offline")
    try:
        job = launched(tmp_path, small_synthetic, *FAST, "logger=wandb", "logger.mode=offline")
        run_id = JobRecord.read(job).wandb["id"]
        assert cli(["explain", str(job), "perturb", "perturb.max_genes=5"]) == 0
    finally:
        # this process's W&B service would otherwise be inherited by later tests' subprocesses
        # (WANDB_SERVICE), and a job they kill would keep its run id "in use" there
        wandb.teardown()
    files = sorted(job.rglob(f"run-{run_id}.wandb"))
    logged = {key for f in files for key in read_run(f)["summary"]}
    # the table and the figure, in the run the job trained in
    assert any(k.startswith("explain/perturb/perturb_curves/") for k in logged), sorted(logged)
    assert any(k.startswith("explain/perturb/perturb/") for k in logged)
