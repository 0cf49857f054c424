"""``epx import chromoformer``: the authors' trained Chromoformer ``state_dict`` as an epx job.

Contract:

- ``read_state_dict(path) -> dict[str, Tensor]``: a ``torch.save`` of the published
  ``ChromoformerClassifier`` / ``ChromoformerRegressor`` ``state_dict()`` (the format of the
  E003 demo and per-cell weights; a training checkpoint holding it under ``net`` or
  ``state_dict`` is read too), loaded with ``torch.load(weights_only=True)``.
- ``published_kwargs(state, path) -> dict``: epx ``Chromoformer`` keyword arguments that make
  it the file's network, read from the weight shapes (marks, widths, layer and head counts,
  resolutions in the order the head concatenates them, output width). The file holds no
  window length (positions are not weights): ``window_bp`` stays the job's (40 kb as published).
- ``to_net(state, path) -> Chromoformer``: epx's net with every used weight of the file, in
  eval mode. The published fused projections are split: an attention's ``att`` (3 or 4 x
  d_inner rows: q, k, v[, gate]) becomes ``query_proj`` / ``key_value_proj`` (k then v) /
  ``gate_proj``; ``ff`` -> ``out_proj``, ``ln`` -> ``norm``; a feed-forward's ``l1``/``l2``/``ln``
  -> ``inner``/``outer``/``norm``; a regulation layer's ``gamma_f`` -> ``bias_gain``. The
  1,086 published parameters that never reach the output (every ``w_bias``, the embedding
  and pairwise layers' ``gamma_f``, each pairwise module's ``ln``) must be present with their
  shapes and are not copied: epx's net does not declare them.
- ``batch_from_published(arrays) -> dict``: the net's keyword inputs from a batch in the
  published dataset's conventions (``promoter_feats_{r}`` (B, 1, L, M), ``pcre_feats_{r}``
  (B, I, L, M), ``pcre_pad_masks_{r}`` (B, I, 1, L, L) True = masked, ``interaction_masks_{r}``
  (B, 1, I+1, I+1), ``interaction_freq`` (B, I+1, I+1)), so published inputs run in epx.
- ``import_chromoformer(path, out, *, task=None, overrides=()) -> JobRecord``: the job dir
  (``epx.imports.jobdir``) of ``experiment=chromoformer_paper`` (published input layout),
  the task the file's head implies (2 outputs: classification, 1: regression) and the
  overrides; without a ``mark=`` override a 7-mark file reads ``mark=all``, the published
  marks in the published order. A ``mark=A+B+...`` lists the file's input columns in the
  file's order; epx's data hold marks in the canonical order, so the mark projections'
  columns (``embed.*.lin_proj``, ``pairwise_interaction.*.lin_proj_pcre``) are reordered to it
  (``epx.imports.jobdir.file_channels``); the record's ``source.channels`` lists the file's order.

Every mismatch is one ``InputError`` naming the file and what differs, before anything is
written: missing, truncated or not a torch file; not a state dict; another architecture
(the keys or shapes that differ); a head width that is not the task's; a mark count that is
not the job's.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from epx.errors import InputError
from epx.imports.jobdir import file_channels, refuse_existing, write_imported_job
from epx.models.chromoformer import Chromoformer
from epx.record import JobRecord

TASKS = {2: "classification", 1: "regression"}  # the published heads' output widths
ARCHITECTURE_NAMES = {"classification": "ChromoformerClassifier", "regression": "ChromoformerRegressor"}


# ---------------------------------------------------------------- reading the file


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file (a Chromoformer state_dict saved with torch.save, .pt)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, pickle.UnpicklingError) as err:
        raise InputError(
            f"{path}: not a readable torch file ({type(err).__name__}: {' '.join(str(err).split())[:200]}); "
            "is the download truncated, or not the .pt of a Chromoformer state_dict?"
        ) from err
    if isinstance(obj, Mapping):
        for key in ("net", "state_dict"):  # the published training checkpoints, Lightning's
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        raise InputError(f"{path}: holds a {type(obj).__name__}, not a state dict of tensors (torch.save(model.state_dict(), ...))")
    return {str(k): v for k, v in obj.items()}


# ---------------------------------------------------------------- the architecture


def _shape(state: Mapping[str, Tensor], key: str, path: Path) -> tuple[int, ...]:
    if key not in state:
        raise InputError(f"{path}: no weight {key!r}; the file holds another architecture than the published Chromoformer")
    return tuple(state[key].shape)


def _count(state: Mapping[str, Tensor], prefix: str) -> int:
    layers = {k[len(prefix):].split(".")[0] for k in state if k.startswith(prefix)}
    return len(layers)


def published_kwargs(state: Mapping[str, Tensor], path: Path) -> dict:
    """epx ``Chromoformer`` kwargs of the file's network (module doc)."""
    resolutions = [int(k.split(".")[1]) for k in state if k.startswith("embed.") and k.endswith(".lin_proj.weight")]
    if not resolutions:
        raise InputError(f"{path}: no embed.<resolution>.lin_proj.weight; this is not a published Chromoformer state dict")
    r = resolutions[0]
    d_emb, n_marks = _shape(state, f"embed.{r}.lin_proj.weight", path)
    embed, pairwise, regulation = f"embed.{r}.transformer.layers.", f"pairwise_interaction.{r}.transformer.layers.", f"regulation.{r}.transformer.layers."
    d_head = _shape(state, "fc_head.0.weight", path)[0]
    return {
        "n_marks": n_marks,
        "out_dim": _shape(state, "fc_head.2.weight", path)[0],
        "resolutions": resolutions,
        "d_emb": d_emb,
        "embed_layers": _count(state, embed),
        "embed_heads": _shape(state, f"{embed}0.self_att.gamma_f", path)[0],
        "embed_ff": _shape(state, f"{embed}0.ff.l1.weight", path)[0],
        "pairwise_layers": _count(state, pairwise),
        "pairwise_heads": _shape(state, f"{pairwise}0.self_att.gamma_f", path)[0],
        "pairwise_ff": _shape(state, f"{pairwise}0.ff.l1.weight", path)[0],
        "regulation_layers": _count(state, regulation),
        "regulation_heads": _shape(state, f"{regulation}0.self_att.gamma_f", path)[0],
        "regulation_d": _shape(state, f"{regulation}0.self_att.att.weight", path)[0] // 4,
        "regulation_ff": _shape(state, f"{regulation}0.ff.l1.weight", path)[0],
        "d_head": d_head,
    }


