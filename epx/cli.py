"""The ``epx`` console script: one subcommand per task (``COMMANDS``), ``epx --version``.

``epx train [overrides]`` (also ``python -m epx`` and ``python launch.py``) is the Hydra app:
``hydra_main`` composes ``epx.config.CONF_DIR`` (the checkout's ``conf/`` or the wheel's
packaged copy) and runs ``run_job`` per job. ``run_job`` is the glue between Hydra and
``epx.run.train``: it quiets the console (``epx.console``), and every job ends with one
closing line (``epx.console.closing_line``). In a single run, bad input ends the process with
one line naming the problem and exit code 2 (a diverged training, ``NonFiniteLossError``:
exit code 1); in a multirun the error is recorded in the job's metrics.json and re-raised so
the other jobs of the grid still run.

Every other subcommand imports its module only when it runs: ``epx`` and ``epx CMD --help``
answer without importing torch or Lightning (``tests/test_cli_help.py``; times in
``benchmarks/bench_cli.py``). Composing configs is ``epx.config``'s; this module only reads
command lines, and nothing in ``epx`` imports it (``epx/__main__.py`` and ``launch.py`` are
entry points too).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("epx")


@dataclass(frozen=True)
class Command:
    run: str  # "module:function" taking the argument list, or a function name of this module
    description: str


COMMANDS: dict[str, Command] = {
    "train": Command("_train", "train one job, or a grid with -m (Hydra overrides of conf/; same as python launch.py)"),
    "synth": Command("epx.synthetic.generate:main", "write the built-in synthetic Roadmap-like dataset to a folder"),
    "prepare": Command("prepare", "build the signal caches of cells (and the genome cache) before training"),
    "summarize": Command("epx.analysis.summary:main", "rebuild a sweep's summary.csv / summary.png and print its table"),
    "status": Command("epx.analysis.status:main", "where a grid stands: jobs by state, smoke runs marked, ETA"),
    "diff": Command("epx.analysis.diff:main", "config difference of two jobs, two sweeps or two compositions"),
    "report": Command("epx.report.build:main", "the study's answer on one HTML page (figures embedded, W&B artifact)"),
    "predict": Command("epx.predict:main", "score trained jobs on another cell, fold or dataset"),
    "explain": Command("epx.explain.run:main", "interpret finished jobs (attribution, perturbation, ...)"),
    "import": Command("_import", "a published model's weights as an epx job dir (graphreg, chromoformer)"),
    "download": Command("_roadmap", "fetch public data (Roadmap Epigenomics, hg19 FASTA)"),
    "convert": Command("_roadmap", "convert lab formats (tagAlign, GTF, interactions, RPKM) into a dataset folder"),
}


def _version() -> str:
    from epx import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["train"]:  # Hydra configures logging for training itself
        from epx.console import quiet_commands

        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        quiet_commands()
    parser = argparse.ArgumentParser(
        prog="epx",
        description="epx: Hydra-configured experiments that predict gene expression from histone-mark ChIP-seq.",
        epilog="Each command has its own help: epx COMMAND --help. Training: epx train --help.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"epx {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, command in COMMANDS.items():
        sub.add_parser(name, help=command.description, add_help=False)
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    if argv[0] == "--version":
        parser.parse_args(argv[:1])
    if argv[0] not in COMMANDS:
        parser.parse_args(argv[:1])  # argparse's "invalid choice" error, exit code 2
    name = argv[0]
    where = COMMANDS[name].run
    if ":" in where:
        module, function = where.split(":")
        return int(getattr(importlib.import_module(module), function)(argv[1:]) or 0)
    handler = globals()[where]
    return int(handler(argv if where == "_roadmap" else argv[1:]) or 0)


# ---------------------------------------------------------------- training (the Hydra app)


def run_job(cfg) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from epx.console import closing_line, quiet_third_party
    from epx.errors import InputError, NonFiniteLossError
    from epx.record import JobRecord, RecordError
    from epx.run import job_dir, train

    quiet_third_party()
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        record = train(cfg)
    except BaseException as err:
        out = job_dir(cfg)
        try:
            log.info(closing_line(JobRecord.read(out), out))
        except (RecordError, OSError):
            log.info("job failed before its record was written: %s: %s | %s", type(err).__name__, err, out)
        if multirun or not isinstance(err, (InputError, NonFiniteLossError)):
            raise
        print(f"epx: error: {err}", file=sys.stderr)
        sys.exit(2 if isinstance(err, InputError) else 1)
    log.info(closing_line(record, job_dir(cfg)))
    return record.primary_value


def train_help(conf_dir: Path) -> str:
    """Hydra's ``--help`` text for this app, rendered from the same template
    (``conf/hydra/default.yaml``: ``help``) without composing the config: Hydra lists the groups
    by composing once per group (over a second on 2 cores), a directory listing takes
    milliseconds. ``tests/test_cli_help.py`` checks it matches Hydra's own rendering."""
    import string

    import yaml

    help_cfg = yaml.safe_load((conf_dir / "hydra" / "default.yaml").read_text())["help"]
    groups = []
    for folder in sorted(p for p in conf_dir.rglob("*") if p.is_dir()):
        group = folder.relative_to(conf_dir).as_posix()
        options = sorted(f.stem for f in folder.glob("*.yaml"))
        if options and group != "hydra" and not group.startswith("hydra/"):
            groups.append((group, f"{group}: {', '.join(options)}\n"))
    text = help_cfg["template"].replace("${hydra.help.header}", help_cfg["header"]).replace("${hydra.help.footer}", help_cfg["footer"])
    return string.Template(text).safe_substitute(APP_CONFIG_GROUPS="".join(line for _, line in sorted(groups)))


