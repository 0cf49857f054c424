"""Resumable, verified, atomic download of what a Roadmap grid needs.

Contract:

- ``plan(cells, marks, signal, ...)`` lists the ``RemoteFile``s a grid needs, from the
  package manifest (``epx/roadmap/manifest.yaml``): one signal file per cell × mark
  (consolidated tagAlign reads, or MACS2 fold-change bigWigs) plus the shared files
  (hg19 ``chrom.sizes``, the RPKM matrix, the GENCODE v19 GTF).
- ``download_roadmap(...)`` fetches them into ``dest``:

  ``chrom.sizes``, ``signals/{cell}-{mark}.bigwig`` (``--signal fc``),
  ``raw/{cell}-{mark}.tagAlign.gz`` (``--signal tagalign``; ``epx convert roadmap``
  then writes ``signals/{cell}-{mark}.bigwig``), ``raw/57epigenomes.RPKM.pc.gz``,
  ``raw/gencode.v19.annotation.gtf.gz``; with ``interactions=True`` also
  ``raw/pchic/GSE86189_{tissue}.po.all.txt.bz2`` per tissue the cells map to (bzip2 magic
  ``BZh``; ``epx.roadmap.interactions`` converts them).

- Marks are parsed by ``epx.selection.parse_marks`` (the one mark parser: a comma- or
  ``+``-joined list or ``all``, in canonical order); cells by ``parse_choices``.
- Each file is written to ``X.part`` and renamed to ``X`` only once verified: size equal
  to the server's (Content-Length / Content-Range), format by magic bytes (gzip
  ``1f 8b``, bigWig ``0x888FFC26``; an HTML error page is named as such), and md5 where
  the publisher lists one (GENCODE's ``MD5SUMS``). Content that fails verification is
  deleted and fetched again, up to ``retries`` times, then one ``ValueError`` names the
  URL and the problem.
- Resuming: an existing ``X.part`` continues with ``Range: bytes=<size>-``. A server
  that ignores Range (200 instead of 206) restarts the file from byte 0; a 416 means
  the part is already whole. A dropped connection is retried and resumed.
  ``X.part`` is the resume state of the transfer (it survives the process, unlike a
  temp file of ``epx.io.atomic``), so this is the one write-then-rename epx keeps outside
  ``epx.io.atomic``.
- A verified file is recorded (size, md5, URL) in ``dest/.epx-download.json`` (written
  atomically by ``epx.io.atomic``); a later call skips it after a local size + magic
  check, without opening a connection. A file that no longer matches its record is
  re-fetched; a file with no record (e.g. put there by wget) is adopted as a partial
  download and checked against the server.
- HTTP 404/410 raises ``FileNotFoundError`` naming the URL; other failures that persist
  after the retries raise ``ConnectionError`` naming the URL (rerun to resume).
- Only the standard library's ``urllib`` talks HTTP(S); ``tqdm`` draws progress bars.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml
from tqdm import tqdm

from epx.constants import ROADMAP_CELLS
from epx.io.atomic import write_text
from epx.selection import parse_marks

log = logging.getLogger(__name__)

LEDGER_NAME = ".epx-download.json"
_CHUNK = 1 << 20
_USER_AGENT = "epx-download/0.1 (python-urllib)"
_GZIP_MAGIC = b"\x1f\x8b"
_BZIP2_MAGIC = b"BZh"
_BIGWIG_MAGICS = (b"\x26\xfc\x8f\x88", b"\x88\x8f\xfc\x26")  # little-, big-endian 0x888FFC26


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch: ``url`` → ``dest`` (relative to the download folder)."""

    url: str
    dest: Path
    fmt: str  # a key of FORMAT_CHECKS
    checksums_url: str | None = None  # md5sum-style list that names this file


# ---------------------------------------------------------------- manifest and plan


def load_manifest(path: str | os.PathLike | None = None) -> dict:
    """The download manifest: the packaged one, or ``path``."""
    if path is None:
        text = resources.files("epx.roadmap").joinpath("manifest.yaml").read_text()
    else:
        text = Path(path).read_text()
    return yaml.safe_load(text)


