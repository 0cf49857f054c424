"""The Hydra task function: one job = one (dataset, cell, marks, fold, model, task, seed).

Contract: ``train(cfg) -> dict`` (the metrics record). Order of work: validate the selection
(cell, marks, fold: one clear error listing valid values, before anything is built); seed;
materialise + check the dataset files; build the cell cache (once per cell, locked); build
data, net, LightningModule, logger and trainer from config; fit; test with the best
checkpoint; write ``predictions.csv``, ``folds.json`` and ``metrics.json`` into the job dir.
A failing job still writes ``metrics.json`` with ``status: failed`` and the error, finishes
its W&B run, and re-raises.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from epx.constants import MARKS
from epx.data.datamodule import EpxDataModule
from epx.errors import InputError
from epx.io.atomic import write_csv, write_json
from epx.selection import check_cell, check_fold, mark_label, parse_marks

log = logging.getLogger(__name__)


def _job_dir(cfg: DictConfig) -> Path:
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path(cfg.paths.output_dir)


NAME_SKIP = ("paths.", "hydra.", "dataset.root=", "dataset.files.")


def _job_identity(cfg: DictConfig) -> dict:
    """W&B identity: group = the sweep (its date_time dir), name = what distinguishes the job
    (cell, mark, fold first, then other overrides except machine paths)."""
    if not HydraConfig.initialized():
        return {"group": None, "name": None, "overrides": []}
    hc = HydraConfig.get()
    overrides = list(hc.overrides.task)
    multirun = str(hc.mode) == "RunMode.MULTIRUN"
    group = f"{Path(hc.sweep.dir).parent.name}_{Path(hc.sweep.dir).name}" if multirun else None
    head = [f"cell={cfg.cell}", f"mark={cfg.mark}", f"fold={cfg.fold}"]
    rest = [o for o in overrides if not o.startswith(NAME_SKIP) and o.split("=", 1)[0] not in ("cell", "mark", "fold")]
    return {"group": group, "name": ",".join(head + rest), "overrides": overrides}


def validate(cfg: DictConfig) -> tuple[tuple[str, ...], int]:
    """Cheap checks of the selection; raise ``InputError`` before any work."""
    marks = parse_marks(cfg.mark)
    fold = check_fold(cfg.fold, int(cfg.dataset.folds.get("n_folds", 4)))
    cells = cfg.dataset.get("cells")
    if cells:
        check_cell(str(cfg.cell), cells, f"dataset={cfg.dataset.name}")
        if cfg.get("test_cell"):
            check_cell(str(cfg.test_cell), cells, f"dataset={cfg.dataset.name} (test_cell)")
    supported = cfg.model.get("tasks")
    if supported and cfg.task.name not in supported:
        raise InputError(f"model={cfg.model.name} does not support task={cfg.task.name}; it supports: {', '.join(supported)}")
    return marks, fold


def _check_folder_cells(spec, cell: str) -> None:
    """For folders without a fixed cell list: the cell must be a column of the expression table."""
    path = spec.path("expression")
    if path.exists():
        header = path.open().readline().rstrip("\n").split("\t")
        check_cell(cell, [c for c in header if c != "gene_id"], f"{path} (its expression columns)")


def _predictions(trainer: L.Trainer, module, dm: EpxDataModule) -> pd.DataFrame:
    frames = []
    for split, loader in dm.predict_dataloaders().items():
        if len(loader.dataset) == 0:
            continue
        outs = trainer.predict(module, dataloaders=loader, ckpt_path=None)
        gene = torch.cat([o["gene"] for o in outs]).numpy()
        table = dm.tables[split]
        frames.append(
            pd.DataFrame(
                {
                    "gene_id": table["gene_id"].to_numpy()[gene],
                    "chrom": table["chrom"].to_numpy()[gene],
                    "split": split,
                    "target": torch.cat([o["target"] for o in outs]).numpy(),
                    "prediction": torch.cat([o["prediction"] for o in outs]).numpy(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _record(cfg, marks, fold, identity) -> dict:
    return {
        "cell": str(cfg.cell),
        "mark": mark_label(marks) if marks else str(cfg.mark),
        "marks": list(marks),
        "fold": fold,
        "model": cfg.model.name,
        "task": cfg.task.name,
        "seed": int(cfg.seed),
        "test_cell": cfg.get("test_cell"),
        "dataset": cfg.dataset.name,
        "n_params": None,
        "n_genes": {},
        "test": {},
        "status": "running",
        "error": None,
        "wall_seconds": None,
        "wandb": None,
        "overrides": identity["overrides"],
    }


def train(cfg: DictConfig) -> dict:
    start = time.time()
    job_dir = _job_dir(cfg)
    job_dir.mkdir(parents=True, exist_ok=True)
    identity = _job_identity(cfg)
    marks, fold = (), cfg.get("fold")
    record = _record(cfg, marks, fold, identity)
    logger = False
    try:
        marks, fold = validate(cfg)
        record.update(mark=mark_label(marks), marks=list(marks), fold=fold)
        L.seed_everything(int(cfg.seed), workers=True, verbose=False)

        spec = instantiate(cfg.dataset.spec)
        spec.materialize()
        if not cfg.dataset.get("cells"):
            for cell in filter(None, [cfg.cell, cfg.get("test_cell")]):
                _check_folder_cells(spec, str(cell))
        # count models (GraphReg) bring their own objective; others take the task's
        objective = instantiate(cfg.model.get("objective") or cfg.task.objective)
        dm = EpxDataModule(
            spec=spec,
            cell=str(cfg.cell),
            marks=marks,
            fold=fold,
            inputs=instantiate(cfg.model.inputs),
            target_column=objective.target_column,
            cache_dir=cfg.paths.cache_dir,
            batch_size=int(cfg.model.batch_size),
            eval_batch_size=cfg.model.get("eval_batch_size"),
            num_workers=int(cfg.get("num_workers", 0)),
            test_cell=cfg.get("test_cell"),
        )
        dm.prepare_data()
        dm.setup()
        record["n_genes"] = dm.n_genes()
        write_json(job_dir / "folds.json", dm.fold_record())

        net = instantiate(cfg.model.net, n_marks=len(marks))
        module = instantiate(cfg.model.module, net=net, objective=objective)
        record["n_params"] = module.n_params

        plain_cfg = OmegaConf.to_container(cfg, resolve=True)
        make_logger = instantiate(cfg.logger, _partial_=True)
        logger = make_logger(
            save_dir=job_dir,
            name=identity["name"],
            group=identity["group"],
            job_type=cfg.model.name,
            tags=[f"cell:{cfg.cell}", f"mark:{mark_label(marks)}", f"fold:{fold}", f"model:{cfg.model.name}", *cfg.get("tags", [])],
            run_config=plain_cfg,
        )
        record["wandb"] = _wandb_info(logger)
        write_json(job_dir / "metrics.json", record)

        callbacks = [instantiate(c) for c in cfg.get("callbacks", {}).values() if c is not None]
        trainer = instantiate(cfg.trainer, logger=logger, callbacks=callbacks, default_root_dir=str(job_dir))
        trainer.fit(module, datamodule=dm)

        ckpt = _best_checkpoint(trainer)
        # testing with ckpt_path loads the best weights into `module`, which predictions then use
        test = trainer.test(module, datamodule=dm, verbose=False, ckpt_path=ckpt, weights_only=False)
        record["test"] = {k.split("/", 1)[1]: float(v) for k, v in (test[0] if test else {}).items() if k.startswith("test/")}
        record["checkpoint"] = ckpt
        write_csv(job_dir / "predictions.csv", _predictions(trainer, module, dm))
        record["status"] = "ok"
        _log_summary(logger, record)
        return record
    except BaseException as err:
        record["status"] = "failed"
        record["error"] = f"{type(err).__name__}: {err}"
        raise
    finally:
        record["wall_seconds"] = round(time.time() - start, 2)
        write_json(job_dir / "metrics.json", record)
        _finish(logger, record)
        log.info("job dir: %s", job_dir)
        if record.get("wandb"):
            log.info("W&B run %s (%s): %s", record["wandb"].get("id"), record["wandb"].get("mode"), record["wandb"].get("dir"))


def _best_checkpoint(trainer: L.Trainer) -> str | None:
    cb = trainer.checkpoint_callback
    path = getattr(cb, "best_model_path", "") if cb is not None else ""
    return path or None


def _wandb_info(logger) -> dict | None:
    experiment = getattr(logger, "experiment", None)
    if experiment is None or not hasattr(experiment, "id"):
        return None
    settings = getattr(experiment, "settings", None)
    return {
        "id": experiment.id,
        # experiment.dir is the run's files/ folder; its parent is what `wandb sync` takes
        "dir": str(Path(experiment.dir).parent) if getattr(experiment, "dir", None) else None,
        "mode": getattr(settings, "mode", None),
        "url": getattr(experiment, "url", None),
    }


def _log_summary(logger, record: dict) -> None:
    experiment = getattr(logger, "experiment", None)
    if experiment is None or not hasattr(experiment, "summary"):
        return
    for key, value in record["test"].items():
        experiment.summary[f"test/{key}"] = value
    experiment.summary["n_params"] = record["n_params"]
    for split, n in record["n_genes"].items():
        experiment.summary[f"n_genes/{split}"] = n


def _finish(logger, record: dict) -> None:
    experiment = getattr(logger, "_experiment", None)
    if experiment is not None and hasattr(experiment, "finish"):
        experiment.summary["status"] = record["status"]
        experiment.finish(exit_code=0 if record["status"] == "ok" else 1)
