"""Packaging hook: the wheel carries the repository's top-level ``conf/`` as ``epx/conf``.

``conf/`` stays where it is (the registry people edit); ``build_py`` copies its YAML files into
the built package so an installed epx composes the same configs (``epx.config.conf_dir``).
An editable install needs no copy: it finds the checkout's ``conf/`` itself.
Everything else about the package is in ``pyproject.toml``.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildWithConf(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "epx" / "conf"
        shutil.rmtree(target, ignore_errors=True)
        for path in sorted((HERE / "conf").rglob("*.yaml")):
            out = target / path.relative_to(HERE / "conf")
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out)


setup(cmdclass={"build_py": BuildWithConf})
