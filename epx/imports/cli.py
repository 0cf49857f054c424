"""``epx import SOURCE FILE ...``: the command lines of the importers, parsed before torch loads.

Contract: ``main(source, argv) -> exit code`` for ``source`` in ``SOURCES`` (``graphreg``,
``chromoformer``). ``--help`` and argument errors never import the importer (torch, h5py,
the models): ``epx import graphreg --help`` answers in a fraction of a second. The importer
module (``epx.imports.graphreg`` / ``epx.imports.chromoformer``) is imported only to run.
The choices below are the importers' own (``ARCHITECTURES`` / ``TASKS``); a test keeps them equal.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from epx.errors import InputError


def _graphreg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="epx import graphreg", description="Import a trained Keras Epi-GraphReg / Epi-CNN (.h5) as an epx job dir.")
    parser.add_argument("file", type=Path, help="the .h5 that the GraphReg repository's model.save(...) wrote")
    parser.add_argument("--model", choices=["epi_cnn", "epi_graphreg"], help="the architecture the file must hold (default: what it holds)")
    return parser


def _chromoformer_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="epx import chromoformer", description="Import a trained Chromoformer state_dict (.pt, the published format) as an epx job dir."
    )
    parser.add_argument("file", type=Path, help="torch.save of the published ChromoformerClassifier / ChromoformerRegressor state_dict()")
    parser.add_argument("--task", choices=["classification", "regression"], help="the task the file must hold (default: what its head holds)")
    return parser


# source -> (parser, importer module, its import function, the option naming the architecture)
SOURCES = {
    "graphreg": (_graphreg_parser, "epx.imports.graphreg", "import_graphreg", "model"),
    "chromoformer": (_chromoformer_parser, "epx.imports.chromoformer", "import_chromoformer", "task"),
}


def main(source: str, argv: Sequence[str]) -> int:
    make_parser, module, function, which = SOURCES[source]
    parser = make_parser()
    parser.add_argument("--out", type=Path, help="the job dir to write (default: outputs/imported/<file stem>)")
    parser.epilog = "Any further key=value arguments are config overrides of the job (cell=, mark=, dataset=...)."
    args, overrides = parser.parse_known_args(list(argv))
    out = args.out or Path("outputs") / "imported" / args.file.stem
    run = getattr(importlib.import_module(module), function)
    try:
        record = run(args.file, out, overrides=overrides, **{which: getattr(args, which)})
    except InputError as err:
        print(f"epx: error: {err}", file=sys.stderr)
        return 2
    task = f", {record.task}" if source == "chromoformer" else ""
    print(f"{args.file} -> {out} ({record.model}{task}, {record.n_params:,} parameters, marks {record.mark})")
    return 0
