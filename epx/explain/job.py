"""A finished job opened for interpretation: its net (eval mode), data and adapter.

Contract: ``ExplainJob.load(job_dir, *, overrides=(), device="cpu") -> ExplainJob`` opens the
finished job from its own saved config, record and checkpoint (``epx.trained.open_job``, the
path ``epx predict`` takes: net and input builder from the checkpoint's provenance), then
prepares and sets up the job's ``EpxDataModule`` (cache reused, same folds). ``overrides`` are ``epx predict``'s
(``cell=``, ``fold=``, ``dataset=``): explain the trained model on another cell's data. A
cross-cell job (``test_cell``) is explained on its training cell; pass ``cell=`` for another.

Attributes: ``dir``, ``record`` (``JobRecord``), ``cfg`` (the job's config, overrides applied), ``provenance``,
``objective``, ``net`` (eval mode, on ``device``), ``dm`` (set up: ``dm.genes``, ``dm.split``,
``dm.tables``, ``dm.datasets``), ``adapter`` (``epx.explain.adapters``), ``marks``, ``genes``
(the gene table), ``model``; ``rows(split="test")`` the gene-table rows of a split (``"all"``:
every used gene), ``expressed(rows)`` the classification label (RPKM >= the cell's median),
``gene_ids(rows)``.

Bad input — not a job dir, a job that did not finish, no checkpoint, a checkpoint without
provenance, an override that changes the model — is one ``InputError`` before any data work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, open_dict
from torch import nn

from epx.errors import InputError
from epx.explain.adapters import Adapter, adapter_for
from epx.record import JobRecord
from epx.trained import open_job

SPLITS = ("train", "val", "test")


@dataclass
class ExplainJob:
    dir: Path
    record: JobRecord
    cfg: DictConfig
    provenance: dict
    objective: object
    net: nn.Module
    dm: object  # epx.data.datamodule.EpxDataModule, set up
    adapter: Adapter
    device: torch.device

    @classmethod
    def load(cls, job_dir: str | Path, *, overrides: Sequence[str] = (), device: str | torch.device = "cpu", cfg=None) -> "ExplainJob":
        overrides = list(overrides)
        try:
            test_cell = JobRecord.read(Path(job_dir)).test_cell
        except Exception:  # open_job reports an unreadable record as one InputError
            test_cell = None
        if test_cell and not any(o.startswith("test_cell=") for o in overrides):
            overrides.append("test_cell=null")
            if cfg is not None and cfg.get("test_cell"):  # the job's own config: explain its training cell too
                cfg = cfg.copy()
                with open_dict(cfg):
                    cfg.test_cell = None
        src = open_job(job_dir, overrides, cfg=cfg)  # cfg: the job's own, when it explains itself
        dm = src.dm
        dm.prepare_data()
        dm.setup()
        device = torch.device(device)
        net = src.net().to(device).eval()
        for p in net.parameters():
            p.requires_grad_(False)
        adapter = adapter_for(net, dm, src.objective, src.provenance["model"], device)
        return cls(Path(job_dir), src.record, src.cfg, src.provenance, src.objective, net, dm, adapter, device)

    @property
    def model(self) -> str:
        return str(self.provenance["model"])

    @property
    def marks(self) -> tuple[str, ...]:
        return tuple(self.dm.marks)

    @property
    def genes(self) -> pd.DataFrame:
        return self.dm.genes

    def rows(self, split: str = "test") -> np.ndarray:
        """Gene-table rows of ``split`` (ascending); ``"all"``: every gene of the job's splits."""
        if split == "all":
            return np.flatnonzero(self.dm.split.isin(SPLITS).to_numpy())
        if split not in SPLITS:
            raise InputError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)} or all")
        return np.flatnonzero((self.dm.split == split).to_numpy())

    def expressed(self, rows) -> np.ndarray:
        """True where the gene's RPKM >= the cell's median (the classification label)."""
        return self.genes["label"].to_numpy()[np.asarray(rows, np.int64)].astype(bool)

    def gene_ids(self, rows) -> np.ndarray:
        return self.genes["gene_id"].to_numpy()[np.asarray(rows, np.int64)]

    def mark_index(self, mark: str) -> int:
        if mark not in self.marks:
            raise InputError(f"mark {mark!r} is not an input of this job ({self.model} on {'+'.join(self.marks)}); choose one of {', '.join(self.marks)}")
        return self.marks.index(mark)

    def chrom_sizes(self) -> dict[str, int]:
        return dict(self.dm.cell_cache(self.dm.cell).chrom_sizes)
