"""``epx predict``: score a trained job's model on another cell, fold or dataset, no retraining.

Contract: ``predict(job_dir, overrides=(), out=None) -> JobRecord``. It reads the job's record
and checkpoint (the one that made its predictions: ``record.checkpoint``, else
``checkpoints/best.ckpt`` / ``final.ckpt`` in the job dir), composes the job's own overrides
followed by ``overrides`` (``cell=E114``, ``fold=2``, ``dataset=folder dataset.root=…``), and
rebuilds the net and its input builder from the checkpoint's provenance alone — never from
today's ``conf/model`` — so the weights meet exactly the inputs they were trained on. It then
builds the data like a training job (cache once per cell, same folds), loads the weights,
runs the test split for metrics and every split for ``predictions.csv``, and writes
``predictions.csv``, ``folds.json`` and ``metrics.json`` (``kind: predict``, ``source_job``)
into ``out`` (default ``JOB_DIR/predict/<overrides>``). With no overrides it reproduces the
job's own ``predictions.csv`` exactly.

A mismatch is one ``InputError`` before any data work: another model, other marks (the net
has one input channel per mark), other input settings (window, resolutions, pCRE count),
another net, a job that did not finish, a checkpoint without provenance (written before
checkpoints carried it). Missing signal files for the new cell are the DataModule's usual
error naming each file; a cache that is missing is built, as in training.

``open_job(job_dir, overrides) -> SourceJob`` is the reusable first half: the record, checkpoint,
provenance, composed config, objective and DataModule of a finished job, every refusal raised
before any data work; ``SourceJob.net()`` rebuilds the net with its weights. ``epx predict``
and ``epx.explain`` (interpretation) both start from it.

``main(argv)`` is ``epx predict JOB_DIR|SWEEP_DIR ... [key=value ...] [--out DIR]``: a sweep dir
stands for every job in it, so a whole grid's models are scored on a second cell at once.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from epx.cli import compose
from epx.data.datamodule import EpxDataModule
from epx.errors import InputError
from epx.io.atomic import write_csv, write_json
from epx.job import Job
from epx.record import FILE_NAME, JobRecord, RecordError
from epx.run import validate
from epx.selection import mark_label
from epx.train.module import EpxModule
from epx.train.predictions import metrics_of_test, prediction_table

log = logging.getLogger(__name__)

CHECKPOINT_NAMES = ("best.ckpt", "final.ckpt", "last.ckpt")


def find_checkpoint(job_dir: Path, record: JobRecord) -> Path:
    if record.checkpoint and Path(record.checkpoint).is_file():
        return Path(record.checkpoint)
    # the job dir may have moved since: look for the same file name inside it
    names = ([Path(record.checkpoint).name] if record.checkpoint else []) + list(CHECKPOINT_NAMES)
    for name in names:
        if (job_dir / "checkpoints" / name).is_file():
            return job_dir / "checkpoints" / name
    raise InputError(
        f"{job_dir}: no checkpoint found (record says {record.checkpoint!r}; looked for "
        f"checkpoints/{{{','.join(CHECKPOINT_NAMES)}}}); was the job dir copied without checkpoints/?"
    )


def load_checkpoint(path: Path) -> tuple[dict, dict]:
    """(provenance, state_dict of the net) from a Lightning checkpoint written by epx."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a truncated or foreign file: one clear message, not torch's
        raise InputError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err}); retrain the job or restore the file") from err
    provenance = (ckpt.get("hyper_parameters") or {}).get("provenance")
    if not provenance:
        raise InputError(
            f"{path} carries no provenance (written by an epx before checkpoints were reloadable); "
            "retrain the job to score it elsewhere"
        )
    state = {k[len("net."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    return provenance, state


def _plain(node) -> dict:
    return OmegaConf.to_container(node, resolve=True)


def _differences(trained: dict, asked: dict, prefix: str) -> list[str]:
    keys = sorted(set(trained) | set(asked))
    return [f"{prefix}.{k}: trained {trained.get(k)!r}, asked {asked.get(k)!r}" for k in keys if trained.get(k) != asked.get(k)]


def check_compatible(provenance: dict, cfg, marks: tuple[str, ...], ckpt: Path) -> None:
    """The composed job must ask for what the weights were trained on."""
    problems = []
    if cfg.model.name != provenance["model"]:
        problems.append(f"model: trained {provenance['model']!r}, asked {cfg.model.name!r}")
    if list(marks) != list(provenance["marks"]):
        problems.append(
            f"mark: trained on {mark_label(provenance['marks'])}, asked {mark_label(marks)} (the net has one input channel per mark)"
        )
    problems += _differences(provenance["inputs"], _plain(cfg.model.inputs), "model.inputs")
    if not problems:  # with other marks the net's n_marks differs too; say it once
        problems += _differences(provenance["net"], _plain(cfg.model.net), "model.net")
    if problems:
        raise InputError(
            f"{ckpt} cannot score this job:\n  " + "\n  ".join(problems) + "\nDrop the override(s) that change the model or its inputs; "
            "only the cell, fold and dataset can change."
        )


def default_out(job_dir: Path, overrides: Sequence[str]) -> Path:
    slug = re.sub(r"[^\w=.,+-]", "_", ",".join(overrides))[:120] or "as_trained"
    return job_dir / "predict" / slug


@dataclass
class SourceJob:
    """A finished job, rebuilt from its checkpoint's provenance for another use of its weights.

    ``dm`` is the DataModule composed from the job's own overrides plus the new ones, with the
    input builder of the provenance (built, cells checked; not yet prepared or set up);
    ``net()`` is a fresh net with the checkpoint's weights (train mode, on the CPU)."""

    dir: Path
    record: JobRecord
    checkpoint: Path
    provenance: dict
    state: dict
    cfg: DictConfig
    marks: tuple[str, ...]
    fold: int
    objective: object
    dm: EpxDataModule

    def net(self) -> torch.nn.Module:
        net = instantiate(self.provenance["net"])
        net.load_state_dict(self.state)
        return net


def open_job(job_dir: str | Path, overrides: Sequence[str] = (), *, cfg: DictConfig | None = None) -> SourceJob:
    """Read a finished job's record and checkpoint and rebuild its data setup (no data work yet).
    ``cfg``: the job's own config, when the caller holds it (a job explaining itself at its
    end, in a process that may not have Hydra's record of its overrides); else it is composed
    from the record's overrides plus ``overrides``.

    Every refusal (not a job dir, a job that did not finish, no checkpoint, a checkpoint without
    provenance, an override that changes the model or its inputs, an unknown cell) is one
    ``InputError`` raised here, before any cache is built or output dir written."""
    job_dir = Path(job_dir)
    try:
        source = JobRecord.read(job_dir)
    except RecordError as err:
        raise InputError(str(err)) from err
    if source.status != "ok":
        raise InputError(f"{job_dir}: the job's status is {source.status!r}, not 'ok'; only a finished job has weights to score")
    ckpt_path = find_checkpoint(job_dir, source)
    provenance, state = load_checkpoint(ckpt_path)

    cfg = cfg if cfg is not None else compose([*source.overrides, *overrides])
    marks, fold = validate(cfg)
    check_compatible(provenance, cfg, marks, ckpt_path)
    objective = instantiate(provenance["objective"])
    dm = instantiate(cfg.data, inputs=instantiate(provenance["inputs"]), target_column=objective.target_column)
    dm.check_cells()  # a cell the folder lacks is refused before an output dir exists
    return SourceJob(job_dir, source, ckpt_path, provenance, state, cfg, tuple(marks), fold, objective, dm)


def predict(job_dir: str | Path, overrides: Sequence[str] = (), out: str | Path | None = None) -> JobRecord:
    job_dir = Path(job_dir)
    overrides = list(overrides)
    src = open_job(job_dir, overrides)
    source, ckpt_path, provenance, cfg, marks, fold = src.record, src.checkpoint, src.provenance, src.cfg, src.marks, src.fold

    record = JobRecord(
        cell=str(cfg.cell), mark=mark_label(marks), marks=list(marks), fold=fold, model=provenance["model"],
        task=provenance["task"], seed=source.seed, test_cell=cfg.get("test_cell"), dataset=cfg.dataset.name,
        kind="predict", source_job=str(job_dir.resolve()), overrides=[*source.overrides, *overrides], checkpoint=str(ckpt_path),
    )
    objective = src.objective
    record.primary_metric = objective.primary
    dm = src.dm
    job = Job(Path(out) if out is not None else default_out(job_dir, overrides), record)
    with job.running():
        dm.prepare_data()
        dm.setup()
        trained_on = provenance["dataset"]
        trained_dtype = trained_on.get("cache_dtype", "float32")  # checkpoints before issue 14: float32
        if str(dm.spec.root) == trained_on["root"] and dm.fingerprint_as(trained_dtype) != trained_on["fingerprint"]:
            log.warning("%s: the dataset's inputs changed since the model was trained (cache %s, trained on %s)", dm.spec.root, dm.fingerprint, trained_on["fingerprint"])
        if trained_dtype != dm.cache_dtype:
            log.info("trained on a %s cache, scored on a %s cache (data.cache_dtype): inputs agree to the storage precision", trained_dtype, dm.cache_dtype)
        record.n_genes = dm.n_genes()
        write_json(job.dir / "folds.json", dm.fold_record())

        net = src.net()
        module = EpxModule(net=net, objective=objective, provenance=provenance)
        record.n_params = module.n_params
        # the job's device and precision, none of its training limits (fast_dev_run, epochs)
        trainer = L.Trainer(
            accelerator=cfg.trainer.get("accelerator", "auto"), devices=1, precision=cfg.trainer.get("precision", "32-true"),
            logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            default_root_dir=str(job.dir),
        )
        record.test = metrics_of_test(trainer.test(module, datamodule=dm, verbose=False))
        write_csv(job.dir / "predictions.csv", prediction_table(trainer, module, dm))
        record.status = "ok"
    return record


def job_dirs(paths: Sequence[str | Path]) -> list[Path]:
    """Job dirs named directly, and every job dir of a sweep dir named instead."""
    found = []
    for path in map(Path, paths):
        if (path / FILE_NAME).is_file():
            found.append(path)
        elif path.is_dir() and (jobs := sorted(p.parent for p in path.glob(f"*/{FILE_NAME}"))):
            found += jobs
        else:
            raise InputError(f"{path} is neither a job dir (with {FILE_NAME}) nor a sweep dir holding job dirs")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="epx predict",
        description="Score trained jobs on another cell, fold or dataset without retraining.",
        epilog="example: epx predict outputs/multirun/2026-11-29/10-00-00 cell=E114",
    )
    parser.add_argument("paths", nargs="+", help="job dirs and/or sweep dirs, then key=value overrides (cell=, fold=, dataset=, dataset.root=, test_cell=)")
    parser.add_argument("--out", type=Path, help="output dir (one job) or parent of one dir per job (several)")
    args = parser.parse_args(argv)
    overrides = [a for a in args.paths if "=" in a]
    try:
        jobs = job_dirs([a for a in args.paths if "=" not in a])
        for job in jobs:
            start = time.time()
            out = None if args.out is None else (args.out if len(jobs) == 1 else args.out / job.name)
            record = predict(job, overrides, out)
            value = record.primary_value
            score = "n/a" if value is None else f"{value:.4f}"
            print(f"{job}: test {record.primary_metric} {score} on {record.n_genes.get('test', 0)} genes "
                  f"({time.time() - start:.1f} s) -> {Path(record.checkpoint).name}, {out or default_out(job, overrides)}")
    except InputError as err:
        print(f"epx: error: {err}", file=sys.stderr)
        return 2
    return 0
