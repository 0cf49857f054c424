"""epx as people install it (issue 24, part 1): the wheel, in a fresh virtualenv, from a directory
outside the repository.

Builds the wheel (``pip wheel --no-deps``: ``setup.py`` copies ``conf/`` into it as ``epx/conf``),
makes a venv without the system's site-packages, installs ``torch==2.13.0`` and the wheel into
it (pip's own cache and the machine's configured indexes, so nothing is built), and runs there,
in a temp dir: ``epx --version``, ``epx train`` on the synthetic default with the debug trainer
(and ``python -m epx --help``), ``epx predict``, ``epx explain``, ``epx diff`` of two
compositions, ``epx prepare``. Every command must answer from the installed package: its
config registry is the packaged ``epx/conf``, not the checkout's ``conf/``.

Slow (minutes: the install and a synthetic dataset): ``pytest -m slow tests/test_wheel.py``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow


def _run(command, cwd, env, timeout=900):
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{' '.join(map(str, command))} -> {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    root = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q", "-w", str(root / "dist")], root, env)
    wheel = next((root / "dist").glob("epx-*.whl"))
    _run([sys.executable, "-m", "venv", str(root / "venv")], root, env)
    python = root / "venv" / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", "torch==2.13.0", str(wheel)], root, env, timeout=1500)
    env = {**env, "PATH": f"{root / 'venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}", "WANDB_MODE": "disabled", "VIRTUAL_ENV": str(root / "venv")}
    work = root / "work"
    work.mkdir()
    return python, work, env


def test_the_wheel_carries_the_configs_and_runs_outside_the_checkout(installed):
    python, work, env = installed
    where = _run([str(python), "-c", "import epx, epx.config as c; print(epx.__file__); print(c.CONF_DIR)"], work, env)
    package, conf = where.split()[:2]
    assert "site-packages" in package and str(REPO) not in package
    assert conf.endswith(os.path.join("site-packages", "epx", "conf")) and (Path(conf) / "config.yaml").is_file()

    assert _run(["epx", "--version"], work, env).strip() == "epx 0.1.0"
    assert "== Config groups" in _run([str(python), "-m", "epx", "--help"], work, env)

    out = _run(["epx", "train", "trainer=debug", "logger=none", "hydra.run.dir=job"], work, env)
    assert re.search(r"job ok \(smoke run: not a result\): pearson", out), out[-2000:]
    assert (work / "job" / "metrics.json").is_file() and (work / "job" / "launch.log").is_file()

    out = _run(["epx", "predict", "job", "cell=E004"], work, env)
    assert re.search(r"job: test pearson -?\d\.\d{4} on \d+ genes", out), out[-2000:]

    out = _run(["epx", "explain", "job", "attribution", "attribution.max_genes=4", "attribution.n_steps=4", "--no-wandb"], work, env)
    assert "attribution\t" in out and (work / "job" / "explain" / "attribution").is_dir(), out[-2000:]

    out = _run(["epx", "diff", "experiment=chromoformer_paper", "experiment=chromexpress_distal"], work, env)
    assert "model.module.optimizer.lr" in out, out[-2000:]

    out = _run(["epx", "prepare", "cell=E005", "mark=H3K4me3"], work, env)
    assert re.search(r"^E005: H3K4me3 -> ", out, re.MULTILINE), out[-2000:]
