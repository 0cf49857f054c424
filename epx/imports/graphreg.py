"""``epx import graphreg``: the authors' trained Keras GraphReg models as epx jobs.

Contract:

- ``read_keras(path) -> KerasModel``: a Keras 2 HDF5 file (``model.save(...)`` of the GraphReg
  repository's train/Epi-GraphReg.py or train/Epi-CNN.py) read with h5py alone (no
  TensorFlow): its model config (layers in the order Keras runs them) and every weight
  (``model_weights/<layer>/<layer>/<weight>:0``).
- ``to_net(keras, model, channels=None) -> nn.Module``: epx's net for ``model`` (``ARCHITECTURES``:
  ``epi_graphreg`` -> ``EpiGraphReg(attention="published", layer_order="published")``,
  ``epi_cnn`` -> ``EpiCNN(layer_order="published")``), sized from the file (tracks, widths,
  heads, blocks), with every weight of the file in it, in eval mode. The Keras layers of each
  kind (Conv1D, BatchNormalization, GraphAttention) are matched in order with the epx net's
  modules of that kind in the order they run; Conv1D kernels (k, in, out) become (out, in,
  k), a head's (in, F) kernels become rows h*F:(h+1)*F of the (heads*F, in) projections.
  ``channels[i]``: the file's input channel that the net's channel i reads (the first
  Conv1D's input columns reordered; default: the file's order).
- ``import_graphreg(path, out, *, model=None, overrides=()) -> JobRecord``: a job dir at
  ``out`` that ``epx predict`` / ``epx.trained.open_job`` / ``epx explain`` open like a trained
  job: ``.hydra/config.yaml`` (``conf/`` composed with ``model=`` the published recipe and the
  overrides), ``checkpoints/final.ckpt`` (the net's weights and the provenance that
  ``epx.run.provenance`` builds) and ``metrics.json`` (``kind: imported``, status ``ok``, no
  test metrics; ``source`` = the file's path, sha256, Keras version and architecture).
  ``model=None`` takes the architecture the file holds.

The file's tracks must be the job's marks: ``mark=A+B+C`` with as many marks as the file has
input tracks, written in the order of the file's input channels (the original's inputs are
channels-last; each channel is one mark). epx's data hold marks in the canonical order
(``epx.selection``), so the net's first layer reads the file's channels reordered to it
(``epx.imports.jobdir.file_channels``); the record's ``source.channels`` lists the marks in the
file's order.
Every mismatch is one ``InputError`` naming what differs, before anything is written: a
missing, truncated or non-HDF5 file, a file without a Keras model config, another
architecture than ``model``, a layer whose settings epx's net does not have (kernel size,
dilation, activation, BatchNorm epsilon, attention reduction), another track count than the
marks, a weight whose shape differs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from epx.errors import InputError
from epx.imports.jobdir import (
    file_channels,
    refuse_existing,
    sha256,  # noqa: F401  (re-exported: where `epx import graphreg` users found it)
    write_imported_job,
)
from epx.models.epi_cnn import EpiCNN
from epx.models.graphreg import EpiGraphReg
from epx.models.graphreg_blocks import LAYER_ORDERS
from epx.models.graphreg_gat import PublishedGATConv
from epx.record import JobRecord


@dataclass
class KerasLayer:
    name: str
    kind: str  # Keras class name: Conv1D, BatchNormalization, GraphAttention, Dropout, ...
    config: dict
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # short name (kernel, gamma, ...) -> array


@dataclass
class KerasModel:
    path: Path
    name: str
    keras_version: str
    layers: list[KerasLayer]

    def of_kind(self, kind: str) -> list[KerasLayer]:
        return [layer for layer in self.layers if layer.kind == kind]

    @property
    def tracks(self) -> int:
        shape = self.layers[0].config.get("batch_input_shape") if self.layers else None
        if not shape or self.layers[0].kind != "InputLayer":
            raise InputError(f"{self.path}: the model's first layer is not an input of shape (None, bins, tracks)")
        return int(shape[-1])


@dataclass(frozen=True)
class Architecture:
    """One published network: how to recognise it in a file and what epx builds for it."""

    keras_name: str
    config: str  # conf/model/<config>.yaml: the epx model that runs it (the file sets its net)


ARCHITECTURES: dict[str, Architecture] = {
    "epi_graphreg": Architecture("Epi-GraphReg", "graphreg_published"),
    "epi_cnn": Architecture("Epi-CNN", "epi_cnn"),
}


# ---------------------------------------------------------------- reading the file


def read_keras(path: str | Path) -> KerasModel:
    """The model config and weights of a Keras 2 HDF5 file, with h5py only."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file (a Keras model saved by the GraphReg repository, .h5)")
    try:
        with h5py.File(path, "r") as h5:
            if "model_config" not in h5.attrs or "model_weights" not in h5:
                raise InputError(
                    f"{path}: an HDF5 file without a Keras model (no model_config / model_weights); "
                    "expected a file written by the GraphReg repository's model.save(...)"
                )
            config = json.loads(_text(h5.attrs["model_config"]))
            version = _text(h5.attrs.get("keras_version", "unknown"))
            group = h5["model_weights"]
            layers = []
            for spec in config.get("config", {}).get("layers", []):
                layer = KerasLayer(spec["config"]["name"], spec["class_name"], spec["config"])
                if layer.name in group:
                    for weight_name in group[layer.name].attrs.get("weight_names", []):
                        weight_name = _text(weight_name)
                        short = weight_name.rsplit("/", 1)[-1].split(":")[0]
                        layer.weights[short] = np.asarray(group[layer.name][weight_name], dtype=np.float32)
                layers.append(layer)
    except InputError:
        raise
    except (OSError, KeyError, ValueError) as err:  # truncated, not HDF5, a broken config
        raise InputError(
            f"{path}: not a readable Keras HDF5 model ({type(err).__name__}: {' '.join(str(err).split())[:200]}); "
            "is the file truncated, or not the .h5 that model.save(...) wrote?"
        ) from err
    if not layers:
        raise InputError(f"{path}: the Keras model config lists no layers")
    return KerasModel(path, str(config.get("config", {}).get("name", "")), version, layers)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def detect(keras: KerasModel) -> str:
    """The ``ARCHITECTURES`` key of the network a file holds."""
    return "epi_graphreg" if keras.of_kind("GraphAttention") else "epi_cnn"


