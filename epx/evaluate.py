"""The evaluation step of a job — test metrics, ``predictions.csv``, ``folds.json`` — one way for
a training job (``epx.run``) and a re-scoring (``epx predict``), so their outputs compare row
for row.

Contract:

- ``write_folds(job, dm)``: ``JOB_DIR/folds.json``, the DataModule's fold assignment (written
  once the splits are set up, before any training);
- ``evaluation_trainer(trainer_cfg, *, logger, root) -> L.Trainer``: the job's trainer
  (``conf/trainer``: accelerator, precision, determinism, batch limits) on one device,
  without callbacks or checkpointing: what scores a finished job (``epx predict``) and what
  rank 0 scores with after a multi-process (DDP) fit, where a ``DistributedSampler`` would
  split the predictions across ranks;
- ``evaluate(trainer, module, dm, job, *, ckpt_path=None)``: tests ``module`` (with the
  weights of ``ckpt_path`` when given — a training job's best checkpoint, loaded
  ``weights_only`` — else the weights it holds), puts the test metrics in ``job.record.test``
  (undefined ones as null, their reasons in ``undefined_metrics``: ``JobRecord.set_test``)
  and writes ``JOB_DIR/predictions.csv`` for every gene of every split with those weights
  (``epx.train.predictions``).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from epx.console import progress_bars_wanted
from epx.io.atomic import write_csv, write_json
from epx.train.predictions import metrics_of_test, prediction_table


def write_folds(job, dm) -> Path:
    return write_json(job.dir / "folds.json", dm.fold_record())


def evaluation_trainer(trainer_cfg: DictConfig, *, logger, root: Path) -> L.Trainer:
    return instantiate(
        trainer_cfg,
        devices=1,
        num_nodes=1,
        strategy="auto",
        sync_batchnorm=False,
        logger=logger,
        callbacks=[],
        enable_checkpointing=False,
        default_root_dir=str(root),
        # a bar only on a terminal (epx.console): in a log file its redraws are noise
        enable_progress_bar=bool(trainer_cfg.get("enable_progress_bar", True)) and progress_bars_wanted(),
    )


def evaluate(trainer: L.Trainer, module: L.LightningModule, dm, job, *, ckpt_path: str | None = None) -> None:
    # testing with a ckpt_path loads those weights into `module`, which the predictions then use
    results = trainer.test(module, datamodule=dm, verbose=False, ckpt_path=ckpt_path, weights_only=True)
    job.record.set_test(metrics_of_test(results), module.undefined.get("test", {}))
    write_csv(job.dir / "predictions.csv", prediction_table(trainer, module, dm))
