"""The GPU path on a CUDA device (issue 14 part 6). Run with ``pytest -m gpu`` on a machine
with a GPU; skipped (and deselected by default) elsewhere.

Every model trains under ``trainer=gpu`` (bf16 autocast, TF32 matmuls, pinned batches) to
finite metrics; a bf16 model predicts what its float32 self predicts; ``compute.compile=true``
trains and its checkpoint loads into a plain net. Throughput: ``benchmarks/bench_cost.py``.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from hydra.utils import instantiate

from epx.run import train
from test_train import job_cfg

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (pytest -m gpu)")]

MODELS = ["linear", "promoter_cnn", "chromoformer", "graphreg", "graphreg_gatv2", "epi_cnn"]


@pytest.mark.parametrize("model", MODELS)
def test_every_model_trains_on_the_gpu_in_bf16(tmp_path, small_synthetic, model):
    record = train(job_cfg(tmp_path, small_synthetic, f"model={model}", "trainer=gpu", "trainer.max_epochs=2", "callbacks=none"))
    assert record.status == "ok"
    assert record.extra["compute"] == {"device": "cuda", "precision": "bf16-mixed", "matmul_precision": "high", "compile": False}
    assert all(pd.notna(v) for v in record.test.values()), record.test
    table = pd.read_csv(tmp_path / "job" / "predictions.csv")
    assert len(table) == sum(record.n_genes.values()) and table.prediction.notna().all()


def test_batches_are_pinned_when_the_trainer_is_on_cuda(tmp_path, small_synthetic):
    import lightning as L

    cfg = job_cfg(tmp_path, small_synthetic, "model=promoter_cnn", "trainer=gpu")
    dm = instantiate(cfg.data, target_column="target")
    dm.prepare_data()
    dm.setup()
    dm.trainer = L.Trainer(accelerator="gpu", devices=1, logger=False)
    batch = next(iter(dm.train_dataloader()))
    assert batch["x"]["x"].is_pinned() and batch["y"].is_pinned()


def test_bf16_predictions_match_float32(tmp_path, small_synthetic):
    """The same trained weights predict the test genes in float32 (the job's predictions.csv,
    trainer.precision=32-true) and under bf16 autocast alike."""
    cfg = job_cfg(tmp_path, small_synthetic, "model=promoter_cnn", "trainer=gpu", "trainer.precision=32-true", "trainer.max_epochs=3", "callbacks=none")
    record = train(cfg)
    fp32 = pd.read_csv(tmp_path / "job" / "predictions.csv")
    state = torch.load(record.checkpoint, weights_only=False, map_location="cpu")["state_dict"]
    net = instantiate(cfg.model.net)
    net.load_state_dict({k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")})
    net = net.cuda().eval()
    dm = instantiate(cfg.data, target_column="target")
    dm.prepare_data()
    dm.setup()
    preds = []
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        for batch in dm.predict_dataloaders()["test"]:
            preds.append(net(**{k: v.cuda() for k, v in batch["x"].items()}).float().cpu().reshape(-1))
    bf16 = torch.cat(preds).numpy()
    want = fp32[fp32.split == "test"].prediction.to_numpy()
    assert len(bf16) == len(want)
    assert pd.Series(bf16).corr(pd.Series(want)) > 0.999
    assert abs(bf16 - want).max() < 0.05 * abs(want).max()


def test_compiled_net_trains_and_its_checkpoint_loads_into_a_plain_net(tmp_path, small_synthetic):
    record = train(job_cfg(tmp_path, small_synthetic, "model=promoter_cnn", "trainer=gpu", "trainer.max_epochs=1", "compute.compile=true", "callbacks=none"))
    assert record.status == "ok" and record.extra["compute"]["compile"] is True
    state = torch.load(record.checkpoint, weights_only=False, map_location="cpu")["state_dict"]
    assert not any("_orig_mod" in k for k in state)
    net = instantiate(job_cfg(tmp_path, small_synthetic, "model=promoter_cnn").model.net)
    net.load_state_dict({k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")})
