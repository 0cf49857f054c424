"""``epx explain``: the interpretation analyses of finished jobs, as files in ``JOB_DIR/explain/``.

Contract: ``explain(job_dir, analyses, *, out=None, cfg=None, log_wandb=None) -> dict[str, list[Path]]``
(``cfg``: the job's own config when the caller holds it) runs the named analyses (``ANALYSES``;
``analyses`` maps a name to its options) on one finished job and returns the files each wrote under
``out`` (default ``JOB_DIR/explain``): tables as TSV, figures as PNG. Every analysis is checked
against the job first (``Analysis.check``: a perturbation region or scorer the model does not
have, a mark the job was not trained on, a missing element table) and refused with one
``InputError`` before any of them runs. An analysis's defaults live only in
``conf/analysis/<name>.yaml``: ``with_defaults`` lays the given options over them (and refuses
an option the file does not have), so a caller may give only what it changes. The analyses:

- ``activity``: model-free mark activity of the job's genes (``epx.explain.activity``);
- ``attribution``: captum attributions of the split's genes, their per mark × position
  profile (expressed vs not), the completeness check, and (GraphReg/Epi-CNN, ``bigwig``)
  one bigWig per mark (``epx.explain.attribution``, ``export``);
- ``attention``: Chromoformer's promoter→pCRE attention or GraphReg's GAT edge weights;
- ``perturb``: in-silico scaling of marks over regions, per gene, and the mean curve per
  gene class (expressed / not; distal-driven / other where the dataset has ``truth.tsv``);
- ``validation``: enhancer–gene AUPRC against an element table (``epx.explain.validation``);
- sequence models (one-hot DNA): ``knockout`` (a TF's motif hits set to N, per-gene log2
  fold change, ranked per TF: ``epx.explain.knockout``), ``ism`` (saturation mutagenesis:
  ``epx.explain.ism``) and ``variants`` (SNVs of a VCF, ``epx explain JOB variants FILE.vcf.gz``:
  ``epx.explain.variants``).

``explain_sweep(sweep_dir, analyses, *, average=True)`` runs them on every finished job of a
sweep and, with ``average``, writes the mean over the fold models of each (model, cell, mark)
into ``SWEEP/explain/`` (attribution profiles, perturbation curves, knockout, ISM and variant effects). ``check_analyses(dm,
model, analyses)`` is the before-training check a job runs when its config asks for analyses
(``analysis=[perturb,attribution]``). ``main`` is ``epx explain PATH [NAME ...] [key=value ...]``.
When the job logged to W&B, the tables and figures are logged to its run (resumed by id).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from epx.config import CONF_DIR, compose
from epx.errors import InputError
from epx.io.atomic import write_csv
from epx.io.figures import save_png
from epx.io.truth import FILE_NAME as TRUTH_FILE
from epx.io.truth import read_truth

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------ analyses


def _rows(job, split: str) -> np.ndarray:
    return np.asarray(job.rows(split))


def _limit(rows: np.ndarray, max_genes: int | None) -> np.ndarray:
    """The first ``max_genes`` rows in gene-table order (deterministic), or all of them."""
    return rows if not max_genes or len(rows) <= max_genes else np.sort(rows)[: int(max_genes)]


def _plot_lines(frame: pd.DataFrame, x: str, y: str, panel: str, line: str, path: Path, *, title: str, xlabel: str, ylabel: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(dict.fromkeys(frame[panel]))
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(3.2 * max(len(panels), 1), 2.8), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], panels):
        part = frame[frame[panel] == name]
        for label, lines in part.groupby(line, sort=False):
            lines = lines.sort_values(x)
            ax.plot(lines[x], lines[y], label=str(label), lw=1.2)
        ax.set_title(str(name), fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel(ylabel, fontsize=8)
    axes[0][-1].legend(fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_png(fig, path, dpi=120)


def _gene_classes(job, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean masks over ``rows``: expressed / not, and distal-driven / other when known."""
    expressed = np.asarray(job.expressed(rows), bool)
    classes = {"expressed": expressed, "not_expressed": ~expressed}
    truth_path = job.dm.spec.root / TRUTH_FILE
    if truth_path.exists():
        truth = read_truth(truth_path, columns=["gene_id", "distal_driven"]).set_index("gene_id")["distal_driven"]
        distal = job.genes["gene_id"].iloc[rows].map(truth).fillna(0).to_numpy(bool)
        classes.update({"distal_driven": distal, "other": ~distal})
    return classes