def hydra_main() -> None:
    """The Hydra app over ``epx.config.CONF_DIR``: ``python launch.py``, ``epx train``, ``python -m epx``
    (Hydra reads ``sys.argv``; its help template, ``conf/hydra/default.yaml``, lists the groups;
    a bare ``--help`` is answered from that template at once, ``train_help``)."""
    if sys.argv[1:] in (["--help"], ["-h"]):
        from epx.config import CONF_DIR

        print(train_help(CONF_DIR))
        return
    import hydra

    # importing epx.config also registers every resolver of conf/ before Hydra composes
    from epx.config import CONF_DIR

    app = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")(run_job)
    app()


def _train(rest: list[str]) -> int:
    """``epx train [overrides]``: ``sys.argv[0]`` becomes ``epx/__main__.py`` so a process that
    Lightning's DDP launcher starts for another rank runs the same app with the same arguments."""
    sys.argv = [str(Path(__file__).with_name("__main__.py")), *rest]
    hydra_main()
    return 0


# ---------------------------------------------------------------- the other commands


def _prepare_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="epx prepare",
        description="Build each cell's signal cache now (and the genome cache when the dataset has a genome.fa), "
        "so that training starts from it. Takes the same overrides as epx train.",
        epilog="example: epx prepare dataset=folder dataset.root=data/roadmap cell=E003,E114 mark=H3K4me3+H3K27ac",
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE",
        help="config overrides (dataset=, dataset.root=, mark=, paths.cache_dir=, ...); cell=A,B names several cells",
    )  # fmt: skip
    return parser


def prepare(argv: list[str]) -> int:
    """``epx prepare dataset=... cell=E003,E114 [mark=...]``: build each cell's cache now, and the
    genome cache when the dataset has a ``genome.fa``."""
    argv = _prepare_parser().parse_args(argv).overrides
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


def _import(rest: list[str]) -> int:
    """``epx import graphreg MODEL.h5 ...`` / ``epx import chromoformer STATE_DICT.pt ...``: a published model's weights as an epx job dir."""
    importers = {"graphreg": "epx.imports.graphreg", "chromoformer": "epx.imports.chromoformer"}
    if rest[:1] in (["-h"], ["--help"]):
        print("usage: epx import {graphreg,chromoformer} FILE [options]\n\n" + COMMANDS["import"].description + ".\n\n"
              "sources:\n  graphreg      a Keras Epi-GraphReg / Epi-CNN .h5 (epx import graphreg --help)\n"
              "  chromoformer  a published Chromoformer state_dict .pt (epx import chromoformer --help)")
        return 0
    if not rest or rest[0] not in importers:
        print(f"epx: error: epx import needs a source: one of {sorted(importers)} (epx import graphreg MODEL.h5, epx import chromoformer STATE_DICT.pt)", file=sys.stderr)
        return 2
    from epx.imports.cli import (
        main as run_import,  # parses before the importer (torch) loads
    )

    return run_import(rest[0], rest[1:])


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
