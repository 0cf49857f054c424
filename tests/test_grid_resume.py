"""Resumable, idempotent grids (sweep=<name>, issue 12): a grid killed with SIGKILL mid-training
and run again reuses its finished jobs and resumes the killed one from last.ckpt to the same
test metrics as an uninterrupted run, in the same W&B run; submitit's requeue (the local
executor, as on SLURM) brings a preempted job back into its dir the same way; a sweep dir of
another grid is refused before any job runs. Plus the reuse/resume/refuse rules in-process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from conftest import REPO
from epx.analysis.collect import collect_rows
from epx.analysis.grid import job_name, job_subdir
from epx.config import compose
from epx.errors import InputError
from epx.job import checkpoint_readable, config_digest, plan
from epx.record import JobRecord

# 6 short epochs with a checkpoint each: a job is frozen (SIGSTOP) at its first whole
# last.ckpt and killed in the middle, with early stopping out of the way; one torch thread
# so every run adds up the same way.
TRAIN = [
    "trainer.max_epochs=6", "callbacks.early_stopping.patience=100", "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false", "threads=1", "logger=wandb",
]  # fmt: skip
GRID = ["fold=0,1"]


def env() -> dict:
    environment = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    environment.pop("WANDB_API_KEY", None)
    return environment


def command(cache: Path, folder: Path, *args: str) -> list[str]:
    data = ["dataset=folder", f"dataset.root={folder}", f"paths.cache_dir={cache}"]
    return [sys.executable, str(REPO / "launch.py"), "-m", *args, *data, *TRAIN]


def start(root: Path, cache: Path, folder: Path, *args: str) -> subprocess.Popen:
    log = open(root / f"launch-{time.time_ns()}.log", "w")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(command(cache, folder, *args), cwd=root, env=env(), stdout=log, stderr=subprocess.STDOUT, text=True)


def run(root: Path, cache: Path, folder: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(command(cache, folder, *args), cwd=root, env=env(), capture_output=True, text=True, timeout=timeout)


def only_dir(sweep: Path, part: str) -> Path:
    dirs = [d for d in sweep.glob(f"*{part}*") if d.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def wait_for(condition, what: str, proc: subprocess.Popen | None = None, timeout: float = 240.0) -> None:
    end = time.time() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the launch ended (exit {proc.returncode}) before {what}")
        if time.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def last_ckpt(job: Path) -> Path:
    return job / "checkpoints" / "last.ckpt"


def freezer(job: Path, pid: int):
    """A condition for ``wait_for``: process ``pid`` frozen (SIGSTOP) at ``job``'s first
    readable last.ckpt, so a signal sent next cannot arrive after training has ended on a
    loaded machine; a checkpoint caught mid-write is let go on until it is whole."""

    def frozen_with_checkpoint() -> bool:
        if not last_ckpt(job).is_file():
            return False
        os.kill(pid, signal.SIGSTOP)
        if checkpoint_readable(last_ckpt(job)):
            return True
        os.kill(pid, signal.SIGCONT)
        return False

    return frozen_with_checkpoint


@pytest.fixture(scope="module")
def study(small_synthetic, small_synthetic_cache, tmp_path_factory) -> dict:
    """An uninterrupted reference run of the fold-1 job (sweep=ref), and beside it the grid
    fold=0,1 (sweep=study) killed with SIGKILL while fold 1 trains, then launched again."""
    root, cache = tmp_path_factory.mktemp("resume"), small_synthetic_cache
    reference = start(root, cache, small_synthetic, "sweep=ref", "fold=1")
    grid = start(root, cache, small_synthetic, "sweep=study", *GRID)
    sweep = root / "outputs" / "sweeps" / "study"
    wait_for(lambda: any(sweep.glob("*fold=1*")), "job fold=1 started", grid)
    killed = only_dir(sweep, "fold=1")
    wait_for(freezer(killed, grid.pid), "fold=1 wrote last.ckpt", grid)  # the basic launcher: jobs in its process
    grid.send_signal(signal.SIGKILL)  # mid-training: 5 epochs to go (a stopped process dies of SIGKILL too)
    grid.wait(30)
    first = JobRecord.read(killed)
    done = only_dir(sweep, "fold=0")
    before = {"record": JobRecord.read(done), "best_mtime": (done / "checkpoints" / "best.ckpt").stat().st_mtime}
    rows_killed = {row["job"]: row["status"] for row in collect_rows(sweep)}
    assert reference.wait(300) == 0, (root / "outputs").as_posix()
    rerun = run(root, cache, small_synthetic, "sweep=study", *GRID)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    return {
        "root": root, "cache": cache, "folder": small_synthetic, "sweep": sweep, "killed": killed, "done": done, "first": first,
        "before": before, "rows_killed": rows_killed, "rerun": rerun,
        "reference": JobRecord.read(only_dir(root / "outputs" / "sweeps" / "ref", "fold=1")),
    }  # fmt: skip


def test_killed_grid_is_summarized_killed_before_the_rerun(study):
    assert study["first"].status == "running"
    assert study["rows_killed"] == {study["done"].name: "ok", study["killed"].name: "killed"}


def test_rerun_reuses_the_finished_job(study):
    done = JobRecord.read(study["done"])
    before = study["before"]["record"]
    assert done.status == "ok" and done.reused is True and before.reused is False
    assert done.test == before.test and done.wall_seconds == before.wall_seconds and done.config_digest == before.config_digest
    assert (study["done"] / "checkpoints" / "best.ckpt").stat().st_mtime == study["before"]["best_mtime"]  # not trained again
    assert f"job {study['done']}: reused" in study["rerun"].stdout + study["rerun"].stderr


def test_killed_job_resumes_from_last_ckpt_to_the_uninterrupted_metrics(study):
    resumed = JobRecord.read(study["killed"])
    assert resumed.status == "ok" and resumed.reused is False
    assert resumed.extra["resumed_from"] == str(last_ckpt(study["killed"]))
    assert f"Restoring states from the checkpoint path at {last_ckpt(study['killed'])}" in study["rerun"].stdout + study["rerun"].stderr
    assert resumed.config_digest == study["reference"].config_digest
    assert resumed.test == study["reference"].test  # exactly: CPU, seeded, one thread, RNG state restored


def test_resumed_job_continues_the_first_attempts_wandb_run(study):
    run_id = study["first"].wandb["id"]
    assert run_id.startswith("epx-") and JobRecord.read(study["killed"]).wandb["id"] == run_id
    attempts = sorted(p.name for p in (study["killed"] / "wandb").glob("offline-run-*"))
    assert len(attempts) == 2 and all(name.endswith(f"-{run_id}") for name in attempts), attempts


def test_summary_of_override_named_job_dirs(study):
    sweep = study["sweep"]
    table = pd.read_csv(sweep / "summary.csv")
    assert len(table) == 2 and set(table.status) == {"ok"} and table.test_pearson.notna().all()
    grid = json.loads((sweep / "grid.json").read_text())["jobs"]
    exclude = list(OmegaConf.load(sweep / "multirun.yaml").hydra.job.config.override_dirname.exclude_keys)  # ${epx.run_override_keys:}
    names = [job_subdir(job, exclude) for job in grid]  # the callback's names = Hydra's dirs
    assert names == [study["done"].name, study["killed"].name] == list(table.job)
    assert [row["job"] for row in collect_rows(sweep)] == names


def test_a_sweep_dir_of_another_grid_is_refused(study):
    sweep, grid_json = study["sweep"], (study["sweep"] / "grid.json").read_text()
    proc = run(study["root"], study["cache"], study["folder"], "sweep=study", "fold=0,2")
    assert proc.returncode == 2, proc.stderr[-2000:]
    (error,) = [line for line in proc.stderr.splitlines() if line.startswith("epx: error:")]
    assert f"{Path('outputs/sweeps/study')} holds another grid" in error and "fold=2" in error
    assert "another sweep=<name>" in error and "rerun=true" in error
    assert not any(sweep.glob("*fold=2*")) and (sweep / "grid.json").read_text() == grid_json


def test_a_job_dir_of_another_config_is_refused_untouched(study):
    """Same overrides, different resolved config (as after a change to conf/): faked by
    changing the digest the finished job recorded. Part of the grid may be launched again."""
    done = study["done"]
    record_text = (done / "metrics.json").read_text()
    config_text = (done / ".hydra" / "config.yaml").read_text()
    record = JobRecord.read(done)
    record.config_digest = "0" * 64
    record.write(done)
    try:
        proc = run(study["root"], study["cache"], study["folder"], "sweep=study", "fold=0")
        assert proc.returncode == 2, proc.stderr[-2000:]
        (error,) = [line for line in proc.stderr.splitlines() if line.startswith("epx: error:")]
        assert f"{Path('outputs/sweeps/study') / done.name} already holds a job of another grid" in error
        assert "different resolved config" in error and "rerun=true" in error
        assert (done / ".hydra" / "config.yaml").read_text() == config_text
        assert JobRecord.read(done).config_digest == "0" * 64
    finally:
        (done / "metrics.json").write_text(record_text)


def test_submitit_requeue_brings_a_preempted_job_back_and_it_resumes(study):
    """hydra/launcher=local: USR2 to the job (what SLURM sends before a time limit or on
    preemption, --signal=USR2@120) makes submitit checkpoint the launcher call, requeue it and
    run it again; the job composes the same config into the same dir and resumes."""
    root = study["root"]
    launch = start(root, study["cache"], study["folder"], "hydra/launcher=local", "sweep=requeue", "fold=1")
    sweep = root / "outputs" / "sweeps" / "requeue"
    wait_for(lambda: any(sweep.glob("*fold=1*")), "the job started", launch)
    job = only_dir(sweep, "fold=1")
    wait_for(lambda: (job / "metrics.json").is_file(), "the job's record", launch)
    pid = JobRecord.read(job).pid
    wait_for(freezer(job, pid), "last.ckpt", launch)  # the tiny job's last 5 epochs take about a second
    first = JobRecord.read(job)  # saved again with the W&B run id before training began
    assert first.pid == pid
    os.kill(pid, signal.SIGUSR2)
    os.kill(pid, signal.SIGCONT)
    assert launch.wait(300) == 0
    record = JobRecord.read(job)
    assert record.status == "ok" and record.pid != first.pid and record.extra["resumed_from"] == str(last_ckpt(job))
    assert record.wandb["id"] == first.wandb["id"]
    assert record.test == study["reference"].test
    logs = "".join(p.read_text() for p in (sweep / ".submitit").glob("*/*_log.*"))
    assert "Caught signal SIGUSR2" in logs and "Requeued job" in logs


# ---------------------------------------------------------------- the rules, in-process


@pytest.fixture
def job_cfg(tmp_path):
    def make(*overrides, named=True):
        return compose(["dataset=folder", f"dataset.root={tmp_path / 'data'}", "logger=none", *(["sweep=s"] if named else []), *overrides])

    return make


def write_prior(job_dir: Path, cfg, **fields) -> JobRecord:
    record = JobRecord(cell="E003", mark="H3K4me3", fold=0, config_digest=config_digest(cfg), **fields)
    job_dir.mkdir(parents=True, exist_ok=True)
    record.write(job_dir)
    return record


def fake_checkpoint(job_dir: Path, complete: bool = True) -> Path:
    import torch

    path = last_ckpt(job_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": 3}, path)
    if not complete:
        path.write_bytes(path.read_bytes()[:50])
    return path


def test_digest_ignores_machine_paths_and_logging(job_cfg):
    base = config_digest(job_cfg())
    assert config_digest(job_cfg("paths.cache_dir=/elsewhere", "paths.data_dir=/x", "threads=3", "rerun=true", "tags=[a]")) == base
    assert config_digest(job_cfg("logger=wandb", named=False)) == base
    assert config_digest(job_cfg("model.module.optimizer.lr=0.5")) != base
    assert config_digest(job_cfg("fold=1")) != base and config_digest(job_cfg("trainer.max_epochs=3")) != base


def test_plan_reuses_resumes_and_refuses(tmp_path, job_cfg):
    cfg = job_cfg()
    job = tmp_path / "job"
    fresh = plan(cfg, job)
    assert fresh.action == "fresh" and fresh.wandb_id.startswith("epx-") and fresh.wandb_id != plan(cfg, job).wandb_id

    write_prior(job, cfg, status="ok", test={"pearson": 0.5}, wandb={"id": "abc"})
    step = plan(cfg, job)
    assert step.action == "reuse" and step.record.test == {"pearson": 0.5}
    assert JobRecord.read(job).reused is True
    assert plan(job_cfg(named=False), job).action == "fresh"  # timestamped grids never reuse

    rerun = plan(job_cfg("rerun=true"), job)
    assert rerun.action == "fresh" and rerun.clear and rerun.wandb_id != "abc"

    with pytest.raises(InputError, match=rf"{job} already holds a job of another grid .*rerun=true"):
        plan(job_cfg("trainer.max_epochs=3"), job)
    write_prior(job, cfg, status="ok")
    record = JobRecord.read(job)
    record.config_digest = None
    record.write(job)
    with pytest.raises(InputError, match="no config digest"):
        plan(cfg, job)

    write_prior(job, cfg, status="failed", wandb={"id": "first-attempt"})
    ckpt = fake_checkpoint(job)
    step = plan(cfg, job)
    assert step.action == "resume" and step.checkpoint == str(ckpt) and step.wandb_id == "first-attempt"
    fake_checkpoint(job, complete=False)  # cut short by a kill during the write
    step = plan(cfg, job)  # trains from the start: a new W&B run, not steps written over the old one's
    assert step.action == "fresh" and step.wandb_id not in (None, "first-attempt")


def test_plan_refuses_a_job_another_live_process_is_training(tmp_path, job_cfg):
    cfg = job_cfg()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_prior(tmp_path / "job", cfg, status="running", host=socket.gethostname(), pid=sleeper.pid)
        with pytest.raises(InputError, match=rf"being trained right now by process {sleeper.pid}"):
            plan(cfg, tmp_path / "job")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert plan(cfg, tmp_path / "job").action == "fresh"  # its process is gone: killed, start again


def test_job_names_are_one_folder_and_distinct():
    assert job_name("") == "default"
    assert job_name("cell=E003,dataset.files.signal=a/b%c") == "cell=E003,dataset.files.signal=a%2Fb%25c"
    assert job_name("x=a/b") != job_name("x=a%2Fb")
    long = job_name("model.net.hidden=" + "9" * 400)
    assert len(long.encode()) <= 200 and "/" not in long and long != job_name("model.net.hidden=" + "9" * 401)
    assert job_subdir(["mark=H3K4me3+H3K27ac", "cell=E003", "paths.cache_dir=/c", "sweep=s"], ["sweep", "paths.cache_dir"]) == (
        "cell=E003,mark=H3K4me3+H3K27ac"
    )