@dataclass
class Analysis:
    """One analysis: ``check(job, options)`` before any work, ``run(job, out, options) -> paths``."""

    check: Callable[[Any, Mapping], None]
    run: Callable[[Any, Path, Mapping], list[Path]]
    doc: str
    positional: str | None = None  # the option a bare argument after the name sets (variants FILE.vcf)


def _lazy(module: str, name: str) -> Callable:
    """``module.name``, imported on first call (the sequence analyses live in their modules)."""

    def call(*args):
        import importlib

        return getattr(importlib.import_module(module), name)(*args)

    return call


def _no_check(job, options) -> None:
    return None


def _run_activity(job, out: Path, options: Mapping) -> list[Path]:
    from epx.explain.activity import activity_for_job

    activity_for_job(job, split=options["split"], out_dir=out, flanks_bp=tuple(options["flanks_bp"]))
    return sorted(p for p in out.rglob("*") if p.is_file())


def _check_attribution(job, options) -> None:
    from epx.explain.attribution import METHODS

    method = options["method"]
    if method not in METHODS:
        raise InputError(f"analysis.attribution.method={method!r}; choose one of {', '.join(METHODS)}")
    from epx.explain.adapters import GraphRegAdapter

    if options["bigwig"] and not isinstance(job.adapter, GraphRegAdapter):
        raise InputError(f"analysis.attribution.bigwig=true applies to GraphReg / Epi-CNN windows, not to model {job.model!r}")


def _run_attribution(job, out: Path, options: Mapping) -> list[Path]:
    from epx.explain.attribution import attribute, profile
    from epx.explain.export import attribution_bigwigs

    rows = _limit(_rows(job, options["split"]), options["max_genes"])
    att = attribute(job, rows, method=options["method"], n_steps=int(options["n_steps"]))
    prof = profile(att, job, rows, resolution_bp=options["resolution_bp"])
    paths = [write_csv(out / "attribution_profile.tsv", prof, sep="\t")]
    genes = pd.DataFrame(
        {"gene": att.rows, "gene_id": job.genes["gene_id"].iloc[att.rows].to_numpy(), "prediction": att.prediction,
         "baseline": att.baseline, "total": att.total, "gap": att.gap, "delta": att.delta}
    )
    paths.append(write_csv(out / "attribution_genes.tsv", genes, sep="\t"))
    within = float(np.mean(np.abs(att.delta) <= 0.05)) if len(att.delta) else float("nan")
    log.info("%s: attribution (%s) of %d genes; completeness within 5%% for %.1f%% of them", job.dir, att.method, len(rows), 100 * within)
    main_input = prof[(prof["group"] != "all") & (prof["slot"] == -1)]
    if len(main_input):
        first = main_input["input"].iloc[0]
        part = main_input[main_input["input"] == first]
        part = part[part["resolution_bp"] == part["resolution_bp"].min()]
        paths.append(_plot_lines(part, "offset_bp", "attribution", "mark", "group", out / "attribution_profile.png",
                                 title=f"{job.model} {att.method} attribution ({first})", xlabel="bp from TSS (5'→3')", ylabel="mean attribution"))
    if options["bigwig"]:
        paths += list(attribution_bigwigs(job, rows, att, out / "bigwig").values())
    return paths


