"""Adding a model is a tested contract: every ``conf/model/*.yaml`` is checked end to end.

For each model config (found by globbing, so a new YAML is covered without editing this
file) and each task it declares under ``tasks``:

1. the job config composes, names the model after its file and lists known tasks;
2. its input builder (``model.inputs``) turns a tiny in-memory ``DataContext`` (2 marks,
   2 chromosomes, 8 genes, distal contacts) into a dataset, and ``__getitems__`` gives one
   batch ``{"x": net keyword inputs, "y": targets, "gene": rows, ...}``;
3. the net (``model.net``, ``n_marks`` resolved from ``mark`` by the config) runs on it and
   its output has the shape the objective (``model.objective`` or ``task.objective``) reads:
   ``(B, out_dim)`` for per-gene objectives, ``(B, N >= S)`` nodes for per-bin ones whose
   targets are ``(B, S)``; the objective maps it to one prediction per gene;
4. the loss (plus the net's ``penalty()``, if any) is finite and every trainable parameter
   gets a finite gradient (a parameter that gets none is dead weight);
5. the net has ``reset_parameters()`` (same seed -> same weights; undoes a training step,
   buffers included) and an ``extra_repr()`` naming its hyper-parameters;
6. one whole job (``epx.run.train``, ``trainer=debug`` = ``fast_dev_run``) runs on the
   small synthetic folder and writes its record and predictions.

Below, ``test_net_shapes`` documents each net's input and output shapes on hand-made
tensors (as in the forward docstrings), and GraphReg's attention weights are checked.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from hydra.utils import instantiate

from conftest import REPO
from epx.config import compose
from epx.data.genome import GenomeSequence
from epx.data.inputs.context import DataContext
from epx.data.inputs.protocol import InputBuilder, check_builder, problems
from epx.data.sources import SOURCES
from epx.errors import InputError
from epx.explain.adapters import ADAPTERS
from epx.data.prepare.interactions import ContactFilter
from epx.data.tracks import SignalTracks
from epx.io.bedpe import COLUMNS as BEDPE_COLUMNS
from epx.io.bedpe import read_interactions
from epx.run import train
from epx.train.module import Penalized
from test_train import job_cfg

# not recursive: skips scheduler/. A config that names its own contract test (``contract:
# tests/<file>.py``: Seq-GraphReg needs a trained base job, or 6 Mb of DNA per window) is checked there.
MODEL_CONFIGS = sorted(c for c in (REPO / "conf" / "model").glob("*.yaml") if not yaml.safe_load(c.read_text()).get("contract"))
TASKS = sorted(p.stem for p in (REPO / "conf" / "task").glob("*.yaml"))
MARKS = ("H3K4me3", "H3K27ac")
MARK = "+".join(MARKS)


def _model_tasks(config: Path) -> list[str]:
    # Composed, not read from the file: a config may inherit its tasks (graphreg_gatv2).
    return list(compose([f"model={config.stem}"]).model.get("tasks") or TASKS)


CASES = [pytest.param(c.stem, task, id=f"{c.stem}-{task}") for c in MODEL_CONFIGS for task in _model_tasks(c)]
FIRST_TASK = [pytest.param(c.stem, _model_tasks(c)[0], id=c.stem) for c in MODEL_CONFIGS]


def test_every_model_config_is_collected():
    assert {c.stem for c in MODEL_CONFIGS} >= {"linear", "promoter_cnn", "chromoformer", "graphreg", "graphreg_gatv2", "epi_cnn"}
    assert len(CASES) >= len(MODEL_CONFIGS)


# ----------------------------------------------------------------------------- tiny data

SIZES = {"chr1": 1_500_000, "chr2": 1_200_000}  # GraphReg: one (padded) 6 Mb window each


def _genes() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rpkm = rng.gamma(1.0, 10.0, 8)
    return pd.DataFrame(
        {
            "gene_id": [f"g{i}" for i in range(8)],
            "chrom": ["chr1"] * 5 + ["chr2"] * 3,
            "tss": [200_000, 400_000, 600_000, 800_000, 1_000_000, 300_000, 500_000, 900_000],
            "strand": ["+", "-", "+", "-", "+", "-", "+", "+"],
            "rpkm": rpkm,
            "target": np.log2(rpkm + 1),
            "label": (rpkm >= np.median(rpkm)).astype(int),
        }
    )


def _contacts(genes: pd.DataFrame) -> pd.DataFrame:
    """Each TSS linked to a 2 kb element 60 kb downstream (strong) and 120 kb upstream
    (weak, dropped by the threshold); both anchors lie inside every model's reach."""
    rows = []
    for g in genes.itertuples():
        rows.append((g.chrom, g.tss, g.tss + 1, g.chrom, g.tss + 60_000, g.tss + 62_000, g.gene_id, 4.0))
        rows.append((g.chrom, g.tss, g.tss + 1, g.chrom, g.tss - 120_000, g.tss - 118_000, g.gene_id, 1.0))
    frame = pd.DataFrame(rows, columns=BEDPE_COLUMNS)
    return ContactFilter("frequency", 1.5).apply(read_interactions(frame))