def _layer_shapes(prefix: str, *, d: int, heads: int, d_inner: int, d_ff: int, kind: str) -> dict[str, tuple]:
    att = f"{prefix}self_att."
    shapes = {f"{att}gamma_f": (heads,), f"{att}ff.weight": (d, d_inner), f"{att}ff.bias": (d,), f"{att}ln.weight": (d,),
              f"{att}ln.bias": (d,), f"{prefix}ff.l1.weight": (d_ff, d), f"{prefix}ff.l1.bias": (d_ff,),
              f"{prefix}ff.l2.weight": (d, d_ff), f"{prefix}ff.l2.bias": (d,), f"{prefix}ff.ln.weight": (d,), f"{prefix}ff.ln.bias": (d,)}
    if kind == "pairwise":
        shapes |= {f"{att}p_att.weight": (d_inner, d), f"{att}c_att.weight": (2 * d_inner, d)}
    else:
        shapes |= {f"{att}w_bias.weight": (heads, 2), f"{att}att.weight": ((4 if kind == "gated" else 3) * d_inner, d)}
    return shapes


def published_shapes(kw: dict) -> dict[str, tuple]:
    """Every key of the published state dict with ``kw``'s settings, and its shape."""
    d, m = kw["d_emb"], kw["n_marks"]
    shapes: dict[str, tuple] = {}
    for r in kw["resolutions"]:
        shapes[f"embed.{r}.lin_proj.weight"] = (d, m)
        for i in range(kw["embed_layers"]):
            shapes |= _layer_shapes(f"embed.{r}.transformer.layers.{i}.", d=d, heads=kw["embed_heads"], d_inner=d, d_ff=kw["embed_ff"], kind="plain")
    for r in kw["resolutions"]:
        shapes |= {f"pairwise_interaction.{r}.ln.weight": (d,), f"pairwise_interaction.{r}.ln.bias": (d,),
                   f"pairwise_interaction.{r}.lin_proj_p.weight": (d, d), f"pairwise_interaction.{r}.lin_proj_pcre.weight": (d, m)}
        for i in range(kw["pairwise_layers"]):
            shapes |= _layer_shapes(f"pairwise_interaction.{r}.transformer.layers.{i}.", d=d, heads=kw["pairwise_heads"], d_inner=d,
                                    d_ff=kw["pairwise_ff"], kind="pairwise")
    for r in kw["resolutions"]:
        for i in range(kw["regulation_layers"]):
            shapes |= _layer_shapes(f"regulation.{r}.transformer.layers.{i}.", d=d, heads=kw["regulation_heads"], d_inner=kw["regulation_d"],
                                    d_ff=kw["regulation_ff"], kind="gated")
    shapes |= {"fc_head.0.weight": (kw["d_head"], len(kw["resolutions"]) * d), "fc_head.0.bias": (kw["d_head"],),
               "fc_head.2.weight": (kw["out_dim"], kw["d_head"]), "fc_head.2.bias": (kw["out_dim"],)}
    return shapes


