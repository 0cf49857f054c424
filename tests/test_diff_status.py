"""``epx diff`` (job dirs, sweeps, compositions) and ``epx status`` (states, ETA), and their bad input."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from conftest import REPO
from epx.analysis.diff import diff_text, flatten
from epx.analysis.grid import write_grid
from epx.analysis.status import eta, job_states, status_text
from epx.config import compose
from epx.cli import main as epx
from epx.record import JobRecord

# ---------------------------------------------------------------- two real jobs


@pytest.fixture(scope="module")
def two_jobs(small_synthetic, tmp_path_factory) -> tuple[Path, Path]:
    """Two real single-run jobs (launch.py, one batch each): seeds 0 and 1, and another
    cache dir for B (a machine path the diff must leave out)."""
    root = tmp_path_factory.mktemp("jobs")
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    procs = {}
    for name, seed in (("a", 0), ("b", 1)):  # both at once, one thread each
        procs[root / name] = subprocess.Popen(
            [
                sys.executable, "launch.py", "dataset=folder", f"dataset.root={small_synthetic}",
                f"paths.cache_dir={root / ('cache_' + name)}", "trainer=debug", "logger=none", f"seed={seed}",
                f"hydra.run.dir={root / name}",
            ],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
    for proc in procs.values():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
    return root / "a", root / "b"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = epx(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def changed_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))]


def test_diff_two_real_job_dirs(two_jobs, capsys) -> None:
    a, b = two_jobs
    code, out, err = run_cli(capsys, "diff", str(a), str(b))
    assert code == 0, err
    assert out.startswith(f"--- A: {a}\n+++ B: {b}\n")
    assert changed_lines(out) == ["-seed: 0", "+seed: 1"]  # the cache dir differs too, but is a machine path
    assert "# not compared (machine paths, run controls): paths.cache_dir differ" in out
    record_a, record_b = JobRecord.read(a), JobRecord.read(b)
    assert record_a.ok and record_b.ok
    pearson = next(line for line in out.splitlines() if line.startswith("pearson (primary)"))
    x, y = record_a.test["pearson"], record_b.test["pearson"]
    assert pearson.split()[2:] == [f"{x:.4f}", f"{y:.4f}", f"{y - x:+.4f}"]

    code, out, _ = run_cli(capsys, "diff", str(a), str(b), "--markdown")
    assert code == 0
    assert "| key | A | B |\n|---|---|---|\n| `seed` | `0` | `1` |\n" in out
    assert f"| pearson (primary) | {x:.4f} | {y:.4f} | {y - x:+.4f} |" in out
    assert "cache_dir" not in out.split("| key | A | B |")[1].split("| test metric |")[0]

    code, out, _ = run_cli(capsys, "diff", str(a), str(b), "--with-paths")
    assert "-paths.cache_dir: " in out and "+paths.cache_dir: " in out


def test_diff_a_job_with_its_own_composition(two_jobs, small_synthetic, capsys) -> None:
    """A job dir and the overrides that made it: no difference but the logger's own (none)."""
    a, _ = two_jobs
    overrides = yaml.safe_load((a / ".hydra" / "overrides.yaml").read_text())
    code, out, _ = run_cli(capsys, "diff", str(a), " ".join(overrides))
    assert code == 0
    assert changed_lines(out) == []
    assert out.startswith("no differences between the resolved configs")


# ---------------------------------------------------------------- compositions


def test_diff_two_compositions(capsys) -> None:
    code, out, err = run_cli(capsys, "diff", "experiment=chromoformer_paper", "experiment=chromexpress_distal")
    assert code == 0, err
    lines = changed_lines(out)
    for expected in (
        "-model.module.optimizer.lr: 3.0e-05", "+model.module.optimizer.lr: 0.001",
        "-trainer.max_epochs: 10", "+trainer.max_epochs: 100",
        "-model.module.scheduler._target_: torch.optim.lr_scheduler.StepLR",
        "+model.module.scheduler._target_: torch.optim.lr_scheduler.ReduceLROnPlateau",
        "-callbacks.early_stopping: null", "+callbacks.early_stopping.patience: 12",
        "-tags: [chromoformer_paper]", "+tags: [chromexpress_distal]",
    ):  # fmt: skip
        assert expected in lines, expected
    assert not any(line[1:].startswith(("paths.", "hydra.", "dataset.root")) for line in lines)
    assert "test metric" not in out  # compositions have no results

    code, out, _ = run_cli(capsys, "diff", "experiment=chromoformer_paper", "experiment=chromexpress_distal", "--markdown")
    assert code == 0
    assert "| `model.module.optimizer.lr` | `3.0e-05` | `0.001` |" in out
    assert "| `callbacks.early_stopping.patience` | *(absent)* | `12` |" in out