def _context(target_column: str) -> DataContext:
    rng = np.random.default_rng(1)
    tracks = SignalTracks({c: rng.gamma(0.5, 2.0, (n // 100, len(MARKS))).astype(np.float32) for c, n in SIZES.items()}, MARKS)
    genes = _genes()
    genome = GenomeSequence({c: rng.integers(0, 5, n).astype(np.uint8) for c, n in SIZES.items()})
    # every source a builder may declare; the DataModule would load only the declared ones
    return DataContext.of(genes, cell="E003", marks=MARKS, target_column=target_column, tracks=tracks,
                          contacts=_contacts(genes), genome=genome)


def _cfg(model: str, task: str):
    return compose([f"model={model}", f"task={task}", f"mark={MARK}", "trainer=debug", "logger=none"])


def _objective(cfg):
    # As the job does: count models bring their own objective, others take the task's.
    return instantiate(cfg.model.get("objective") or cfg.task.objective)


def _batch(cfg, objective) -> dict:
    dataset = instantiate(cfg.model.inputs)(_context(objective.target_column), np.arange(8))
    assert len(dataset) > 0
    return dataset.__getitems__(list(range(min(len(dataset), 4))))


def _check_output(out: torch.Tensor, objective, batch: dict) -> None:
    y = batch["y"]
    if y.dim() == 1:  # one target per gene
        assert tuple(out.shape) == (y.shape[0], objective.out_dim)
    elif y.dim() == 2:  # per-bin targets (B, S) of the middle nodes: the net predicts every node
        assert out.dim() == 2 and out.shape[0] == y.shape[0] and out.shape[1] >= y.shape[1]
    else:  # per-bin tracks (B, T, n_bins): the net predicts each track at each bin
        assert tuple(out.shape) == tuple(y.shape)
    pred, target, gene = objective.gene_outputs(out, batch)
    assert pred.dim() == target.dim() == gene.dim() == 1
    assert len(pred) == len(target) == len(gene) == len(batch["gene"]) > 0
    assert torch.isfinite(pred).all()


# ----------------------------------------------------------------------------- per config


@pytest.mark.parametrize("model,task", CASES)
def test_config_builder_batch_net_objective(model, task):
    cfg = _cfg(model, task)
    assert cfg.model.name == model, "a model config's name must be its file name"
    assert cfg.model.tasks and set(cfg.model.tasks) <= set(TASKS)
    objective = _objective(cfg)
    batch = _batch(cfg, objective)

    torch.manual_seed(0)
    net = instantiate(cfg.model.net).train()  # n_marks resolved from mark= by the config
    out = net(**batch["x"])
    _check_output(out, objective, batch)

    loss = objective.loss(out, batch)
    if isinstance(net, Penalized):
        loss = loss + net.penalty()
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    trainable = {name: p for name, p in net.named_parameters() if p.requires_grad}
    assert trainable
    # None = the parameter is not on the path to the loss (dead weight); a zero gradient can
    # be legitimate (the zero-initialised linear model's bias on a balanced batch).
    missing = [name for name, p in trainable.items() if p.grad is None]
    assert not missing, f"parameters without a gradient: {missing}"
    assert all(torch.isfinite(p.grad).all() for p in trainable.values())
    assert any(p.grad.abs().sum() > 0 for p in trainable.values())

    # reset_parameters undoes training and is deterministic under a seed; the stand-in for
    # training moves every weight (a real step leaves zero-gradient entries in place)
    with torch.no_grad():
        for p in trainable.values():
            p.add_(torch.rand_like(p) + 0.1)
    trained = {name: p.detach().clone() for name, p in trainable.items()}
    torch.manual_seed(7)
    net.reset_parameters()
    unchanged = [name for name, p in net.named_parameters() if name in trained and torch.equal(p, trained[name])]
    assert not unchanged, f"reset_parameters left trained values in: {unchanged}"
    other = instantiate(cfg.model.net)
    torch.manual_seed(7)
    other.reset_parameters()
    state, other_state = net.state_dict(), other.state_dict()
    assert state.keys() == other_state.keys()
    assert all(torch.equal(state[k], other_state[k]) for k in state), "reset_parameters is not deterministic"

    summary = net.extra_repr()
    # a histone net names its marks, a sequence net the tracks it predicts from them
    assert (f"n_marks={len(MARKS)}" in summary or f"n_tracks={len(MARKS)}" in summary) and summary in repr(net)


@pytest.mark.parametrize("model,task", FIRST_TASK)
def test_builder_satisfies_the_input_contract(model, task):
    """Every configured builder declares what it needs (``InputBuilder``: sources the
    DataModule knows, reach, contact rules, channels, per-gene intervals, collate) and has an
    interpretation adapter registered for its class, so a new model family cannot be
    half-added."""
    builder = instantiate(_cfg(model, task).model.inputs)
    assert isinstance(builder, InputBuilder)
    assert problems(builder, tuple(SOURCES)) == []
    assert any(cls in ADAPTERS for cls in type(builder).__mro__), f"no explain adapter registered for {type(builder).__name__}"
    assert len(builder.channels(MARKS)) > 0
    genes = _genes()
    spans = builder.intervals(genes)
    assert len(spans.chrom) == len(spans.start) == len(spans.end) == len(genes)
    tss = genes["tss"].to_numpy()
    assert ((spans.start <= tss) & (tss < spans.end)).all(), "a gene's window must hold its TSS"
    if builder.reach_bp:
        assert (spans.end - spans.start).max() >= builder.reach_bp


def test_builder_contract_problems_are_named():
    class Half:
        sources = ("tracks", "hic")
        reach_bp = -1
        contact_tolerance_bp = 500
        requires_contacts = True
        distal = False

        def channels(self, marks):
            return tuple(marks)

    found = problems(Half(), tuple(SOURCES))
    assert "no method intervals()" in found and "no method collate_fn()" in found
    Half.intervals = Half.gene_dataset = Half.collate_fn = Half.__call__ = lambda self, *a, **k: None
    found = " | ".join(problems(Half(), tuple(SOURCES)))
    assert "unknown source(s) ['hic']" in found and "reach_bp" in found and "contact_tolerance_bp" in found
    with pytest.raises(InputError, match="does not satisfy the input contract"):
        check_builder(Half(), tuple(SOURCES))


@pytest.mark.parametrize("model,task", FIRST_TASK)
def test_config_runs_a_whole_job(tmp_path, small_synthetic, model, task):
    overrides = [f"model={model}", f"task={task}", "trainer=debug", f"mark={MARK}"]
    cfg = job_cfg(tmp_path, small_synthetic, *overrides, *_smaller(compose([f"model={model}"]).model))
    train(cfg)
    record = json.loads((tmp_path / "job" / "metrics.json").read_text())
    assert record["status"] == "ok" and record["model"] == model and record["n_params"] > 0
    assert record["test"] and all(v is None or math.isfinite(v) for v in record["test"].values())  # undefined: null
    predictions = pd.read_csv(tmp_path / "job" / "predictions.csv")
    assert set(predictions.split) == {"train", "val", "test"} and predictions.gene_id.is_unique


def _smaller(model_cfg) -> list[str]:
    """Overrides that only keep a whole job quick on 2 cores (the configured sizes are
    exercised by the test above): batches of at most 8 items, and a net whose config has a
    width ``d`` (the GraphReg family) at width 16."""
    overrides = [f"model.{key}=8" for key in ("batch_size", "eval_batch_size") if (model_cfg.get(key) or 0) > 8]
    if "genome" in instantiate(model_cfg.inputs).sources:
        # fast_dev_run is one batch per stage, and a batch of 100 kb chunks is seconds of
        # convolutions on 2 cores: 20 kb chunks keep the job quick, 16 of them per evaluation
        # batch (320 kb) reach genes of every split past the chromosomes' N-padded ends
        overrides += ["model.inputs.chunk_bp=20000", "model.batch_size=2", "model.eval_batch_size=16"]
    return overrides + (["model.net.d=16"] if "d" in model_cfg.net else [])


# ----------------------------------------------------------------------------- per net

B = 3  # genes (or windows) in a batch


def _chromoformer_inputs(n_marks: int, window_bp: int, i: int) -> dict:
    """promoter[r]: (B, M, L_r); pcres[r]: (B, I, M, L_r); pcre_bin_mask[r]: (B, I, L_r) bool;
    pcre_mask: (B, I) bool; freq: (B, I), with L_r = window_bp // r."""
    resolutions = (2000, 500, 100)
    return {
        "promoter": {r: torch.rand(B, n_marks, window_bp // r) for r in resolutions},
        "pcres": {r: torch.rand(B, i, n_marks, window_bp // r) for r in resolutions},
        "pcre_bin_mask": {r: torch.ones(B, i, window_bp // r, dtype=torch.bool) for r in resolutions},
        "pcre_mask": torch.tensor([[True, False], [True, True], [False, False]]),
        "freq": torch.rand(B, i),
    }


def _graph(n_nodes: int) -> torch.Tensor:
    """(2, E) edges over the B windows' batched nodes (id = b * N + n), both directions."""
    pairs = torch.tensor([[1, 7], [0, 19], [1 * n_nodes + 2, 1 * n_nodes + 9]])
    return torch.cat([pairs.T, pairs.T.flip(0)], dim=1)


def _nets():
    from epx.models.chromoformer import Chromoformer
    from epx.models.epi_cnn import EpiCNN
    from epx.models.graphreg import EpiGraphReg
    from epx.models.linear import LinearHistone
    from epx.models.promoter_cnn import PromoterCNN

    small_chromoformer = dict(d_emb=16, embed_ff=16, pairwise_ff=16, regulation_layers=1, regulation_heads=2,
                              regulation_d=16, regulation_ff=16, d_head=16)
    # name: (net, inputs, output shape, what extra_repr must name)
    return {
        # x: (B, M, L) -> (B, out_dim)
        "LinearHistone": (lambda: LinearHistone(n_marks=3, n_bins=60, out_dim=2),
                          lambda: {"x": torch.rand(B, 3, 60)}, (B, 2), ["n_bins=60", "out_dim=2", "l2="]),
        # x: (B, M, L) -> (B, out_dim)
        "PromoterCNN": (lambda: PromoterCNN(n_marks=3, n_bins=60, out_dim=1),
                        lambda: {"x": torch.rand(B, 3, 60)}, (B, 1), ["n_bins=60", "channels=(175, 350, 700)"]),
        # promoter/pcres/masks at 3 resolutions, pcre_mask/freq: (B, I) -> (B, out_dim)
        "Chromoformer": (lambda: Chromoformer(n_marks=3, out_dim=2, window_bp=4000, i_max=2, **small_chromoformer),
                         lambda: _chromoformer_inputs(3, 4000, 2), (B, 2),
                         ["resolutions=(2000, 500, 100)", "window_bp=4000", "i_max=2", "d_emb=16"]),
        # x: (B, M, L), edge_index: (2, E) over B * N nodes -> (B, N), N = L // 50
        "EpiGraphReg": (lambda: EpiGraphReg(n_marks=3, d=16, heads=2, gat_dim=8),
                        lambda: {"x": torch.rand(B, 3, 1000), "edge_index": _graph(20)}, (B, 20),
                        ["d=16", "heads=2", "gat_dim=8", "attention='gat'", "output='exp'"]),
        # x: (B, M, L) -> (B, N), N = L // 50 (edge_index accepted and ignored)
        "EpiCNN": (lambda: EpiCNN(n_marks=3, d=16, channels=8, n_dilated_blocks=2),
                   lambda: {"x": torch.rand(B, 3, 1000)}, (B, 20), ["d=16", "channels=8", "n_dilated_blocks=2"]),
    }


NETS = _nets()


@pytest.mark.parametrize("name", NETS)
def test_net_shapes(name):
    make, inputs, shape, _ = NETS[name]
    torch.manual_seed(0)
    net = make().eval()
    with torch.no_grad():
        out = net(**inputs())
    assert tuple(out.shape) == shape and torch.isfinite(out).all()


@pytest.mark.parametrize("name", NETS)
def test_net_repr_names_its_hyper_parameters(name):
    make, _, _, keys = NETS[name]
    net = make()
    first_line = repr(net).splitlines()[1].strip()  # nn.Module prints extra_repr first
    assert first_line == net.extra_repr() and "n_marks=3" in first_line
    assert all(key in first_line for key in keys), first_line


@pytest.mark.parametrize("name", NETS)
def test_net_reset_is_seeded_and_undoes_training(name):
    make, inputs, _, _ = NETS[name]
    net, other = make().train(), make()
    initial = [p.detach().clone() for p in net.parameters()]
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(2):
        optimizer.zero_grad()
        (net(**inputs()).float() - 1).pow(2).mean().backward()
        optimizer.step()
    trained = [p.detach().clone() for p in net.parameters()]
    moved = [i for i, (a, b) in enumerate(zip(initial, trained)) if not torch.equal(a, b)]
    assert moved
    torch.manual_seed(3)
    net.reset_parameters()
    torch.manual_seed(3)
    other.reset_parameters()
    after = list(net.parameters())
    assert all(not torch.equal(after[i], trained[i]) for i in moved)
    for (key, value), other_value in zip(net.state_dict().items(), other.state_dict().values()):
        assert torch.equal(value, other_value), key
