"""CPU training step of every epx model, today's code against the code of a baseline commit (issue 21, part 5).

One thread (``torch.set_num_threads(1)``). The baseline is the nets as they were at
``--baseline`` (default ``5ed0509``, before this work): ``git show COMMIT:epx/models/*.py`` written
to a temporary package and imported beside ``epx.models``, on the same inputs with the same
weights (the current net loads the baseline's ``state_dict`` strictly, which also checks that no
key or shape changed; their eval-mode outputs are compared).

glibc's allocator settings are process-wide, so each model runs in two worker processes: one
under glibc's defaults holds ``baseline`` (the old nets, as a job at the baseline commit ran)
and ``now_untuned`` (today's nets with ``compute.malloc_tune=false``); the other applies
``epx.memory.tune_malloc`` first, as every epx job now does, and holds ``now`` (and
``compiled``). The headline ratio is ``baseline / now``; ``baseline / now_untuned`` is the nets'
share and ``now_untuned / now`` the allocator's. Optimizer flags (``foreach`` / ``fused``) come
from ``conf/model/*.yaml`` as of each side's commit.

A step is what training repeats: zero the grads, forward, the model's loss, backward, optimizer
step. ``linear`` trains full-batch with L-BFGS (``conf/model/linear.yaml``: one step per epoch),
so its step is one ``LBFGS.step(closure)`` with the config's options from zero weights and a
fresh optimizer (a job's first epoch), on 13,000 genes x 7 marks x 60 bins and a target a
linear map partly explains (L-BFGS then runs its 50 iterations, 54 evaluations, as on real
data), its closure what Lightning runs around ``EpxModule.training_step``: the baseline's loss
from the forward, today's from ``epx.train.module.objective_loss`` (the net's batch moments),
plus the net's ridge penalty; the evaluations per step are printed. ``promoter_cnn`` and ``chromoformer`` batch 64 (7 marks; 8 pCRE
slots, about half filled); ``graphreg`` (GATConv), ``graphreg_published`` (the paper's attention
and layer order), ``epi_cnn`` and ``epi_cnn_published``: one 6 Mb window, 3 tracks, 6,000 edges;
``seq_cnn_base``: 4 chunks of 100 kb, 2 tracks, 6 dilated blocks (its config; at most 3 rounds).

Timing: ``--rounds`` rounds, each running one step of every variant (the parent process tells
each worker when; only one runs at a time) in an order that alternates per round, so drift and
other load on a shared machine hit them alike; the figure is the median per variant of the
worker thread's CPU time (``time.thread_time``, less sensitive to other processes; wall clock
in brackets). Compilation happens in warm-up steps, outside the figure.

    python benchmarks/bench_step.py [--models graphreg,epi_cnn,...] [--rounds 9] [--compile]
        [--baseline 5ed0509]

The allocator (``epx/memory.py``): glibc hands blocks over its mmap threshold straight back to
the OS, so a step over big tensors (``seq_cnn_base``'s 100 kb chunks: 100+ MB activations)
page-faults its memory in again every step; ``compute.malloc_tune`` keeps it.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BASELINE_PACKAGE = "_epx_models_baseline"


def load_baseline(commit: str, root: Path) -> str:
    """Write epx/models/*.py of ``commit`` as package ``BASELINE_PACKAGE`` under ``root``."""
    names = subprocess.run(["git", "-C", str(REPO), "ls-tree", "--name-only", f"{commit}:epx/models"],
                           capture_output=True, text=True, check=True).stdout.split()
    package = root / BASELINE_PACKAGE
    package.mkdir()
    for name in names:
        if name.endswith(".py"):
            source = subprocess.run(["git", "-C", str(REPO), "show", f"{commit}:epx/models/{name}"],
                                    capture_output=True, text=True, check=True).stdout
            (package / name).write_text(source.replace("epx.models.", f"{BASELINE_PACKAGE}."))
    return BASELINE_PACKAGE


@dataclass
class Case:
    module: str  # under epx.models
    cls: str
    kwargs: dict
    batch: Callable[[], dict]  # the net's keyword inputs plus "target"
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    conf: str  # conf/model/CONF.yaml: its optimizer's foreach/fused flags, now and at the baseline
    optimizer: Callable = torch.optim.Adam
    max_rounds: int = 1_000  # seq_cnn_base's step takes seconds: fewer rounds keep the run short
    full_batch: bool = False  # linear: a closure-driven L-BFGS step, as EpxModule runs it (``lbfgs_stepper``)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def promoter_batch(n: int) -> Callable[[], dict]:
    def make() -> dict:
        g = _generator()
        return {"x": torch.rand(n, 7, 60, generator=g) * 3, "target": torch.randn(n, generator=g)}
    return make


def ridge_batch(n: int = 13_000, n_marks: int = 7, n_bins: int = 60) -> dict:
    """Promoter windows whose target a linear map explains in part (R² about 0.6), so L-BFGS
    runs its whole ``max_iter`` from zero as on real data (a pure-noise target converges in a
    few evaluations); ``gene``: the batch's row ids, as EpxModule's batches carry."""
    g = _generator()
    level = torch.rand(n, n_marks, 1, generator=g) * 3
    x = (level * torch.rand(1, 1, n_bins, generator=g) + torch.rand(n, n_marks, n_bins, generator=g)).abs()
    w = torch.randn(n_marks * n_bins, generator=g) * 0.05
    return {"x": x, "target": x.flatten(1) @ w + torch.randn(n, generator=g), "gene": torch.arange(n)}


def chromoformer_batch(b: int = 64, i: int = 8, n_marks: int = 7, window_bp: int = 40_000) -> dict:
    g = _generator()
    pcre_mask = torch.rand(b, i, generator=g) < 0.5
    promoter, pcres, bin_mask = {}, {}, {}
    for r in (2000, 500, 100):
        n_bins = window_bp // r
        promoter[r] = torch.rand(b, n_marks, n_bins, generator=g) * 3
        lengths = torch.randint(1, n_bins + 1, (b, i), generator=g)
        left = torch.div(n_bins - lengths + 1, 2, rounding_mode="floor")
        pos = torch.arange(n_bins)
        mask = (pos >= left[..., None]) & (pos < (left + lengths)[..., None]) & pcre_mask[..., None]
        bin_mask[r] = mask
        pcres[r] = torch.rand(b, i, n_marks, n_bins, generator=g) * 3 * mask[:, :, None, :]
    freq = torch.rand(b, i, generator=g) * 4 * pcre_mask
    return {"promoter": promoter, "pcres": pcres, "pcre_bin_mask": bin_mask, "pcre_mask": pcre_mask,
            "freq": freq, "target": torch.randn(b, generator=g)}


def window_batch(n_marks: int = 3, n_edges: int = 6000) -> dict:
    """One 6 Mb window (60,000 bins of 100 bp, 1,200 nodes), symmetric contacts within +-2 Mb."""
    g = _generator()
    a = torch.randint(0, 1200, (n_edges // 2,), generator=g)
    b = (a + torch.randint(-400, 401, (n_edges // 2,), generator=g)).clamp(0, 1199)
    return {"x": torch.rand(1, n_marks, 60_000, generator=g) * 2,
            "edge_index": torch.stack([torch.cat([a, b]), torch.cat([b, a])]),
            "target": torch.poisson(torch.rand(1, 400, generator=g) * 20)}


def sequence_batch(b: int = 4, length: int = 100_000, n_tracks: int = 2) -> dict:
    g = _generator()
    bases = torch.randint(0, 4, (b, length), generator=g)
    return {"x": F.one_hot(bases, 4).transpose(1, 2).float().contiguous(),
            "target": torch.poisson(torch.rand(b, n_tracks, length // 100, generator=g) * 5)}


def mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(out.squeeze(-1), y)


def middle_poisson(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    first = (out.shape[1] - y.shape[1]) // 2
    return F.poisson_nll_loss(out[:, first : first + y.shape[1]], y, log_input=False)


def poisson(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.poisson_nll_loss(out, y, log_input=False)


PUBLISHED = {"layer_order": "published"}
CASES: dict[str, Case] = {
    "linear": Case("linear", "LinearHistone", {"n_marks": 7, "n_bins": 60, "l2": 0.1}, ridge_batch, mse, "linear",
                   torch.optim.LBFGS, full_batch=True),
    "promoter_cnn": Case("promoter_cnn", "PromoterCNN", {"n_marks": 7, "n_bins": 60}, promoter_batch(64), mse, "promoter_cnn"),
    "chromoformer": Case("chromoformer", "Chromoformer", {"n_marks": 7}, chromoformer_batch, mse, "chromoformer",
                         torch.optim.AdamW),
    "graphreg": Case("graphreg", "EpiGraphReg", {"n_marks": 3}, window_batch, middle_poisson, "graphreg"),
    "graphreg_published": Case("graphreg", "EpiGraphReg", {"n_marks": 3, "attention": "published", **PUBLISHED},
                               window_batch, middle_poisson, "graphreg_published"),
    "epi_cnn": Case("epi_cnn", "EpiCNN", {"n_marks": 3}, window_batch, middle_poisson, "epi_cnn"),
    "epi_cnn_published": Case("epi_cnn", "EpiCNN", {"n_marks": 3, **PUBLISHED}, window_batch, middle_poisson,
                              "epi_cnn"),
    "seq_cnn_base": Case("seq_cnn", "SeqCNNBase", {"n_tracks": 2, "dilated": True}, sequence_batch, poisson,
                         "seq_cnn_base", max_rounds=3),
}


def max_relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def optimizer_options(yaml_text: str | None, optimizer: Callable) -> dict:
    """The ``foreach`` / ``fused`` flags that a conf/model yaml gives ``optimizer`` (others: the bench's)."""
    if not yaml_text:
        return {}
    from omegaconf import OmegaConf

    node = OmegaConf.create(yaml_text).get("module", {}).get("optimizer") or {}
    if node.get("_target_") != f"torch.optim.{optimizer.__name__}":
        return {}
    if optimizer is torch.optim.LBFGS:  # the step's length is the config's: lr, max_iter, line search
        return {k: v for k, v in OmegaConf.to_container(node).items() if not k.startswith("_")}
    return {k: bool(node[k]) for k in ("foreach", "fused") if node.get(k) is not None}


def conf_text(commit: str | None, name: str) -> str | None:
    """conf/model/NAME.yaml now (commit None) or at ``commit``; None where there is none."""
    if commit is None:
        path = REPO / "conf" / "model" / f"{name}.yaml"
        return path.read_text() if path.is_file() else None
    shown = subprocess.run(["git", "-C", str(REPO), "show", f"{commit}:conf/model/{name}.yaml"],
                           check=False, capture_output=True, text=True)
    return shown.stdout if shown.returncode == 0 else None


def lbfgs_stepper(net: torch.nn.Module, batch: dict, options: dict, now: bool) -> Callable[[], None]:
    """One full-batch L-BFGS step of the regression objective from the net's initial weights with a
    fresh optimizer (a job's first epoch; later ones converge in a few evaluations), its closure
    as Lightning builds it around ``EpxModule.training_step``: loss, zero_grad, backward. ``now``
    scores the batch as today's ``training_step`` does (``epx.train.module.objective_loss``, where
    the net may use its own loss); the baseline's took the forward. Each step starts from a copy
    of the untouched net, so nothing the net keeps between evaluations carries over."""
    from epx.train.module import objective_loss
    from epx.train.objectives import Regression

    objective = Regression()
    module_batch = {"x": {"x": batch["x"]}, "y": batch["target"], "gene": batch["gene"]}
    template = copy.deepcopy(net)
    evaluations = []

    def loss_of(model: torch.nn.Module) -> torch.Tensor:
        if now:
            return objective_loss(model, objective, module_batch)
        return objective.loss(model(**module_batch["x"]), module_batch)

    def step() -> None:
        model = copy.deepcopy(template)
        optimizer = torch.optim.LBFGS(model.parameters(), **options)
        count = 0

        def closure() -> torch.Tensor:
            nonlocal count
            count += 1
            loss = loss_of(model) + model.penalty()
            optimizer.zero_grad()
            loss.backward()
            return loss

        optimizer.step(closure)
        evaluations.append(count)

    step.evaluations = evaluations
    return step


def stepper(net: torch.nn.Module, case: Case, batch: dict, options: dict, now: bool = True) -> Callable[[], None]:
    if case.full_batch:
        return lbfgs_stepper(net, batch, options, now)
    inputs = {k: v for k, v in batch.items() if k not in ("target", "gene")}
    optimizer = case.optimizer(net.parameters(), lr=1e-4, **options)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        case.loss(net(**inputs), batch["target"]).backward()
        optimizer.step()

    return step


# Which process runs which variant: glibc's allocator settings are process-wide (and mallopt
# cannot restore glibc's own defaults once set), so the untuned variants share one process and
# the tuned ones (what epx does at job start, epx.memory) another.
UNTUNED = ("baseline", "now_untuned")
TUNED = ("now", "compiled")


def worker(name: str, baseline_root: str, baseline: str, tuned: bool, compile_too: bool) -> None:
    """One side of one model: build its variants, warm them up, then run a step per stdin line."""
    warnings.filterwarnings("ignore", message="Using padding='same'")  # the baseline's even kernels
    if tuned:
        from epx.memory import tune_malloc

        assert tune_malloc(True)["malloc_tune"], "compute.malloc_tune does not apply on this machine"
    torch.set_num_threads(1)
    sys.path.insert(0, baseline_root)
    case = CASES[name]
    base_cls = getattr(importlib.import_module(f"{BASELINE_PACKAGE}.{case.module}"), case.cls)
    new_cls = getattr(importlib.import_module(f"epx.models.{case.module}"), case.cls)
    torch.manual_seed(0)
    base = base_cls(**case.kwargs)
    batch = case.batch()
    inputs = {k: v for k, v in batch.items() if k not in ("target", "gene")}
    now_options = optimizer_options(conf_text(None, case.conf), case.optimizer)
    nets, options = {}, {}
    for key in (UNTUNED if not tuned else TUNED[: 2 if compile_too else 1]):
        if key == "baseline":
            nets[key], options[key] = base, optimizer_options(conf_text(baseline, case.conf), case.optimizer)
            continue
        net = new_cls(**case.kwargs)
        net.load_state_dict(base.state_dict())  # strict: same keys and shapes
        nets[key], options[key] = net, now_options
    ready = {"variants": list(nets), "options": {k: options[k] for k in nets}}
    if "now_untuned" in nets:
        with torch.no_grad():
            ready["eval_max_rel_diff"] = max_relative_difference(nets["now_untuned"].eval()(**inputs), base.eval()(**inputs))
    if "compiled" in nets:
        nets["compiled"].compile()
    steps = {key: stepper(net.train(), case, batch, options[key], now=key != "baseline") for key, net in nets.items()}
    for key, step in steps.items():  # warm-up: allocator, oneDNN primitives, compilation
        t0 = time.perf_counter()
        for _ in range(3 if key == "compiled" else 1):
            step()
        if key == "compiled":
            ready["compile_s"] = time.perf_counter() - t0
    if case.full_batch:  # L-BFGS's evaluations per step: equal unless rounding moved the line search
        ready["evaluations"] = {key: step.evaluations[-1] for key, step in steps.items()}
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        key = line.strip()
        if key == "quit":
            break
        w0, c0 = time.perf_counter(), time.thread_time()
        steps[key]()
        print(json.dumps({"cpu": time.thread_time() - c0, "wall": time.perf_counter() - w0}), flush=True)


class Worker:
    def __init__(self, args: list[str]):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}  # glibc defaults unless tuned
        self.process = subprocess.Popen([sys.executable, __file__, "--worker", *args], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, env=env)

    def read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"bench worker exited with {self.process.wait()}")
        return json.loads(line)

    def step(self, key: str) -> dict:
        self.process.stdin.write(key + "\n")
        self.process.stdin.flush()
        return self.read()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.write("quit\n")
            self.process.stdin.close()
        self.process.wait()


def bench(name: str, baseline_root: str, baseline: str, rounds: int, compile_too: bool) -> dict:
    common = ["--models", name, "--baseline", baseline, "--baseline-root", baseline_root] + (["--compile"] if compile_too else [])
    # one process at a time builds and warms up, so neither slows the other's warm-up
    workers = {}
    ready = {}
    try:
        for side, flag in (("untuned", []), ("tuned", ["--tuned"])):
            workers[side] = Worker([*common, *flag])
            ready[side] = workers[side].read()
        where = {key: workers[side] for side in workers for key in ready[side]["variants"]}
        order = [key for key in ("baseline", "now", "now_untuned", "compiled") if key in where]
        wall = {key: [] for key in order}
        cpu = {key: [] for key in order}
        for r in range(rounds):
            for key in order if r % 2 == 0 else order[::-1]:
                timing = where[key].step(key)
                cpu[key].append(timing["cpu"])
                wall[key].append(timing["wall"])
    finally:
        for w in workers.values():
            w.close()
    result = {"model": name, "eval_max_rel_diff": ready["untuned"]["eval_max_rel_diff"],
              "compile_s": ready["tuned"].get("compile_s"),
              "options": {**ready["untuned"]["options"], **ready["tuned"]["options"]},
              "evaluations": {**ready["untuned"].get("evaluations", {}), **ready["tuned"].get("evaluations", {})}}
    for key in order:
        result[f"{key}_wall"] = statistics.median(wall[key])
        result[f"{key}_cpu"] = statistics.median(cpu[key])
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(CASES), help=f"comma-separated, of {','.join(CASES)}")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--baseline", default="5ed0509")
    parser.add_argument("--compile", action="store_true", help="also time nn.Module.compile() (compute.compile=true)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tuned", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--baseline-root", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = args.models.split(",")
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {list(CASES)}")
    if args.worker:
        worker(names[0], args.baseline_root, args.baseline, args.tuned, args.compile)
        return 0
    with tempfile.TemporaryDirectory() as root:
        load_baseline(args.baseline, Path(root))
        print(f"torch {torch.__version__}, 1 thread; baseline = epx/models at {args.baseline} under glibc's default "
              f"allocator; now = today's nets with compute.malloc_tune (epx.memory); median of {args.rounds} "
              f"interleaved steps, thread CPU s (wall s in brackets)")
        header = f"{'model':19s} {'baseline':>17s} {'now':>17s} {'ratio':>6s} {'untuned':>8s} {'ratio':>6s} {'malloc':>6s}  eval diff"
        if args.compile:
            header += f"  {'compiled':>8s} {'gain':>5s} compile s"
        print(header)
        for name in names:
            r = bench(name, root, args.baseline, min(args.rounds, CASES[name].max_rounds), args.compile)
            line = (f"{name:19s} {r['baseline_cpu']:7.4f} ({r['baseline_wall']:7.4f}) {r['now_cpu']:7.4f} ({r['now_wall']:7.4f}) "
                    f"{r['baseline_cpu'] / r['now_cpu']:6.2f} {r['now_untuned_cpu']:8.4f} {r['baseline_cpu'] / r['now_untuned_cpu']:6.2f} "
                    f"{r['now_untuned_cpu'] / r['now_cpu']:6.2f}  {r['eval_max_rel_diff']:.1e}")
            if args.compile:
                line += f"  {r['compiled_cpu']:8.4f} {r['now_cpu'] / r['compiled_cpu']:5.2f} {r['compile_s']:8.1f}"
            print(line, flush=True)
            if any(r["options"].values()):
                print(f"{'':19s} optimizer options from conf/model: {r['options']}")
            if r["evaluations"]:
                print(f"{'':19s} L-BFGS evaluations per step: {r['evaluations']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
