"""Honest metrics, honest exits (issue 23, parts 4 and 5).

| case                                              | test                                                        |
|---------------------------------------------------|-------------------------------------------------------------|
| every target equal (regression)                   | test_constant_targets_leave_correlations_null_and_the_job_degenerate |
| one class only (classification)                   | test_one_class_leaves_auroc_and_auprc_null                  |
| a real job                                        | test_a_real_job_stays_ok_with_every_metric_a_number         |
| the guarded metrics, in isolation                 | test_guarded_metrics_say_why_they_are_undefined             |
| summary, status, W&B of a degenerate job          | test_a_degenerate_job_is_missing_in_the_summary_not_zero, test_wandb_summary_gets_no_number_for_an_undefined_metric |
| SIGTERM / SIGINT to ``python launch.py``          | test_sigterm_interrupts_a_run_with_143_and_the_rerun_resumes, test_sigint_exits_130 |
| SIGTERM to a multirun                             | test_sigterm_to_a_multirun_exits_143_with_a_summary_of_every_job |
| two grids under one sweep name at once            | test_two_grids_started_at_once_under_one_sweep_name_one_is_refused |

Jobs run on the session's small synthetic folder (or a copy whose expression column is
constant) with ``trainer=debug`` or a few tiny epochs; signals go to real subprocesses.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import REPO
from test_faults import job_overrides as fault_job_overrides
from torchmetrics import MetricCollection

from epx.analysis.collect import collect_rows
from epx.analysis.summary import summarize
from epx.job import checkpoint_readable
from epx.record import JobRecord, RecordError
from epx.train.undefined import (
    AUPRC,
    AUROC,
    Accuracy,
    Pearson,
    Spearman,
    undefined_reasons,
)

TIMEOUT = 240


def job_overrides(tmp_path: Path, folder: Path, *extra: str) -> list[str]:
    return fault_job_overrides(tmp_path, folder, "trainer.enable_model_summary=false", *extra)


def run_job(tmp_path: Path, folder: Path, cache: Path, *extra: str) -> JobRecord:
    """One in-process job; ``cache``: a signal-cache dir shared with the other jobs on ``folder``."""
    from epx.config import compose
    from epx.run import train

    overrides = job_overrides(tmp_path, folder, *extra, f"paths.output_dir={tmp_path / 'job'}")
    overrides = [f"paths.cache_dir={cache}" if o.startswith("paths.cache_dir=") else o for o in overrides]
    return train(compose(overrides))


@pytest.fixture(scope="module")
def constant_folder(small_synthetic, tmp_path_factory) -> Path:
    """The small synthetic folder, every gene's expression 3.2 RPKM in every cell."""
    root = tmp_path_factory.mktemp("constant") / "folder"
    root.mkdir()
    for entry in small_synthetic.iterdir():
        if entry.name != "expression.tsv":
            (root / entry.name).symlink_to(entry)
    expression = pd.read_csv(small_synthetic / "expression.tsv", sep="\t")
    for column in expression.columns[1:]:
        expression[column] = 3.2
    expression.to_csv(root / "expression.tsv", sep="\t", index=False)
    return root


@pytest.fixture(scope="module")
def constant_cache(tmp_path_factory) -> Path:
    """The signal cache of ``constant_folder``'s jobs, built by the first."""
    return tmp_path_factory.mktemp("constant_cache")


# ---------------------------------------------------------------- undefined metrics


def test_guarded_metrics_say_why_they_are_undefined():
    corr = MetricCollection({"pearson": Pearson(), "spearman": Spearman()})
    corr.update(torch.randn(6), torch.full((6,), 3.2))
    assert all(math.isnan(v) for v in corr.compute().values())
    assert undefined_reasons(corr) == {name: "targets are constant (all 3.2) over 6 values" for name in ("pearson", "spearman")}
    corr.reset()
    corr.update(torch.zeros(6), torch.randn(6))
    corr.compute()
    assert undefined_reasons(corr)["pearson"] == "predictions are constant (all 0) over 6 values"
    corr.reset()
    corr.update(torch.randn(6), torch.randn(6))
    assert all(math.isfinite(v) for v in corr.compute().values()) and undefined_reasons(corr) == {}
    ranking = MetricCollection({"auroc": AUROC(), "auprc": AUPRC(), "accuracy": Accuracy()})
    ranking.update(torch.rand(5), torch.ones(5, dtype=torch.long))
    values = ranking.compute()
    assert math.isnan(values["auroc"]) and math.isnan(values["auprc"]) and values["accuracy"] == pytest.approx(values["accuracy"])
    assert undefined_reasons(ranking) == {name: "targets are one class only (all 1) over 5 values" for name in ("auroc", "auprc")}
    empty = MetricCollection({"pearson": Pearson()})
    empty.compute()
    assert undefined_reasons(empty) == {"pearson": "no values seen (an empty split or subset)"}


