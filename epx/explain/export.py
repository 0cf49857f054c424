"""Attributions as bigWigs, one per mark, for a genome browser.

Contract: ``attribution_bigwigs(job, rows, attribution, out_dir, *, reduce="sum") -> dict[mark,
Path]`` writes ``out_dir/attribution-{method}-{mark}.bigwig`` for each of the job's marks: the
genes' attributions placed on the genome (``epx.explain.attribution.mark_tracks``: genomic
orientation, 100 bp bins, cut to the chromosome) and combined where genes overlap — GraphReg
and Epi-CNN genes of one window all attribute the same 6 Mb — by ``reduce``: ``sum`` (each
bin's total contribution to the genes' predictions) or ``max_abs`` (the value of largest
magnitude, signed). Bins with no attribution are left uncovered (read as 0). Written through
``epx.io.bigwig.open_bigwig`` (atomically), with the cache's chromosome sizes as the header.
Meant for GraphReg/Epi-CNN, whose windows are genomic; any model's attribution can be written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from epx.errors import InputError
from epx.explain.attribution import Attribution, mark_tracks
from epx.io.bigwig import open_bigwig

REDUCERS = ("sum", "max_abs")


def attribution_bigwigs(job, rows, attribution: Attribution, out_dir: str | Path, *, reduce: str = "sum") -> dict[str, Path]:
    if reduce not in REDUCERS:
        raise InputError(f"unknown reduce {reduce!r}; choose one of {', '.join(REDUCERS)}")
    tracks = mark_tracks(job, rows, attribution)
    sizes = job.chrom_sizes()
    bin_bp = int(job.dm.bin_bp)
    n_marks = len(attribution.marks)
    genome = {}
    for t in tracks:
        if t.chrom not in genome:
            genome[t.chrom] = np.zeros((n_marks, -(-int(sizes[t.chrom]) // bin_bp)), np.float64)
        acc = genome[t.chrom]
        first = t.start_bp // bin_bp
        view = acc[:, first : first + t.values.shape[1]]
        values = t.values[:, : view.shape[1]]
        if reduce == "sum":
            view += values
        else:
            np.copyto(view, values, where=np.abs(values) > np.abs(view))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for m, mark in enumerate(attribution.marks):
        path = out_dir / f"attribution-{attribution.method}-{mark}.bigwig"
        with open_bigwig(path, sizes) as bw:
            for chrom in sizes:
                if chrom not in genome:
                    continue
                v = genome[chrom][m]
                idx = np.flatnonzero(v)
                starts = idx * bin_bp
                ends = np.minimum(starts + bin_bp, int(sizes[chrom]))
                bw.add(chrom, starts.astype(np.int64), ends.astype(np.int64), v[idx].astype(np.float32))
        paths[mark] = path
    return paths