def _attention_of(job):
    """(file name, table function) of the job's attention, by adapter class; None when it has none."""
    from epx.explain.adapters import ChromoformerAdapter, GraphRegAdapter
    from epx.explain.attention import graph_attention, pcre_table

    kinds = {ChromoformerAdapter: ("pcre_attention.tsv", pcre_table), GraphRegAdapter: ("graph_attention.tsv", graph_attention)}
    return next((kind for cls, kind in kinds.items() if isinstance(job.adapter, cls)), None)


def _check_attention(job, options) -> None:
    import inspect

    # Epi-CNN shares GraphReg's adapter (its windows and graph) but has no attention to return
    has_attention = "return_attention" in inspect.signature(job.net.forward).parameters
    if _attention_of(job) is None or not has_attention:
        raise InputError(f"analysis attention applies to Chromoformer (pCRE attention) and GraphReg (GAT edges), not to model {job.model!r}")


def _run_attention(job, out: Path, options: Mapping) -> list[Path]:
    name, table = _attention_of(job)
    rows = _limit(_rows(job, options["split"]), options["max_genes"])
    return [write_csv(out / name, table(job, rows), sep="\t")]


def _perturb_plan(job, options) -> list[tuple[str, str]]:
    marks, regions = options["marks"], options["regions"] or list(job.adapter.regions)
    if not marks:
        raise InputError(f"analysis.perturb.marks is empty; name one or more of the job's marks ({', '.join(job.dm.marks)})")
    return [(str(m), str(r)) for m in marks for r in regions]


def _check_perturb(job, options) -> None:
    for mark, region in _perturb_plan(job, options):
        job.adapter.check_region(region)
        job.mark_index(mark)


def _run_perturb(job, out: Path, options: Mapping) -> list[Path]:
    from epx.explain.perturb import perturb

    rows = _limit(_rows(job, options["split"]), options["max_genes"])
    factors = np.round(np.linspace(1.0, 0.0, int(options["n_factors"])), 6)
    classes = _gene_classes(job, rows)
    frames = []
    for mark, region in _perturb_plan(job, options):
        # per chunk for promoter/flanks; all linked elements together (chunk -1) for pCREs/neighbours
        chunks = [-1] if region in ("pcres", "neighbours") else None
        frame = perturb(job, rows, mark=mark, region=region, factors=factors, chunks=chunks)
        frames.append(frame.assign(mark=mark))
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    paths = [write_csv(out / "perturb.tsv", table, sep="\t")]
    curves = []
    for name, mask in classes.items():
        genes = rows[mask]
        part = table[table["gene"].isin(genes)]
        if part.empty:
            continue
        # one curve per (mark, region): the mean over genes of their whole-region delta
        whole = part[(part["chunk"] == -1) | ~part["region"].isin(["pcres", "neighbours"])]
        per_gene = whole.groupby(["mark", "region", "gene", "factor"], as_index=False)["delta"].sum()
        curve = per_gene.groupby(["mark", "region", "factor"], as_index=False)["delta"].agg(["mean", "count"]).reset_index()
        curves.append(curve.rename(columns={"mean": "mean_delta", "count": "n_genes"}).assign(gene_class=name))
    if curves:
        curve_table = pd.concat(curves, ignore_index=True)
        curve_table = curve_table[[c for c in ("mark", "region", "gene_class", "factor", "mean_delta", "n_genes") if c in curve_table]]
        paths.append(write_csv(out / "perturb_curves.tsv", curve_table, sep="\t"))
        curve_table = curve_table.assign(panel=curve_table["mark"] + " @ " + curve_table["region"])
        paths.append(_plot_lines(curve_table, "factor", "mean_delta", "panel", "gene_class", out / "perturb_curves.png",
                                 title=f"{job.model}: in-silico perturbation", xlabel="signal kept (factor)", ylabel="mean Δ prediction"))
    return paths


