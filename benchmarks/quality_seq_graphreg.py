"""Seq-GraphReg quality on the synthetic genome's planted motifs (issue 20's figures), fold 0.

Reads finished jobs (their own configs and checkpoints, ``epx.explain.job.ExplainJob``) of
the CPU recipe on ``dataset=synthetic_seq`` (README "Seq-GraphReg"), and prints:

1. **Distal-driven genes**: test Spearman / Pearson over the genes ``truth.tsv`` marks
   distal-driven and over the others (``epx.analysis.distal``), for Seq-GraphReg, Seq-CNN and
   Epi-GraphReg on the same genes, and Seq-GraphReg's gain over Seq-CNN.
2. **Motif knockout** on the Seq-GraphReg job (``epx.explain.knockout``, through its DNA view:
   the base recomputes every edited chunk): per motif, precision of the top k predicted
   down-regulated test genes (called at log2 fold change < -``--min-effect``, 0.2) against
   the planted targets (k = min(100, targets among the test genes)); a decoy, which drives
   nothing, against every driver's targets (how much its knockout looks like a driver's).
3. **ISM** (``epx.explain.ism``) around planted driver sites at the promoters of expressed
   test genes: whether the bases with the largest |Δ| in site ± ``--flank`` lie on the site.
4. **Variants** (``epx.explain.variants``): every SNV of the dataset's ``variants.vcf`` on
   the test chromosomes scored for the genes whose windows hold it; AUPRC of ``break`` vs
   ``decoy`` records by the largest down-regulation over the variant's genes (all breaks, and
   the breaks whose target gene is expressed in the cell), and the ``wrong_ref`` records as
   the scorer reports them (never scored).

Tables go to ``--out`` (knockout, ISM, variant scores). Cost on 2 CPU cores: minutes
(knockout recomputes each motif's hit chunks once; ISM one chunk and one window per mutant).

    python benchmarks/quality_seq_graphreg.py --seq-graphreg JOB --seq-cnn JOB --epi-graphreg JOB \
        [--out DIR] [--ism-genes 3] [--flank 15] [--motifs TF_ESC,TF_HOUSEKEEPING,DECOY_1,DECOY_2,DECOY_3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from epx.analysis.distal import distal_report  # noqa: E402
from epx.explain.ism import base_scores, ism  # noqa: E402
from epx.explain.job import ExplainJob  # noqa: E402
from epx.explain.knockout import knockout, planted_targets, summary  # noqa: E402
from epx.explain.motifs import MotifSet  # noqa: E402
from epx.explain.variants import score_variants  # noqa: E402
from epx.io.motifs import read_motif_sites  # noqa: E402
from epx.io.truth import read_truth  # noqa: E402
from epx.io.vcf import read_snvs  # noqa: E402


def average_precision(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the precision-recall curve as average precision (ties broken pessimistically)."""
    order = np.lexsort((positive, -score))  # among equal scores, negatives first
    hits = positive[order].astype(float)
    if not hits.sum():
        return float("nan")
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


def _distal(jobs: dict[str, Path], truth: Path) -> pd.DataFrame:
    table = distal_report(list(jobs.values()), truth)
    table["job"] = list(jobs)
    return table


def _knockout(job, motifs: MotifSet, out: Path, min_effect: float) -> pd.DataFrame:
    rows = job.rows("test")
    started = time.perf_counter()
    table = knockout(job, rows, motifs)
    seconds = time.perf_counter() - started
    table.to_csv(out / "knockout.tsv", sep="\t", index=False)
    summ = summary(table, 100, planted_targets(job.dm.spec.root), min_effect)
    summ["seconds"] = round(seconds, 1)
    return summ


