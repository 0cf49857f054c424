"""The one LightningModule for every model and task.

Contract: ``EpxModule(net, objective, optimizer=None, scheduler=None, monitor="val/loss",
provenance=None)`` where ``net`` is a plain ``nn.Module`` called as ``net(**batch["x"])``,
``objective`` an ``epx.train.objectives`` object, and ``optimizer``/``scheduler`` partials
from config (``_partial_: true``) completed here with the parameters / optimizer (a module
built only to predict needs neither). Batches are dicts: ``x`` (the net's keyword inputs),
``y`` (targets), ``gene`` (row index into the gene table).

``provenance`` is what rebuilds the net and its inputs without the original config (the
resolved net, inputs and objective configs, marks, cell, fold, dataset fingerprint; see
``epx.run.provenance``). It is saved as the module's hyper-parameters, so every checkpoint
carries it (``checkpoint["hyper_parameters"]["provenance"]``) and ``epx predict`` can score
the checkpoint on another cell, fold or dataset.

Logs ``{train,val,test}/loss`` and per-gene ``{val,test}/<metric>``: the metrics are updated
each step and computed once at the epoch's end; a metric undefined on the data
(``epx.train.undefined``) is not logged at all — no logger, W&B included, receives a number
for it — and its reason is kept in ``undefined[stage]`` (``{name: reason}``, names without
the stage prefix), which the evaluation step puts in the job record. ``predict_step`` returns
per-gene ``gene``, ``prediction``, ``target`` for ``predictions.csv``. A net may define
``penalty()``, a regularisation term added to the training loss.

``prior`` (optional, e.g. ``epx.train.priors.FourierAttributionPrior``): a term on the input
gradients. When set, ``training_step`` makes ``batch["x"][prior.input_key]`` require grad
(a detached copy) before the forward, adds ``prior(net, inputs, out)`` (differentiable, the
gradient's graph kept) to the loss and logs it as ``train/prior``. Without one (the default)
training is exactly as before.

A net may compute the objective's loss itself (``OwnLoss``: ``objective_loss(objective, batch)``
gives the same value and gradients as ``objective.loss(net(**batch["x"]), batch)``, or None to
use that); the linear baseline scores L-BFGS's repeated evaluations of one batch from the
batch's moments. ``objective_loss(net, objective, batch)`` makes that choice, as training
without a prior does.

A training loss that is NaN or inf stops the job: ``training_step`` raises
``epx.errors.NonFiniteLossError`` giving the global step, epoch, batch and loss value and the
fixes (lower the learning rate, check the inputs for NaN, clip gradients with
``trainer.gradient_clip_val``), so the job ends ``failed`` with that reason instead of going
on to report NaN test metrics as a result. (The check reads the loss back each step, one
scalar, which on a GPU is a synchronisation per step; a diverged run costs far more.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import lightning as L
import torch
from torch import nn

from epx.errors import NonFiniteLossError
from epx.train.undefined import undefined_reasons


@runtime_checkable
class Penalized(Protocol):
    """A net with a regularisation term added to its training loss (the linear baseline's ridge)."""

    def penalty(self) -> torch.Tensor: ...


@runtime_checkable
class OwnLoss(Protocol):
    """A net that can compute an objective's loss on a batch more cheaply than from its forward."""

    def objective_loss(self, objective, batch: dict) -> torch.Tensor | None: ...


def objective_loss(net: nn.Module, objective, batch: dict) -> torch.Tensor:
    """``objective.loss(net(**batch["x"]), batch)``, or the net's own equal computation of it."""
    own = net.objective_loss(objective, batch) if isinstance(net, OwnLoss) else None
    return objective.loss(net(**batch["x"]), batch) if own is None else own


class EpxModule(L.LightningModule):
    def __init__(
        self,
        *,
        net: nn.Module,
        objective,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., object] | None = None,
        monitor: str = "val/loss",
        provenance: dict | None = None,
        prior=None,
    ):
        super().__init__()
        # logger=False: the run logs the whole resolved config itself
        self.save_hyperparameters({"provenance": provenance, "monitor": monitor}, logger=False)
        self.net = net
        self.objective = objective
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.monitor = monitor
        self.prior = prior
        self.val_metrics = objective.metrics().clone(prefix="val/")
        self.test_metrics = objective.metrics().clone(prefix="test/")
        self.undefined: dict[str, dict[str, str]] = {}

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.net.parameters() if p.requires_grad)

    def forward(self, x: dict) -> torch.Tensor:
        return self.net(**x)

    def _batch_size(self, batch: dict) -> int:
        return int(batch["y"].shape[0])

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        if self.prior is None:
            loss = objective_loss(self.net, self.objective, batch)
        else:
            inputs = dict(batch["x"])
            inputs[self.prior.input_key] = inputs[self.prior.input_key].detach().requires_grad_(True)
            out = self(inputs)
            prior = self.prior(self.net, inputs, out)
            self.log("train/prior", prior, on_step=False, on_epoch=True, batch_size=self._batch_size(batch))
            loss = self.objective.loss(out, batch) + prior
        if isinstance(self.net, Penalized):
            loss = loss + self.net.penalty()
        if not torch.isfinite(loss.detach()).all():
            raise NonFiniteLossError(
                f"training loss is {loss.detach().float().item()} at global step {self.global_step} "
                f"(epoch {self.current_epoch}, batch {batch_idx}); training stopped. Lower the learning rate "
                "(model.module.optimizer.lr), check the inputs (signals, expression) for NaN or inf, or clip "
                "gradients with trainer.gradient_clip_val=1.0"
            )
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=self._batch_size(batch))
        return loss

    def _eval_step(self, batch: dict, stage: str, metrics) -> None:
        out = self(batch["x"])
        loss = self.objective.loss(out, batch)
        self.objective.update_metrics(metrics, out, batch)
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=self._batch_size(batch))

    def _log_metrics(self, stage: str, metrics) -> None:
        """Compute the epoch's metrics once (synchronised across processes, so every rank logs
        the same keys), log the defined ones, keep the reasons of the others, reset."""
        values = metrics.compute()
        undefined = undefined_reasons(metrics)
        self.undefined[stage] = {key.split("/", 1)[1]: why for key, why in undefined.items()}
        self.log_dict({key: value for key, value in values.items() if key not in undefined}, on_step=False, on_epoch=True)
        metrics.reset()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "val", self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val", self.val_metrics)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "test", self.test_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test", self.test_metrics)

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict:
        pred, target, gene = self.objective.gene_outputs(self(batch["x"]), batch)
        return {"gene": gene.cpu(), "prediction": pred.detach().float().cpu(), "target": target.float().cpu()}

    def configure_optimizers(self):
        if self.optimizer_factory is None:
            raise RuntimeError("this EpxModule was built for prediction only (no optimizer); it cannot be trained")
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor, "interval": "epoch"}}
