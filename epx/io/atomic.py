"""Atomic writes: a reader sees the old complete file or the new complete file, never a half one.

Contract:
- ``atomic_path(path)`` is a context manager yielding a temporary path in ``path``'s folder
  (hidden, unique per process); when the block ends normally the temp file is renamed onto
  ``path`` (``os.replace``, atomic on POSIX); when it raises, the temp file is removed and
  ``path`` is untouched. Use it for writers that want a file name (pyBigWig, h5py, gzip).
- ``atomic_write(path, write, binary=False)`` calls ``write(handle)`` on an open temp file.
- ``write_text``, ``write_json``, ``write_csv`` are the common cases.
- ``stale_temps(path)`` lists temp files of ``path`` left by a killed writer; only a caller
  that holds a lock on ``path`` may delete them (another process may be writing one).

Every file epx writes — job outputs, summaries, converted inputs, the synthetic dataset's
files, the cache — goes through here, so a killed process never leaves a truncated file
under a name that a later job or ``epx summarize`` would trust.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pandas as pd

TMP_MARK = ".epx-tmp-"


def temp_name(path: Path) -> Path:
    """A unique hidden sibling of ``path``; stale ones (a killed writer) match ``.{name}.epx-tmp-*``."""
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")


def stale_temps(path: str | os.PathLike) -> list[Path]:
    path = Path(path)
    if not path.parent.is_dir():
        return []
    prefix = f".{path.name}{TMP_MARK}"
    return sorted(p for p in path.parent.iterdir() if p.name.startswith(prefix))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike, write: Callable[[IO], Any], *, binary: bool = False) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb" if binary else "w", **({} if binary else {"newline": ""})) as handle:
            write(handle)
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda h: h.write(text))


def write_json(path: str | os.PathLike, data: Any) -> Path:
    return atomic_write(path, lambda h: json.dump(data, h, indent=2, default=str))


def write_csv(path: str | os.PathLike, frame: pd.DataFrame, **to_csv: Any) -> Path:
    return atomic_write(path, lambda h: frame.to_csv(h, index=False, **to_csv))
