"""How long ``epx CMD --help`` takes, per subcommand (issue 24: under a second, no torch).

Each command runs ``--repeat`` times in a fresh interpreter (``python -c "from epx.cli import
main; main([CMD, '--help'])"``, and ``python launch.py --help`` for ``train``); the median wall
time is printed next to two baselines measured in the same run: a bare interpreter
(``python -c pass``) and ``import torch`` (what a command that loads torch first pays at
least). ``--before DIR`` also times an older checkout (e.g. ``git archive <commit> | tar -x -C
DIR``) for a before/after column.

    python benchmarks/bench_cli.py [--repeat 5] [--before /tmp/epx-old]

On a loaded machine every figure grows; the ratios to the bare interpreter say more.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ["", "train", "synth", "prepare", "summarize", "status", "diff", "predict", "explain", "import", "download", "convert"]


def _time(code: list[str], cwd: Path, pythonpath: Path | None, repeat: int) -> float:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, *code], cwd=cwd, env=env, capture_output=True, timeout=300, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _help(command: str, root: Path) -> list[str]:
    if command == "train":
        return [str(root / "launch.py"), "--help"]
    args = [command, "--help"] if command else ["--help"]
    return ["-c", f"import sys\nfrom epx.cli import main\ntry:\n    main({args!r})\nexcept SystemExit:\n    pass"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per command (median)")
    parser.add_argument("--before", type=Path, help="an older checkout to time too")
    args = parser.parse_args()
    bare = _time(["-c", "pass"], REPO, None, args.repeat)
    torch_import = _time(["-c", "import torch"], REPO, None, args.repeat)
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} on {os.cpu_count()} CPUs; median of {args.repeat} runs")
    print(f"baseline: python -c pass {bare:.2f} s; python -c 'import torch' {torch_import:.2f} s")
    head = f"{'command':<22} {'now s':>7} {'x bare':>7}" + (f" {'before s':>9} {'now/before':>10}" if args.before else "")
    print(head)
    for command in COMMANDS:
        now = _time(_help(command, REPO), REPO, REPO, args.repeat)
        line = f"{'epx ' + (command or '') + ' --help':<22} {now:7.2f} {now / bare:7.1f}"
        if args.before:
            before = _time(_help(command, args.before), args.before, args.before, args.repeat)
            line += f" {before:9.2f} {now / before:10.2f}"
        print(line)


if __name__ == "__main__":
    main()
