"""The Hydra task function: one job = one (dataset, cell, marks, fold, model, task, seed).

Contract: ``train(cfg) -> JobRecord``. Its steps, top to bottom, are "The path of one job" in
``docs/architecture.md`` (the one description of them): reuse / resume / fresh
(``epx.job.plan``), the checks (``epx.preflight``), data, model, logger and trainer from
``conf/``, fit, the evaluation step (``epx.evaluate``: test with the best checkpoint or the
final weights, ``predictions.csv``, ``folds.json``) and the analyses a config asks for.
A job run without Hydra's app (in-process, ``paths.output_dir`` set) saves its config as
``.hydra/config.yaml`` as Hydra does, so every finished job opens the same way
(``epx.trained``).

``epx.job.Job`` writes ``metrics.json`` (an ``epx.record.JobRecord``) and closes the logger
whatever happens; a failing job records ``status: failed`` and the error, and re-raises. A job
runs inside ``epx.job.interruptible()``: SIGTERM or SIGINT end it ``interrupted`` with exit code
143 or 130 (resumed from ``last.ckpt`` when launched again).
``explain_finished`` is the job-end analysis hook; it imports ``epx.explain.run`` when a job
asks for analyses, so this module sits below the explain layer.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate as _instantiate
from omegaconf import DictConfig, OmegaConf

import epx
from epx.console import EpochLine, progress_bars_wanted
from epx.data.datamodule import EpxDataModule
from epx.errors import InputError
from epx.evaluate import evaluate, evaluation_trainer, write_folds
from epx.io.atomic import write_text
from epx.job import InterruptCheck, Job, RngState, global_rank, interruptible, plan
from epx.memory import tune_malloc
from epx.preflight import validate
from epx.record import JobRecord, is_smoke
from epx.selection import mark_label
from epx.threads import apply_threads
from epx.train.compute import apply_compute
from epx.train.loggers import log_record, run_info

log = logging.getLogger(__name__)

# overrides that say where things are, not what the job is: left out of the W&B run name
NAME_SKIP = ("paths.", "hydra.", "dataset.root=", "dataset.files.")


def instantiate(config, *args, **kwargs):
    """Hydra's ``instantiate`` that lets an ``InputError`` raised inside a target (a missing base
    job, a bad window geometry) reach the user as itself, not wrapped in Hydra's
    ``InstantiationException`` with the target's path in front of it."""
    try:
        return _instantiate(config, *args, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        while cause is not None and not isinstance(cause, InputError):
            cause = cause.__cause__
        if cause is None:
            raise
        raise cause from None


def job_dir(cfg: DictConfig) -> Path:
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path(cfg.paths.output_dir)


def identity(cfg: DictConfig) -> dict:
    """W&B identity: group = the sweep (its date_time dir), name = what distinguishes the job
    (cell, mark, fold first, then other overrides except machine paths)."""
    if not HydraConfig.initialized():
        return {"group": None, "name": None, "overrides": []}
    hc = HydraConfig.get()
    overrides = list(hc.overrides.task)
    multirun = hc.mode == RunMode.MULTIRUN
    group = f"{Path(hc.sweep.dir).parent.name}_{Path(hc.sweep.dir).name}" if multirun else None
    head = [f"cell={cfg.cell}", f"mark={cfg.mark}", f"fold={cfg.fold}"]
    rest = [o for o in overrides if not o.startswith(NAME_SKIP) and o.split("=", 1)[0] not in ("cell", "mark", "fold")]
    return {"group": group, "name": ",".join(head + rest), "overrides": overrides}


def save_config(cfg: DictConfig, out: Path) -> None:
    """``.hydra/config.yaml`` (unresolved, as Hydra writes it) for a job run without Hydra's app."""
    if not HydraConfig.initialized():
        write_text(out / ".hydra" / "config.yaml", OmegaConf.to_yaml(cfg))


def new_record(cfg: DictConfig, overrides: list[str]) -> JobRecord:
    return JobRecord(
        cell=str(cfg.cell),
        mark=str(cfg.mark),
        fold=cfg.get("fold"),
        model=cfg.model.name,
        task=cfg.task.name,
        seed=int(cfg.seed),
        test_cell=cfg.get("test_cell"),
        dataset=cfg.dataset.name,
        overrides=overrides,
        smoke=is_smoke(cfg.trainer),
    )


def objective_config(cfg: DictConfig) -> DictConfig:
    """Count models (GraphReg) bring their own objective; the others take the task's."""
    return cfg.model.get("objective") or cfg.task.objective


def provenance(cfg: DictConfig, dm: EpxDataModule) -> dict:
    """What rebuilds this job's net and inputs from a checkpoint alone (``epx predict``)."""
    plain = lambda node: OmegaConf.to_container(node, resolve=True)  # noqa: E731
    return {
        "model": cfg.model.name,
        "task": cfg.task.name,
        "net": plain(cfg.model.net),
        "inputs": plain(cfg.model.inputs),
        "objective": plain(objective_config(cfg)),
        "marks": list(dm.marks),
        "cell": dm.cell,
        "fold": dm.fold,
        "dataset": {
            "name": cfg.dataset.name, "root": str(dm.spec.root), "fingerprint": dm.fingerprint, "cache_dtype": dm.cache_dtype,
            "inputs": dm.input_fingerprints(),  # content hashes: epx predict names the inputs that changed since
        },
        "epx_version": epx.__version__,
    }


def make_logger(cfg: DictConfig, job: Job, who: dict, run_id: str | None = None):
    make = instantiate(cfg.logger, _partial_=True)
    r = job.record
    return make(
        save_dir=job.dir,
        name=who["name"],
        group=who["group"],
        job_type=cfg.model.name,
        tags=[f"cell:{r.cell}", f"mark:{r.mark}", f"fold:{r.fold}", f"model:{r.model}", *cfg.get("tags", [])],
        run_config=OmegaConf.to_container(cfg, resolve=True),
        run_id=run_id,
    )


def cluster_plugins(cfg: DictConfig) -> dict:
    """Trainer ``plugins`` under SLURM: Lightning's SLURM environment with its auto-requeue off
    (its SIGUSR1 handler would save an hpc checkpoint and requeue the job itself, racing
    submitit, whose USR2 handler requeues the job and runs it again in the same dir, where it
    resumes from ``last.ckpt``). Outside SLURM: nothing (the config's own plugins, if any)."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    if not SLURMEnvironment.detect():
        return {}
    own = cfg.trainer.get("plugins")
    own = [instantiate(p) for p in own] if isinstance(own, list | tuple) or OmegaConf.is_list(own) else ([instantiate(own)] if own else [])
    return {"plugins": [*own, SLURMEnvironment(auto_requeue=False)]}


def weights_to_test(trainer: L.Trainer, job: Job) -> str | None:
    """The best checkpoint; without one (no checkpoint callback, fast_dev_run) the final
    weights are saved as ``checkpoints/final.ckpt`` so every job can be reloaded. Returns
    the ``ckpt_path`` for ``trainer.test`` (None: the weights in memory)."""
    cb = trainer.checkpoint_callback
    best = getattr(cb, "best_model_path", "") if cb is not None else ""
    if best:
        job.record.checkpoint = best
        return best
    final = job.dir / "checkpoints" / "final.ckpt"
    trainer.save_checkpoint(final, weights_only=False)  # said: Lightning logs a line when left unset
    job.record.checkpoint = str(final)
    return None


def console(cfg: DictConfig, callbacks: list) -> dict:
    """Progress bars only on a terminal: in a log file (a batch job, a redirected launch) a bar's
    ``\r`` redraws are noise, so the job logs one line per epoch instead (``epx.console``)."""
    if cfg.trainer.get("enable_progress_bar", True) and progress_bars_wanted():
        return {}
    callbacks.append(EpochLine())
    return {"enable_progress_bar": False}


def check_distributable(cfg: DictConfig, trainer: L.Trainer) -> None:
    """A model whose config says ``distributable: false`` (the linear baseline: full-batch
    L-BFGS, whose line search runs a different number of gradient evaluations on each rank,
    so DDP's gradient all-reduces would wait on each other forever) is refused on several
    processes, before they are started."""
    if trainer.world_size > 1 and not cfg.model.get("distributable", True):
        raise InputError(
            f"model={cfg.model.name} cannot train on {trainer.world_size} processes (trainer={cfg.trainer.get('strategy', 'ddp')}): "
            f"{cfg.model.get('why_not_distributable', 'its optimizer is not data-parallel')}. Train it on one device: "
            "trainer=cpu, or trainer=gpu"
        )


def tester_of(cfg: DictConfig, trainer: L.Trainer, job: Job) -> L.Trainer | None:
    """The trainer that tests and predicts: the fitting one on a single device. After a
    multi-process (DDP) fit, rank 0 alone evaluates on one device (``epx.evaluate.
    evaluation_trainer``: a ``DistributedSampler`` would split ``predictions.csv`` across
    ranks and pad the test split with repeated genes); the process group is closed on every
    rank first (the metrics would otherwise wait on ranks that have left), and the other
    ranks get None."""
    if trainer.world_size == 1:
        return trainer
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    if trainer.global_rank != 0:
        return None
    log.info("DDP fit on %d processes done; testing and predicting on one device (rank 0)", trainer.world_size)
    return evaluation_trainer(cfg.trainer, logger=job.logger, root=job.dir)


def train(cfg: DictConfig) -> JobRecord:
    # SIGTERM / SIGINT: the record says interrupted and the process exits 143 / 130 (epx.job)
    with interruptible():
        return _train(cfg)


def _train(cfg: DictConfig) -> JobRecord:
    malloc = tune_malloc((cfg.get("compute") or {}).get("malloc_tune", True))  # before the big tensors
    apply_threads(cfg.get("threads"))
    who = identity(cfg)
    out = job_dir(cfg)
    step = plan(cfg, out)
    if step.action == "reuse":
        log.info("job %s: reused (%s; rerun=true trains it again)", out, step.note)
        if cfg.get("analysis"):  # analyses asked for now, that the finished job lacks
            explain_finished(Job(out, step.record), cfg, only_missing=True)
        return step.record
    step.clear_checkpoints(out)
    job = Job(out, new_record(cfg, who["overrides"]))
    job.record.config_digest = step.digest
    if step.action == "resume":
        job.record.extra["resumed_from"] = step.checkpoint
        log.info("job %s: resuming from %s (%s)", out, step.checkpoint, step.note)
    with job.running():
        if step.action == "resume":
            from epx.trained import read_weights

            read_weights(step.checkpoint)  # plain weights or one InputError, before Lightning unpickles it
        if global_rank() == 0:
            save_config(cfg, job.dir)
        marks, fold = validate(cfg)
        job.record.mark, job.record.marks, job.record.fold = mark_label(marks), list(marks), fold
        L.seed_everything(int(cfg.seed), workers=True, verbose=False)

        objective = instantiate(objective_config(cfg))
        job.record.primary_metric = objective.primary
        dm: EpxDataModule = instantiate(cfg.data, target_column=objective.target_column)
        dm.account_inputs()
        report = dm.input_report()
        job.record.genes, job.record.interactions = report["genes"], report["interactions"]
        lead = global_rank() == 0  # the other ranks of a DDP job write nothing
        if lead:
            dm.write_dropped(job.dir / "genes_dropped.tsv")
        job.save()
        dm.prepare_data()
        dm.setup()
        if cfg.get("analysis"):  # refused now, not after hours of training
            from epx.explain.run import (
                check_analyses,  # captum & co. only for jobs that ask
            )

            check_analyses(dm, cfg.model.name, OmegaConf.to_container(cfg.analysis, resolve=True))
        job.record.n_genes = dm.n_genes()
        job.record.extra["signals"] = dm.signal_report()  # per mark: what reads only zeros (epx.data.prepare.silence)
        if lead:
            write_folds(job, dm)
            if any(job.record.extra["signals"].values()):
                dm.write_silent(job.dir / "signals_silent.tsv")

        net = instantiate(cfg.model.net)
        make_module = instantiate(cfg.model.module, _partial_=True)
        # passed at call time: instantiate() would turn the provenance's _target_ nodes into objects
        module = make_module(net=net, objective=objective, provenance=provenance(cfg, dm))
        job.record.n_params = module.n_params

        job.logger = make_logger(cfg, job, who, run_id=step.wandb_id) if lead else False
        job.record.wandb = run_info(job.logger)
        job.save()

        callbacks = [instantiate(c) for c in cfg.get("callbacks", {}).values() if c is not None]
        callbacks += [RngState(), InterruptCheck()]
        trainer = instantiate(
            cfg.trainer, logger=job.logger, callbacks=callbacks, default_root_dir=str(job.dir), **cluster_plugins(cfg), **console(cfg, callbacks)
        )
        check_distributable(cfg, trainer)
        job.record.extra["compute"] = apply_compute(cfg.get("compute"), trainer, net)
        job.record.extra["malloc"] = malloc
        trainer.fit(module, datamodule=dm, ckpt_path=step.checkpoint, weights_only=True)  # a job dir holds data, not code

        weights = weights_to_test(trainer, job)  # every rank: saving final.ckpt is collective
        tester = tester_of(cfg, trainer, job)
        if tester is None:  # a DDP rank other than 0: rank 0 tests, predicts and writes the record
            return job.record
        evaluate(tester, module, dm, job, ckpt_path=weights)
        job.record.finish()  # ok, or degenerate when a test metric is undefined on the data
        log_record(job.logger, job.record)
    if cfg.get("analysis"):
        explain_finished(job, cfg)
    return job.record


def explain_finished(job: Job, cfg: DictConfig, *, only_missing: bool = False) -> None:
    """The job's analyses (``analysis=[...]``) into ``JOB_DIR/explain/`` (``only_missing``: those
    without a dir there yet, for a reused job). The trained model stands whatever happens
    here: a failure is logged and kept in the record as ``explain_error``, never turned into a
    failed job."""
    from epx.explain.run import explain

    analyses = OmegaConf.to_container(cfg.analysis, resolve=True)
    if only_missing:
        analyses = {k: v for k, v in analyses.items() if not (job.dir / "explain" / k).is_dir()}
    if not analyses:
        return
    try:
        explain(job.dir, analyses, cfg=cfg)
    except Exception as err:
        log.error("job %s: analyses failed: %s: %s (rerun them with epx explain %s)", job.dir, type(err).__name__, err, job.dir)
        job.record.extra["explain_error"] = f"{type(err).__name__}: {err}"
        job.save()
