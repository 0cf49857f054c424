"""The sections of ``epx report``, one function each: ``Study -> Section``.

Contract: ``SECTIONS`` is the ordered registry ``id -> builder``; every builder returns a
``Section(id, title, html, missing)`` and never raises for absent data: what it could not show
is listed in ``missing`` (one sentence each, saying how to produce it), and the page prints it
in the section. The sections (issue 22):

- ``metrics``: per model, the mean test primary metric per mark × cell with its spread over
  folds (sample sd; the chromexpress figure), heatmap + table;
- ``distal_gain``: each distal model (Chromoformer, GraphReg and their variants) minus the
  promoter CNN, per mark and cell (fold means subtracted);
- ``winners``: per model and cell group (``cells.tsv``), the mark set with the best mean metric;
- ``activity``: mark activity around the TSS per cell group (``epx explain … activity``);
- ``attribution``: mean |attribution| by distance from the TSS per mark and model
  (``epx explain … attribution``);
- ``enhancers``: enhancer AUPRC per model and scorer/baseline (``epx explain … validation``);
- ``accounting``: jobs per status, genes used/dropped per job, the failed / degenerate /
  missing / killed jobs with their errors;
- ``configs``: the configs of the models compared, one representative finished job each, as
  ``epx diff --markdown`` against the first model's;
- ``wandb``: links to the jobs' W&B runs.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from epx.analysis.plot import METRIC_RANGE, _cell_order, _mark_order
from epx.report.figures import grid_heatmap, png_uri, profile_lines
from epx.report.study import Study

PROMOTER_BASELINE = "promoter_cnn"
DISTAL_MODELS = ("chromoformer", "graphreg", "graphreg_gatv2", "graphreg_published", "seq_graphreg", "seq_graphreg_e2e")


@dataclass
class Section:
    id: str
    title: str
    html: str = ""
    missing: list[str] = field(default_factory=list)


def table_html(frame: pd.DataFrame, *, digits: int = 3) -> str:
    return frame.to_html(index=False, escape=True, na_rep="—", border=0, classes="data",
                         float_format=lambda v: f"{v:.{digits}f}")


def image(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{html.escape(alt)}">'


def _pivot(frame: pd.DataFrame, value: str, agg: str) -> pd.DataFrame:
    table = frame.pivot_table(index="mark", columns="cell", values=value, aggfunc=agg)
    marks = sorted(table.index, key=_mark_order)
    cells = sorted(table.columns, key=_cell_order)
    return table.reindex(index=marks, columns=cells)


def _panels(frame: pd.DataFrame) -> list[tuple[tuple[str, str, str], pd.DataFrame]]:
    out = []
    for key, part in frame.groupby(["model", "task", "primary_metric"], sort=True, dropna=False):
        out.append((tuple(map(str, key)), part))
    return out


# ------------------------------------------------------------------------------------ sections


def metrics_section(study: Study) -> Section:
    s = Section("metrics", "Test metric per mark × cell (mean ± sd over folds)")
    frame = study.frame().dropna(subset=["value"])
    if frame.empty:
        s.missing.append("no finished job has a defined primary test metric")
        return s
    parts = []
    for (model, task, metric), part in _panels(frame):
        mean, sd = _pivot(part, "value", "mean"), _pivot(part, "value", "std")
        fig = grid_heatmap([(f"{model} · {task} · test {metric}", mean, sd)], value_range=METRIC_RANGE.get(metric))
        folds = part.groupby(["mark", "cell"])["fold"].nunique()
        table = part.groupby(["mark", "cell"], as_index=False)["value"].agg(["mean", "std", "count"]).rename(
            columns={"count": "folds"})
        parts.append(f"<h3>{html.escape(model)} · {html.escape(task)} · test {html.escape(metric)}</h3>"
                     + image(png_uri(fig), f"{model} {metric} heatmap")
                     + f"<p>{int(folds.max())} fold(s) at most per cell; grey = no finished job.</p>"
                     + "<details><summary>table</summary>" + table_html(table) + "</details>")
    s.html = "".join(parts)
    return s


def distal_gain_section(study: Study) -> Section:
    s = Section("distal_gain", "Distal gain: distal model minus the promoter CNN (test metric)")
    frame = study.frame().dropna(subset=["value"])
    base = frame[frame["model"] == PROMOTER_BASELINE]
    distal = [m for m in dict.fromkeys(frame["model"]) if m in DISTAL_MODELS]
    if base.empty:
        s.missing.append(f"no finished {PROMOTER_BASELINE} job: run model={PROMOTER_BASELINE} on the same grid")
    if not distal:
        s.missing.append("no finished distal model (Chromoformer or GraphReg): run model=chromoformer / model=graphreg")
    if s.missing:
        return s
    panels, tables = [], []
    ref = base.groupby(["task", "primary_metric", "mark", "cell"])["value"].mean()
    for model in distal:
        part = frame[frame["model"] == model]
        mean = part.groupby(["task", "primary_metric", "mark", "cell"])["value"].mean()
        gain = (mean - ref).dropna().rename("gain").reset_index()
        if gain.empty:
            s.missing.append(f"{model} and {PROMOTER_BASELINE} share no (mark, cell): run both on the same cells and marks")
            continue
        for (task, metric), g in gain.groupby(["task", "primary_metric"]):
            panels.append((f"{model} − {PROMOTER_BASELINE} · test {metric}", _pivot(g, "gain", "mean"), None))
            tables.append(g.assign(model=model))
    if panels:
        names = ", ".join(html.escape(title.split(" · ")[0]) for title, _, _ in panels)
        s.html = f"<p>{names}</p>" + image(png_uri(grid_heatmap(panels, cmap="RdBu_r", centre=True)), "distal gain") + \
            "<p>Red: the distal model does better than the promoter CNN on the same cell and mark.</p>" + \
            "<details><summary>table</summary>" + table_html(pd.concat(tables)[["model", "task", "primary_metric", "mark", "cell", "gain"]]) + "</details>"
    return s


def winners_section(study: Study) -> Section:
    s = Section("winners", "Which marks and combinations win, per cell group")
    frame = study.frame().dropna(subset=["value"])
    if frame.empty:
        s.missing.append("no finished job has a defined primary test metric")
        return s
    mean = frame.groupby(["model", "task", "primary_metric", "group", "mark"], as_index=False)["value"].mean()
    rows = []
    for key, part in mean.groupby(["model", "task", "primary_metric", "group"]):
        order = part.sort_values("value", ascending=False)
        best, runner = order.iloc[0], order.iloc[1] if len(order) > 1 else None
        rows.append({"model": key[0], "metric": key[2], "cell group": key[3], "best marks": best["mark"],
                     "mean": best["value"], "runner-up": runner["mark"] if runner is not None else "—",
                     "its mean": runner["value"] if runner is not None else math.nan, "mark sets": len(order)})
    s.html = table_html(pd.DataFrame(rows)) + "<p>Mean over the group's cells and folds (cell groups from <code>epx/resources/cells.tsv</code>).</p>"
    if frame["mark"].nunique() < 2:
        s.missing.append("one mark set only: sweep mark=… over several marks or combinations to compare them")
    return s


def activity_section(study: Study) -> Section:
    s = Section("activity", "Mark activity around the TSS, per cell group")
    table = study.tables("activity", "activity_profile_summary.tsv")
    if table.empty:
        s.missing.append(f"no activity analysis: run `epx explain {study.sweep_dir} activity`")
        return s
    mean = table.groupby(["cell_group", "mark", "expressed", "offset_bp"], as_index=False)["mean"].mean()
    fig = profile_lines(mean, x="offset_bp", y="mean", line="mark", style="expressed", panel="cell_group",
                        title="mean signal around the TSS (solid: expressed genes, dashed: not)",
                        xlabel="bp from TSS", ylabel="mean signal")
    s.html = image(png_uri(fig), "mark activity profiles")
    return s


def attribution_section(study: Study) -> Section:
    s = Section("attribution", "Where each mark matters: attribution by distance from the TSS")
    table = study.tables("attribution", "attribution_profile.tsv")
    if table.empty:
        s.missing.append(f"no attribution analysis: run `epx explain {study.sweep_dir} attribution`")
        return s
    if "group" in table.columns and (table["group"].astype(str) == "all").any():  # the file's gene class: all genes
        table = table[table["group"].astype(str) == "all"]
    if "slot" in table.columns and (table["slot"] == -1).any():  # the main input (Chromoformer's pCRE slots apart)
        table = table[table["slot"] == -1]
    if "resolution_bp" in table.columns:  # Chromoformer profiles three resolutions: keep each model's finest
        table = table[table["resolution_bp"] == table.groupby("model")["resolution_bp"].transform("min")]
    table = table.assign(distance_kb=(table["offset_bp"].abs() / 1000.0))
    edges = np.array([0, 1, 2, 5, 10, 20, 50, 100, 500, 1e9])
    labels = ["<1", "1-2", "2-5", "5-10", "10-20", "20-50", "50-100", "100-500", ">500"]
    table["distance"] = pd.cut(table["distance_kb"], edges, labels=labels, right=False)
    by = table.groupby(["model", "mark", "distance"], observed=True, as_index=False)["abs_attribution"].mean()
    by["share"] = by["abs_attribution"] / by.groupby(["model", "mark"])["abs_attribution"].transform("sum")
    by["distance_mid"] = by["distance"].map(dict(zip(labels, [0.5, 1.5, 3.5, 7.5, 15, 35, 75, 300, 1000], strict=True))).astype(float)
    fig = profile_lines(by, x="distance_mid", y="share", line="mark", panel="model",
                        title="share of |attribution| by distance from the TSS", xlabel="kb from TSS (bin centre)",
                        ylabel="share of |attribution|")
    for ax in fig.axes:
        ax.set_xscale("log")
    wide = by.pivot_table(index=["model", "mark"], columns="distance", values="share", observed=True).reset_index()
    wide.columns = [str(c) for c in wide.columns]
    s.html = image(png_uri(fig), "attribution by distance") + "<details><summary>table (share per distance bin, kb)</summary>" + table_html(wide) + "</details>"
    return s


def enhancers_section(study: Study) -> Section:
    s = Section("enhancers", "Enhancer–gene validation: AUPRC per model and baseline")
    table = study.tables("validation", "validation_pooled.tsv")
    if table.empty:
        s.missing.append(
            f"no enhancer validation: convert a CRISPR screen (`epx convert crispr`) and run `epx explain {study.sweep_dir} "
            "validation` (K562 = Roadmap E123, not among the 11 cells: it needs its own signals)")
        return s
    mean = table.groupby(["model", "cell", "scorer"], as_index=False).agg(
        auprc=("auprc", "mean"), sd=("auprc", "std"), positive_rate=("positive_rate", "mean"), folds=("fold", "nunique"),
        elements=("n", "max"), positives=("n_positive", "max"))
    s.html = table_html(mean) + "<p>positive_rate is the no-skill AUPRC; <code>distance</code> and <code>abc</code> are the baselines.</p>"
    return s


def accounting_section(study: Study) -> Section:
    s = Section("accounting", "Gene accounting and job status")
    statuses = pd.Series([str(r.get("status")) for r in study.rows]).value_counts()
    counts = ", ".join(f"{n} {k}" for k, n in statuses.items())
    text = f"<p>{len(study.rows)} jobs: {html.escape(counts)}" + (f"; {study.smoke} smoke runs left out" if study.smoke else "") + ".</p>"
    genes = pd.DataFrame([{k: r.get(k) for k in ("job", "model", "cell", "mark", "fold", "genes_used", "genes_dropped", "n_train", "n_val", "n_test")}
                          for r in study.finished])
    text += "<details><summary>genes per finished job</summary>" + table_html(genes, digits=0) + "</details>"
    problems = [r for r in study.rows if r.get("status") not in ("ok",)]
    if problems:
        bad = pd.DataFrame([{"job": r.get("job"), "status": r.get("status"), "model": r.get("model"), "cell": r.get("cell"),
                             "mark": r.get("mark"), "fold": r.get("fold"), "error / undefined": r.get("error") or r.get("undefined") or ""}
                            for r in problems])
        text += "<h3>Jobs not ok</h3>" + table_html(bad)
        missing = [r for r in problems if r.get("status") in ("missing", "killed", "failed", "interrupted", "unreadable", "running")]
        if missing:
            s.missing.append(f"{len(missing)} of {len(study.rows)} jobs have no result yet (listed above): the grid is partial; "
                             f"rerun the sweep to finish it (`epx status {study.sweep_dir}`)")
    s.html = text
    return s


def configs_section(study: Study) -> Section:
    from epx.analysis.diff import DiffError, diff_text

    s = Section("configs", "Config differences between the models compared (epx diff --markdown)")
    first: dict[str, dict] = {}
    for row in study.finished:
        if row.get("job_dir") is not None and (row["job_dir"] / ".hydra" / "config.yaml").is_file():
            first.setdefault(str(row.get("model")), row)
    if len(first) < 2:
        s.missing.append("fewer than two models with a finished job: nothing to compare")
        return s
    models = list(first)
    parts = []
    for model in models[1:]:
        a, b = first[models[0]], first[model]
        try:
            text = diff_text(str(a["job_dir"]), str(b["job_dir"]), markdown=True)
        except (DiffError, OSError, ValueError) as err:
            s.missing.append(f"{models[0]} vs {model}: {err}")
            continue
        parts.append(f"<h3>{html.escape(models[0])} (job {html.escape(str(a['job']))}) vs {html.escape(model)} "
                     f"(job {html.escape(str(b['job']))})</h3><pre class=\"md\">{html.escape(text)}</pre>")
    s.html = "".join(parts)
    return s


def wandb_section(study: Study) -> Section:
    s = Section("wandb", "W&B runs")
    rows = []
    for job_dir, record in study.records.items():
        info = record.wandb or {}
        if info.get("id") and info.get("mode") != "disabled":  # WANDB_MODE=disabled makes ids of runs that never existed
            rows.append({"job": job_dir.name, "model": record.model, "cell": record.cell, "mark": record.mark,
                         "fold": record.fold, "run": info.get("id"), "mode": info.get("mode"), "url": info.get("url")})
    if not rows:
        s.missing.append("no job logged to W&B (their runs were disabled or absent; logger=wandb with WANDB_MODE online/offline)")
        return s
    items = []
    for r in rows:
        label = html.escape(f"{r['job']}: {r['model']} {r['cell']} {r['mark']} fold {r['fold']} — run {r['run']} ({r['mode']})")
        url = r["url"]
        items.append(f'<li><a href="{html.escape(url)}">{label}</a></li>' if url and str(url).startswith("https://")
                     else f"<li>{label} (offline: <code>wandb sync</code> the job's run dir to get a link)</li>")
    s.html = "<ul>" + "".join(items) + "</ul>"
    return s


SECTIONS: dict[str, Callable[[Study], Section]] = {
    "metrics": metrics_section,
    "distal_gain": distal_gain_section,
    "winners": winners_section,
    "activity": activity_section,
    "attribution": attribution_section,
    "enhancers": enhancers_section,
    "accounting": accounting_section,
    "configs": configs_section,
    "wandb": wandb_section,
}
