"""Launcher presets (conf/hydra/launcher/, issue 12): grids through submitit's local
executor (2 jobs) and joblib (4 jobs), each job's torch threads, the SLURM batch scripts submitit renders
(no cluster: a fake sbatch/srun on PATH), and bad input (unknown launcher, missing submitit)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

import epx.selection  # noqa: F401  (resolvers)
from conftest import REPO
from epx.analysis.callback import GridError, check_launcher
from epx.threads import cpus_per_job, launcher_threads

GRID = ["cell=E003,E114", "fold=0,1"]


def launch(args, *, cwd, env=None, timeout=300):
    full_env = {**os.environ, "WANDB_MODE": "disabled", **(env or {})}
    return subprocess.run(
        [sys.executable, str(REPO / "launch.py"), "-m", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def data_args(folder: Path, cache: Path) -> list[str]:
    return ["dataset=folder", f"dataset.root={folder}", f"paths.cache_dir={cache}", "trainer=cpu", "trainer.max_epochs=1", "logger=none"]  # not smoke: in summary.csv


# submitit's local executor starts one process per job (each imports torch and Lightning
# again), so its grid is the two cells of fold 0; joblib runs the whole 2 x 2 grid on 2 workers
@pytest.mark.parametrize(
    "launcher,folds",
    [(["hydra/launcher=local"], (0,)), (["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], (0, 1))],
    ids=["local", "joblib"],
)
def test_a_grid_through_a_launcher(tmp_path, small_synthetic, small_synthetic_cache, launcher, folds):
    grid = ["cell=E003,E114", "fold=" + ",".join(map(str, folds))]
    proc = launch([*launcher, "sweep=grid", *grid, *data_args(small_synthetic, small_synthetic_cache)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = tmp_path / "outputs" / "sweeps" / "grid"
    table = pd.read_csv(sweep / "summary.csv")
    assert len(table) == 2 * len(folds) and set(table.status) == {"ok"} and table.test_pearson.notna().all()
    assert set(zip(table.cell, table.fold)) == {(c, f) for c in ("E003", "E114") for f in folds}
    # one dir per job, named by its overrides (machine paths left out)
    assert sorted(table.job) == sorted(f"cell={c},dataset=folder,fold={f},trainer.max_epochs=1,trainer=cpu" for c in ("E003", "E114") for f in folds)
    # 2 CPUs here or more: local gives each job cpus_per_task=1 thread, joblib CPUs // n_jobs
    expected = 1 if launcher[0].endswith("local") else cpus_per_job(2)
    for job in table.job:
        assert f"torch threads: {expected}" in (sweep / job / "launch.log").read_text()


def test_unknown_launcher_lists_the_valid_ones(tmp_path):
    proc = launch(["hydra/launcher=pbs", "cell=E003"], cwd=tmp_path, timeout=120)
    assert proc.returncode == 1
    assert "Could not find 'hydra/launcher/pbs'" in proc.stderr
    listed = proc.stderr.split("Available options in 'hydra/launcher':", 1)[1].split("Config search path", 1)[0].split()
    assert {"basic", "joblib", "local", "slurm", "slurm_ddp"} <= set(listed)


def test_slurm_without_submitit_says_what_to_install(tmp_path):
    """submitit hidden from the interpreter by a meta-path hook (sitecustomize), as on a machine without it."""
    hook = tmp_path / "hide"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        textwrap.dedent(
            """
            import sys

            class HideSubmitit:
                def find_spec(self, name, path=None, target=None):
                    if name == "submitit" or name.startswith("submitit."):
                        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                    return None

            sys.meta_path.insert(0, HideSubmitit())
            """
        )
    )
    env = {"PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")])}
    proc = launch(["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "sweep=s", "cell=E003"], cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("epx: error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    assert "hydra/launcher=slurm" in errors[0] and "No module named 'submitit'" in errors[0]
    assert "pip install hydra-submitit-launcher==1.2.0 'submitit>=1.5,<2'" in errors[0]
    assert not (tmp_path / "outputs" / "sweeps" / "s").exists()


@pytest.fixture
def fake_slurm(tmp_path) -> dict:
    """sbatch and srun that refuse (no cluster): submitit writes the batch script first."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sbatch", "srun"):
        path = bin_dir / tool
        path.write_text("#!/bin/sh\necho 'no SLURM cluster here (epx test)' >&2\nexit 1\n")
        path.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def batch_script(sweep: Path) -> str:
    scripts = list((sweep / ".submitit").glob("*submission_file_*.sh"))
    assert len(scripts) == 1, scripts
    return scripts[0].read_text()


