"""What the grid machinery costs per job (issue 12), against a `trainer=debug` job.

Runs a 16-job named grid (cell=E003,E114 × mark=H3K4me3,H3K27ac × fold=0..3, trainer=debug,
logger=none, one torch thread) with the basic launcher on a small synthetic folder, then the
same command again (every job reused), and reads the timestamps of each job's log lines:

- debug job: a job's own time inside ``epx.run.train`` (``wall_seconds`` in its record);
- launch + summary per job: from one job's end (its ``job dir:`` line) to the next job's
  start (its ``torch threads:`` line, the first thing ``train`` does): Hydra composing the
  next job's config, writing its ``.hydra/``, configuring its log, and the summary callback
  rebuilding ``summary.csv``/``summary.png`` after the finished job;
- skip check per job: from a job's start to its ``reused`` line in the rerun (the config
  digest and the record read, ``epx.job.plan``);
- the rerun of the finished grid: the whole command's wall time (Python, imports, Hydra,
  16 reused jobs, one summary), and per job.

    python benchmarks/bench_grid.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GRID = ["cell=E003,E114", "mark=H3K4me3,H3K27ac", "fold=0,1,2,3"]
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]\[([\w.]+)\]\[\w+\] - (.*)$")


def stamped(text: str) -> list[tuple[float, str, str]]:
    lines = []
    for line in text.splitlines():
        match = STAMP.match(line)
        if match:
            when = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            lines.append((when, match.group(2), match.group(3)))
    return lines


def launch(root: Path, folder: Path) -> tuple[float, float, str]:
    """(wall-clock start, seconds, log) of the grid command."""
    args = [
        sys.executable, str(REPO / "launch.py"), "-m", "sweep=bench", *GRID, "dataset=folder", f"dataset.root={folder}",
        f"paths.cache_dir={root / 'cache'}", "trainer=debug", "logger=none", "threads=1",
    ]  # fmt: skip
    began, start = time.time(), time.perf_counter()
    proc = subprocess.run(args, cwd=root, env={**os.environ, "WANDB_MODE": "disabled"}, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return began, took, proc.stdout + proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="work in this dir and keep it (default: a temp dir)")
    args = parser.parse_args()
    from epx.synthetic.generate import generate

    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        folder = generate(root / "small", seed=1, n_chroms=23, chrom_length=1_000_000, genes_per_chrom=12, cells=("E003", "E114"))
        # build both cells' caches first, so no job of the measured grid pays for it
        from epx.cli import prepare

        prepare(["dataset=folder", f"dataset.root={folder}", f"paths.cache_dir={root / 'cache'}", "cell=E003,E114"])
        fresh_began, fresh_s, fresh_log = launch(root, folder)
        rerun_began, rerun_s, rerun_log = launch(root, folder)
        sweep = root / "outputs" / "sweeps" / "bench"
        records = [json.loads(p.read_text()) for p in sweep.glob("*/metrics.json")]
        assert len(records) == 16 and all(r["status"] == "ok" and r["reused"] for r in records), "rerun did not reuse every job"

        from epx.analysis.summary import summarize

        summarize(sweep)  # warm: imports, fonts
        t0 = time.perf_counter()
        for _ in range(3):
            summarize(sweep)
        summary_s = (time.perf_counter() - t0) / 3

    job_s = statistics.mean(r["wall_seconds"] for r in records)
    lines = stamped(fresh_log)
    starts = [t for t, name, msg in lines if name == "epx.threads" and msg.startswith("torch threads")]
    ends = [t for t, name, msg in lines if name == "epx.job" and msg.startswith("job dir:")]
    gaps = [nxt - end for end, nxt in zip(ends[:-1], starts[1:])]
    relaunch = stamped(rerun_log)
    r_starts = [t for t, name, msg in relaunch if name == "epx.threads"]
    r_reused = [t for t, name, msg in relaunch if name == "epx.run" and msg.endswith("trains it again)")]
    checks = [b - a for a, b in zip(r_starts, r_reused)]
    per_job = statistics.mean(gaps) + statistics.mean(checks)
    print(f"16-job grid, trainer=debug, basic launcher, 1 torch thread, {os.cpu_count()} CPUs")
    print(f"  debug job (train() wall, mean of 16):                {job_s:7.2f} s")
    print(f"  launch + summary between two jobs (mean of 15):     {statistics.mean(gaps):7.3f} s")
    print(f"    of which the summary (summary.csv + .png, 16 jobs): {summary_s:5.3f} s")
    print(f"  skip check (plan: digest + record, mean of 16):     {statistics.mean(checks) * 1000:7.1f} ms")
    print(f"  grid machinery per job:                             {per_job:7.3f} s = {100 * per_job / job_s:.0f}% of a debug job")
    print(f"  fresh grid, whole command:                          {fresh_s:7.1f} s")
    startup = r_starts[0] - rerun_began
    print(f"  fresh grid: start-up to the first job (Python, Hydra, imports): {starts[0] - fresh_began:5.1f} s")
    print(f"  rerun of the finished grid (all 16 reused):         {rerun_s:7.1f} s")
    print(f"    start-up to the first job (the same, and the callback composing")
    print(f"    the 16 jobs to compare their config digests):     {startup:7.1f} s")
    print(f"    then per reused job (compose, .hydra/, skip check): {(rerun_s - startup) / 16:6.3f} s")


if __name__ == "__main__":
    main()