# ---------------------------------------------------------------- building the net


def _one(values: set, what: str, path: Path):
    if len(values) != 1:
        raise InputError(f"{path}: the file's {what} differ between layers ({sorted(values)}); epx's net uses one")
    return values.pop()


def net_kwargs(keras: KerasModel, model: str) -> dict:
    """The epx net's keyword arguments that make it the file's network."""
    convs, gats = keras.of_kind("Conv1D"), keras.of_kind("GraphAttention")
    drops = {float(layer.config.get("rate", 0.5)) for layer in keras.of_kind("Dropout")} or {0.5}
    kwargs = {"n_marks": keras.tracks, "d": int(convs[0].config["filters"]), "dropout": _one(drops, "dropout rates", keras.path),
              "output": "exp", "layer_order": "published"}
    if model == "epi_graphreg":
        if not gats:
            raise InputError(f"{keras.path}: no GraphAttention layer; this is not an Epi-GraphReg model (try --model epi_cnn)")
        kwargs |= {
            "n_gat_layers": len(gats),
            "heads": _one({int(g.config["attn_heads"]) for g in gats}, "attention head counts", keras.path),
            "gat_dim": _one({int(g.config["F_"]) for g in gats}, "attention widths (F_)", keras.path),
            "attention": "published",
        }
    else:
        if gats:
            raise InputError(f"{keras.path}: the file holds an Epi-GraphReg model (it has GraphAttention layers), not Epi-CNN (try --model epi_graphreg)")
        dilated = [c for c in convs if int(c.config["dilation_rate"][0]) > 1]
        kwargs |= {"channels": int(dilated[0].config["filters"]) if dilated else int(convs[-2].config["filters"]),
                   "n_dilated_blocks": len(dilated)}
    return kwargs


def _expect(ok: bool, keras: KerasModel, layer: KerasLayer, what: str) -> None:
    if not ok:
        raise InputError(f"{keras.path}: layer {layer.name} ({layer.kind}) {what}, which epx's published net does not have")


def _copy(target: torch.Tensor, value: np.ndarray, keras: KerasModel, where: str) -> None:
    if tuple(target.shape) != value.shape:
        raise InputError(
            f"{keras.path}: {where} has shape {value.shape}, epx's net expects {tuple(target.shape)}; "
            "the file's architecture differs from the published one"
        )
    with torch.no_grad():
        target.copy_(torch.from_numpy(value))