def test_diff_resolves_and_shows_a_repeated_key_once(capsys) -> None:
    code, out, _ = run_cli(capsys, "diff", "mark=H3K4me3", "mark=all model=chromoformer")
    lines = changed_lines(out)
    assert "-model.net.n_marks: 1" in lines and "+model.net.n_marks: 7" in lines  # ${n_marks:${mark}} resolved
    assert not any(line[1:].startswith("data.inputs.") for line in lines)  # data.inputs: ${model.inputs}: shown at model.inputs
    assert "+model.inputs.i_max: 8" in lines


def test_machine_paths_are_left_out(capsys) -> None:
    a = "dataset=folder dataset.root=/data/a paths.data_dir=/scratch/x"
    b = "dataset=folder dataset.root=/mnt/b paths.data_dir=/home/me/data"
    code, out, _ = run_cli(capsys, "diff", a, b)
    assert code == 0 and changed_lines(out) == []
    assert "no differences" in out and "dataset.root" in out and "paths.data_dir" in out  # named in the note
    flat = flatten(compose(a.split()))
    # derived paths: the cache dir under data_dir, the spec's copy of the root, the checkpoint dir
    derived = {"data.cache_dir", "dataset.spec.root", "callbacks.checkpoint.dirpath"}
    assert {"dataset.root", "paths.data_dir", "paths.cache_dir", *derived} <= set(flat.machine)
    assert not any(key.startswith(("paths.", "dataset.root")) for key in flat.values)
    code, out, _ = run_cli(capsys, "diff", a, b, "--with-paths")
    assert "-dataset.root: /data/a" in changed_lines(out) and "+dataset.root: /mnt/b" in changed_lines(out)


def test_an_absolute_path_under_a_machine_dir_is_left_out() -> None:
    flat = flatten(compose(["paths.data_dir=/scratch/me", "+extra_file=/scratch/me/genes.tsv", "+other=/elsewhere/x.tsv"]))
    assert "extra_file" in flat.machine and flat.values["other"] == "/elsewhere/x.tsv"


# ---------------------------------------------------------------- two sweeps


def write_composed_job(sweep: Path, name: str, overrides: list[str], record: dict | None) -> Path:
    """A job dir as Hydra leaves it: .hydra/config.yaml (the composed, unresolved config),
    .hydra/overrides.yaml, and a metrics.json when given."""
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(compose(overrides), job / ".hydra" / "config.yaml")
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if record is not None:
        (job / "metrics.json").write_text(json.dumps(record))
    return job


def ok_record(overrides: list[str], pearson: float, **extra) -> dict:
    values = dict(item.split("=", 1) for item in overrides)
    record = JobRecord(
        cell=values.get("cell", "E003"), mark="H3K4me3", marks=["H3K4me3"], fold=int(values.get("fold", 0)),
        model="promoter_cnn", task="regression", seed=0, primary_metric="pearson",
        test={"pearson": pearson, "mse": 1.0}, status="ok", wall_seconds=extra.pop("wall_seconds", 10.0), overrides=overrides,
    )  # fmt: skip
    return {**record.to_dict(), **extra}


