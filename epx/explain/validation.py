"""Enhancer–gene validation (issue 13, part 5): score candidate elements, AUPRC against labels.

Contract:

- ``SCORERS``: the registry, name → ``Scorer(name, needs, fn, floor_below, description)``.
  ``fn(table, inputs) -> (score (N,), seen (N,) bool)`` scores every row of an element
  table (``epx.explain.elements.read_elements``); a row the scorer cannot see (``seen``
  False) gets the floor. ``needs`` names what ``ScoringInputs`` must hold:

  - ``graphreg_rule`` (needs ``gene_tracks``): GraphReg's rule — the max |attribution|
    within ± 4 kb of the element's midpoint divided by the max |attribution| over the
    gene's whole window (``GeneTrack``: values summed over marks, genomic orientation, bin
    ``k`` at ``start_bp + k * bin_bp``). Applies to every model with gene tracks (GraphReg,
    Epi-CNN, the promoter CNN, Chromoformer's promoter window); an element whose midpoint
    lies outside the track is not seen (the promoter CNN's 6 kb window on distal elements).
  - ``pcre_attribution`` / ``pcre_attention`` (need ``pcres``, Chromoformer): |attribution|
    / ``attention_mean`` of the pCRE slot overlapping the element (the max when several
    overlap); 0 when no pCRE of the gene overlaps it — the model was shown nothing there.
  - ``distance`` (baseline, needs nothing): −|midpoint − TSS|; closer is higher.
  - ``abc`` (baseline, needs ``tracks`` with H3K27ac; the cell's thresholded contacts
    when it has any — the dataset's, also for a promoter model): activity ×
    contact, normalised over the gene's candidates, as the ABC model (Fulco et al. 2019)
    does. Activity = the geometric mean of the mean per-bp H3K27ac and H3K4me1 signal over
    the element (H3K27ac alone when H3K4me1 is absent; ABC's DNase is not a Roadmap mark, so
    H3K4me1, the other enhancer mark, stands in for it). Contact = the ``strength`` of the
    strongest contact with one anchor on the gene's promoter (TSS ± ``tolerance_bp``) and
    the other overlapping the element, either BEDPE orientation; with no such contact, ABC's
    power law in distance, ``(max(d, 5 kb) / 5 kb) ** -gamma`` (``gamma`` 1.024, ABC's
    ``hic_gamma`` fitted to averaged Hi-C; 5 kb, its pseudocount distance, is also the
    resolution of the contact maps, where the power law is 1, so an unlinked element never
    outweighs a called contact of strength ≥ 1).

- ``ScoringInputs(genes, gene_tracks=None, pcres=None, tracks=None, contacts=None,
  tolerance_bp=1000, source="")``; ``ScoringInputs.from_job(job, rows, scorers,
  attribution=None, method="ig", n_steps=32)`` builds only what ``scorers`` need, from an
  ``ExplainJob`` (``epx.explain.job``): the attribution once (``attribute``), then
  ``gene_tracks`` (``epx.explain.attribution``) / ``pcre_table`` (``epx.explain.attention``),
  the cache's H3K27ac/H3K4me1 tracks and the cell's thresholded contacts.
- ``applicable(scorers, inputs_or_job)`` refuses, before any work, a scorer that does not
  apply (one ``InputError`` naming it and what it needs); ``default_scorers(job)`` is every
  scorer that applies to a job's model.
- ``score_elements(table, inputs, scorers) -> DataFrame``: one row per evaluated element
  (``epx.explain.elements.evaluated``: scorable, or outside the model's window) and scorer:
  ``element chrom start end gene_id significant distance_bp scorer score seen``. A scorer's
  floor is below all its seen scores (``min(seen) - 1``), so an unseen element ranks last.
- ``validate(scores) -> (per_gene, pooled, curves)``: ``per_gene`` DataFrame[scorer,
  gene_id, n_elements, n_positive, auprc] (NaN where a gene has no positive or no
  negative), ``pooled`` {scorer: AUPRC over every evaluated element}, ``curves`` {scorer:
  ``PRCurve`` (precision, recall, auprc, positive_rate, n, n_positive)}. AUPRC is
  torchmetrics' binary average precision (sklearn's step-wise definition, ties as one
  threshold; scikit-learn is not a dependency), computed on the scores' dense ranks so no
  logit squashing can tie distinct scores.
- ``plot_pr(curves, path)``: the PR curves with the positive rate as the no-skill line.
- ``write_validation(scores, per_gene, pooled, curves, out_dir, report=None)``:
  ``validation_scores.tsv``, ``validation_per_gene.tsv``, ``validation_pooled.tsv``
  (scorer, auprc, positive_rate, n, n_positive, n_genes), ``validation_pr.png``,
  ``validation_elements.json`` (the element report).
- ``validate_job(job, elements, *, split="test", scorers=None, ...)``: the whole path for
  one trained job (its cell, the split's genes, the model's window).
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.stats import rankdata
from torchmetrics.functional.classification import binary_average_precision, binary_precision_recall_curve

from epx.errors import InputError
from epx.explain.activity import region_means, write_table
from epx.data.inputs.chromoformer import ChromoformerInputs
from epx.explain.elements import ElementReport, evaluated, read_elements
from epx.io.atomic import write_text
from epx.io.figures import save_png

log = logging.getLogger(__name__)

HALF_WIDTH_BP = 4_000  # GraphReg's ± 4 kb around the element's midpoint
ABC_GAMMA = 1.024238616787792  # ABC's hic_gamma: the power law fitted to averaged Hi-C (contact ~ distance^-gamma)
ABC_MIN_DISTANCE_BP = 5_000
ACTIVITY_MARKS = ("H3K27ac", "H3K4me1")
SCORE_COLUMNS = ["element", "chrom", "start", "end", "gene_id", "significant", "distance_bp", "scorer", "score", "seen"]


# ----------------------------------------------------------------------------- inputs


@dataclass
class ScoringInputs:
    """What the scorers read. ``gene_tracks``: gene_id → GeneTrack (``gene_id chrom start_bp
    bin_bp values``); ``pcres``: DataFrame[gene_id, chrom, start, end, attribution,
    attention_mean]; ``tracks``: ``SignalTracks`` of raw 100 bp bin means with H3K27ac
    (and H3K4me1); ``contacts``: thresholded BEDPE with a ``strength`` column."""

    genes: pd.DataFrame
    gene_tracks: Mapping[str, Any] | None = None
    pcres: pd.DataFrame | None = None
    tracks: Any | None = None
    contacts: pd.DataFrame | None = None
    tolerance_bp: int = 1000
    source: str = ""

    def has(self, need: str) -> bool:
        if need == "tracks":
            return self.tracks is not None and "H3K27ac" in tuple(self.tracks.marks)
        return getattr(self, need) is not None

    @classmethod
    def from_job(cls, job, rows, scorers: Sequence[str], *, attribution=None, method: str = "ig", n_steps: int = 32) -> "ScoringInputs":
        needs = {need for name in scorers for need in SCORERS[name].needs}
        dm = job.dm
        inputs = cls(genes=dm.genes, source=_model_name(job), tolerance_bp=_tolerance(dm.inputs))
        if needs & {"gene_tracks", "pcres"}:
            attr = importlib.import_module("epx.explain.attribution")  # attribute, gene_tracks

            if attribution is None:
                attribution = attr.attribute(job, rows, method=method, n_steps=n_steps)
            if "gene_tracks" in needs:
                inputs.gene_tracks = {t.gene_id: t for t in attr.gene_tracks(job, rows, attribution)}
            if "pcres" in needs:
                inputs.pcres = importlib.import_module("epx.explain.attention").pcre_table(job, rows, attribution)
        if "tracks" in needs:
            inputs.tracks = _activity_tracks(dm, dm.genes.iloc[np.asarray(rows)])
        if "abc" in scorers:
            inputs.contacts = _dataset_contacts(dm)
        return inputs


def _model_name(job) -> str:
    record = getattr(job, "record", None)
    return str(getattr(record, "model", "") or "")


def _tolerance(inputs) -> int:
    # a model that reads no contacts links elements to genes by the house default
    return int(inputs.contact_tolerance_bp if inputs.contact_tolerance_bp is not None else 1000)


def _dataset_contacts(dm) -> pd.DataFrame | None:
    """The cell's thresholded contacts: the DataModule's, or — for a promoter model, which
    reads none — the dataset's own, so the abc baseline is the same for every model."""
    contacts = dm.contacts.get(dm.cell)
    if "contacts" not in dm.sources and dm.spec.interactions_path(dm.cell).exists():
        contacts, _ = dm.spec.contacts(dm.cell, chroms=_chrom_sizes(dm))
    return contacts