def test_constant_targets_leave_correlations_null_and_the_job_degenerate(tmp_path, constant_folder, constant_cache):
    record = run_job(tmp_path, constant_folder, constant_cache, "model=linear", "trainer=debug")
    assert record.status == "degenerate"
    assert record.test["pearson"] is None and record.test["spearman"] is None
    assert isinstance(record.test["mse"], float)
    reason = f"targets are constant (all {math.log2(3.2 + 1):.6g}) over {record.n_genes['test']} values"
    assert record.undefined_metrics == {"pearson": reason, "spearman": reason}
    saved = (tmp_path / "job" / "metrics.json").read_text()
    assert '"pearson": null' in saved and "NaN" not in saved
    assert JobRecord.read(tmp_path / "job").finished


def test_one_class_leaves_auroc_and_auprc_null(tmp_path, constant_folder, constant_cache):
    record = run_job(tmp_path, constant_folder, constant_cache, "model=linear", "trainer=debug", "task=classification")
    assert record.status == "degenerate"
    assert record.test["auroc"] is None and record.test["auprc"] is None
    assert set(record.undefined_metrics) == {"auroc", "auprc"}
    assert record.undefined_metrics["auroc"].startswith("targets are one class only (all 1)")
    assert isinstance(record.test["accuracy"], float)  # defined on one class, if trivially


def test_a_real_job_stays_ok_with_every_metric_a_number(tmp_path, small_synthetic, small_synthetic_cache):
    record = run_job(tmp_path, small_synthetic, small_synthetic_cache, "model=linear", "trainer=debug")
    assert record.status == "ok" and record.undefined_metrics == {}
    assert set(record.test) == {"loss", "pearson", "spearman", "mse"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in record.test.values())


def _degenerate_sweep(tmp_path: Path) -> Path:
    sweep = tmp_path / "sweep"
    for job, (status, test, undefined) in enumerate(
        [
            ("ok", {"pearson": 0.61, "spearman": 0.55, "mse": 1.2}, {}),
            ("degenerate", {"pearson": None, "spearman": None, "mse": 0.4}, {"pearson": "targets are constant (all 2.07) over 9 values", "spearman": "targets are constant (all 2.07) over 9 values"}),
        ]
    ):  # fmt: skip
        JobRecord(
            cell="E003", mark="H3K4me3", fold=job, model="linear", task="regression", seed=0, primary_metric="pearson",
            test=test, undefined_metrics=undefined, status=status,
        ).write((sweep / str(job)).mkdir(parents=True) or sweep / str(job))  # fmt: skip
    return sweep


def test_a_degenerate_job_is_missing_in_the_summary_not_zero(tmp_path):
    from epx.analysis.plot import heatmap_panels
    from epx.analysis.status import status_text

    sweep = _degenerate_sweep(tmp_path)
    csv_path, _ = summarize(sweep)
    rows = pd.read_csv(csv_path, dtype=str, keep_default_na=False).to_dict("records")
    assert [(r["status"], r["test_pearson"], r["test_mse"]) for r in rows] == [("ok", "0.61", "1.2"), ("degenerate", "", "0.4")]
    assert rows[1]["undefined"].startswith("pearson: targets are constant (all 2.07)")
    (panel,) = heatmap_panels(collect_rows(sweep))
    assert panel.values[0, 0] == pytest.approx(0.61) and panel.folds_used[0, 0] == 1  # the mean of the defined one only
    assert "1 ok" in status_text(sweep) and "1 degenerate" in status_text(sweep)


