"""The ``epx`` command line (issue 24): every subcommand's ``--help`` answers without importing
torch or Lightning, with a description and help text for every option; ``epx --version``; the
same W&B flags on every command that logs; ``epx train --help`` lists the config groups.
(How long each ``--help`` takes is ``benchmarks/bench_cli.py``'s to measure.)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest
from conftest import REPO

import epx
from epx.cli import COMMANDS, _prepare_parser

HEAVY = ("torch", "lightning", "captum", "torch_geometric", "wandb")
ARGPARSE_COMMANDS = [name for name in COMMANDS if name not in ("train",)]


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


def test_every_help_answers_without_torch():
    code = (
        "import contextlib, io, json, sys\n"
        "from epx.cli import main\n"
        "out = {}\n"
        f"for name in {ARGPARSE_COMMANDS!r}:\n"
        "    buf = io.StringIO()\n"
        "    with contextlib.redirect_stdout(buf):\n"
        "        try:\n"
        "            code = main([name, '--help'])\n"
        "        except SystemExit as exit:\n"
        "            code = exit.code\n"
        "    out[name] = [code, buf.getvalue()]\n"
        f"out['heavy'] = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(json.dumps(out))\n"
    )
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out.pop("heavy") == []
    for name, (code, text) in out.items():
        assert code in (0, None), (name, code)
        assert text.startswith("usage: epx"), (name, text[:200])


def test_train_help_lists_the_config_groups_without_torch():
    proc = subprocess.run([sys.executable, "-X", "importtime", "launch.py", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "epx train (also: python launch.py, python -m epx)" in proc.stdout
    for group in ("model:", "dataset:", "trainer:", "experiment:", "task:", "logger:"):
        assert group in proc.stdout, group
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert not imported & set(HEAVY), imported & set(HEAVY)
    # the bare --help is rendered by epx from Hydra's template; with an override Hydra renders it itself
    hydra = subprocess.run([sys.executable, "launch.py", "--help", "seed=0"], cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert hydra.returncode == 0 and hydra.stdout == proc.stdout


def test_top_level_help_and_version():
    proc = subprocess.run([sys.executable, "-m", "epx.cli", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0 and "`" not in proc.stdout
    for name, command in COMMANDS.items():
        assert name in proc.stdout and command.description.split(" (")[0][:40] in " ".join(proc.stdout.split()), name
    version = subprocess.run([sys.executable, "-m", "epx.cli", "--version"], cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert version.returncode == 0 and version.stdout.strip() == f"epx {epx.__version__}"


def _parsers() -> dict[str, argparse.ArgumentParser]:
    from epx.analysis.diff import build_parser as diff
    from epx.analysis.status import build_parser as status
    from epx.analysis.summary import build_parser as summarize
    from epx.explain.run import build_parser as explain
    from epx.predict import build_parser as predict
    from epx.roadmap.cli import add_subcommands
    from epx.synthetic.generate import build_parser as synth

    roadmap = argparse.ArgumentParser(prog="epx")
    add_subcommands(roadmap.add_subparsers(dest="command"))
    found = {"prepare": _prepare_parser(), "summarize": summarize(), "status": status(), "diff": diff(),
             "predict": predict(), "explain": explain(), "synth": synth()}

    def walk(parser, name):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {choice.dest: choice.help for choice in action._choices_actions}
                for sub, child in action.choices.items():
                    child.description = child.description or helps.get(sub)  # `epx download --help` shows it
                    found[f"{name} {sub}".strip()] = child
                    walk(child, f"{name} {sub}".strip())

    walk(roadmap, "")
    return found


def test_every_option_has_help_text_and_every_command_a_description():
    missing = []
    for name, parser in _parsers().items():
        if any(isinstance(a, argparse._SubParsersAction) for a in parser._actions):
            continue  # a group of subcommands: its children are checked
        if not (parser.description or "").strip():
            missing.append(f"{name}: no description")
        for action in parser._actions:
            if action.help is None and not isinstance(action, argparse._HelpAction):
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("name", ["summarize", "explain"])
def test_commands_that_log_share_the_wandb_flags(name):
    parser = _parsers()[name]
    flags = {opt: action for action in parser._actions for opt in action.option_strings if "wandb" in opt}
    assert set(flags) == {"--wandb", "--no-wandb"}
    assert flags["--wandb"].default is None  # auto: when the jobs logged to W&B
    assert flags["--wandb"].help.startswith("log to W&B (default: when the jobs did")


def test_import_help_of_each_source_answers_without_torch_and_its_choices_are_the_importers():
    code = (
        "import contextlib, io, json, sys\n"
        "from epx.cli import main\n"
        "out = {}\n"
        "for source in ('graphreg', 'chromoformer'):\n"
        "    buf = io.StringIO()\n"
        "    with contextlib.redirect_stdout(buf):\n"
        "        try:\n"
        "            main(['import', source, '--help'])\n"
        "        except SystemExit as exit:\n"
        "            pass\n"
        "    out[source] = buf.getvalue()\n"
        f"out['heavy'] = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(json.dumps(out))\n"
    )
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out.pop("heavy") == []
    assert out["graphreg"].startswith("usage: epx import graphreg") and "--model" in out["graphreg"]
    assert out["chromoformer"].startswith("usage: epx import chromoformer") and "--task" in out["chromoformer"]
    from epx.imports.chromoformer import TASKS
    from epx.imports.cli import SOURCES
    from epx.imports.graphreg import ARCHITECTURES

    def choices(source, dest):
        return next(a.choices for a in SOURCES[source][0]()._actions if a.dest == dest)

    assert sorted(choices("graphreg", "model")) == sorted(ARCHITECTURES)
    assert sorted(choices("chromoformer", "task")) == sorted(TASKS.values())