def _elements_path(job, options) -> Path:
    given = options["elements"]
    path = Path(given) if given else job.dm.spec.root / "elements.tsv"
    if not path.exists():
        raise InputError(
            f"element table not found: {path}. Give analysis.validation.elements=/path/to/elements.tsv "
            "(chrom, start, end, gene, significant, effect_size; docs/explain.md); the synthetic dataset writes its own"
        )
    return path


def _check_validation(job, options) -> None:
    from epx.explain.validation import applicable

    _elements_path(job, options)
    if options["scorers"]:
        applicable(list(options["scorers"]), job)


def _run_validation(job, out: Path, options: Mapping) -> list[Path]:
    from epx.explain.validation import validate_job

    result = validate_job(
        job, _elements_path(job, options), split=options["split"], scorers=list(options["scorers"]) if options["scorers"] else None,
        method=options["method"], n_steps=int(options["n_steps"]), out_dir=out,
    )
    log.info("%s: pooled AUPRC %s", job.dir, {k: round(float(v), 3) for k, v in result.pooled.items()})
    return list(result.paths.values()) if isinstance(result.paths, Mapping) else list(result.paths or [])


ANALYSES: dict[str, Analysis] = {
    "activity": Analysis(_no_check, _run_activity, "model-free mark activity around the TSS, correlation with expression"),
    "attribution": Analysis(_check_attribution, _run_attribution, "captum attribution profiles (mark × position), completeness"),
    "attention": Analysis(_check_attention, _run_attention, "Chromoformer pCRE attention / GraphReg GAT edge weights"),
    "perturb": Analysis(_check_perturb, _run_perturb, "in-silico scaling of a mark over promoter, flanks, pCREs or graph neighbours"),
    "validation": Analysis(_check_validation, _run_validation, "enhancer–gene AUPRC against an element table"),
    "knockout": Analysis(_lazy("epx.explain.knockout", "check"), _lazy("epx.explain.knockout", "run"),
                         "sequence models: a TF's motif hits set to N, each gene's log2 fold change, ranked per TF"),
    "ism": Analysis(_lazy("epx.explain.ism", "check"), _lazy("epx.explain.ism", "run"),
                    "sequence models: in-silico saturation mutagenesis around a site, heatmap and bigWig"),
    "variants": Analysis(_lazy("epx.explain.variants", "check"), _lazy("epx.explain.variants", "run"),
                         "sequence models: SNV effects from a VCF per gene (TSV + annotated VCF)", positional="vcf"),
}


def _check_names(analyses: Mapping) -> None:
    unknown = [a for a in analyses if a not in ANALYSES]
    if unknown:
        raise InputError(f"unknown analysis {', '.join(map(repr, unknown))}; choose from {', '.join(ANALYSES)}")


def with_defaults(analyses: Mapping[str, Mapping | None]) -> dict[str, dict]:
    """Each analysis's options over its defaults, which live only in ``conf/analysis/<name>.yaml``;
    an option that file does not have is refused."""
    from omegaconf import OmegaConf

    _check_names(analyses)
    out = {}
    for name, options in analyses.items():
        defaults = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "analysis" / f"{name}.yaml"), resolve=True)
        given = dict(options or {})
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            raise InputError(f"analysis.{name} has no option {', '.join(unknown)}; its options: {', '.join(defaults)} (conf/analysis/{name}.yaml)")
        out[str(name)] = {**defaults, **given}
    return out


# ------------------------------------------------------------------------------ jobs and sweeps


def explain(job_dir: str | Path, analyses: Mapping[str, Mapping], *, out: str | Path | None = None, cfg=None, log_wandb: bool | None = None) -> dict[str, list[Path]]:
    from epx.explain.job import ExplainJob

    analyses = with_defaults(analyses)
    job = ExplainJob.load(job_dir, cfg=cfg)
    for name, options in analyses.items():
        ANALYSES[name].check(job, options)
    out = Path(out) if out is not None else Path(job_dir) / "explain"
    written: dict[str, list[Path]] = {}
    for name, options in analyses.items():
        target = out / name
        target.mkdir(parents=True, exist_ok=True)
        written[name] = [Path(p) for p in ANALYSES[name].run(job, target, options)]
        log.info("%s: %s → %s", job_dir, name, target)
    _log_to_wandb(job, written, log_wandb)
    return written


