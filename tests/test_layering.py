"""Imports only go downward (DESIGN.md §3): the layer order of epx, written once here.

The module-level imports of every module under ``epx/`` (what runs when it is imported:
top-level statements, including those inside a top-level ``try``/``if`` and class bodies,
not function bodies) form a graph that must have no cycle, and none of them may import a
layer above its own (``LAYERS``, top to bottom; a module belongs to the layer of its longest
matching prefix; a layer may import itself and anything below). A function body may import
upward when it must (``epx.run``'s job-end analyses import ``epx.explain.run`` when a job
asks for them), but nothing imports ``epx.cli``, the console script, anywhere. And
``import epx.explain`` is lazy: the element-table reader loads neither Lightning nor captum.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "epx"

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("entry point", ("epx.cli", "epx.__main__")),
    ("commands", ("epx.run", "epx.predict", "epx.explain", "epx.analysis", "epx.roadmap", "epx.imports", "epx.report")),
    ("jobs", ("epx.trained", "epx.evaluate", "epx.job", "epx.record", "epx.preflight")),
    ("training", ("epx.train", "epx.models")),
    ("data", ("epx.data", "epx.convert", "epx.synthetic", "epx.hic")),
    ("config", ("epx.config", "epx.selection", "epx.threads")),
    ("files", ("epx.io",)),
    ("vocabulary", ("epx.errors", "epx.constants", "epx")),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _absolute(node: ast.ImportFrom, module: str) -> str:
    if not node.level:
        return node.module or ""
    package = module if MODULES[module].name == "__init__.py" else module.rsplit(".", 1)[0]
    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
    return f"{base}.{node.module}" if node.module else base


def _targets(node: ast.AST, module: str) -> set[str]:
    """The epx modules an import statement loads (``from a import b``: ``a.b`` when a module)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    if isinstance(node, ast.ImportFrom):
        base = _absolute(node, module)
        return {base} | {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES}
    return set()


def _module_level(statements: list[ast.stmt]):
    for node in statements:
        yield node
        if isinstance(node, ast.Try):
            yield from _module_level(node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body])
        elif isinstance(node, ast.If | ast.With):
            yield from _module_level(node.body + getattr(node, "orelse", []))
        elif isinstance(node, ast.ClassDef):
            yield from _module_level(node.body)


def imports(module: str, *, everywhere: bool = False) -> set[str]:
    tree = ast.parse(MODULES[module].read_text())
    nodes = ast.walk(tree) if everywhere else _module_level(tree.body)
    found = set().union(*(_targets(node, module) for node in nodes))
    return {name for name in found if name in MODULES and name != module}


def layer(module: str) -> int:
    best = max(
        ((len(prefix), rank) for rank, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
         if module == prefix or module.startswith(prefix + ".")),
        default=None,
    )  # fmt: skip
    assert best is not None, f"{module} is in no layer of LAYERS; add it where it belongs"
    return best[1]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_every_module_is_in_a_layer():
    for module in MODULES:
        layer(module)


def test_no_import_cycle_among_epx_modules():
    graph = {module: imports(module) for module in MODULES}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_imports_only_go_downward():
    upward = [
        f"{module} ({LAYERS[layer(module)][0]}) imports {target} ({LAYERS[layer(target)][0]})"
        for module in MODULES
        for target in sorted(imports(module))
        if layer(target) < layer(module)
    ]
    assert not upward, "upward imports:\n  " + "\n  ".join(upward)


def test_nothing_imports_the_console_script():
    # epx/__main__.py (python -m epx) is the console script's own other entry point
    importers = [module for module in MODULES if module not in ("epx.cli", "epx.__main__") and "epx.cli" in imports(module, everywhere=True)]
    assert not importers, f"epx.cli is imported by {', '.join(importers)}"


def test_the_checker_sees_cycles_and_relative_imports():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert "epx.explain.adapters.base" in imports("epx.explain.adapters")


def test_importing_epx_explain_loads_neither_lightning_nor_captum():
    code = (
        "import sys, epx.explain, epx.explain.elements, epx.io.elements, epx.io.truth\n"
        "print(' '.join(m for m in ('lightning', 'captum', 'torch') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded = proc.stdout.split()
    assert "lightning" not in loaded and "captum" not in loaded, loaded
