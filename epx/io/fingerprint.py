"""Content fingerprints of input files: what a cache and a checkpoint's provenance trust.

Contract: ``fingerprint(path) -> {"size", "mtime_ns", "xxh3_128"}``: the whole file hashed in
``BLOCK``-byte reads with xxHash's XXH3-128 (about 6 GB/s on one core from the page cache,
so disk-bound in practice; ``benchmarks/bench_fingerprint.py`` measures s per GB against
SHA-256 and BLAKE2b and as a share of a cache build). ``same_content(recorded, path)`` is
True when ``path`` holds the bytes ``recorded`` describes (size and hash; the mtime is kept
for the reader, never trusted: a same-size in-place edit that restores the mtime is caught).
``changed_files(recorded, current) -> [name]`` names the entries of two ``{name:
fingerprint}`` maps whose content differs (names in only one map are not compared).

Reading while another process writes: ``reading(path)`` is a context manager that yields the
file's fingerprint taken before the body reads it, and raises one ``InputError`` naming the
file when its identity (inode, size, mtime, ctime) is not the same after the body: a file replaced
or rewritten during a cache build is refused, never recorded with one file's hash over the
other's data. Within one process a hash is remembered per (path, inode, size, mtime), so a
file read twice is hashed once — the key holds the ctime, which every write changes and no
``touch`` can restore, so an edit that restores the mtime is hashed again.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import xxhash

from epx.errors import InputError

ALGORITHM = "xxh3_128"
BLOCK = 16 << 20
_MEMO: dict[tuple, str] = {}


def identity(path: str | os.PathLike) -> tuple[int, int, int, int]:
    """(inode, size, mtime, ctime): the ctime changes on every write and no user can set it back."""
    st = os.stat(path)
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def content_hash(path: str | os.PathLike) -> str:
    """XXH3-128 of the file's bytes (hex), read in ``BLOCK``-byte blocks."""
    digest = xxhash.xxh3_128()
    with open(path, "rb", buffering=0) as handle:
        block = bytearray(BLOCK)
        view = memoryview(block)
        while n := handle.readinto(block):
            digest.update(view[:n])
    return digest.hexdigest()


def fingerprint(path: str | os.PathLike) -> dict:
    """``{"size", "mtime_ns", ALGORITHM}`` of ``path``; refused when it changes while hashed."""
    path = Path(path)
    before = identity(path)
    key = (str(path.resolve()), *before)
    if key not in _MEMO:
        value = content_hash(path)
        if identity(path) != before:
            raise InputError(changed_while_read(path))
        _MEMO[key] = value
    return {"size": before[1], "mtime_ns": before[2], ALGORITHM: _MEMO[key]}


def same_content(recorded: Mapping | None, path: str | os.PathLike) -> bool:
    if not recorded or ALGORITHM not in recorded or not Path(path).is_file():
        return False
    current = fingerprint(path)
    return current["size"] == recorded.get("size") and current[ALGORITHM] == recorded[ALGORITHM]


def changed_files(recorded: Mapping[str, Mapping], current: Mapping[str, Mapping]) -> list[str]:
    return sorted(
        name for name in set(recorded) & set(current)
        if (recorded[name] or {}).get(ALGORITHM) != (current[name] or {}).get(ALGORITHM)
    )


def changed_while_read(path: Path) -> str:
    return (
        f"{path} changed while epx read it (replaced, rewritten or appended to by another process); nothing was kept "
        "from it. Rerun when nothing writes the file"
    )


@contextlib.contextmanager
def reading(path: str | os.PathLike) -> Iterator[dict]:
    """The file's fingerprint, checked to still describe the file after the body read it."""
    path = Path(path)
    before = identity(path)
    value = fingerprint(path)
    if (before[1], before[2]) != (value["size"], value["mtime_ns"]):
        raise InputError(changed_while_read(path))
    yield value
    try:
        after = identity(path)
    except FileNotFoundError:
        after = None
    if after != before:
        raise InputError(changed_while_read(path))
