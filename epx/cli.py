"""The ``epx`` console script: ``synth``, ``prepare``, ``summarize``, ``status``, ``diff``, ``predict``, ``explain``, ``import``, ``download``, ``convert``.

Training itself is ``python launch.py …`` (Hydra owns that command line). ``run_job`` is the
glue between Hydra and ``epx.run.train``: in a single run, bad input ends the process with
one line naming the problem and exit code 2 (a diverged training, ``NonFiniteLossError``:
exit code 1); in a multirun the error is recorded in the job's metrics.json and re-raised so
the other jobs of the grid still run. Composing configs is ``epx.config``'s; this module only
reads command lines, and nothing imports it.
"""

from __future__ import annotations

import argparse
import logging
import sys

log = logging.getLogger("epx")


def run_job(cfg) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from epx.errors import InputError, NonFiniteLossError
    from epx.run import train

    try:
        record = train(cfg)
    except (InputError, NonFiniteLossError) as err:
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            raise
        print(f"epx: error: {err}", file=sys.stderr)
        sys.exit(2 if isinstance(err, InputError) else 1)
    return record.primary_value


def prepare(argv: list[str]) -> int:
    """``epx prepare dataset=... cell=E003,E114 [mark=...]``: build each cell's cache now, and the
    genome cache when the dataset has a ``genome.fa``."""
    from hydra.utils import instantiate

    from epx.config import compose
    from epx.constants import MARKS
    from epx.data.prepare.cache import CellCache
    from epx.errors import InputError
    from epx.selection import check_cell, parse_marks

    cells = None
    overrides = []
    for item in argv:
        if item.startswith("cell="):
            cells = item.split("=", 1)[1].split(",")
        else:
            overrides.append(item)
    cfg = compose(overrides)
    cells = cells or [str(cfg.cell)]
    try:
        marks = parse_marks(cfg.mark) if any(o.startswith("mark=") for o in overrides) else MARKS
        for cell in cells if cfg.dataset.get("cells") else []:
            check_cell(cell, cfg.dataset.cells, f"dataset={cfg.dataset.name}")
        spec = instantiate(cfg.dataset.spec).materialize()
        for cell in cells:
            available = [m for m in marks if spec.signal_path(cell, m).exists()]
            spec.check([cell], available or marks)
            path = CellCache(spec, cell, cfg.paths.cache_dir, dtype=cfg.data.get("cache_dtype", "float32")).ensure(available)
            print(f"{cell}: {', '.join(available)} -> {path}")
        if spec.genome_path() is not None:  # the cell-independent sequence cache (sequence models)
            from epx.data.prepare.genome import GenomeCache

            print(f"genome: {spec.genome_path()} -> {GenomeCache(spec, cfg.paths.cache_dir).ensure()}")
    except InputError as err:
        print(f"epx: error: {err}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    commands = {
        "synth": _synth,
        "prepare": prepare,
        "summarize": _summarize,
        "status": _status,
        "diff": _diff,
        "report": _report,
        "predict": _predict,
        "explain": _explain,
        "import": _import,
    }
    parser = argparse.ArgumentParser(prog="epx", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=[*commands, "download", "convert"])
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    command = parser.parse_args(argv[:1]).command
    if command in ("download", "convert"):
        return _roadmap(argv)
    return int(commands[command](argv[1:]) or 0)


def _synth(rest: list[str]) -> int:
    from epx.synthetic.generate import main as synth_main

    return synth_main(rest) or 0


def _summarize(rest: list[str]) -> int:
    from epx.analysis.summary import main as summarize_main

    return summarize_main(rest) or 0


def _status(rest: list[str]) -> int:
    from epx.analysis.status import main as status_main

    return status_main(rest) or 0


def _report(rest: list[str]) -> int:
    from epx.report.build import main as report_main

    return report_main(rest) or 0


def _diff(rest: list[str]) -> int:
    from epx.analysis.diff import main as diff_main

    return diff_main(rest) or 0


def _predict(rest: list[str]) -> int:
    from epx.predict import main as predict_main

    return predict_main(rest) or 0


def _explain(rest: list[str]) -> int:
    from epx.explain.run import main as explain_main

    return explain_main(rest) or 0


def _import(rest: list[str]) -> int:
    """``epx import graphreg MODEL.h5 ...`` / ``epx import chromoformer STATE_DICT.pt ...``: a published model's weights as an epx job dir."""
    importers = {"graphreg": "epx.imports.graphreg", "chromoformer": "epx.imports.chromoformer"}
    if not rest or rest[0] not in importers:
        print(f"epx: error: epx import needs a source: one of {sorted(importers)} (epx import graphreg MODEL.h5, epx import chromoformer STATE_DICT.pt)", file=sys.stderr)
        return 2
    import importlib

    return importlib.import_module(importers[rest[0]]).main(rest[1:]) or 0


def _roadmap(argv: list[str]) -> int:
    from epx.roadmap.cli import add_subcommands

    parser = argparse.ArgumentParser(prog="epx")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, ConnectionError) as err:
        print(f"epx: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
