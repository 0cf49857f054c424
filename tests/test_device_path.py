"""The device path without a GPU (issue 14 part 6): ``compute`` settings, pinned batches
decided by the trainer's device, and a DDP job on two CPU processes whose rank 0 alone writes
the job dir and predicts every gene once. The same path on CUDA: tests/test_gpu.py
(``pytest -m gpu``)."""

from __future__ import annotations

import os
import subprocess
import sys

import lightning as L
import pandas as pd
import pytest
import torch
from torch import nn

from conftest import REPO
from epx.record import JobRecord
from epx.run import train
from epx.train.compute import apply_compute, matmul_precision
from test_train import job_cfg


def test_matmul_precision_auto_is_tf32_on_cuda_only():
    assert matmul_precision("auto", "cuda") == "high"
    assert matmul_precision("auto", "cpu") == torch.get_float32_matmul_precision()
    assert matmul_precision("medium", "cpu") == "medium"
    with pytest.raises(ValueError, match="highest, high, medium"):
        matmul_precision("tf32", "cuda")


def test_compile_keeps_the_state_dict_keys():
    before = torch.get_float32_matmul_precision()
    try:
        net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
        keys = list(net.state_dict())
        applied = apply_compute({"matmul_precision": "high", "compile": True}, L.Trainer(accelerator="cpu", logger=False), net)
        assert applied == {"device": "cpu", "precision": "32-true", "matmul_precision": "high", "compile": True, "compile_mode": "default"}
        assert torch.get_float32_matmul_precision() == "high"
        assert list(net.state_dict()) == keys  # checkpoints of a compiled net load into a plain one
    finally:
        torch.set_float32_matmul_precision(before)


def test_cpu_job_records_its_compute_and_does_not_pin(tmp_path, small_synthetic):
    record = train(job_cfg(tmp_path, small_synthetic, "trainer=debug", "model=linear"))
    assert record.extra["compute"] == {"device": "cpu", "precision": "32-true", "matmul_precision": torch.get_float32_matmul_precision(), "compile": False}
    assert JobRecord.read(tmp_path / "job").extra["compute"]["device"] == "cpu"


def test_pin_memory_follows_the_trainers_device(tmp_path, small_synthetic):
    from hydra.utils import instantiate

    cfg = job_cfg(tmp_path, small_synthetic, "model=linear")
    dm = instantiate(cfg.data, target_column="target")
    assert dm.pins() is False  # no trainer attached: nothing to copy to
    dm.trainer = L.Trainer(accelerator="cpu", logger=False)
    assert dm.pins() is False
    dm.pin_memory = True
    assert dm.pins() is True


@pytest.mark.timeout(300)
def test_ddp_on_two_cpu_processes_predicts_every_gene_once(tmp_path, small_synthetic):
    """Lightning's DDP launcher re-runs launch.py for rank 1 in the same job dir: rank 1 must
    write nothing, and rank 0 must test and predict on one device (a DistributedSampler would
    leave half the genes out of predictions.csv and repeat some in the test metrics)."""
    args = [
        "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "logger=csv",
        "dataset=folder", f"dataset.root={small_synthetic}", f"paths.cache_dir={tmp_path / 'cache'}",
        f"hydra.run.dir={tmp_path / 'job'}",
    ]
    env = {**os.environ, "WANDB_MODE": "disabled", "EPX_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "launch.py"), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    job = tmp_path / "job"
    record = JobRecord.read(job)
    assert record.status == "ok"
    table = pd.read_csv(job / "predictions.csv")
    used = sum(record.n_genes.values())
    assert len(table) == used and table.gene_id.is_unique
    assert table.groupby("split").size().to_dict() == {k: v for k, v in record.n_genes.items() if v}
    test = table[table.split == "test"]
    pearson = test[["target", "prediction"]].corr().iloc[0, 1]
    assert record.test["pearson"] == pytest.approx(pearson, abs=1e-4)  # every test gene once
    assert (job / "train_ddp_process_1.log").exists()  # rank 1 ran, in the same dir
    assert not (tmp_path / "outputs").exists()  # and wrote no job dir of its own


def test_linear_lbfgs_is_refused_under_ddp_before_any_process_starts(tmp_path, small_synthetic):
    from epx.errors import InputError

    cfg = job_cfg(tmp_path, small_synthetic, "model=linear", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2")
    with pytest.raises(InputError, match="model=linear cannot train on 2 processes.*L-BFGS.*trainer=cpu, or trainer=gpu"):
        train(cfg)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
@pytest.mark.parametrize("preset", ["gpu", "ddp"])
def test_gpu_trainer_without_a_gpu_is_one_clear_error_before_any_work(tmp_path, small_synthetic, preset):
    from epx.errors import InputError

    with pytest.raises(InputError, match="trainer.accelerator=gpu needs a CUDA GPU, and torch sees none.*Use trainer=cpu"):
        train(job_cfg(tmp_path, small_synthetic, f"trainer={preset}"))
    assert not (tmp_path / "job" / "folds.json").exists()  # refused before the data is prepared
