"""YAML from a job dir, read as bounded data: a size limit and an alias-expansion limit.

Contract: ``load_yaml(path) -> plain data`` (dicts, lists, scalars; OmegaConf's scalar rules,
so a file reads as ``OmegaConf.load`` reads it) or one ``InputError`` naming the file when it
is larger than ``MAX_BYTES``, when its anchors and aliases would expand to more than
``MAX_NODES`` nodes (a "billion laughs" file: a few hundred bytes of nested ``&a [*b, *b, …]``
that expands to gigabytes once a reader copies it), or when it is not YAML. A saved job config
is a few tens of kilobytes with no alias at all, so the limits never touch a real one.

Why count before constructing: PyYAML composes an alias as a reference to the same node, so
composing is cheap; the expansion happens later, in whatever walks or copies the result
(``OmegaConf.create``, a JSON dump). The expanded size is counted on the node graph with one
memo per node, so even a bomb is measured in microseconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from omegaconf._utils import get_yaml_loader

from epx.errors import InputError

MAX_BYTES = 4 << 20  # 4 MiB: a hundred times a real saved config
MAX_NODES = 200_000  # nodes after expanding every alias


def _expanded(node: yaml.Node, memo: dict[int, int], limit: int) -> int:
    """Nodes under ``node`` with every alias expanded (stops counting past ``limit``)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = limit + 1  # a node reached again while it is counted: a cycle, refuse
    total = 1
    if isinstance(node, yaml.MappingNode):
        children = [child for pair in node.value for child in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    else:
        children = []
    for child in children:
        total += _expanded(child, memo, limit)
        if total > limit:
            break
    memo[id(node)] = total
    return total


def load_yaml(path: str | Path, *, max_bytes: int = MAX_BYTES, max_nodes: int = MAX_NODES, loader: type | None = None) -> Any:
    """``path`` as plain data, bounded (module doc). ``loader``: a PyYAML safe loader class
    (e.g. a C one with the same scalar rules, for a summary that reads many files);
    OmegaConf's loader by default."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise InputError(f"{path}: {size:,} bytes, more than the {max_bytes:,} a job config may have; not read (is it a job config?)")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: unreadable ({type(err).__name__}: {' '.join(str(err).split())[:200]})") from err
    loader = (loader or get_yaml_loader())(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        n = _expanded(node, {}, max_nodes)
        if n > max_nodes:
            raise InputError(
                f"{path}: its YAML anchors and aliases expand to more than {max_nodes:,} nodes (an alias bomb, or a cycle); "
                "not read. A job config has no aliases: restore the file Hydra saved"
            )
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not YAML ({type(err).__name__}: {' '.join(str(err).split())[:200]})") from err
    finally:
        loader.dispose()