def _check_architecture(state: Mapping[str, Tensor], kw: dict, path: Path) -> None:
    want = published_shapes(kw)
    missing = [k for k in want if k not in state]
    extra = [k for k in state if k not in want]
    wrong = [f"{k} {tuple(state[k].shape)} (expected {want[k]})" for k in want if k in state and tuple(state[k].shape) != want[k]]
    if missing or extra or wrong:
        parts = [f"{label}: {', '.join(items[:4])}{' ...' if len(items) > 4 else ''} ({len(items)})"
                 for label, items in (("missing", missing), ("unexpected", extra), ("other shapes", wrong)) if items]
        raise InputError(f"{path}: not the published Chromoformer architecture read from its own shapes ({kw}); " + "; ".join(parts))


# published key (after the module prefix) -> epx key (after the module prefix), and which rows
_ATTENTION = {"ff.weight": "out_proj.weight", "ff.bias": "out_proj.bias", "ln.weight": "norm.weight", "ln.bias": "norm.bias"}
_FEED_FORWARD = {"l1.weight": "inner.weight", "l1.bias": "inner.bias", "l2.weight": "outer.weight", "l2.bias": "outer.bias",
                 "ln.weight": "norm.weight", "ln.bias": "norm.bias"}
UNUSED = ("w_bias.weight",)  # never in a forward pass: not declared by epx's net


def _layer_pairs(src: str, dst: str, state: Mapping[str, Tensor], *, kind: str) -> list[tuple[str, Tensor]]:
    """(epx key, tensor) of one published transformer layer."""
    att, out = f"{src}self_att.", []
    for theirs, ours in _ATTENTION.items():
        out.append((f"{dst}attention.{ours}", state[att + theirs]))
    for theirs, ours in _FEED_FORWARD.items():
        out.append((f"{dst}feed_forward.{ours}", state[f"{src}ff.{theirs}"]))
    if kind == "pairwise":
        out += [(f"{dst}attention.query_proj.weight", state[f"{att}p_att.weight"]),
                (f"{dst}attention.key_value_proj.weight", state[f"{att}c_att.weight"])]
        return out
    chunks = state[f"{att}att.weight"].chunk(4 if kind == "gated" else 3, dim=0)
    out += [(f"{dst}attention.query_proj.weight", chunks[0]),
            (f"{dst}attention.key_value_proj.weight", torch.cat([chunks[1], chunks[2]], dim=0))]
    if kind == "gated":
        out += [(f"{dst}attention.gate_proj.weight", chunks[3]), (f"{dst}attention.bias_gain", state[f"{att}gamma_f"])]
    return out


def epx_state(state: Mapping[str, Tensor], kw: dict) -> dict[str, Tensor]:
    """The file's weights under epx's names (module doc)."""
    out: list[tuple[str, Tensor]] = []
    for r in kw["resolutions"]:
        b = f"branches.{r}."
        out.append((f"{b}embedding.project.weight", state[f"embed.{r}.lin_proj.weight"]))
        for i in range(kw["embed_layers"]):
            out += _layer_pairs(f"embed.{r}.transformer.layers.{i}.", f"{b}embedding.layers.{i}.", state, kind="plain")
        pw = f"pairwise_interaction.{r}."
        out += [(f"{b}pairwise.project_promoter.weight", state[f"{pw}lin_proj_p.weight"]),
                (f"{b}pairwise.project_pcre.weight", state[f"{pw}lin_proj_pcre.weight"])]
        for i in range(kw["pairwise_layers"]):
            out += _layer_pairs(f"{pw}transformer.layers.{i}.", f"{b}pairwise.layers.{i}.", state, kind="pairwise")
        for i in range(kw["regulation_layers"]):
            out += _layer_pairs(f"regulation.{r}.transformer.layers.{i}.", f"{b}regulation.layers.{i}.", state, kind="gated")
    out += [("head.0.weight", state["fc_head.0.weight"]), ("head.0.bias", state["fc_head.0.bias"]),
            ("head.2.weight", state["fc_head.2.weight"]), ("head.2.bias", state["fc_head.2.bias"])]
    return {k: v.detach().to(torch.float32).contiguous() for k, v in out}


def to_net(state: Mapping[str, Tensor], path: str | Path, *, window_bp: int = 40_000, i_max: int = 8) -> Chromoformer:
    """epx's Chromoformer holding the file's weights, in eval mode."""
    path = Path(path)
    kw = published_kwargs(state, path)
    _check_architecture(state, kw, path)
    net = Chromoformer(**kw, window_bp=window_bp, i_max=i_max)
    ours = epx_state(state, kw)
    target = net.state_dict()
    if ours.keys() != target.keys():  # a mapping bug, not the file's fault: say which keys
        raise RuntimeError(f"importer maps to {sorted(set(ours) ^ set(target))[:4]} that epx's Chromoformer does not have")
    net.load_state_dict(ours, strict=True)
    return net.eval()