def _log_to_wandb(job, written: Mapping[str, list[Path]], enabled: bool | None) -> None:
    """Tables and figures into the job's own W&B run (resumed by id), when it logged to one."""
    info = job.record.wandb or {}
    if enabled is False or not info.get("id") or info.get("mode") == "disabled":
        return
    import os

    if os.environ.get("WANDB_MODE") == "disabled":
        return
    try:
        import wandb

        run = wandb.init(id=info["id"], resume="allow", dir=str(job.dir), mode=info.get("mode") or "offline",
                         project=info.get("project"), entity=info.get("entity"), reinit="finish_previous")
        payload = {}
        for name, paths in written.items():
            for path in paths:
                key = f"explain/{name}/{path.stem}"
                if path.suffix == ".png":
                    payload[key] = wandb.Image(str(path))
                elif path.suffix == ".tsv" and path.stat().st_size < 20_000_000:
                    payload[key] = wandb.Table(dataframe=pd.read_csv(path, sep="\t"))
        run.log(payload)
        run.finish()
    except Exception as err:  # logging must never lose the files already written
        log.warning("explain results of %s not logged to W&B: %s: %s", job.dir, type(err).__name__, err)


@dataclass
class _Untrained:
    """What the checks read of a job before it has weights (``check_analyses``)."""

    dm: Any
    model: str
    adapter: Any

    def mark_index(self, mark: str) -> int:
        if mark not in self.dm.marks:
            raise InputError(f"mark {mark!r} is not one this job trains on ({', '.join(self.dm.marks)})")
        return list(self.dm.marks).index(mark)


def check_analyses(dm, model: str, analyses: Mapping[str, Mapping]) -> None:
    """Before training: refuse analyses that cannot apply to this model's inputs."""
    from epx.explain.adapters import adapter_for

    analyses = with_defaults(analyses)
    shape = _Untrained(dm, model, adapter_for(None, dm, None, model))
    for name, options in analyses.items():
        if name == "validation":
            continue  # needs a trained job's data; its file is checked when it runs
        ANALYSES[name].check(shape, options)


def _finished_jobs(sweep_dir: Path) -> list[Path]:
    from epx.record import JobRecord, RecordError

    jobs = []
    for record_path in sorted(sweep_dir.rglob("metrics.json")):
        try:
            record = JobRecord.read(record_path)
        except RecordError:
            continue
        if record.ok and record.kind == "train":  # not the prediction jobs of epx predict
            jobs.append(record_path.parent)
    return jobs


def explain_sweep(sweep_dir: str | Path, analyses: Mapping[str, Mapping], *, average: bool = True) -> dict[str, list[Path]]:
    from epx.record import JobRecord

    sweep_dir = Path(sweep_dir)
    jobs = _finished_jobs(sweep_dir)
    if not jobs:
        raise InputError(f"{sweep_dir}: no finished training job to explain (epx status {sweep_dir} shows why)")
    done = {}
    for job_dir in jobs:
        done[job_dir] = explain(job_dir, analyses)
    if not average:
        return {str(k): v for k, v in done.items()}
    tables = {"attribution": ("attribution_profile.tsv", ["input", "resolution_bp", "slot", "mark", "offset_bp", "group"], ["attribution", "abs_attribution"]),
              "perturb": ("perturb_curves.tsv", ["mark", "region", "gene_class", "factor"], ["mean_delta"]),
              "knockout": ("knockout.tsv", ["motif", "gene_id"], ["delta", "log2_fold_change"]),
              "ism": ("ism.tsv", ["gene_id", "chrom", "position", "ref", "alt"], ["delta"]),
              "variants": ("variants.tsv", ["variant_id", "chrom", "pos", "ref", "alt", "gene_id"], ["delta", "log2_fold_change"])}
    written: dict[str, list[Path]] = {}
    for name, (file, keys, values) in tables.items():
        if name not in analyses:
            continue
        frames = []
        for job_dir in jobs:
            path = job_dir / "explain" / name / file
            if path.exists():
                r = JobRecord.read(job_dir)
                frames.append(pd.read_csv(path, sep="\t").assign(model=r.model, cell=r.cell, mark_set=r.mark, fold=r.fold))
        if not frames:
            continue
        both = pd.concat(frames, ignore_index=True)
        group = ["model", "cell", "mark_set", *keys]
        mean = both.groupby(group, as_index=False, dropna=False)[values].mean()
        mean["n_folds"] = both.groupby(group, dropna=False)["fold"].nunique().to_numpy()
        target = sweep_dir / "explain" / name / file.replace(".tsv", "_fold_mean.tsv")
        written.setdefault(name, []).append(write_csv(target, mean, sep="\t"))
    return written