def parse_choices(text: str | Sequence[str], valid: Sequence[str], what: str) -> tuple[str, ...]:
    """``"E003,E114"`` or ``["E003"]`` or ``"all"`` → validated tuple in the given order."""
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    if items == ["all"]:
        return tuple(valid)
    unknown = [s for s in items if s not in valid]
    if unknown or not items:
        raise ValueError(
            f"unknown {what} {', '.join(unknown) or '(none given)'}; valid {what}: "
            f"{', '.join(valid)} (or 'all')"
        )
    return tuple(dict.fromkeys(items))


def resolve_sources(manifest: dict, base_urls: Iterable[str] = ()) -> dict[str, str]:
    """Manifest sources with ``--base-url`` overrides: ``URL`` (all) or ``NAME=URL`` (one)."""
    sources = dict(manifest["sources"])
    for override in base_urls:
        name, sep, url = override.partition("=")
        if sep and name in sources:
            sources[name] = url
        elif sep and "://" not in name:
            raise ValueError(f"--base-url {override!r}: unknown source {name!r}; sources: {sorted(sources)}")
        else:
            sources = dict.fromkeys(sources, override)
    return {name: url.rstrip("/") for name, url in sources.items()}


def plan(
    cells: Sequence[str],
    marks: Sequence[str],
    signal: str = "tagalign",
    *,
    base_urls: Iterable[str] = (),
    manifest: dict | None = None,
    interactions: bool = False,
) -> list[RemoteFile]:
    """The files a cells × marks grid needs, shared files first; with ``interactions``, the
    pcHi-C table of each tissue the cells map to (``manifest["interactions"]``), once each."""
    manifest = manifest or load_manifest()
    if signal not in manifest["signals"]:
        raise ValueError(f"unknown signal {signal!r}; choose one of {sorted(manifest['signals'])}")
    sources = resolve_sources(manifest, base_urls)

    def remote(kind: str, **names: str) -> RemoteFile:
        spec = manifest["files"][kind]
        base = sources[spec["source"]]
        checksums = spec.get("checksums")
        return RemoteFile(
            url=f"{base}/{spec['path'].format(**names)}",
            dest=Path(spec["dest"].format(**names)),
            fmt=spec["format"],
            checksums_url=f"{base}/{checksums}" if checksums else None,
        )

    kind = manifest["signals"][signal]
    shared = [remote(k) for k in manifest["shared"]]
    signals = [remote(kind, cell=c, mark=m) for c in cells for m in marks]
    if not interactions:
        return shared + signals
    names = dict.fromkeys(manifest["interactions"]["cells"][c]["geo"] for c in cells)
    return shared + signals + [remote("pchic", tissue=name) for name in names]


# ---------------------------------------------------------------- verification


def _head(path: Path, n: int = 1024) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def _html_problem(head: bytes) -> str | None:
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head")) or b"<html" in text:
        return "an HTML page (probably the server's error page)"
    return None


def _check_magic(expected: Sequence[bytes], name: str) -> Callable[[Path], str | None]:
    def check(path: Path) -> str | None:
        head = _head(path)
        if any(head.startswith(m) for m in expected):
            return None
        found = _html_problem(head) or f"data starting {head[:8]!r}"
        return f"{found} instead of {name}"

    return check


def _check_chrom_sizes(path: Path) -> str | None:
    head = _head(path)
    if (html := _html_problem(head)) is not None:
        return f"{html} instead of a chrom.sizes table"
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError:
        return "binary data instead of a chrom.sizes table"
    bad = [ln for ln in lines if ln.strip() and not (len(ln.split()) == 2 and ln.split()[1].isdigit())]
    if bad or not lines:
        return f"not a chrom.sizes table (line {bad[0]!r})" if bad else "an empty file"
    return None


