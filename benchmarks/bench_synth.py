"""Full-size synthetic data (issue 14 part 1): generation time and disk per cell at hg19.

Generates the synthetic dataset on a genome preset (``epx synth OUT --genome hg19``: real
chr1-22/X sizes, 19,000 genes, the default dataset's biology) for ``--cells`` into a
temporary folder (or ``--out``, kept), and prints:

- the genome: chromosomes, Gb, genes (from the folder's ``synthetic.json``);
- per cell: generation time of its 7 bigWigs, disk per mark, its interactions BEDPE, total;
- the shared part (genome build + tables: tss, expression, truth, elements) time and disk;
- the process's peak RSS and the extrapolation to all 11 Roadmap cells.

The per-cell figures come from ``generate(..., progress=...)``, i.e. the real code path, not
a re-implementation. One process, one cell at a time (the generator is single-threaded).

    python benchmarks/bench_synth.py                       # hg19, E003, temp dir
    python benchmarks/bench_synth.py --cells E003,E114 --out /data/synth_hg19
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from epx.constants import ROADMAP_CELLS  # noqa: E402
from epx.synthetic.generate import GENOMES, generate  # noqa: E402

MB = 1e6
SHARED_FILES = ("chrom.sizes", "tss.bed", "expression.tsv", "truth.tsv", "elements.tsv", "synthetic.json")


def run(out: Path, genome: str, cells: list[str], seed: int, scale: float | None) -> None:
    reports: list[dict] = []
    started = time.perf_counter()
    generate(out, seed=seed, genome=genome, cells=cells, scale=scale, progress=reports.append)
    total_s = time.perf_counter() - started
    manifest = json.loads((out / "synthetic.json").read_text())
    sizes = dict(line.split("\t") for line in (out / "chrom.sizes").read_text().split("\n") if line)
    gb = sum(int(v) for v in sizes.values()) / 1e9
    print(f"genome {genome}{f' x {scale}' if scale else ''}: {len(sizes)} chromosomes, {gb:.2f} Gb, "
          f"{manifest['n_genes']:,} genes ({manifest['n_distal_driven']:,} distal-driven), seed {seed}")

    for r in reports:
        marks = ", ".join(f"{m} {b / MB:.1f}" for m, b in r["signal_bytes"].items())
        print(f"cell {r['cell']}: {r['seconds']:.1f} s, {r['entries'] / 1e6:.1f} M bigWig entries; "
              f"bigWigs {sum(r['signal_bytes'].values()) / MB:.1f} MB ({marks}), "
              f"interactions {r['interactions_bytes'] / MB:.2f} MB, total {r['bytes'] / MB:.1f} MB")

    cells_s = sum(r["seconds"] for r in reports)
    shared_bytes = sum((out / name).stat().st_size for name in SHARED_FILES)
    per_cell_s = cells_s / len(reports)
    per_cell_mb = sum(r["bytes"] for r in reports) / len(reports) / MB
    n_all = len(ROADMAP_CELLS)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(f"shared (genome build + tables): {total_s - cells_s:.1f} s, {shared_bytes / MB:.1f} MB")
    print(f"total: {total_s:.1f} s wall, {(shared_bytes + sum(r['bytes'] for r in reports)) / MB:.1f} MB, peak RSS {peak_mb:.0f} MB")
    print(f"per cell: {per_cell_s:.1f} s, {per_cell_mb:.1f} MB -> all {n_all} Roadmap cells: "
          f"~{(total_s - cells_s + n_all * per_cell_s) / 60:.1f} min, ~{(shared_bytes / MB + n_all * per_cell_mb) / 1e3:.2f} GB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--genome", choices=GENOMES, default="hg19")
    parser.add_argument("--cells", default="E003", help="comma-separated cell ids (default E003)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write (and keep) the folder here; default: a temp dir, removed")
    parser.add_argument("--scale", type=float, help="shrink the genome (quick look; not the real size)")
    args = parser.parse_args()
    cells = args.cells.split(",")
    if args.out:
        run(args.out, args.genome, cells, args.seed, args.scale)
        return
    with tempfile.TemporaryDirectory(prefix="epx-bench-synth-") as tmp:
        run(Path(tmp) / "synth", args.genome, cells, args.seed, args.scale)


if __name__ == "__main__":
    main()
