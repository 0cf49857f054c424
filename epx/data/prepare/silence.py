"""Signals that say nothing, and chromosome lengths that disagree: found before training.

Contract:

- ``check_lengths(spec, cells, marks, chrom_sizes, sizes_what)``: the chrom sizes the job
  reads (``chrom.sizes``, else the first bigWig's header) against every requested bigWig's
  header and, when the dataset has one, the FASTA: a chromosome both name with different
  lengths is one ``InputError`` naming both files and both lengths (reads would otherwise stop
  at the shorter one, and genes past it be blamed on the TSS annotation).
- ``signal_account(tracks, genes, marks, bin_bp, reach_bp, headers, bounds=) -> SignalAccount``: per
  mark, the used genes whose whole window (``bounds``: the builder's ``intervals``; else TSS ± ``reach_bp``) reads zero, the gene
  chromosomes missing from the mark's bigWig header, and those in the header with no coverage
  at all (every bin zero). ``tracks``: ``{chrom: (n_bins, M)}`` bin means as the cache holds
  them. ``account.summary()`` is the job record's ``signals``; ``account.rows()`` the
  ``signals_silent.tsv`` table (``cell, mark, what, chrom, genes, detail``); ``account.log()``
  one warning per mark that says nothing somewhere; ``account.check(max_fraction, files)``
  raises one ``InputError`` when a mark's silent genes exceed ``max_fraction`` of the used
  genes (``data.max_silent_fraction``), naming the bigWig, the chromosomes and the fix — a TSS
  file shifted by 1 Mb or a bigWig of another assembly stops here, before any training.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from epx.errors import InputError
from epx.io.chrom_sizes import read_chrom_sizes
from epx.io.naming import reconcile

log = logging.getLogger(__name__)
ASSEMBLY_FIX = "use chrom sizes, bigWigs and FASTA of one genome assembly (e.g. all hg19), or drop the chrom.sizes file to take the bigWig headers"


def check_lengths(spec, cells: Iterable[str], marks: Sequence[str], chrom_sizes: Mapping[str, int], sizes_what: str) -> None:
    problems = []
    for cell in cells:
        for mark in marks:
            path = spec.signal_path(cell, mark)
            header = read_chrom_sizes(path)
            for name, spelled in reconcile(chrom_sizes, header, exact=spec.exact_names).items():
                if spelled is not None and int(header[spelled]) != int(chrom_sizes[name]):
                    problems.append(f"  {name!r}: {int(chrom_sizes[name]):,} bp in {sizes_what}, {int(header[spelled]):,} bp in {path}")
    if problems:
        more = f"\n  … and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise InputError(
            f"chromosome lengths disagree between {sizes_what} and the bigWig headers ({len(problems)} chromosome(s)):\n"
            + "\n".join(problems[:10]) + more + f"\n{ASSEMBLY_FIX}"
        )
    if spec.genome_path() is not None:
        spec.check_genome(chrom_sizes, what=sizes_what)  # the FASTA: one error naming both lengths


@dataclass
class MarkSilence:
    genes_silent: int = 0
    chroms_missing: dict[str, int] = field(default_factory=dict)  # chrom -> genes on it
    chroms_empty: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)


@dataclass
class SignalAccount:
    cell: str
    n_genes: int
    marks: dict[str, MarkSilence]

    def summary(self) -> dict:
        return {
            mark: {"genes_silent": s.genes_silent, "chroms_missing": sorted(s.chroms_missing), "chroms_empty": sorted(s.chroms_empty)}
            for mark, s in self.marks.items()
            if s.genes_silent or s.chroms_missing or s.chroms_empty
        }

    def rows(self) -> pd.DataFrame:
        rows = []
        for mark, s in self.marks.items():
            rows += [(self.cell, mark, "chrom_not_in_header", c, n, "the bigWig header lacks this chromosome") for c, n in s.chroms_missing.items()]
            rows += [(self.cell, mark, "chrom_without_coverage", c, n, "every bin of this chromosome is zero") for c, n in s.chroms_empty.items()]
            if s.genes_silent:
                rows.append((self.cell, mark, "genes_all_zero", None, s.genes_silent, "e.g. " + ", ".join(map(repr, s.examples))))
        return pd.DataFrame(rows, columns=["cell", "mark", "what", "chrom", "genes", "detail"])

    def log(self) -> None:
        for mark, s in self.marks.items():
            if s.genes_silent or s.chroms_missing or s.chroms_empty:
                log.warning("%s %s: %s", self.cell, mark, self._line(s))

    def _line(self, s: MarkSilence) -> str:
        parts = [f"{s.genes_silent} of {self.n_genes} genes read an all-zero window"]
        if s.chroms_missing:
            parts.append(f"chromosomes missing from the bigWig header: {', '.join(map(repr, s.chroms_missing))}")
        if s.chroms_empty:
            parts.append(f"chromosomes without coverage: {', '.join(map(repr, s.chroms_empty))}")
        return "; ".join(parts)

    def check(self, max_fraction: float, files: Mapping[str, Path]) -> None:
        bad = {m: s for m, s in self.marks.items() if s.genes_silent > max_fraction * max(self.n_genes, 1)}
        if not bad:
            return
        lines = [f"  - {files[m]}: {self._line(s)}" for m, s in bad.items()]
        raise InputError(
            f"signals that say nothing for cell {self.cell}: more than data.max_silent_fraction={max_fraction:g} of the "
            f"{self.n_genes} genes read only zeros:\n" + "\n".join(lines) + "\n"
            "Check that the TSS file and the bigWigs are of one assembly and naming (a TSS file shifted, or a bigWig of "
            "another genome, reads zeros), that the bigWig covers those chromosomes, or set data.max_silent_fraction=1 "
            "to train anyway (a job that trains lists every silent mark and chromosome in signals_silent.tsv)."
        )


def signal_account(
    cell: str,
    tracks: Mapping[str, np.ndarray],
    genes: pd.DataFrame,
    marks: Sequence[str],
    bin_bp: int,
    reach_bp: int,
    headers: Mapping[str, Iterable[str]],
    *,
    exact: bool = False,
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
) -> SignalAccount:
    # bounds: (N,) start/end bp of each gene's window as its builder reads it (GeneIntervals);
    # without them TSS ± reach_bp. A GraphReg gene reads a whole tile, not TSS ± 0.
    account = SignalAccount(cell, len(genes), {m: MarkSilence() for m in marks})
    if bounds is None:
        tss = genes["tss"].to_numpy(np.int64)
        bounds = (tss - reach_bp, tss + reach_bp + 1)
    genes = genes.assign(_lo=np.asarray(bounds[0], np.int64), _hi=np.asarray(bounds[1], np.int64))
    per_chrom = genes["chrom"].value_counts().to_dict()
    for j, mark in enumerate(marks):
        silence = account.marks[mark]
        present = {name for name, spelled in reconcile(per_chrom, headers[mark], exact=exact).items() if spelled is not None}
        silence.chroms_missing = {c: int(n) for c, n in per_chrom.items() if c not in present}
        for chrom, rows in genes.groupby("chrom", sort=False):
            values = tracks.get(chrom)
            if values is None or values.shape[0] == 0:
                continue
            column = values[:, j]
            if chrom in present and not np.any(column):
                silence.chroms_empty[str(chrom)] = len(rows)
            nonzero = np.concatenate([[0], np.cumsum(column != 0)])  # prefix counts: a window's count in O(1)
            lo = np.clip(rows["_lo"].to_numpy(np.int64) // bin_bp, 0, column.shape[0])
            hi = np.clip((rows["_hi"].to_numpy(np.int64) - 1) // bin_bp + 1, 0, column.shape[0])
            silent = nonzero[hi] == nonzero[lo]
            silence.genes_silent += int(silent.sum())
            if len(silence.examples) < 3:
                silence.examples += rows["gene_id"][silent].astype(str).head(3 - len(silence.examples)).tolist()
    return account
