"""``epx predict``: score a trained job's model on another cell, fold or dataset, no retraining.

Contract: ``predict(job_dir, overrides=(), out=None) -> JobRecord``. It opens the finished job
(``epx.trained.open_job``: its own saved config with ``overrides`` applied — ``cell=E114``,
``fold=2``, ``dataset=folder dataset.root=…`` — its checkpoint, and the net and input builder
of the checkpoint's provenance, never today's ``conf/model``, so the weights meet exactly the
inputs they were trained on). It then builds the data like a training job (cache once per
cell, same folds), loads the weights and runs the evaluation step of a training job
(``epx.evaluate``: ``folds.json``, the test split's metrics, ``predictions.csv`` for every
split, on one device with the job's trainer settings), and writes ``metrics.json`` (``kind:
predict``, ``source_job``) into ``out`` (default ``JOB_DIR/predict/<overrides>``). With no
overrides it reproduces the job's own ``predictions.csv`` exactly.

A mismatch is one ``InputError`` before any data work (``epx.trained``): another model, other
marks (the net has one input channel per mark), other input settings (window, resolutions,
pCRE count), another net, a job that did not finish, a checkpoint without provenance.
Missing signal files for the new cell are the DataModule's usual error naming each file; a
cache that is missing is built, as in training.

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
from pathlib import Path

from epx.errors import InputError
from epx.io.fingerprint import changed_files
from epx.record import FILE_NAME, JobRecord
from epx.selection import mark_label

log = logging.getLogger(__name__)


def default_out(job_dir: Path, overrides: Sequence[str]) -> Path:
    slug = re.sub(r"[^\w=.,+-]", "_", ",".join(overrides))[:120] or "as_trained"
    return job_dir / "predict" / slug


def predict(job_dir: str | Path, overrides: Sequence[str] = (), out: str | Path | None = None) -> JobRecord:
    # torch and Lightning load here, not on import: `epx predict --help` answers at once
    from epx.evaluate import evaluate, evaluation_trainer, write_folds
    from epx.job import Job
    from epx.memory import tune_malloc
    from epx.train.module import EpxModule
    from epx.trained import open_job

    job_dir = Path(job_dir)
    overrides = list(overrides)
    src = open_job(job_dir, overrides)
    malloc = tune_malloc((src.cfg.get("compute") or {}).get("malloc_tune", True) is not False)
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
        changed = changed_files(trained_on.get("inputs") or {}, dm.input_fingerprints())
        if changed:  # same names, other bytes (content hashes, epx.io.fingerprint)
            record.extra["inputs_changed"] = changed
            log.warning("%s: %d input(s) changed since the model was trained (other content under the same name): %s",
                        dm.spec.root, len(changed), ", ".join(changed))
        elif "inputs" not in trained_on and str(dm.spec.root) == trained_on["root"] and dm.fingerprint_as(trained_dtype) != trained_on["fingerprint"]:
            log.warning("%s: the dataset's inputs changed since the model was trained (cache %s, trained on %s)", dm.spec.root, dm.fingerprint, trained_on["fingerprint"])
        if trained_dtype != dm.cache_dtype:
            log.info("trained on a %s cache, scored on a %s cache (data.cache_dtype): inputs agree to the storage precision", trained_dtype, dm.cache_dtype)
        record.n_genes = dm.n_genes()
        record.extra["malloc"] = malloc
        write_folds(job, dm)

        module = EpxModule(net=src.net(), objective=objective, provenance=provenance)
        record.n_params = module.n_params
        evaluate(evaluation_trainer(cfg.trainer, logger=False, root=job.dir), module, dm, job)
        record.finish()  # ok, or degenerate when a test metric is undefined on the data
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="epx predict",
        description="Score trained jobs on another cell, fold or dataset without retraining.",
        epilog="example: epx predict outputs/multirun/2026-11-29/10-00-00 cell=E114",
    )
    parser.add_argument("paths", nargs="+", help="job dirs and/or sweep dirs, then key=value overrides (cell=, fold=, dataset=, dataset.root=, test_cell=)")
    parser.add_argument("--out", type=Path, help="output dir (one job) or parent of one dir per job (several)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
