"""Training jobs end to end on a small synthetic folder (in-process, fast_dev_run-style)."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import open_dict

from conftest import REPO
from epx.config import compose
from epx.errors import InputError
from epx.record import SCHEMA_VERSION, JobRecord
from epx.run import train


def job_cfg(tmp_path, folder, *overrides, cache=None):
    """An in-process job in ``tmp_path / "job"``; its signal cache ``cache``, by default the
    session's shared one (``tmp_path``'s parent is pytest's base temp dir: conftest's
    ``small_synthetic_cache``)."""
    cfg = compose(
        [
            "dataset=folder",
            f"dataset.root={folder}",
            f"paths.data_dir={tmp_path / 'data'}",
            f"paths.cache_dir={cache or tmp_path.parent / 'shared_cache'}",
            "logger=none",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
            *overrides,
        ]
    )
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "job")
    return cfg


def read_metrics(tmp_path) -> JobRecord:
    return JobRecord.read(tmp_path / "job")


@pytest.mark.parametrize("model", ["promoter_cnn", "linear"])
@pytest.mark.parametrize("task", ["regression", "classification"])
def test_fast_dev_run_each_model_and_task(tmp_path, small_synthetic, model, task):
    record = train(job_cfg(tmp_path, small_synthetic, f"model={model}", f"task={task}", "trainer=debug", "mark=H3K4me3+H3K27ac"))
    on_disk = read_metrics(tmp_path)
    assert on_disk.status == "ok" and on_disk.n_params == record.n_params > 0
    assert on_disk.marks == ["H3K4me3", "H3K27ac"] and on_disk.mark == "H3K4me3+H3K27ac"
    assert set(on_disk.test) >= ({"pearson", "spearman", "mse"} if task == "regression" else {"auroc", "auprc", "accuracy"})
    assert sum(on_disk.n_genes.values()) > 0
    assert on_disk.schema_version == SCHEMA_VERSION and on_disk.primary_metric == ("pearson" if task == "regression" else "auroc")
    assert on_disk.primary_value == on_disk.test[on_disk.primary_metric]
    folds = json.loads((tmp_path / "job" / "folds.json").read_text())
    assert folds["scheme"] == "chromoformer" and set(folds["genes"]) == {"train", "val", "test"}
    preds = pd.read_csv(tmp_path / "job" / "predictions.csv")
    assert list(preds.columns) == ["gene_id", "chrom", "split", "target", "prediction"]
    assert set(preds.split) == {"train", "val", "test"} and preds.gene_id.is_unique


def test_same_seed_same_metrics_including_seed_zero(tmp_path, small_synthetic, small_synthetic_cache):
    runs = []
    for i in range(2):
        d = tmp_path / f"run{i}"
        runs.append(train(job_cfg(d, small_synthetic, "seed=0", "trainer.max_epochs=2", "callbacks=none", cache=small_synthetic_cache)).test)
    assert runs[0] == runs[1]
    other = train(job_cfg(tmp_path / "run2", small_synthetic, "seed=1", "trainer.max_epochs=2", "callbacks=none", cache=small_synthetic_cache)).test
    assert other != runs[0]


def test_failing_job_records_status_and_reraises(tmp_path, small_synthetic):
    with pytest.raises(InputError, match="cell E003, mark H3K9me3"):
        train(job_cfg(tmp_path, small_synthetic, "mark=H3K9me3", "dataset.files.signal='signals/{cell}-{mark}.missing.bigwig'"))
    record = read_metrics(tmp_path)
    assert record.status == "failed" and "H3K9me3" in record.error and record.wall_seconds is not None


def test_unknown_cell_for_a_folder_lists_its_cells(tmp_path, small_synthetic):
    with pytest.raises(InputError, match="valid cells: E003, E114"):
        train(job_cfg(tmp_path, small_synthetic, "cell=E005"))


BAD_OVERRIDES = {"mark=H3K4me2": "valid marks: H3K4me1, H3K4me3, H3K9me3", "cell=E999": "valid cells: E003", "fold=9": "valid folds: 0, 1, 2, 3"}

# One interpreter imports the app's modules once (torch and Lightning: seconds on 2 cores),
# then forks a process per command line that runs launch.py as `python launch.py ARGS` does:
# its own argv, stdout and stderr to files beside stderr, and whatever ends it (sys.exit, an
# uncaught exception) ends that process as it would end the interpreter; its exit status is
# printed, one a line.
FORKING_LAUNCH = """
import json, os, runpy, sys
import epx.cli, epx.run
for args, stderr in json.loads(sys.argv[1]):
    sys.stdout.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.dup2(os.open(stderr + ".stdout", os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 1)
        os.dup2(os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
        sys.argv = ["launch.py", *args]
        runpy.run_path("launch.py", run_name="__main__")
        sys.exit(0)
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
"""


@pytest.fixture(scope="module")
def bad_launches(tmp_path_factory) -> dict:
    """{override: (exit code, stderr, its dir)} of ``python launch.py OVERRIDE`` for each bad override."""
    runs = []
    for i, override in enumerate(BAD_OVERRIDES):
        out = tmp_path_factory.mktemp(f"bad{i}")
        runs.append(([override, f"hydra.run.dir={out}", "logger=none", f"paths.data_dir={out}/data"], str(out / "stderr.txt")))
    proc = subprocess.run(
        [sys.executable, "-c", FORKING_LAUNCH, json.dumps(runs)], cwd=REPO, capture_output=True, text=True, timeout=180, check=False
    )
    codes = proc.stdout.split()
    assert proc.returncode == 0 and len(codes) == len(runs), proc.stdout[-2000:] + proc.stderr[-2000:]
    return {
        args[0]: (int(code), Path(stderr).read_text(), Path(stderr).parent) for (args, stderr), code in zip(runs, codes, strict=True)
    }


@pytest.mark.parametrize("override,message", list(BAD_OVERRIDES.items()))
def test_bad_override_fails_fast_with_one_line(bad_launches, override, message):
    code, stderr, out = bad_launches[override]
    assert code == 2, stderr[-2000:]
    errors = [line for line in stderr.splitlines() if line.startswith("epx: error:")]
    assert len(errors) == 1 and message in errors[0], stderr[-2000:]
    assert "Traceback" not in stderr
    assert not (out / "data" / "synthetic").exists()  # nothing generated before validation


def test_cross_cell_mode_tests_on_the_other_cells_data(tmp_path, small_synthetic):
    train(job_cfg(tmp_path, small_synthetic, "test_cell=E114", "trainer=debug", "model=linear"))
    record = read_metrics(tmp_path)
    assert record.status == "ok" and record.test_cell == "E114"
    preds = pd.read_csv(tmp_path / "job" / "predictions.csv")
    expr = pd.read_csv(small_synthetic / "expression.tsv", sep="\t").set_index("gene_id")
    test = preds[preds.split == "test"].set_index("gene_id")
    import numpy as np

    np.testing.assert_allclose(test.target, np.log2(expr.loc[test.index, "E114"] + 1), rtol=1e-5)
    train_rows = preds[preds.split == "train"].set_index("gene_id")
    np.testing.assert_allclose(train_rows.target, np.log2(expr.loc[train_rows.index, "E003"] + 1), rtol=1e-5)


def test_under_slurm_lightnings_own_requeue_is_off(monkeypatch):
    """submitit owns SLURM's signals (USR2: checkpoint the launcher call, requeue); Lightning's
    auto-requeue would add a SIGUSR1 handler that saves an hpc checkpoint and requeues itself."""
    import signal

    from hydra.utils import instantiate

    from epx.run import cluster_plugins

    cfg = compose(["trainer=cpu", "logger=none"])
    assert cluster_plugins(cfg) == {}  # not under SLURM: the trainer's own plugins
    slurm = {"SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1", "SLURM_JOB_NAME": "epx", "SLURM_NODELIST": "node1",
             "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_JOB_ID": "42"}  # fmt: skip
    for key, value in slurm.items():
        monkeypatch.setenv(key, value)
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM)}
    try:
        handlers = {}
        for plugins in ({}, cluster_plugins(cfg)):
            trainer = instantiate(cfg.trainer, logger=False, enable_progress_bar=False, **plugins)
            trainer._signal_connector.register_signal_handlers()
            env = trainer._accelerator_connector.cluster_environment
            handlers[bool(plugins)] = (type(env).__name__, env.auto_requeue, signal.getsignal(signal.SIGUSR1))
            trainer._signal_connector.teardown()
        assert handlers[False][:2] == ("SLURMEnvironment", True) and callable(handlers[False][2])  # Lightning's default
        assert handlers[True] == ("SLURMEnvironment", False, signal.SIG_DFL)
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
