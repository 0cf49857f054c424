"""W&B sweep files (``sweeps/*.yaml``): every parameter combination an agent can launch composes.

Each file is expanded as W&B's sweep controller would (grid: the cartesian product of the
``values``; bayes/random: points drawn from each distribution, its bounds included), turned
into a command line exactly as ``wandb agent`` does (``wandb.sdk.launch.sweeps.utils``, the
agent's own ``${args_no_hyphens}`` formatting and command substitution), and each command's
``key=value`` arguments are composed with Hydra (``epx.config.compose``) and validated as a job
would validate them. The default run composes a set of grid points that holds every value
of every parameter; ``pytest -m slow`` composes the whole cartesian product.
"""

from __future__ import annotations

import itertools
import math
import random
from pathlib import Path

import pytest
import torch
import yaml
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from conftest import REPO
from epx.config import CONF_DIR, compose
from epx.run import validate
from epx.selection import mark_label, parse_marks

SWEEPS = sorted((REPO / "sweeps").glob("*.yaml"))
COMMAND = ["${env}", "${interpreter}", "${program}", "${args_no_hyphens}"]
GROUPS = {path.name for path in CONF_DIR.iterdir() if path.is_dir()}
N_RANDOM = 4  # random points per distribution, besides its bounds
_ABSENT = object()


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


# ---------------------------------------------------------------- what the controller proposes


def distribution(spec: dict) -> str:
    """The distribution W&B uses for a parameter spec (inferred as the controller does)."""
    if "distribution" in spec:
        return spec["distribution"]
    if "value" in spec:
        return "constant"
    if "values" in spec:
        return "categorical"
    if "min" in spec and "max" in spec:
        return "int_uniform" if all(isinstance(spec[k], int) for k in ("min", "max")) else "uniform"
    raise AssertionError(f"parameter spec {spec} has no value, values, min/max or distribution")


def draw(spec: dict, rng: random.Random) -> list:
    """The spec's bounds (where it has them) and ``N_RANDOM`` random draws, as W&B samples them."""
    kind = distribution(spec)
    low, high = spec.get("min"), spec.get("max")
    quantize = (lambda x: round(x / spec["q"]) * spec["q"]) if kind.startswith("q_") else (lambda x: x)
    base = kind[2:] if kind.startswith("q_") else kind
    if base == "constant":
        return [spec["value"]]
    if base == "categorical":
        return list(spec["values"])
    if base == "int_uniform":
        return [low, high, *(rng.randint(low, high) for _ in range(N_RANDOM))]
    if base == "uniform":
        return [quantize(x) for x in (low, high, *(rng.uniform(low, high) for _ in range(N_RANDOM)))]
    if base == "log_uniform":  # min/max are natural-log exponents
        return [quantize(math.exp(x)) for x in (low, high, *(rng.uniform(low, high) for _ in range(N_RANDOM)))]
    if base == "log_uniform_values":
        exps = (math.log(low), math.log(high), *(rng.uniform(math.log(low), math.log(high)) for _ in range(N_RANDOM)))
        return [quantize(math.exp(x)) for x in exps]
    if base == "inv_log_uniform_values":
        exps = (math.log(low), math.log(high), *(rng.uniform(math.log(low), math.log(high)) for _ in range(N_RANDOM)))
        return [1.0 / math.exp(x) for x in exps]
    if base in ("normal", "log_normal"):
        mu, sigma = spec.get("mu", 0.0), spec.get("sigma", 1.0)
        values = [rng.gauss(mu, sigma) for _ in range(N_RANDOM)]
        return [quantize(math.exp(x) if base == "log_normal" else x) for x in values]
    if base == "beta":
        return [rng.betavariate(spec.get("a", 1.0), spec.get("b", 1.0)) for _ in range(N_RANDOM)]
    raise AssertionError(f"distribution {kind!r} is not one this test knows how to sample; teach it")


def proposals(sweep: dict, *, full: bool = False) -> list[dict]:
    """Parameter sets the controller can propose: grid points (``full``: all of them, else a
    set holding every value of every parameter), or draws for bayes/random."""
    params = sweep["parameters"]
    for name, spec in params.items():
        assert isinstance(spec, dict) and "parameters" not in spec, f"{name}: nested parameters reach Hydra as a dict"
    if sweep["method"] == "grid":
        choices = {}
        for name, spec in params.items():
            assert distribution(spec) in ("constant", "categorical"), f"grid parameter {name} needs value or values"
            choices[name] = [spec["value"]] if "value" in spec else list(spec["values"])
    else:
        rng = random.Random(0)
        choices = {name: draw(spec, rng) for name, spec in params.items()}
    if full:
        assert sweep["method"] == "grid", "only a grid has a finite set of points"
        return [dict(zip(choices, point)) for point in itertools.product(*choices.values())]
    n = max(len(values) for values in choices.values())
    return [{name: values[i % len(values)] for name, values in choices.items()} for i in range(n)]


