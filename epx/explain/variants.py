"""Variant effects: each SNV of a VCF scored for every gene whose input window holds it.

Contract: ``score_variants(job, snvs, rows, *, batch_size=None) -> VariantScores`` for the
SNVs read by ``epx.io.vcf.read_snvs`` (names already the dataset's):

- The REF allele is checked against the reference genome (the job's genome cache, i.e. the
  dataset's FASTA): a mismatch (or a REF of N, or a position past the chromosome's end) is
  never scored; it is counted and listed in ``mismatches`` (DataFrame[record, id, chrom,
  pos (1-based, as the VCF), ref, genome]).
- A variant is paired with every gene of ``rows`` whose one-hot input (``epx.explain.onehot``)
  holds its position; a variant in no gene's window is counted (``outside_windows``).
- ``table``: DataFrame[record, variant_id, chrom, pos (1-based), ref, alt, gene, gene_id,
  distance_to_tss (genomic, position - TSS), ref_prediction, alt_prediction, delta,
  log2_fold_change], one row per (variant, gene): the reference input's prediction, the
  prediction with the alt base put in (``adapter.forward_genes``: log2(value + 1) for
  sequence models, so ``log2_fold_change`` = delta; NaN for classification). Forward passes
  stack ``batch_size`` edited copies (the adapter's default when None); a net with
  ``rc_average`` (``model.net.rc_average=true``) averages each copy with its reverse
  complement in eval mode, as it predicts the reference.
- ``status``: {record: "scored" | "ref_mismatch" | "outside_windows"}, for the annotated VCF;
  ``counts``: the reader's counts plus ``ref_mismatch``, ``outside_windows``,
  ``scored_variants``, ``scored_pairs`` and ``rc_average`` (0/1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from epx.explain.onehot import (
    onehot_adapter,
    channel,
    columns,
    onehot_layout,
    onehot_name,
    predict,
    predict_edited,
    substitute,
)
from epx.io.fasta import LETTERS
from epx.io.vcf import VcfSnvs

COLUMNS = ["record", "variant_id", "chrom", "pos", "ref", "alt", "gene", "gene_id", "distance_to_tss", "ref_prediction", "alt_prediction",
           "delta", "log2_fold_change"]
BASE_CODE = {b: i for i, b in enumerate("ACGT")}


@dataclass
class VariantScores:
    table: pd.DataFrame
    mismatches: pd.DataFrame
    status: dict[int, str]
    counts: dict[str, int]


def _check_ref(job, snvs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(V,) bool REF matches the genome; (V,) the genome's letter there ('' past the end)."""
    codes = job.dm.genome_cache().load(sorted(set(snvs["chrom"])))
    genome = np.full(len(snvs), "", dtype=object)
    for chrom, at in snvs.groupby("chrom").indices.items():
        seq = codes.get(chrom)
        if seq is None:
            continue
        pos = snvs["pos"].to_numpy()[at]
        inside = (pos >= 0) & (pos < len(seq))
        letters = np.frombuffer(LETTERS, np.uint8)[seq[pos[inside]]]
        genome[at[inside]] = [chr(c) for c in letters]
    return (genome == snvs["ref"].to_numpy(object)) & (snvs["ref"].to_numpy(object) != "N"), genome