@pytest.fixture()
def two_sweeps(tmp_path: Path) -> tuple[Path, Path]:
    """A: cell=E003,E114 × fold=0,1, all ok. B: cell=E003 × fold=0,1,2 with another learning
    rate; its fold 1 job never started."""
    a, b = tmp_path / "A", tmp_path / "B"
    jobs_a = [[f"cell={cell}", f"fold={fold}"] for cell in ("E003", "E114") for fold in (0, 1)]
    jobs_b = [["cell=E003", f"fold={fold}", "model.module.optimizer.lr=0.01"] for fold in (0, 1, 2)]
    write_grid(a, jobs_a)
    write_grid(b, jobs_b)
    for num, overrides in enumerate(jobs_a):
        write_composed_job(a, str(num), overrides, ok_record(overrides, 0.5 + 0.1 * num))
    write_composed_job(b, "0", jobs_b[0], ok_record(jobs_b[0], 0.8))
    write_composed_job(b, "2", jobs_b[2], ok_record(jobs_b[2], 0.7))
    return a, b


def test_diff_two_sweeps(two_sweeps, capsys) -> None:
    a, b = two_sweeps
    code, out, err = run_cli(capsys, "diff", str(a), str(b))
    assert code == 0, err
    assert f"# A: {a} (4 jobs: 4 ok)" in out and f"# B: {b} (3 jobs: 2 ok, 1 missing)" in out
    assert "# 2 jobs in both, matched by cell, fold; 2 only in A, 1 only in B" in out
    assert "# only in A: job 2 (cell=E114 fold=0; ok)" in out and "# only in A: job 3 (cell=E114 fold=1; ok)" in out
    assert "# only in B: job 2 (cell=E003 fold=2; ok)" in out
    assert "# in the 1 job compared:" in out  # fold 1 is missing in B: not compared
    assert changed_lines(out) == ["-model.module.optimizer.lr: 0.001", "+model.module.optimizer.lr: 0.01"]
    assert "# cell=E003 fold=1: no config in B (the job never started)" in out
    table = next(block for block in out.split("\n\n") if block.startswith("job ")).splitlines()
    assert table[0].split() == ["job", "A", "status", "A", "pearson", "B", "status", "B", "pearson", "B", "-", "A"]
    assert table[1].split() == ["cell=E003", "fold=0", "ok", "0.5000", "ok", "0.8000", "+0.3000"]
    assert table[2].split() == ["cell=E003", "fold=1", "ok", "0.6000", "missing", "—", "—"]
    assert "mean test pearson over the 1 job finished in both: A 0.5000, B 0.8000 (+0.3000)" in out

    code, out, _ = run_cli(capsys, "diff", str(a), str(b), "--markdown")
    assert code == 0
    assert "- job 2: `cell=E114 fold=0` (ok)" in out
    assert "| `model.module.optimizer.lr` | `0.001` | `0.01` |" in out
    assert "| `cell=E003 fold=0` | ok | 0.5000 | ok | 0.8000 | +0.3000 |" in out


def test_diff_same_sweep_has_no_config_difference(two_sweeps) -> None:
    a, _ = two_sweeps
    out = diff_text(str(a), str(a))
    assert "# 4 jobs in both" in out and "# no differences in all 4 jobs compared" in out


# ---------------------------------------------------------------- bad input


def test_diff_bad_input_is_one_line_and_exit_2(tmp_path, two_sweeps, two_jobs, capsys) -> None:
    sweep, _ = two_sweeps
    job, _ = two_jobs
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "file.txt").write_text("x")
    cases = {
        (str(empty), str(job)): "neither a job dir",
        (str(tmp_path / "file.txt"), str(job)): "neither a job dir",
        (str(tmp_path / "nope"), str(job)): "no such job or sweep dir",
        ("experiment=nope", "experiment=chromoformer_paper"): "does not compose",
        ("model.net.no_such_key=1", ""): "does not compose",
        (str(sweep), str(job)): "a sweep is compared only with a sweep",
    }
    for (a, b), message in cases.items():
        code, out, err = run_cli(capsys, "diff", a, b)
        assert code == 2, (a, b, out)
        assert out == "" and len(err.strip().splitlines()) == 1 and message in err, err


def test_status_of_something_that_is_not_a_sweep(tmp_path, capsys) -> None:
    code, out, err = run_cli(capsys, "status", str(tmp_path / "nope"))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "does not exist" in err
    code, _, err = run_cli(capsys, "status", str(tmp_path))
    assert code == 2 and "not a Hydra sweep dir" in err
    code, _, err = run_cli(capsys, "status", str(tmp_path), "--parallel", "0")
    assert code == 2 and "--parallel" in err