def agent_command(sweep: dict, point: dict) -> list[str]:
    """The command line ``wandb agent`` runs for ``point`` (wandb_agent.Agent._command_run)."""
    from wandb.sdk.launch.sweeps import utils as sweep_utils

    command = {"program": sweep["program"], "args": {name: {"value": value} for name, value in point.items()}}
    variables = sweep_utils.create_sweep_command_args(command)
    variables.update(interpreter=["python"], program=[command["program"]], env=["/usr/bin/env"])
    line = []
    for chunk in sweep_utils.create_sweep_command(list(sweep["command"])):
        chunk = str(chunk)
        line += variables.get(chunk[2:-1]) or [] if chunk.startswith("${") and chunk.endswith("}") else [chunk]
    return line


# ---------------------------------------------------------------- checks


def check_composes(sweep: dict, point: dict) -> None:
    line = agent_command(sweep, point)
    assert line[:3] == ["/usr/bin/env", "python", "launch.py"], line
    overrides = line[3:]
    assert len(overrides) == len(point)
    for item in overrides:
        key, _, value = item.partition("=")
        assert key and value, item
        for bad in (",", " ", "[", "]", "{", "}", "None"):
            assert bad not in value, f"{item}: {bad!r} in a value does not reach Hydra as one value"
    try:
        cfg = compose(overrides)
    except Exception as err:  # noqa: BLE001 — name the combination that failed
        raise AssertionError(f"{' '.join(overrides)} does not compose: {type(err).__name__}: {err}") from err
    validate(cfg)  # cell, marks, fold, task: what a job checks before any work
    for name, value in point.items():
        key = name.lstrip("+~")
        if key in GROUPS:
            continue
        composed = OmegaConf.select(cfg, key, default=_ABSENT)
        assert composed is not _ABSENT, f"{key} is not a config key"
        if key == "mark":
            assert mark_label(parse_marks(composed)) == mark_label(parse_marks(value))
        else:
            assert composed == value and type(composed) is type(value), f"{key}: composed {composed!r}, proposed {value!r}"
    # the whole config resolves (as in a job, where Hydra sets the output dir), and the
    # optimizer takes its arguments
    with open_dict(cfg):
        cfg.paths.output_dir = "job"
    OmegaConf.to_container(cfg, resolve=True)
    instantiate(cfg.model.module.optimizer)([torch.nn.Parameter(torch.zeros(1))])


def test_there_are_sweeps() -> None:
    assert {path.name for path in SWEEPS} >= {"study_grid.yaml", "chromoformer_bayes.yaml"}


@pytest.mark.parametrize("path", SWEEPS, ids=lambda path: path.name)
def test_sweep_file_is_well_formed(path: Path) -> None:
    sweep = load(path)
    assert (REPO / sweep["program"]).is_file()
    assert sweep["command"] == COMMAND, "every parameter must reach Hydra as key=value (${args_no_hyphens})"
    assert sweep["method"] in ("grid", "random", "bayes")
    if sweep["method"] != "grid":
        assert isinstance(sweep.get("run_cap"), int) and sweep["run_cap"] > 0, "a search needs a run cap"
    if sweep["method"] == "bayes":
        assert sweep["metric"]["goal"] in ("minimize", "maximize")
    metric = sweep.get("metric", {}).get("name")
    if metric is not None:
        cfg = compose([f"{name}={spec['value']}" for name, spec in sweep["parameters"].items() if name in GROUPS])
        # what the module logs each epoch (and checkpoints monitor), or a test metric in the run summary
        logged = {cfg.model.module.monitor, "train/loss", "val/loss"}
        logged |= {f"test/{name}" for name in ("pearson", "spearman", "mse", "auroc", "auprc", "accuracy", "loss")}
        assert metric in logged, f"metric {metric!r} is not one the jobs log"


@pytest.mark.parametrize("path", SWEEPS, ids=lambda path: path.name)
def test_every_proposal_composes(path: Path) -> None:
    sweep = load(path)
    points = proposals(sweep)
    assert points
    for point in points:
        check_composes(sweep, point)


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in SWEEPS if load(p)["method"] == "grid"], ids=lambda path: path.name)
def test_every_grid_point_composes(path: Path) -> None:
    sweep = load(path)
    for point in proposals(sweep, full=True):
        check_composes(sweep, point)


def test_agent_command_is_key_value() -> None:
    """The agent formats values with str(): a float sample reaches Hydra as a float."""
    sweep = {"program": "launch.py", "command": COMMAND}
    line = agent_command(sweep, {"model.module.optimizer.lr": 1e-05, "mark": "H3K4me3+H3K27ac", "fold": 2})
    assert line == ["/usr/bin/env", "python", "launch.py", "model.module.optimizer.lr=1e-05", "mark=H3K4me3+H3K27ac", "fold=2"]
    cfg = compose(line[3:])
    assert cfg.model.module.optimizer.lr == 1e-05 and cfg.fold == 2