def _windows(job, rows: np.ndarray, per_forward: int) -> pd.DataFrame:
    """Per gene, the genomic span its one-hot input covers: DataFrame[row, chrom, lo, hi]."""
    parts = []
    for lo in range(0, len(rows), per_forward):
        part = rows[lo : lo + per_forward]
        layout = onehot_layout(job, part, "variant effects")
        parts.append(pd.DataFrame({"row": part, "chrom": np.asarray(layout.chrom, dtype=object), "lo": layout.start.min(axis=1),
                                   "hi": layout.start.max(axis=1) + 1}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["row", "chrom", "lo", "hi"])


def _pairs(windows: pd.DataFrame, snvs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(variant index, gene row) for every variant inside a gene's window span."""
    v_parts, g_parts = [], []
    by_chrom = snvs.groupby("chrom").indices
    for chrom, genes in windows.groupby("chrom"):
        at = by_chrom.get(chrom)
        if at is None:
            continue
        pos = snvs["pos"].to_numpy()[at]
        order = np.argsort(pos, kind="stable")
        sorted_pos = pos[order]
        first = np.searchsorted(sorted_pos, genes["lo"].to_numpy(), side="left")
        last = np.searchsorted(sorted_pos, genes["hi"].to_numpy(), side="left")
        count = last - first
        idx = np.repeat(first, count) + (np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count))
        v_parts.append(at[order[idx]])
        g_parts.append(np.repeat(genes["row"].to_numpy(), count))
    if not v_parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(v_parts).astype(np.int64), np.concatenate(g_parts).astype(np.int64)


def score_variants(job, snvs: VcfSnvs, rows, *, batch_size: int | None = None) -> VariantScores:
    adapter = onehot_adapter(job)
    rows = adapter.check_rows(rows)
    name = onehot_name(job, "variant effects")
    per_forward = int(batch_size or adapter.default_batch)
    table = snvs.table.reset_index(drop=True)
    counts = dict(snvs.counts)
    status: dict[int, str] = {}
    ok, genome = _check_ref(job, table) if len(table) else (np.zeros(0, bool), np.zeros(0, object))
    bad = table[~ok]
    mismatches = pd.DataFrame({"record": bad["record"], "id": bad["id"], "chrom": bad["vcf_chrom"], "pos": bad["pos"] + 1, "ref": bad["ref"],
                               "genome": genome[~ok]})
    for record in bad["record"]:
        status[int(record)] = "ref_mismatch"
    counts["ref_mismatch"] = int((~ok).sum())
    good = table[ok].reset_index(drop=True)
    variant, gene_row = _pairs(_windows(job, rows, per_forward), good)
    inside = np.zeros(len(good), bool)
    inside[variant] = True
    for record in good["record"][~inside]:
        status.setdefault(int(record), "outside_windows")
    counts["outside_windows"] = int((~inside).sum())
    regression = getattr(job.objective, "name", "") != "classification"
    frames = []
    genes_with = np.unique(gene_row)
    for lo in range(0, len(genes_with), per_forward):
        batch = adapter.batch(genes_with[lo : lo + per_forward])
        layout = onehot_layout(job, batch.rows, "variant effects")
        mine = np.flatnonzero(np.isin(gene_row, batch.rows))
        local = np.searchsorted(batch.rows, gene_row[mine])  # batch.rows: a slice of np.unique, sorted
        v = variant[mine]
        col = columns(layout, local, good["pos"].to_numpy()[v])
        held = col >= 0  # the span test above is coarse; a gapped layout may not hold it
        mine, local, v, col = mine[held], local[held], v[held], col[held]
        put_alt = substitute(col, channel(layout, local, good["alt"].map(BASE_CODE).to_numpy()[v]))
        base = predict(adapter, batch, per_forward)
        alt = predict_edited(adapter, batch, name, local, put_alt, per_forward) if len(local) else np.zeros(0)
        g = job.genes.iloc[batch.rows[local]]
        delta = alt - base[local]
        frames.append(pd.DataFrame({
            "record": good["record"].to_numpy()[v], "variant_id": good["id"].to_numpy()[v], "chrom": good["vcf_chrom"].to_numpy()[v],
            "pos": good["pos"].to_numpy()[v] + 1, "ref": good["ref"].to_numpy()[v], "alt": good["alt"].to_numpy()[v],
            "gene": batch.rows[local], "gene_id": g["gene_id"].to_numpy(), "distance_to_tss": good["pos"].to_numpy()[v] - g["tss"].to_numpy(),
            "ref_prediction": base[local], "alt_prediction": alt, "delta": delta, "log2_fold_change": delta if regression else np.nan,
        }))
    scored = pd.concat(frames, ignore_index=True)[COLUMNS] if frames else pd.DataFrame(columns=COLUMNS)
    scored = scored.sort_values(["record", "alt", "gene"], kind="stable", ignore_index=True)
    for record in scored["record"]:
        status[int(record)] = "scored"
    counts["scored_variants"] = int(scored[["record", "alt"]].drop_duplicates().shape[0])
    counts["scored_pairs"] = len(scored)
    counts["rc_average"] = int(bool(getattr(job.net, "rc_average", False)))
    return VariantScores(scored, mismatches.reset_index(drop=True), status, counts)


def annotations(scored: pd.DataFrame) -> dict[int, list[str]]:
    """{record: ["ALT|GENE|delta|log2fc", ...]}: the annotated VCF's INFO values."""
    out: dict[int, list[str]] = {}
    for row in scored.itertuples(index=False):
        out.setdefault(int(row.record), []).append(f"{row.alt}|{row.gene_id}|{row.delta:.6g}|{row.log2_fold_change:.6g}")
    return out


# ------------------------------------------------------------------------------ epx explain


def check(job, options) -> None:
    from pathlib import Path

    from epx.errors import InputError
    from epx.io.vcf import MULTIALLELIC

    onehot_name(job, "variant effects")
    if not options["vcf"]:
        raise InputError("variants needs a VCF: epx explain JOB variants FILE.vcf[.gz] (or analysis.variants.vcf=FILE)")
    if not Path(options["vcf"]).is_file():
        raise InputError(f"VCF not found: {options['vcf']}")
    if options["multiallelic"] not in MULTIALLELIC:
        raise InputError(f"analysis.variants.multiallelic={options['multiallelic']!r}; choose one of {', '.join(MULTIALLELIC)}")


def run(job, out, options) -> list:
    import logging

    from epx.io.atomic import write_csv, write_table
    from epx.io.vcf import read_snvs, write_annotated

    rows = job.rows(options["split"])
    if options["max_genes"]:
        rows = np.sort(rows)[: int(options["max_genes"])]
    snvs = read_snvs(options["vcf"], job.chrom_sizes(), multiallelic=options["multiallelic"])
    result = score_variants(job, snvs, rows, batch_size=options["batch_size"])
    counts = {**result.counts, "unknown_chroms": ",".join(snvs.unknown_chroms)}
    paths = [*write_table(result.table, out / "variants.tsv"),  # + variants.parquet with pyarrow
             write_csv(out / "variants_summary.tsv", pd.DataFrame({"count": list(counts), "value": list(counts.values())}), sep="\t"),
             write_csv(out / "variants_ref_mismatch.tsv", result.mismatches, sep="\t")]
    paths.append(write_annotated(options["vcf"], out / "variants.vcf.gz", annotations(result.table), info_id="EPX",
                                 description=f"{job.model} effect per gene: ALT|gene|delta|log2 fold change", status=result.status,
                                 status_id="EPX_STATUS"))
    logging.getLogger(__name__).info("%s: variants: %s", job.dir, counts)
    return paths
