"""``epx report`` time and page size: the study-sized synthetic grid, and any sweep given.

    python benchmarks/bench_report.py                      # 2 models x 11 cells x 7 marks x 4 folds (616 jobs)
    python benchmarks/bench_report.py --models 1 --folds 1 # smaller grid
    python benchmarks/bench_report.py --sweep outputs/sweeps/e003   # a real sweep dir

The synthetic grid is written with the test fixtures' writers (tests/test_summary.py,
tests/test_report.py: records + the explain tables `epx explain` writes). Printed: seconds to
build the page, its size, and the ratio against collecting the same sweep alone
(``epx.analysis.collect.collect_rows``, the floor every sweep reader pays) in the same run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def synthetic_grid(root: Path, models: int, folds: int) -> Path:
    import numpy as np
    import test_report as tr
    from test_summary import metrics_for, write_job, write_sweep

    from epx.constants import MARKS, ROADMAP_CELLS

    names = ("promoter_cnn", "chromoformer", "graphreg")[:models]
    grid = [f"model={','.join(names)}", f"cell={','.join(ROADMAP_CELLS)}", f"mark={','.join(MARKS)}",
            f"fold={','.join(map(str, range(folds)))}"]
    jobs = [[f"model={m}", f"cell={c}", f"mark={k}", f"fold={f}"] for m in names for c in ROADMAP_CELLS for k in MARKS for f in range(folds)]
    sweep = root / "study"
    write_sweep(sweep, grid)
    rng = np.random.default_rng(0)
    tr.MARKS = MARKS  # explain tables over every mark
    for num, overrides in enumerate(jobs):
        values = dict(o.split("=") for o in overrides)
        test = {"pearson": float(rng.uniform(0.4, 0.8)), "spearman": 0.6, "mse": 1.2}
        job = write_job(sweep, num, overrides, metrics_for(overrides, test=test, model=values["model"], primary_metric="pearson"),
                        model=values["model"], config={"model": {"name": values["model"]}})
        tr.explain_tables(job, values["model"], values["cell"], rng)
    return sweep


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sweep", type=Path, default=None)
    parser.add_argument("--models", type=int, default=2)
    parser.add_argument("--folds", type=int, default=4)
    args = parser.parse_args()

    from epx.analysis.collect import collect_rows
    from epx.report.build import build_report

    with tempfile.TemporaryDirectory() as tmp:
        sweep = args.sweep or synthetic_grid(Path(tmp), args.models, args.folds)
        started = time.perf_counter()
        rows = collect_rows(sweep)
        collect_s = time.perf_counter() - started
        out = Path(tmp) / "report.html"
        report = build_report(sweep, out)
        size = out.stat().st_size
        print(f"sweep {sweep if args.sweep else 'synthetic'}: {len(rows)} jobs ({report.finished} finished)")
        print(f"epx report: {report.seconds:.2f} s, page {size / 1024:.0f} KiB ({size / 1024 / 1024:.2f} MiB); "
              f"collect alone {collect_s:.2f} s (report / collect = {report.seconds / max(collect_s, 1e-9):.1f}x)")
        for section, items in report.missing.items():
            print(f"  missing in {section}: {'; '.join(items)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