def _ism(job, motifs: MotifSet, cell: str, n_genes: int, flank: int, out: Path) -> pd.DataFrame:
    """Planted driver sites (not TF_PROMOTER) at promoters of expressed test genes, best score first."""
    root = Path(job.dm.spec.root)
    sites = read_motif_sites(root / "motif_sites.tsv")
    genes = job.genes
    test = genes.iloc[job.rows("test")]
    expressed = set(test.loc[test[job.dm.target_column] > 1.0, "gene_id"]) if job.dm.target_column in test else set(test["gene_id"])
    chosen = sites[(sites["role"] == "promoter") & (sites["motif"] != "TF_PROMOTER") & sites["target"].isin(expressed)]
    chosen = chosen[chosen["motif"].isin(motifs.names)].sort_values("score", ascending=False).drop_duplicates("target").head(n_genes)
    ids = genes["gene_id"].to_numpy()
    rows = np.array([int(np.flatnonzero(ids == t)[0]) for t in chosen["target"]], np.int64)
    centers = ((chosen["start"].to_numpy(np.int64) + chosen["end"].to_numpy(np.int64)) // 2)
    table = ism(job, rows, centers, flank_bp=flank)
    table.to_csv(out / "ism.tsv", sep="\t", index=False)
    scores = base_scores(table)
    result = []
    for (gene_id, part), site in zip(scores.groupby("gene_id", sort=False), chosen.itertuples(index=False)):
        on_site = (part["position"] >= site.start) & (part["position"] < site.end)
        top = part.sort_values("max_abs_delta", ascending=False)
        width = int(site.end - site.start)
        result.append({
            "gene_id": gene_id, "motif": site.motif, "site": f"{site.chrom}:{site.start}-{site.end}{site.strand}",
            "peak_on_site": bool(on_site[top.index[0]]), "top_w_on_site": float(on_site[top.index[:width]].mean()),
            "max_abs_delta_on_site": float(part.loc[on_site, "max_abs_delta"].max()),
            "max_abs_delta_off_site": float(part.loc[~on_site, "max_abs_delta"].max()),
        })
    return pd.DataFrame(result)


def _variants(job, out: Path) -> tuple[dict, pd.DataFrame]:
    root = Path(job.dm.spec.root)
    snvs = read_snvs(root / "variants.vcf", job.chrom_sizes())
    test_chroms = set(job.genes.iloc[job.rows("test")]["chrom"])
    snvs.table = snvs.table[snvs.table["chrom"].isin(test_chroms)].reset_index(drop=True)
    started = time.perf_counter()
    result = score_variants(job, snvs, job.rows("test"))
    seconds = time.perf_counter() - started
    result.table.to_csv(out / "variants.tsv", sep="\t", index=False)
    vcf = pd.read_csv(root / "variants.vcf", sep="\t", comment="#", header=None, usecols=[0, 1, 2, 7], names=["chrom", "pos", "id", "info"])
    klass = vcf.set_index("id")["info"].str.extract(r"CLASS=([^;]+)")[0]
    target = vcf.set_index("id")["info"].str.extract(r"TARGET=([^;]+)")[0]
    per_variant = result.table.groupby("variant_id")["log2_fold_change"].min()  # the strongest down-regulation
    scored = pd.DataFrame({"score": -per_variant, "class": klass.reindex(per_variant.index), "target": target.reindex(per_variant.index)})
    scored = scored[scored["class"].isin(["break", "decoy"])]
    expr = job.genes.set_index("gene_id")[job.dm.target_column]
    active = scored["class"].eq("decoy") | scored["target"].map(expr).gt(1.0)
    status = pd.Series(result.status)
    wrong = [int(r) for r in snvs.table.loc[snvs.table["id"].map(klass).eq("wrong_ref"), "record"]]
    figures = {
        "variants_on_test_chroms": int(len(snvs.table)), "scored_pairs": int(result.counts.get("scored_pairs", 0)),
        "breaks": int((scored["class"] == "break").sum()), "decoys": int((scored["class"] == "decoy").sum()),
        "auprc_break_vs_decoy": average_precision(scored["score"].to_numpy(), (scored["class"] == "break").to_numpy()),
        "positive_rate": float((scored["class"] == "break").mean()) if len(scored) else float("nan"),
        "breaks_of_expressed_targets": int((active & scored["class"].eq("break")).sum()),
        "auprc_expressed_break_vs_decoy": average_precision(scored.loc[active, "score"].to_numpy(), (scored.loc[active, "class"] == "break").to_numpy()),
        "wrong_ref_records": len(wrong), "wrong_ref_reported_as_mismatch": int(sum(status.get(r) == "ref_mismatch" for r in wrong)),
        "wrong_ref_scored": int(sum(status.get(r) == "scored" for r in wrong)),
        "seconds": round(seconds, 1),
        "pairs_per_second": round(result.counts.get("scored_pairs", 0) / seconds, 2) if seconds else float("nan"),
    }
    return figures, scored


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seq-graphreg", required=True, type=Path)
    ap.add_argument("--seq-cnn", required=True, type=Path)
    ap.add_argument("--epi-graphreg", type=Path)
    ap.add_argument("--out", type=Path, default=Path("seq_quality"))
    ap.add_argument("--motifs", default="TF_ESC,TF_HOUSEKEEPING,DECOY_1,DECOY_2,DECOY_3")
    ap.add_argument("--min-effect", type=float, default=0.2, help="knockout: a gene is called down at log2 fold change < -this")
    ap.add_argument("--ism-genes", type=int, default=3)
    ap.add_argument("--flank", type=int, default=15)
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: knockout,ism,variants")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    skip = set(filter(None, args.skip.split(",")))
    pd.set_option("display.width", 200, "display.max_columns", 20)

    job = ExplainJob.load(args.seq_graphreg)
    root = Path(job.dm.spec.root)
    jobs = {"seq_graphreg": args.seq_graphreg, "seq_cnn": args.seq_cnn}
    if args.epi_graphreg:
        jobs["epi_graphreg"] = args.epi_graphreg
    distal = _distal(jobs, root / "truth.tsv")
    print("## Distal-driven vs other test genes\n" + distal.to_string(index=False))
    by = distal.set_index("job")
    gain = float(by.loc["seq_graphreg", "distal_spearman"] - by.loc["seq_cnn", "distal_spearman"]) if "distal_spearman" in by else float("nan")
    print(f"Seq-GraphReg - Seq-CNN, distal-driven Spearman: {gain:+.3f}")
    figures: dict = {"distal": distal.to_dict("records"), "distal_spearman_gain": gain}

    motifs = MotifSet.load(root / "motifs.meme", [m for m in args.motifs.split(",") if m], pvalue=1e-4)
    if "knockout" not in skip:
        ko = _knockout(job, motifs, args.out, args.min_effect)
        print("\n## Motif knockout (test genes)\n" + ko.to_string(index=False))
        figures["knockout"] = ko.to_dict("records")
    if "ism" not in skip:
        started = time.perf_counter()
        peaks = _ism(job, motifs, job.dm.cell, args.ism_genes, args.flank, args.out)
        print(f"\n## ISM, planted promoter sites ± {args.flank} bp ({time.perf_counter() - started:.0f} s)\n" + peaks.to_string(index=False))
        figures["ism"] = peaks.to_dict("records")
    if "variants" not in skip:
        var, _ = _variants(job, args.out)
        print("\n## Variants (test chromosomes)\n" + json.dumps(var, indent=1))
        figures["variants"] = var
    (args.out / "figures.json").write_text(json.dumps(figures, indent=1, default=str))


if __name__ == "__main__":
    main()
