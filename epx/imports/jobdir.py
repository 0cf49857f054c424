"""What every importer shares: the source file's sha256 and the imported job dir.

Contract:

- ``sha256(path) -> str``: the hex digest of a file, read in 1 MiB chunks.
- ``file_channels(overrides, marks) -> list[int]``: for each of the job's marks (in the
  canonical order its data holds them, ``epx.selection``), the index of the file's input
  channel that reads it. The user's ``mark=A+B+C`` lists the file's channels in the file's
  order; ``mark=all`` or no ``mark=`` means the canonical order. An importer reorders the
  file's first layer's input columns with it, so each mark meets the weights trained on it.
- ``write_imported_job(cfg, net, out, *, marks, fold, overrides, source, what) -> JobRecord``: a job dir
  at ``out`` that ``epx predict`` / ``epx.trained.open_job`` / ``epx explain`` open like a
  trained job: ``.hydra/config.yaml`` (``cfg``, already composed with the published recipe,
  the user's overrides and the file's net settings), ``checkpoints/final.ckpt`` (``net``'s
  weights under ``net.`` and the provenance ``epx.run.provenance`` builds) and
  ``metrics.json`` (``kind: imported``, status ``ok``, no test metrics; ``source``: what the
  importer says of the file, its sha256 included). Before anything is written it checks that
  ``cfg.model.net`` builds exactly ``net``'s parameters (a ``model.net`` override that would
  rebuild another network is one ``InputError`` naming ``what``, the file).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from epx.errors import InputError
from epx.record import JobRecord


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def given_marks(overrides: Sequence[str]) -> list[str] | None:
    """The marks of the last ``mark=`` override in the order the user wrote them (None: none given)."""
    given = [o.split("=", 1)[1] for o in overrides if o.lstrip("+").startswith("mark=")]
    if not given or given[-1].strip().lower() == "all":
        return None
    return [m.strip() for m in given[-1].strip("[] ").replace(",", "+").split("+") if m.strip()]


def file_channels(overrides: Sequence[str], marks: Sequence[str]) -> list[int]:
    """File channel of each job mark (module doc); ``marks`` is the validated, canonical selection."""
    order = given_marks(overrides)
    if order is None or sorted(order) != sorted(marks):  # 'all', a default, or what validation refused already
        return list(range(len(marks)))
    return [order.index(m) for m in marks]


def refuse_existing(out: Path) -> None:
    if (out / "metrics.json").exists():
        raise InputError(f"{out} already holds a job (metrics.json); import into a new dir")


def write_imported_job(cfg, net: nn.Module, out: str | Path, *, marks: Sequence[str], fold: int, overrides: Sequence[str],
                       source: dict, what: Path) -> JobRecord:
    """Write the job dir (module doc); ``cfg`` is validated already (``epx.preflight``)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from epx.io.atomic import write_text
    from epx.run import objective_config, provenance
    from epx.selection import mark_label

    out = Path(out)
    rebuilt = instantiate(cfg.model.net).state_dict()
    ours = net.state_dict()
    if rebuilt.keys() != ours.keys() or any(rebuilt[k].shape != ours[k].shape for k in ours):
        raise InputError(f"{what}: model={cfg.model.name} does not build the file's network; drop the model.net overrides")
    objective = instantiate(objective_config(cfg))
    dm = instantiate(cfg.data, target_column=objective.target_column)
    prov = provenance(cfg, dm)
    checkpoint = out / "checkpoints" / "final.ckpt"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {f"net.{k}": v for k, v in ours.items()}, "hyper_parameters": {"provenance": prov}}, checkpoint)
    write_text(out / ".hydra" / "config.yaml", OmegaConf.to_yaml(cfg))
    record = JobRecord(
        cell=str(cfg.cell), mark=mark_label(marks), marks=list(marks), fold=fold, model=cfg.model.name, task=cfg.task.name,
        seed=int(cfg.seed), test_cell=cfg.get("test_cell"), dataset=cfg.dataset.name, kind="imported",
        primary_metric=objective.primary, n_params=sum(p.numel() for p in net.parameters() if p.requires_grad),
        status="ok", checkpoint=str(checkpoint), overrides=list(overrides),
        extra={"source": {"path": str(Path(what).resolve()), "sha256": sha256(what), **source}},
    )
    record.write(out)
    return record