# ---------------------------------------------------------------- epx status


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture()
def status_sweep(tmp_path: Path) -> Path:
    """7 jobs: ok (100 s), ok (200 s), reused (300 s), running elsewhere, killed, failed, missing."""
    sweep = tmp_path / "grid"
    jobs = [[f"fold={fold}", f"seed={seed}"] for fold in range(7) for seed in (0,)]
    write_grid(sweep, jobs)
    records = {
        0: ok_record(jobs[0], 0.7, wall_seconds=100.0),
        1: ok_record(jobs[1], 0.8, wall_seconds=200.0),
        2: ok_record(jobs[2], 0.6, wall_seconds=300.0, reused=True),
        3: {**ok_record(jobs[3], 0.0), "status": "running", "test": {}, "wall_seconds": None, "host": "node-elsewhere", "pid": 1},
        4: {**ok_record(jobs[4], 0.0), "status": "running", "test": {}, "wall_seconds": None, "host": socket.gethostname(), "pid": dead_pid()},
        5: {**ok_record(jobs[5], 0.0), "status": "failed", "test": {}, "wall_seconds": 5.0, "error": "RuntimeError: CUDA out of memory"},
    }
    for num, record in records.items():
        job = sweep / str(num)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(jobs[num]))
        (job / "metrics.json").write_text(json.dumps(record))
    return sweep


def test_status_states_and_eta(status_sweep, capsys) -> None:
    rows = job_states(status_sweep)
    assert [row["state"] for row in rows] == ["ok", "ok", "reused", "running", "killed", "failed", "missing"]
    assert [row["status"] for row in rows][2] == "ok"  # collect's status is unchanged; reused is status's own
    estimate = eta(rows, parallel=1)
    # mean wall time of the 3 finished jobs (200 s) x 4 remaining (running, killed, failed, missing)
    assert (estimate.remaining, estimate.finished_timed, estimate.per_job, estimate.seconds) == (4, 3, 200.0, 800.0)
    assert eta(rows, parallel=2).seconds == 400.0

    code, out, err = run_cli(capsys, "status", str(status_sweep), "--parallel", "2")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"{status_sweep}: 7 jobs: 2 ok, 1 reused, 1 running, 1 killed, 1 failed, 0 unreadable, 1 missing"
    assert lines[1] == "ETA: 6m 40s for 4 remaining jobs (3m 20s per job, the mean of 3 finished, 2 at a time)"
    table = lines[3:]
    assert table[0].split() == ["job", "state", "cell", "mark", "fold", "model", "pearson", "wall", "error"]
    assert table[1].split() == ["0", "ok", "E003", "H3K4me3", "0", "promoter_cnn", "0.7000", "1m", "40s"]
    assert table[3].split()[:2] == ["2", "reused"] and "0.6000" in table[3]
    assert table[5].split()[:2] == ["4", "killed"] and "ended without finishing" in table[5]
    assert table[6].split()[:2] == ["5", "failed"] and "CUDA out of memory" in table[6]
    assert table[7].split() == ["6", "missing", "6"]  # never started: only its overrides say what it is

    code, out, _ = run_cli(capsys, "status", str(status_sweep), "--only", "failed,missing")
    assert [line.split()[1] for line in out.splitlines()[4:]] == ["failed", "missing"]


def test_status_eta_unknown_then_done(tmp_path) -> None:
    sweep = tmp_path / "grid"
    jobs = [["fold=0"], ["fold=1"]]
    write_grid(sweep, jobs)
    assert "ETA: unknown (2 jobs to run; no finished job has a wall time yet)" in status_text(sweep)
    for num, overrides in enumerate(jobs):
        job = sweep / str(num)
        job.mkdir(parents=True)
        (job / "metrics.json").write_text(json.dumps(ok_record(overrides, 0.5)))
    text = status_text(sweep)
    assert text.splitlines()[0].endswith("2 jobs: 2 ok, 0 reused, 0 running, 0 killed, 0 failed, 0 unreadable, 0 missing")
    assert "ETA: done (every job finished)" in text