FORMAT_CHECKS: dict[str, Callable[[Path], str | None]] = {
    "gzip": _check_magic([_GZIP_MAGIC], "gzip"),
    "bigwig": _check_magic(_BIGWIG_MAGICS, "bigWig"),
    "bzip2": _check_magic([_BZIP2_MAGIC], "bzip2"),
    "chrom_sizes": _check_chrom_sizes,
}


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


class Ledger:
    """``dest/.epx-download.json``: what was verified, so a rerun skips it offline."""

    def __init__(self, root: Path):
        self.path = root / LEDGER_NAME
        try:
            data = json.loads(self.path.read_text()) if self.path.exists() else {}
        except json.JSONDecodeError:
            # Only costs a check: unrecorded files are re-verified against the server.
            log.warning("%s is unreadable; re-verifying every file against the server", self.path)
            data = {}
        self.signal: str | None = data.get("signal")
        self.files: dict[str, dict] = data.get("files", {})

    def verified(self, rel: str, path: Path, fmt: str) -> bool:
        entry = self.files.get(rel)
        return (
            entry is not None
            and path.is_file()
            and path.stat().st_size == entry["size"]
            and FORMAT_CHECKS[fmt](path) is None
        )

    def record(self, rel: str, url: str, size: int, md5: str | None) -> None:
        self.files[rel] = {"url": url, "size": size, "md5": md5}
        self.save()

    def save(self) -> None:
        write_text(self.path, json.dumps({"signal": self.signal, "files": self.files}, indent=1, sort_keys=True))


# ---------------------------------------------------------------- transfer


class _Transient(Exception):
    """A failure worth retrying (dropped connection, 5xx, timeout)."""


def _content_range(header: str | None) -> tuple[int | None, int | None]:
    """``bytes 100-199/200`` → (100, 200); ``bytes */200`` → (None, 200)."""
    if not header or not header.startswith("bytes "):
        return None, None
    span, _, total = header[len("bytes "):].partition("/")
    start = int(span.split("-")[0]) if span != "*" else None
    return start, int(total) if total.isdigit() else None