def _chrom_sizes(dm) -> dict[str, int]:
    return dm.chrom_sizes(dm.cell)


def _activity_marks_on_disk(dm) -> list[str]:
    return [m for m in ACTIVITY_MARKS if dm.spec.signal_path(dm.cell, m).exists()]


def _activity_tracks(dm, genes: pd.DataFrame):
    from epx.data.tracks import SignalTracks

    marks = _activity_marks_on_disk(dm)
    if "H3K27ac" not in marks:
        raise InputError(
            f"the abc baseline needs the cell's H3K27ac signal ({dm.spec.signal_path(dm.cell, 'H3K27ac')} is missing); "
            "leave abc out of the scorers"
        )
    cache = dm.cell_cache(dm.cell)
    chroms = list(pd.unique(genes["chrom"]))
    return SignalTracks(cache.load(marks, chroms=chroms), marks, base_bp=cache.bin_bp)


# ----------------------------------------------------------------------------- scorers


@dataclass(frozen=True)
class Scorer:
    name: str
    needs: tuple[str, ...]
    fn: Callable[[pd.DataFrame, ScoringInputs], tuple[np.ndarray, np.ndarray]]
    description: str
    model: bool = True  # reads a trained model (False: a baseline)


def _graphreg_rule(table: pd.DataFrame, inputs: ScoringInputs) -> tuple[np.ndarray, np.ndarray]:
    score = np.zeros(len(table))
    seen = np.zeros(len(table), bool)
    tracks = inputs.gene_tracks or {}
    for i, (gene, chrom, mid) in enumerate(zip(table["gene_id"], table["chrom"], table["mid"])):
        track = tracks.get(gene)
        if track is None or str(track.chrom) != str(chrom):
            continue
        values = np.abs(np.asarray(track.values, np.float64).reshape(-1))
        start, bin_bp = int(track.start_bp), int(track.bin_bp)
        if not len(values) or not start <= int(mid) < start + len(values) * bin_bp:
            continue
        seen[i] = True
        top = values.max()
        if top <= 0:
            continue
        first = max((int(mid) - HALF_WIDTH_BP - start) // bin_bp, 0)
        last = min(-(-(int(mid) + HALF_WIDTH_BP - start) // bin_bp), len(values))  # exclusive
        score[i] = values[first:last].max() / top
    return score, seen


def _pcre_column(column: str, absolute: bool) -> Callable[[pd.DataFrame, ScoringInputs], tuple[np.ndarray, np.ndarray]]:
    def fn(table: pd.DataFrame, inputs: ScoringInputs) -> tuple[np.ndarray, np.ndarray]:
        pcres = inputs.pcres
        if column not in pcres.columns:
            raise InputError(f"the pCRE table has no {column!r} column (columns: {list(pcres.columns)})")
        score = np.zeros(len(table))
        by_gene = {gene: part for gene, part in pcres.groupby("gene_id", sort=False)}
        for i, (gene, chrom, start, end) in enumerate(zip(table["gene_id"], table["chrom"], table["start"], table["end"])):
            part = by_gene.get(gene)
            if part is None:
                continue
            hit = (part["chrom"].to_numpy() == chrom) & (part["start"].to_numpy() < end) & (part["end"].to_numpy() > start)
            if hit.any():
                values = part[column].to_numpy(np.float64)[hit]
                score[i] = np.nanmax(np.abs(values) if absolute else values)
        return np.nan_to_num(score), np.ones(len(table), bool)

    return fn


def _distance(table: pd.DataFrame, inputs: ScoringInputs) -> tuple[np.ndarray, np.ndarray]:
    distance = np.abs((table["mid"] - table["tss"]).to_numpy(np.float64))
    return -distance, np.ones(len(table), bool)


def abc_contact(table: pd.DataFrame, contacts: pd.DataFrame | None, *, tolerance_bp: int = 1000, gamma: float = ABC_GAMMA) -> tuple[np.ndarray, np.ndarray]:
    """(contact, from_hic): the strongest contact linking each row's gene promoter and element,
    else the power law in distance."""
    n = len(table)
    strength = np.full(n, np.nan)
    if contacts is not None and len(contacts):
        tss = table["tss"].to_numpy(np.int64)
        chrom = table["chrom"].to_numpy(dtype=object)
        start, end = table["start"].to_numpy(np.int64), table["end"].to_numpy(np.int64)
        for a, b in (("1", "2"), ("2", "1")):
            c_prom, s_prom, e_prom = (contacts[f"{k}{a}"].to_numpy() for k in ("chrom", "start", "end"))
            c_el, s_el, e_el = (contacts[f"{k}{b}"].to_numpy() for k in ("chrom", "start", "end"))
            power = contacts["strength"].to_numpy(np.float64)
            for c in pd.unique(chrom):
                rows = np.flatnonzero(chrom == c)
                on = np.flatnonzero((c_prom == c) & (c_el == c))
                if not on.size:
                    continue
                at_promoter = (s_prom[on][None, :] < tss[rows, None] + tolerance_bp + 1) & (e_prom[on][None, :] > tss[rows, None] - tolerance_bp)
                at_element = (s_el[on][None, :] < end[rows, None]) & (e_el[on][None, :] > start[rows, None])
                linked = at_promoter & at_element
                best = np.where(linked, power[on][None, :], -np.inf).max(axis=1)
                found = np.isfinite(best)
                strength[rows[found]] = np.fmax(strength[rows[found]], best[found])
    distance = np.abs((table["mid"] - table["tss"]).to_numpy(np.float64))
    power_law = (np.maximum(distance, ABC_MIN_DISTANCE_BP) / ABC_MIN_DISTANCE_BP) ** -gamma
    from_hic = np.isfinite(strength)
    return np.where(from_hic, strength, power_law), from_hic


def abc_activity(table: pd.DataFrame, tracks) -> np.ndarray:
    """Geometric mean of the mean H3K27ac (and H3K4me1) signal over each element."""
    marks = list(tracks.marks)
    means = region_means(tracks, table["chrom"].to_numpy(), table["start"].to_numpy(), table["end"].to_numpy())
    used = [marks.index(m) for m in ACTIVITY_MARKS if m in marks]
    return np.exp(np.log(np.maximum(means[:, used], 0.0)).mean(axis=1)) if used else np.zeros(len(table))


def _abc(table: pd.DataFrame, inputs: ScoringInputs) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(divide="ignore"):
        activity = abc_activity(table, inputs.tracks)
    contact, _ = abc_contact(table, inputs.contacts, tolerance_bp=inputs.tolerance_bp)
    raw = activity * contact
    total = pd.Series(raw).groupby(table["gene_id"].to_numpy()).transform("sum").to_numpy()
    score = np.divide(raw, total, out=np.zeros(len(table)), where=total > 0)
    return score, np.ones(len(table), bool)


SCORERS: dict[str, Scorer] = {
    "graphreg_rule": Scorer(
        "graphreg_rule", ("gene_tracks",), _graphreg_rule, "max |attribution| within ±4 kb of the element / max over the window"
    ),
    "pcre_attribution": Scorer(
        "pcre_attribution", ("pcres",), _pcre_column("attribution", True), "|attribution| of the pCRE slot overlapping the element"
    ),
    "pcre_attention": Scorer(
        "pcre_attention", ("pcres",), _pcre_column("attention_mean", False), "regulation-layer attention to the overlapping pCRE"
    ),
    "distance": Scorer("distance", (), _distance, "baseline: closer to the TSS scores higher", model=False),
    "abc": Scorer("abc", ("tracks",), _abc, "baseline: activity (H3K27ac, H3K4me1) x contact, ABC-like", model=False),
}

NEED_TEXT = {
    "gene_tracks": "per-gene attribution tracks (a model with attribution)",
    "pcres": "pCREs (Chromoformer)",
    "tracks": "the cell's H3K27ac signal",
}


def _job_has(job, need: str) -> bool:
    inputs = job.dm.inputs
    if need == "pcres":
        return isinstance(inputs, ChromoformerInputs)  # pCRE slots
    if need == "tracks":
        return "H3K27ac" in _activity_marks_on_disk(job.dm)
    return True  # gene tracks: every model


def applicable(scorers: Iterable[str], target) -> list[str]:
    """The scorers, checked against a ``ScoringInputs`` or an ``ExplainJob``; one error for all that do not apply."""
    scorers = list(scorers)
    unknown = [s for s in scorers if s not in SCORERS]
    if unknown:
        raise InputError(f"unknown validation scorer(s) {unknown}; choose from {sorted(SCORERS)}")
    check = target.has if isinstance(target, ScoringInputs) else (lambda need: _job_has(target, need))
    bad = {s: [n for n in SCORERS[s].needs if not check(n)] for s in scorers}
    bad = {s: needs for s, needs in bad.items() if needs}
    if bad:
        model = target.source if isinstance(target, ScoringInputs) else _model_name(target)
        what = "; ".join(f"{s} needs {', '.join(NEED_TEXT[n] for n in needs)}" for s, needs in bad.items())
        raise InputError(f"validation scorer(s) {', '.join(bad)} do not apply{f' to model {model}' if model else ''}: {what}. Leave them out.")
    return scorers


def default_scorers(job) -> list[str]:
    return [name for name, scorer in SCORERS.items() if all(_job_has(job, n) for n in scorer.needs)]


# ----------------------------------------------------------------------------- scoring


def score_elements(table: pd.DataFrame, inputs: ScoringInputs, scorers: Sequence[str] | None = None) -> pd.DataFrame:
    """Long table: every evaluated element × scorer, with the floor for unseen elements."""
    scorers = applicable(list(scorers) if scorers is not None else [s for s, sc in SCORERS.items() if all(inputs.has(n) for n in sc.needs)], inputs)
    rows = table[evaluated(table)].reset_index(drop=True)
    rows = rows.assign(tss=rows["tss"].astype(np.int64), mid=rows["mid"].astype(np.int64))
    base = pd.DataFrame(
        {
            "element": rows["element"].to_numpy(),
            "chrom": rows["chrom"].to_numpy(),
            "start": rows["start"].to_numpy(),
            "end": rows["end"].to_numpy(),
            "gene_id": rows["gene_id"].to_numpy(),
            "significant": rows["significant"].to_numpy(bool),
            "distance_bp": (rows["mid"] - rows["tss"]).to_numpy(np.int64),
        }
    )
    parts = []
    for name in scorers:
        score, seen = SCORERS[name].fn(rows, inputs)
        score, seen = np.asarray(score, np.float64), np.asarray(seen, bool)
        floor = (score[seen].min() - 1.0) if seen.any() else -1.0
        parts.append(base.assign(scorer=name, score=np.where(seen, score, floor), seen=seen))
    if not parts:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    return pd.concat(parts, ignore_index=True)[SCORE_COLUMNS]


# ----------------------------------------------------------------------------- AUPRC


@dataclass
class PRCurve:
    precision: np.ndarray
    recall: np.ndarray
    auprc: float
    positive_rate: float
    n: int
    n_positive: int


def _ranks(score: np.ndarray) -> torch.Tensor:
    """Dense ranks scaled into (0, 1]: the order and ties of ``score``, immune to logit squashing."""
    ranks = rankdata(score, method="dense")
    return torch.as_tensor(ranks / ranks.max(), dtype=torch.float64)


def _labels(positive: np.ndarray) -> torch.Tensor:
    return torch.tensor(np.asarray(positive, bool).astype(np.int64))  # a copy: pandas hands out read-only views


def auprc(score, positive) -> float:
    """Average precision (step-wise, as sklearn's) of ``score`` for the boolean labels; NaN
    without a positive or without a negative."""
    score, positive = np.asarray(score, np.float64), np.asarray(positive, bool)
    if not len(score) or positive.all() or not positive.any():
        return float("nan")
    return float(binary_average_precision(_ranks(score), _labels(positive)))


def pr_curve(score, positive) -> PRCurve:
    score, positive = np.asarray(score, np.float64), np.asarray(positive, bool)
    n, n_pos = len(score), int(positive.sum())
    if not n or not n_pos:
        return PRCurve(np.array([1.0]), np.array([0.0]), float("nan"), n_pos / n if n else float("nan"), n, n_pos)
    precision, recall, _ = binary_precision_recall_curve(_ranks(score), _labels(positive))
    return PRCurve(precision.numpy(), recall.numpy(), auprc(score, positive), n_pos / n, n, n_pos)


def validate(scores: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, float], dict[str, PRCurve]]:
    per_gene, pooled, curves = [], {}, {}
    for scorer, part in scores.groupby("scorer", sort=False):
        curves[scorer] = pr_curve(part["score"].to_numpy(), part["significant"].to_numpy(bool))
        pooled[scorer] = curves[scorer].auprc
        for gene, rows in part.groupby("gene_id", sort=False):
            positive = rows["significant"].to_numpy(bool)
            per_gene.append(
                {
                    "scorer": scorer,
                    "gene_id": gene,
                    "n_elements": len(rows),
                    "n_positive": int(positive.sum()),
                    "auprc": auprc(rows["score"].to_numpy(), positive),
                }
            )
    columns = ["scorer", "gene_id", "n_elements", "n_positive", "auprc"]
    return pd.DataFrame(per_gene, columns=columns), pooled, curves


def plot_pr(curves: Mapping[str, PRCurve], path: str | Path, *, title: str = "") -> Path:
    """PR curves, one line per scorer (AUPRC in the legend), the positive rate as no skill."""
    fig = Figure(figsize=(5.2, 4.4), constrained_layout=True)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    rates = [c.positive_rate for c in curves.values() if np.isfinite(c.positive_rate)]
    for name, curve in curves.items():
        ax.step(curve.recall, curve.precision, where="post", label=f"{name} (AUPRC {curve.auprc:.2f})")
    if rates:
        rate = float(np.mean(rates))
        ax.axhline(rate, color="grey", ls="--", lw=1, label=f"no skill (positive rate {rate:.2f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title or "enhancer–gene validation")
    ax.legend(fontsize=7, frameon=False, loc="upper right")
    return save_png(fig, path, dpi=110)


# ----------------------------------------------------------------------------- outputs


def pooled_table(scores: pd.DataFrame, curves: Mapping[str, PRCurve]) -> pd.DataFrame:
    rows = []
    for name, curve in curves.items():
        part = scores[scores["scorer"] == name]
        rows.append(
            {
                "scorer": name,
                "auprc": curve.auprc,
                "positive_rate": curve.positive_rate,
                "n": curve.n,
                "n_positive": curve.n_positive,
                "n_genes": int(part["gene_id"].nunique()),
                "n_unseen": int((~part["seen"].astype(bool)).sum()),
            }
        )
    return pd.DataFrame(rows, columns=["scorer", "auprc", "positive_rate", "n", "n_positive", "n_genes", "n_unseen"])


def write_validation(
    scores: pd.DataFrame,
    per_gene: pd.DataFrame,
    curves: Mapping[str, PRCurve],
    out_dir: str | Path,
    *,
    report: ElementReport | None = None,
    title: str = "",
) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "scores": write_table(scores, out / "validation_scores.tsv")[0],
        "per_gene": write_table(per_gene, out / "validation_per_gene.tsv")[0],
        "pooled": write_table(pooled_table(scores, curves), out / "validation_pooled.tsv")[0],
        "pr": plot_pr(curves, out / "validation_pr.png", title=title),
    }
    if report is not None:
        paths["elements"] = write_text(out / "validation_elements.json", json.dumps(report.to_dict(), indent=2) + "\n")
    return paths


# ----------------------------------------------------------------------------- one job


def model_window(inputs, base_bp: int = 100):
    """How far a model sees around a gene, as ``read_elements``' ``window``: the genomic
    interval its builder reads for each gene (``InputBuilder.intervals``: GraphReg's tile, a
    promoter model's window), None for a ``distal`` builder (Chromoformer: its pCREs reach any
    distance)."""
    if inputs.distal:
        return None
    return lambda genes: inputs.intervals(genes, base_bp=base_bp).bounds()


@dataclass
class ValidationResult:
    table: pd.DataFrame
    report: ElementReport
    scores: pd.DataFrame
    per_gene: pd.DataFrame
    pooled: dict[str, float]
    curves: dict[str, PRCurve]
    paths: dict[str, Path] = field(default_factory=dict)


def validate_job(
    job,
    elements: str | Path,
    *,
    split: str = "test",
    scorers: Sequence[str] | None = None,
    attribution=None,
    method: str = "ig",
    n_steps: int = 32,
    out_dir: str | Path | None = None,
) -> ValidationResult:
    """Read ``elements`` for the job's cell and the split's genes, score, validate, write."""
    dm = job.dm
    scorers = applicable(scorers, job) if scorers is not None else default_scorers(job)
    rows = np.asarray(job.rows(split))
    scope = dm.genes["gene_id"].to_numpy()[rows]
    chrom_sizes = _chrom_sizes(dm)
    table, report = read_elements(
        elements, dm.genes, chrom_sizes, window=model_window(dm.inputs, dm.bin_bp), cell=dm.cell, scope=scope, exact_names=dm.spec.exact_names
    )
    report.log()
    wanted = set(table.loc[evaluated(table), "gene_id"])
    scored_rows = rows[np.isin(scope, list(wanted))]  # attribution only for genes with elements
    inputs = ScoringInputs.from_job(job, scored_rows, scorers, attribution=attribution, method=method, n_steps=n_steps)
    scores = score_elements(table, inputs, scorers)
    per_gene, pooled, curves = validate(scores)
    result = ValidationResult(table, report, scores, per_gene, pooled, curves)
    if out_dir is not None:
        result.paths = write_validation(scores, per_gene, curves, out_dir, report=report, title=f"{_model_name(job)} {dm.cell} {split}".strip())
    return result