def n_unused(state: Mapping[str, Tensor], net: Chromoformer) -> int:
    """Parameters of the file that epx's net does not declare (1,086 with the defaults)."""
    return sum(v.numel() for v in state.values()) - sum(p.numel() for p in net.parameters())


# ---------------------------------------------------------------- published batches


def batch_from_published(arrays: Mapping[str, np.ndarray], resolutions: Sequence[int] = (2000, 500, 100)) -> dict:
    """The epx net's keyword inputs of a batch in the published layout (module doc)."""
    def as_tensor(a):
        return torch.as_tensor(np.asarray(a))

    promoter, pcres, bin_mask = {}, {}, {}
    for r in resolutions:
        promoter[r] = as_tensor(arrays[f"promoter_feats_{r}"])[:, 0].transpose(1, 2).float()  # (B, M, L)
        pcres[r] = as_tensor(arrays[f"pcre_feats_{r}"]).transpose(2, 3).float()  # (B, I, M, L)
        bin_mask[r] = ~as_tensor(arrays[f"pcre_pad_masks_{r}"])[:, :, 0].bool().all(dim=-2)  # a column real in some row
    r = resolutions[0]
    pcre_mask = ~as_tensor(arrays[f"interaction_masks_{r}"])[:, 0, 0, 1:].bool()
    freq = as_tensor(arrays["interaction_freq"])[:, 0, 1:].float()
    return {"promoter": promoter, "pcres": pcres, "pcre_bin_mask": bin_mask, "pcre_mask": pcre_mask, "freq": freq}


# ---------------------------------------------------------------- the job dir


def import_chromoformer(path: str | Path, out: str | Path, *, task: str | None = None, overrides: Sequence[str] = ()) -> JobRecord:
    """Write a job dir at ``out`` holding the file's network (module doc)."""
    from omegaconf import OmegaConf

    from epx.config import compose
    from epx.preflight import validate
    from epx.selection import mark_label

    path, out = Path(path), Path(out)
    state = read_state_dict(path)
    kw = published_kwargs(state, path)
    _check_architecture(state, kw, path)
    found = TASKS.get(kw["out_dim"])
    if found is None:
        raise InputError(f"{path}: the head has {kw['out_dim']} outputs; the published classifier has 2, the regressor 1")
    if task is not None and task != found:
        raise InputError(f"{path}: the head has {kw['out_dim']} output(s), a {found} model, not {task} (--task {found})")
    refuse_existing(out)
    overrides = list(overrides)
    given = {o.split("=", 1)[0].lstrip("+~") for o in overrides if "=" in o}
    defaults = [f"task={found}"] + (["mark=all"] if "mark" not in given and kw["n_marks"] == 7 else [])
    cfg = compose(["experiment=chromoformer_paper", *defaults, *overrides, f"paths.output_dir={out}"])
    marks, fold = validate(cfg)
    if len(marks) != kw["n_marks"]:
        raise InputError(
            f"{path}: the file's network reads {kw['n_marks']} marks, the job's are {len(marks)} ({mark_label(marks)}); "
            f"give mark= with {kw['n_marks']} marks (the published order: H3K4me1 H3K4me3 H3K9me3 H3K27me3 H3K36me3 H3K27ac H3K9ac)"
        )
    OmegaConf.set_struct(cfg, False)
    OmegaConf.update(cfg, "model.inputs.resolutions", kw["resolutions"], merge=False)
    OmegaConf.update(cfg, "model.net", {k: v for k, v in kw.items() if k != "resolutions"}, merge=True)
    channels = file_channels(overrides, marks)
    net = to_net(reorder_marks(state, channels), path, window_bp=int(cfg.model.inputs.window_bp), i_max=int(cfg.model.inputs.i_max))
    return write_imported_job(cfg, net, out, marks=marks, fold=fold, overrides=overrides, what=path,
                              source={"architecture": ARCHITECTURE_NAMES[found], "unused_parameters": n_unused(state, net),
                                      "channels": [marks[channels.index(c)] for c in range(len(marks))]})


MARK_PROJECTIONS = (".lin_proj.weight", ".lin_proj_pcre.weight")  # the (d, n_marks) weights that read the marks


def reorder_marks(state: Mapping[str, Tensor], channels: Sequence[int]) -> dict[str, Tensor]:
    """``state`` with each mark projection's column i taken from the file's column ``channels[i]``."""
    index = torch.as_tensor(list(channels), dtype=torch.long)
    return {k: (v.index_select(1, index) if k.endswith(MARK_PROJECTIONS) else v) for k, v in state.items()}


def main(argv: Sequence[str]) -> int:
    """``epx import chromoformer ...`` (its command line lives in ``epx.imports.cli``, parsed before torch loads)."""
    from epx.imports.cli import main as run

    return run("chromoformer", argv)