def test_slurm_preset_renders_an_array_with_gpu_and_requeue(tmp_path, fake_slurm):
    proc = launch(["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.account=lab", "sweep=cluster", *GRID], cwd=tmp_path, env=fake_slurm, timeout=120)
    assert "no SLURM cluster here" in proc.stderr, proc.stderr[-3000:]
    sweep = tmp_path / "outputs" / "sweeps" / "cluster"
    script = batch_script(sweep)
    for line in (
        "#SBATCH --partition=gpu", "#SBATCH --account=lab", "#SBATCH --gpus-per-node=1", "#SBATCH --ntasks-per-node=1",
        "#SBATCH --nodes=1", "#SBATCH --cpus-per-task=8", "#SBATCH --array=0-3%4", "#SBATCH --time=240",
        "#SBATCH --signal=USR2@120", "#SBATCH --open-mode=append", "export OMP_NUM_THREADS=8",
    ):  # fmt: skip
        assert line in script.splitlines(), (line, script)

    # Each array element is a pickled call of the plugin's launcher on one job's overrides, with
    # max_num_timeout requeues; on USR2 submitit pickles launcher.checkpoint(...), the same call
    # with the same arguments, so a requeued job composes the same config into the same dir.
    from submitit.core.utils import DelayedSubmission

    submissions = [DelayedSubmission.load(path) for path in (sweep / ".submitit").glob("*.pkl")]
    assert sorted(d.args[2] for d in submissions) == [0, 1, 2, 3]
    for delayed in submissions:
        assert type(delayed.function).__name__ == "SlurmLauncher" and delayed._timeout_countdown == 3
        again = delayed.function.checkpoint(*delayed.args, **delayed.kwargs)
        assert again.function is delayed.function and again.args == delayed.args
    import json

    grid = json.loads((sweep / "grid.json").read_text())["jobs"]
    assert sorted(tuple(d.args[0]) for d in submissions) == sorted(tuple(job) for job in grid)


def test_slurm_ddp_preset_takes_tasks_and_gpus_from_the_trainer(tmp_path, fake_slurm):
    args = ["hydra/launcher=slurm_ddp", "hydra.launcher.partition=gpu", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2", "cell=E003,E114"]
    proc = launch(args, cwd=tmp_path, env=fake_slurm, timeout=120)
    assert "no SLURM cluster here" in proc.stderr, proc.stderr[-3000:]
    (sweep,) = (tmp_path / "outputs" / "multirun").glob("*/*")
    script = batch_script(sweep).splitlines()
    for line in ("#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4", "#SBATCH --nodes=2", "#SBATCH --array=0-1%2"):
        assert line in script, (line, script)


def hydra_config(*overrides):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def test_slurm_ddp_with_all_gpus_is_refused_before_submitting():
    cfg = hydra_config("hydra/launcher=slurm_ddp", "trainer=ddp")  # trainer.devices=-1: "all GPUs"
    with pytest.raises(GridError, match=r"tasks_per_node=-1 .*trainer.devices=4"):
        check_launcher(cfg)


def test_each_launcher_gives_its_jobs_threads(monkeypatch):
    monkeypatch.delenv("EPX_THREADS", raising=False)
    assert cpus_per_job(4, cpus=16) == 4 and cpus_per_job(-1, cpus=16) == 1 and cpus_per_job(-2, cpus=16) == 1
    assert cpus_per_job(3, cpus=2) == 1 and cpus_per_job(-8, cpus=16) == 1
    joblib = {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": 1}
    assert launcher_threads(joblib) == str(cpus_per_job(1))
    slurm = hydra_config("hydra/launcher=slurm").hydra.launcher
    assert launcher_threads(slurm) == "8" and launcher_threads(hydra_config("hydra/launcher=local").hydra.launcher) == "1"
    assert launcher_threads(hydra_config().hydra.launcher) == ""  # basic: torch's default
    monkeypatch.setenv("EPX_THREADS", "3")
    assert launcher_threads(hydra_config().hydra.launcher) == "3"