def test_wandb_summary_gets_no_number_for_an_undefined_metric(tmp_path, monkeypatch):
    from lightning.pytorch.loggers import WandbLogger

    from epx.train.loggers import log_record

    monkeypatch.setenv("WANDB_MODE", "offline")
    logger = WandbLogger(project="epx", save_dir=str(tmp_path), dir=str(tmp_path), mode="offline")
    record = JobRecord(test={"pearson": None, "mse": 0.4}, undefined_metrics={"pearson": "targets are constant (all 2) over 9 values"}, n_params=3)
    log_record(logger, record)
    summary = dict(logger.experiment.summary)
    logger.experiment.finish()
    assert "test/pearson" not in summary and summary["test/mse"] == 0.4
    assert summary["undefined/test/pearson"] == "targets are constant (all 2) over 9 values"


# ---------------------------------------------------------------- exits that tell the truth

# tiny epochs, one torch thread; callbacks=none (no checkpoints) or early stopping out of the way
KEEP_TRAINING = "callbacks.early_stopping.patience=1000"
EPOCHS = ["threads=1", "logger=none", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def launch_command(cache: Path, folder: Path, *extra: str, multirun: bool = False) -> list[str]:
    data = ["dataset=folder", f"dataset.root={folder}", f"paths.cache_dir={cache}"]
    return [sys.executable, str(REPO / "launch.py"), *(["-m"] if multirun else []), *data, *EPOCHS, *extra]


def default_signals() -> None:
    """The launched job starts with SIGINT/SIGTERM at their defaults, whatever this shell set
    (a non-interactive shell's background jobs ignore SIGINT, and epx respects an ignored signal)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def start(tmp_path: Path, command: list[str]) -> subprocess.Popen:
    path = tmp_path / f"launch-{time.time_ns()}.log"
    with open(path, "w") as log:
        proc = subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, text=True, preexec_fn=default_signals)
    proc.log_path = path  # type: ignore[attr-defined]
    return proc


def output_of(proc: subprocess.Popen) -> str:
    return proc.log_path.read_text()  # type: ignore[attr-defined]


def wait_for(condition, what: str, proc: subprocess.Popen, timeout: float = TIMEOUT) -> None:
    end = time.time() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the launch ended (exit {proc.returncode}) before {what}: {output_of(proc)[-3000:]}")
        if time.time() > end:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def training(job_dir: Path) -> bool:
    """The record was saved with n_params, right before trainer.fit."""
    try:
        return bool(JobRecord.read(job_dir).n_params)
    except (RecordError, OSError):
        return False


def test_sigterm_interrupts_a_run_with_143_and_the_rerun_resumes(tmp_path, small_synthetic, small_synthetic_cache):
    run_dir = tmp_path / "job"
    command = launch_command(small_synthetic_cache, small_synthetic, "trainer.max_epochs=6", KEEP_TRAINING, f"hydra.run.dir={run_dir}")
    proc = start(tmp_path, command)
    last = run_dir / "checkpoints" / "last.ckpt"

    def frozen_with_checkpoint() -> bool:  # stopped at a whole last.ckpt, so training is surely not over
        if not last.is_file():
            return False
        proc.send_signal(signal.SIGSTOP)
        if checkpoint_readable(last):
            return True
        proc.send_signal(signal.SIGCONT)
        return False

    wait_for(frozen_with_checkpoint, "last.ckpt", proc)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGCONT)
    assert proc.wait(60) == 143, output_of(proc)[-3000:]
    record = JobRecord.read(run_dir)
    assert record.status == "interrupted" and record.error.startswith("Interrupted: SIGTERM received; exit code 143")
    assert "resumes it from checkpoints/last.ckpt" in record.error and not record.test
    again = subprocess.run(command, check=False, cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    resumed = JobRecord.read(run_dir)
    assert resumed.status == "ok" and resumed.extra["resumed_from"] == str(last)


def test_sigint_exits_130_and_the_record_says_interrupted(tmp_path, small_synthetic, small_synthetic_cache):
    run_dir = tmp_path / "job"
    proc = start(tmp_path, launch_command(small_synthetic_cache, small_synthetic, "trainer.max_epochs=1000", "callbacks=none", f"hydra.run.dir={run_dir}"))
    wait_for(lambda: training(run_dir), "training", proc)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 130, output_of(proc)[-3000:]
    record = JobRecord.read(run_dir)
    assert record.status == "interrupted" and record.error.startswith("Interrupted: SIGINT received; exit code 130")


def test_sigterm_to_a_multirun_exits_143_with_a_summary_of_every_job(tmp_path, small_synthetic, small_synthetic_cache):
    sweep = tmp_path / "sweep"
    command = launch_command(
        small_synthetic_cache, small_synthetic, "fold=0,1,2", "trainer.max_epochs=1000", "callbacks=none", f"hydra.sweep.dir={sweep}", multirun=True
    )
    proc = start(tmp_path, command)
    wait_for(lambda: training(sweep / "0"), "job 0 trains", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 143, output_of(proc)[-3000:]
    rows = pd.read_csv(sweep / "summary.csv", dtype=str, keep_default_na=False).to_dict("records")
    statuses = [(row["job"], row["fold"], row["status"]) for row in rows]
    assert statuses == [("0", "0", "interrupted"), ("1", "1", "missing"), ("2", "2", "missing")], [row["error"] for row in rows]
    assert "SIGTERM" in rows[0]["error"]
    assert (sweep / "summary.png").stat().st_mtime >= (sweep / "0" / "metrics.json").stat().st_mtime


def test_grid_is_claimed_by_exactly_one_of_many_at_once(tmp_path):
    import threading

    from epx.analysis.grid import claim_grid, read_grid

    barrier, won = threading.Barrier(8), []

    def claim(i: int) -> None:
        barrier.wait()
        if claim_grid(tmp_path, [[f"fold={i}"]]):
            won.append(i)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1 and read_grid(tmp_path) == [[f"fold={won[0]}"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.json"]  # no temp file left


def test_two_grids_started_at_once_under_one_sweep_name_one_is_refused(tmp_path, small_synthetic, small_synthetic_cache):
    def grid(fold: str) -> subprocess.Popen:
        return start(tmp_path, launch_command(small_synthetic_cache, small_synthetic, "sweep=race", f"fold={fold}", "trainer=debug", "callbacks=none", multirun=True))

    first, second = grid("0"), grid("1")
    codes = sorted([first.wait(TIMEOUT), second.wait(TIMEOUT)])
    outputs = {proc.returncode: output_of(proc) for proc in (first, second)}
    assert codes == [0, 2], outputs
    errors = [line for line in outputs[2].splitlines() if line.startswith("epx: error:")]
    assert len(errors) == 1 and "holds another grid" in errors[0] and "sweep=<name>" in errors[0], outputs[2][-3000:]
    sweep = tmp_path / "outputs" / "sweeps" / "race"
    rows = collect_rows(sweep, include_smoke=True)  # the winner's one (smoke) job, nothing of the refused grid
    assert len(rows) == 1 and rows[0]["status"] == "ok", rows


# ---------------------------------------------------------------- the suite's own environment


def test_the_suite_pins_its_environment():
    from conftest import pin_environment

    shell = {"WANDB_MODE": "offline", "WANDB_API_KEY": "k" * 40, "WANDB_DIR": "/elsewhere", "HYDRA_FULL_ERROR": "1", "EPX_THREADS": "3", "PATH": "/bin"}
    pin_environment(shell)
    assert shell == {"WANDB_MODE": "disabled", "WANDB_SILENT": "true", "NETRC": os.devnull, "PATH": "/bin"}
    assert os.environ["WANDB_MODE"] == "disabled" and "HYDRA_FULL_ERROR" not in os.environ  # this very session


def test_a_swallowed_interrupt_still_stops_the_job_at_the_next_batch():
    import epx.job as job_module

    try:
        job_module._interrupt(signal.SIGINT, None)
    except job_module.Interrupted:
        pass  # swallowed, as a finaliser or a library's catch-all would
    check = job_module.InterruptCheck()
    with pytest.raises(job_module.Interrupted) as stop:
        check.on_train_batch_start()
    assert stop.value.code == 130
    check.on_train_batch_start()  # raised once: the job's record now says interrupted
    job_module._received.clear()


def test_an_interrupt_that_surfaces_as_another_error_is_recorded_as_interrupted(tmp_path):
    import epx.job as job_module

    job = job_module.Job(dir=tmp_path, record=JobRecord())
    with pytest.raises(job_module.Interrupted) as stop:
        with job.running():
            try:
                job_module._interrupt(signal.SIGTERM, None)
            except job_module.Interrupted as err:
                raise RuntimeError("DataLoader worker raised") from err  # a library wrapping it
    assert stop.value.code == 143 and not job_module._pending
    record = JobRecord.read(tmp_path)
    assert record.status == "interrupted" and record.error.startswith("Interrupted: SIGTERM received; exit code 143")
    assert "RuntimeError: DataLoader worker raised" in record.error
    job_module._received.clear()