# ------------------------------------------------------------------------------ command line


def parse_request(items: Sequence[str]) -> dict[str, dict]:
    """``NAME ...`` and ``NAME.key=value ...`` (or ``analysis=[a,b]`` and ``analysis.a.key=value``)
    into ``{name: options}``, options composed from ``conf/analysis/<name>.yaml``."""
    from omegaconf import OmegaConf

    names, overrides = [], []
    for item in items:
        takes = ANALYSES[names[-1]].positional if names and names[-1] in ANALYSES else None
        if takes and item not in ANALYSES and "=" not in item:  # epx explain JOB variants FILE.vcf.gz
            overrides.append(f"analysis.{names[-1]}.{takes}='{item}'")
        elif "=" not in item:
            names += [n for n in item.split(",") if n]
        elif item.startswith("analysis="):
            names += [n for n in item.split("=", 1)[1].strip("[]").split(",") if n]
        else:
            key = item if item.startswith("analysis.") else f"analysis.{item}"
            overrides.append(key)
    names = list(dict.fromkeys(names))
    _check_names(dict.fromkeys(names))
    if not names:
        raise InputError(f"name the analyses to run: {', '.join(ANALYSES)} (e.g. epx explain JOB_DIR attribution perturb)")
    try:
        cfg = compose([f"analysis=[{','.join(names)}]", *overrides])
    except Exception as err:  # an override of an option that does not exist
        raise InputError(f"cannot apply {' '.join(overrides)}: {err}") from err
    return {name: OmegaConf.to_container(cfg.analysis[name], resolve=True) for name in names}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="epx explain",
        description="Interpretation of finished jobs: " + "; ".join(f"{k} ({a.doc})" for k, a in ANALYSES.items()),
    )
    parser.add_argument("path", help="a finished job dir, or a sweep dir (every finished job in it)")
    parser.add_argument("request", nargs="*", help="analyses to run, and NAME.key=value options (conf/analysis/NAME.yaml)")
    parser.add_argument("--out", help="output dir for one job (default JOB_DIR/explain)")
    parser.add_argument("--no-average", action="store_true", help="for a sweep: do not average over the fold models")
    parser.add_argument(
        "--wandb", action=argparse.BooleanOptionalAction, default=None,
        help="log to W&B (default: when the jobs did; never with WANDB_MODE=disabled)",
    )  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        analyses = parse_request(args.request)
        path = Path(args.path)
        if not path.exists():
            raise InputError(f"{path}: no such job or sweep dir")
        if (path / "metrics.json").exists():
            written = explain(path, analyses, out=args.out, log_wandb=args.wandb)
        else:
            written = explain_sweep(path, analyses, average=not args.no_average)
    except InputError as err:
        print(f"epx explain: error: {err}", file=sys.stderr)
        return 2
    for name, paths in written.items():
        for p in paths:
            print(f"{name}\t{p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