def to_net(keras: KerasModel, model: str, channels: Sequence[int] | None = None) -> nn.Module:
    """epx's published net for ``model``, filled with the file's weights, in eval mode."""
    kwargs = net_kwargs(keras, model)
    net = (EpiGraphReg if model == "epi_graphreg" else EpiCNN)(**kwargs)
    eps = LAYER_ORDERS["published"].eps
    pairs = {
        "Conv1D": [m for m in net.modules() if isinstance(m, nn.Conv1d)],
        "BatchNormalization": [m for m in net.modules() if isinstance(m, nn.BatchNorm1d)],
        "GraphAttention": [m for m in net.modules() if isinstance(m, PublishedGATConv)],
    }
    for kind, modules in pairs.items():
        layers = keras.of_kind(kind)
        if len(layers) != len(modules):
            raise InputError(
                f"{keras.path}: {len(layers)} {kind} layers, epx's published {model} has {len(modules)} "
                f"(with {kwargs}); the file holds another architecture"
            )
        for layer, module in zip(layers, modules):
            w = layer.weights
            if kind == "Conv1D":
                _expect(layer.config.get("padding") == "same", keras, layer, f"has padding {layer.config.get('padding')!r}")
                _expect(int(layer.config["kernel_size"][0]) == module.kernel_size[0], keras, layer, f"has kernel size {layer.config['kernel_size']}")
                _expect(int(layer.config["dilation_rate"][0]) == module.dilation[0], keras, layer, f"has dilation {layer.config['dilation_rate']}")
                kernel = w["kernel"].transpose(2, 1, 0)  # (out, in, k)
                if channels is not None and layer is layers[0]:  # the input layer: the job's mark order
                    kernel = kernel[:, list(channels), :]
                _copy(module.weight, np.ascontiguousarray(kernel), keras, f"{layer.name}/kernel")
                _copy(module.bias, w["bias"], keras, f"{layer.name}/bias")
            elif kind == "BatchNormalization":
                _expect(abs(float(layer.config.get("epsilon", eps)) - eps) < 1e-12, keras, layer, f"has epsilon {layer.config.get('epsilon')}")
                for ours, theirs in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"), ("running_var", "moving_variance")):
                    _copy(getattr(module, ours), w[theirs], keras, f"{layer.name}/{theirs}")
            else:
                _expect(layer.config.get("attn_heads_reduction") == "concat", keras, layer, "averages its heads")
                _expect(not layer.config.get("use_bias", False), keras, layer, "has a bias")
                f = module.out_channels
                for h in range(module.heads):
                    rows = slice(h * f, (h + 1) * f)
                    _copy(module.lin_self.weight[rows], np.ascontiguousarray(w[f"kernel_self_{h}"].T), keras, f"{layer.name}/kernel_self_{h}")
                    _copy(module.lin_neigh.weight[rows], np.ascontiguousarray(w[f"kernel_neighs_{h}"].T), keras, f"{layer.name}/kernel_neighs_{h}")
                    _copy(module.att_self[h], w[f"attn_kernel_self_{h}"][:, 0], keras, f"{layer.name}/attn_kernel_self_{h}")
                    _copy(module.att_neigh[h], w[f"attn_kernel_neigh_{h}"][:, 0], keras, f"{layer.name}/attn_kernel_neigh_{h}")
    _check_activations(keras, model)
    return net.eval()


def _check_activations(keras: KerasModel, model: str) -> None:
    # every Conv1D is ReLU but the last (the count: exponential); the attention is ELU
    convs = keras.of_kind("Conv1D")
    for layer in convs:
        want = "exponential" if layer is convs[-1] else "relu"
        _expect(layer.config.get("activation") == want, keras, layer, f"has activation {layer.config.get('activation')!r} (expected {want!r})")
    for layer in keras.of_kind("GraphAttention"):
        act = layer.config.get("activation", "elu")
        _expect(act in ("elu", None) or (isinstance(act, str) and act.endswith("elu")), keras, layer, f"has activation {act!r}")


# ---------------------------------------------------------------- the job dir


def import_graphreg(path: str | Path, out: str | Path, *, model: str | None = None, overrides: Sequence[str] = ()) -> JobRecord:
    """Write a job dir at ``out`` holding the Keras file's network (module doc)."""
    from omegaconf import OmegaConf

    from epx.config import compose
    from epx.preflight import validate
    from epx.selection import mark_label

    path, out = Path(path), Path(out)
    keras = read_keras(path)
    found = detect(keras)
    model = model or found
    if model not in ARCHITECTURES:
        raise InputError(f"unknown --model {model!r}; choose one of {sorted(ARCHITECTURES)}")
    if model != found:
        raise InputError(f"{path}: the file holds {ARCHITECTURES[found].keras_name}, not {ARCHITECTURES[model].keras_name} (--model {found})")
    refuse_existing(out)
    arch = ARCHITECTURES[model]
    net = to_net(keras, model)  # every file check before any composition or data work
    cfg = compose([f"model={arch.config}", *overrides, f"paths.output_dir={out}"])
    marks, fold = validate(cfg)
    if len(marks) != keras.tracks:
        raise InputError(
            f"{path}: the file's network reads {keras.tracks} tracks, the job's marks are {len(marks)} ({mark_label(marks)}); "
            f"give mark= with {keras.tracks} marks in the order of the file's input channels"
        )
    # the file decides the net (widths, heads, layer order): model.net overrides cannot change it
    OmegaConf.set_struct(cfg, False)
    OmegaConf.update(cfg, "model.net", net_kwargs(keras, model), merge=True)
    channels = file_channels(overrides, marks)
    if channels != sorted(channels):
        net = to_net(keras, model, channels)
    in_file_order = [marks[channels.index(c)] for c in range(len(marks))]
    return write_imported_job(cfg, net, out, marks=marks, fold=fold, overrides=overrides, what=path,
                              source={"keras_version": keras.keras_version, "architecture": arch.keras_name, "channels": in_file_order})


def main(argv: Sequence[str]) -> int:
    """``epx import graphreg ...`` (its command line lives in ``epx.imports.cli``, parsed before torch loads)."""
    from epx.imports.cli import main as run

    return run("graphreg", argv)
