"""Atomic writes: a reader sees the old complete file or the new complete file, never a half one.

Contract:
- ``atomic_path(path)`` is a context manager yielding a temporary path in ``path``'s folder
  (hidden, unique per process); when the block ends normally the temp file is renamed onto
  ``path`` (``os.replace``, atomic on POSIX); when it raises, the temp file is removed and
  ``path`` is untouched. Use it for writers that want a file name (pyBigWig, h5py, gzip).
- ``atomic_write(path, write, binary=False)`` calls ``write(handle)`` on an open temp file.
- ``write_text``, ``write_json``, ``write_csv`` are the common cases; ``write_table(frame,
  path)`` writes ``path`` as TSV and, when pyarrow is installed (``pip install epx[parquet]``),
  the same table beside it as ``.parquet`` (typed columns, for pandas / polars / R arrow).
- ``stale_temps(path)`` lists temp files of ``path`` left by a killed writer; only a caller
  that holds a lock on ``path`` may delete them (another process may be writing one).

A write that fails for lack of room — no space left on the device (ENOSPC), a file larger
than the file system or ``ulimit -f`` allows (EFBIG), a disk quota (EDQUOT), whether the
writer raised ``OSError`` with that errno or a library (h5py) reported it in its message —
raises ``epx.errors.StorageError`` naming ``path`` (not the temp name) and the fix; the temp
file is removed and ``path`` keeps its previous content. ``out_of_space(exc)`` is that test,
for callers that write without these helpers. Other errors pass through unchanged.

Every file epx writes — job outputs, summaries, converted inputs, the synthetic dataset's
files, the cache — goes through here, so a killed process never leaves a truncated file
under a name that a later job or ``epx summarize`` would trust.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # only a type here: importing pandas costs the `epx CMD --help` of every command
    import pandas as pd

from epx.errors import StorageError

TMP_MARK = ".epx-tmp-"
# errno values that mean "no room", and the strerror texts libraries (h5py, HDF5) embed in
# messages whose exception carries no errno attribute.
NO_ROOM = {errno.ENOSPC: "no space left on the device", errno.EFBIG: "file too large", errno.EDQUOT: "disk quota exceeded"}
_NO_ROOM_TEXT = re.compile(
    r"no space left on device|file too large|disk quota exceeded|quota exceeded"
    r"|errno\s*=?\s*(?P<num>\d+)",
    re.IGNORECASE,
)


def temp_name(path: Path) -> Path:
    """A unique hidden sibling of ``path``; stale ones (a killed writer) match ``.{name}.epx-tmp-*``."""
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")


def stale_temps(path: str | os.PathLike) -> list[Path]:
    path = Path(path)
    if not path.parent.is_dir():
        return []
    prefix = f".{path.name}{TMP_MARK}"
    return sorted(p for p in path.parent.iterdir() if p.name.startswith(prefix))


def out_of_space(exc: BaseException) -> str | None:
    """Why ``exc`` (or an exception it was raised from) means the disk had no room, or None.

    Looks at ``errno`` first, then at the message: HDF5 reports a failed write as
    ``OSError``/``RuntimeError`` with "errno = 28, error message = 'No space left on device'"
    in its text, sometimes without setting ``errno``.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in NO_ROOM:
            return NO_ROOM[current.errno]
        if isinstance(current, OSError | RuntimeError):
            for match in _NO_ROOM_TEXT.finditer(str(current)):
                number = match.group("num")
                if number is None:
                    return match.group(0).lower()
                if int(number) in NO_ROOM:
                    return NO_ROOM[int(number)]
        current = current.__cause__ or current.__context__
    return None


def storage_error(path: str | os.PathLike, exc: BaseException, why: str) -> StorageError:
    return StorageError(
        f"cannot write {path}: {why} ({type(exc).__name__}: {' '.join(str(exc).split())[:300]}); "
        "its previous version, if any, is unchanged. Free space on that disk, or move paths.cache_dir "
        "(the binned-signal cache) / hydra.sweep.dir and hydra.run.dir (job outputs) to a disk with room, "
        "then rerun"
    )


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    path = Path(path)
    tmp = temp_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        why = out_of_space(exc)
        if why is None:
            raise
        raise storage_error(path, exc, why) from exc
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


def write_table(frame: pd.DataFrame, path: str | os.PathLike) -> list[Path]:
    written = [write_csv(path, frame, sep="\t")]
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return written
    import io

    buffer = io.BytesIO()  # serialised first: a failing conversion leaves no partial file
    frame.to_parquet(buffer, index=False)
    written.append(atomic_write(Path(path).with_suffix(".parquet"), lambda h: h.write(buffer.getvalue()), binary=True))
    return written