def _transfer(url: str, part: Path, *, timeout: float, progress: bool) -> int | None:
    """Append the rest of ``url`` to ``part``; return the file's total size if known."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code in (404, 410):
            raise FileNotFoundError(
                f"{url}: HTTP {err.code} {err.reason}; the server has no such file. Check the "
                "--cells/--marks (Roadmap lacks some EID-mark pairs) and --base-url"
            ) from None
        if err.code == 416 and offset:
            _, total = _content_range(err.headers.get("Content-Range"))
            if total == offset:
                return total  # the part is already the whole file
            part.unlink()
            raise _Transient(f"range {offset}- not satisfiable (server size {total}); restarting") from None
        if err.code >= 500 or err.code == 429:
            raise _Transient(f"HTTP {err.code} {err.reason}") from None
        raise ConnectionError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        raise _Transient(str(getattr(err, "reason", err))) from None

    with response:
        if response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start != offset:
                part.unlink(missing_ok=True)
                raise _Transient(f"server resumed at byte {start}, not {offset}; restarting")
            mode = "ab"
        else:  # 200: no Range sent, or the server ignored it: start over cleanly
            if offset:
                log.info("%s ignored the Range request; restarting from byte 0", url)
            offset, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        with open(part, mode) as fh, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=part.name.removesuffix(".part"), disable=not progress, leave=False,
        ) as bar:
            while True:
                try:
                    block = response.read(_CHUNK)
                except (OSError, http.client.HTTPException) as err:
                    raise _Transient(f"connection lost after {fh.tell()} bytes ({err})") from None
                if not block:
                    break
                fh.write(block)  # a local write error (disk full) is not retried
                bar.update(len(block))
    return total


def _published_md5(remote: RemoteFile, timeout: float, cache: dict[str, dict[str, str]]) -> str | None:
    """The md5 that ``remote.checksums_url`` lists for this file, if it can be had."""
    if remote.checksums_url is None:
        return None
    if remote.checksums_url not in cache:
        try:
            with urllib.request.urlopen(remote.checksums_url, timeout=timeout) as response:
                text = response.read().decode("utf-8", "replace")
            cache[remote.checksums_url] = {
                fields[-1].lstrip("*"): fields[0].lower()
                for fields in (line.split() for line in text.splitlines())
                if len(fields) >= 2
            }
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            log.warning("no checksum list at %s (%s); verifying by size and format only", remote.checksums_url, err)
            cache[remote.checksums_url] = {}
    return cache[remote.checksums_url].get(remote.url.rsplit("/", 1)[-1])


def fetch(
    remote: RemoteFile,
    root: Path,
    ledger: Ledger,
    *,
    retries: int = 5,
    backoff_s: float = 2.0,
    timeout: float = 60.0,
    progress: bool = True,
    checksum_cache: dict | None = None,
) -> Path:
    """Download one file into ``root`` (see module docstring); return its final path."""
    final = root / remote.dest
    rel = remote.dest.as_posix()
    if ledger.verified(rel, final, remote.fmt):
        return final
    part = final.with_name(final.name + ".part")
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        if rel in ledger.files:
            log.warning("%s no longer matches its verified download; fetching it again", final)
            final.unlink()
        else:  # unknown provenance: treat as a partial download and let the server judge
            os.replace(final, part)

    md5 = _published_md5(remote, timeout, {} if checksum_cache is None else checksum_cache)
    problem, bad_content = "no attempt made", False
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff_s * 2 ** (attempt - 1))
        try:
            total = _transfer(remote.url, part, timeout=timeout, progress=progress)
        except _Transient as err:
            problem, bad_content = str(err), False
            continue
        size = part.stat().st_size
        if total is not None and size != total:
            problem, bad_content = f"got {size} of {total} bytes", False
            if size > total:
                part.unlink()
            continue
        problem = FORMAT_CHECKS[remote.fmt](part)
        if problem is None and md5 is not None and (got := _md5(part)) != md5:
            problem = f"md5 {got} differs from the published {md5}"
        if problem is not None:
            bad_content = True
            part.unlink()
            continue
        os.replace(part, final)
        ledger.record(rel, remote.url, size, md5)
        return final
    if bad_content:
        raise ValueError(
            f"{remote.url} returned {problem} on each of {retries + 1} attempts; check the "
            "URL in a browser, or point --base-url at a working mirror"
        )
    raise ConnectionError(
        f"{remote.url}: download failed after {retries + 1} attempts ({problem}); run the same "
        "command again to resume from the partial file"
    )


def download_roadmap(
    cells: Sequence[str] | str,
    marks: Sequence[str] | str,
    dest: str | os.PathLike,
    *,
    signal: str = "tagalign",
    base_urls: Iterable[str] = (),
    retries: int = 5,
    backoff_s: float = 2.0,
    timeout: float = 60.0,
    progress: bool = True,
    interactions: bool = False,
) -> list[Path]:
    """Fetch everything a ``cells × marks`` grid needs into ``dest`` (with ``interactions``, the
    cells' pcHi-C tables too); return the paths."""
    cells = parse_choices(cells, ROADMAP_CELLS, "cells")
    marks = parse_marks(marks)
    remotes = plan(cells, marks, signal, base_urls=base_urls, interactions=interactions)
    root = Path(dest)
    ledger = Ledger(root)
    if ledger.signal not in (None, signal):
        raise ValueError(
            f"{root} already holds --signal {ledger.signal} downloads; use another --dest for "
            f"--signal {signal} (both would write signals/{{cell}}-{{mark}}.bigwig)"
        )
    ledger.signal = signal
    checksum_cache: dict = {}
    files = []
    for remote in tqdm(remotes, desc="files", unit="file", disable=not progress):
        files.append(
            fetch(remote, root, ledger, retries=retries, backoff_s=backoff_s, timeout=timeout,
                  progress=progress, checksum_cache=checksum_cache)
        )
    ledger.save()
    return files
