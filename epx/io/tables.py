"""Reading the text tables users supply, with one ``InputError`` per broken file.

Every text reader (TSS, expression, BEDPE, chrom sizes, fold table, the converters' GTF,
RPKM, interaction and tagAlign inputs) goes through here, so a broken file gets one
message that names the file, says what is wrong (truncated gzip, binary content,
"tss.bed, line 17: 4 columns, expected 6 (...)", "line 3: non-numeric start 'ten'") and how
to fix it —
never a raw ``EOFError``, ``UnicodeDecodeError``, ``zlib.error`` or pandas parser error.

Decoding (``read_text``, ``open_text``): gzip is recognised by its magic bytes, whatever
the name; a file named ``.gz`` that is not gzip, a truncated or corrupt gzip stream, or
bytes that are not UTF-8 are errors. A UTF-8 byte-order mark is dropped, and LF, CRLF and
CR line ends all read as line ends.

Tables (``read_rows`` → ``Rows``): lines split on tabs, blank lines skipped, lines
starting with the comment character skipped (only at the start of a line: a ``#`` inside a
field is data), an optional header line, a column-count check per line with its line
number, and typed columns (``Rows.integers``, ``Rows.floats``, ``Rows.texts``,
``Rows.choice``) whose errors name the line and the value. ``scan`` runs the same checks
over a large file block by block, to locate the bad line after a fast pandas read failed.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from epx.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
REDOWNLOAD = "re-download it (or re-run the step that wrote it)"
# Spellings read as a missing value (pandas' defaults), for the columns that allow one.
MISSING = frozenset(
    ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]
)
MAX_INTEGER = 2**53  # larger "coordinates" are corrupt values (and not exact as float64)
DECODE_ERRORS = (EOFError, OSError, zlib.error, UnicodeDecodeError)


def describe(err: BaseException) -> str:
    """What a decoding/parsing library error says about the file, in words."""
    if isinstance(err, EOFError):
        return "truncated gzip: the compressed data ends before its end marker"
    if isinstance(err, gzip.BadGzipFile):
        return f"corrupt gzip ({err})"
    if isinstance(err, zlib.error):
        return f"corrupt gzip data ({err})"
    if isinstance(err, UnicodeDecodeError):
        return f"not UTF-8 text (byte 0x{err.object[err.start]:02x}): a binary file, or text in another encoding"
    if isinstance(err, pd.errors.EmptyDataError):
        return "no data (the file is empty)"
    if isinstance(err, pd.errors.ParserError):
        return f"malformed table ({str(err).strip().splitlines()[-1]})"
    return f"{type(err).__name__}: {err}"


def _fix(err: BaseException) -> str:
    if isinstance(err, UnicodeDecodeError):
        return "check it is the right file; re-save text as UTF-8, or " + REDOWNLOAD
    return REDOWNLOAD


def _is_gzip(path: Path, what: str) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(2)
    except OSError as err:
        raise InputError(f"{path}: cannot read the {what} ({err})") from err
    if head == GZIP_MAGIC:
        return True
    if path.name.endswith(".gz") and head:  # an empty file is reported as empty by the readers
        raise InputError(
            f"{path} is named .gz but is not gzip-compressed ({len(head)} first bytes {head!r}): a truncated or "
            f"failed download, or a plain file renamed; {REDOWNLOAD}, or drop the .gz from its name if it is plain text"
        )
    return False


def read_text(path: str | Path, *, what: str) -> str:
    """The whole file as text: gunzipped when gzip, UTF-8 (BOM dropped), line ends as ``\\n``."""
    path = Path(path)
    gz = _is_gzip(path, what)
    try:
        raw = path.read_bytes()
        if gz:
            raw = gzip.decompress(raw)
    except DECODE_ERRORS as err:
        raise InputError(f"{path}: {describe(err)}; {REDOWNLOAD}") from err
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise InputError(
            f"{path}: not UTF-8 text (byte 0x{raw[err.start]:02x} on line {line}); is it a binary file, a compressed "
            f"file under a plain name, or text in another encoding? Check it is the {what}; re-save it as UTF-8 or "
            f"{REDOWNLOAD}"
        ) from err
    return text.replace("\r\n", "\n").replace("\r", "\n")


@contextlib.contextmanager
def open_text(path: str | Path, *, what: str) -> Iterator[io.TextIOBase]:
    """A text stream over the file (gzip, BOM and line ends as in ``read_text``) for
    chunked reading of large files. Errors raised while reading it are the caller's to wrap
    (``guard``)."""
    path = Path(path)
    gz = _is_gzip(path, what)
    handle = gzip.open(path, "rt", encoding="utf-8-sig", newline=None) if gz else path.open(encoding="utf-8-sig", newline=None)
    try:
        yield handle
    finally:
        with contextlib.suppress(*DECODE_ERRORS):
            handle.close()


@contextlib.contextmanager
def guard(path: str | Path, *, what: str, expected: str, on_error: Callable[[], None] | None = None) -> Iterator[None]:
    """Turn any library exception raised inside the block into one ``InputError`` naming
    ``path``. ``on_error`` (e.g. a ``scan`` that finds the bad line) runs first and may raise
    a more precise ``InputError`` itself."""
    try:
        yield
    except InputError:
        raise
    except (*DECODE_ERRORS, ValueError, TypeError, OverflowError, IndexError, KeyError) as err:
        if isinstance(err, DECODE_ERRORS):  # the bytes, not the table: truncated/corrupt gzip, binary
            raise InputError(f"{path}: {describe(err)}; {_fix(err)}") from err
        if on_error is not None:
            on_error()
        raise InputError(f"{path} is not a readable {what}: {describe(err)}; expected {expected}. {_fix(err)}") from err


class Rows:
    """The data lines of a tab-separated text file: ``fields[i]`` (a list of strings) was
    line ``lines[i]`` of the file. Typed accessors check a column and raise one
    ``InputError`` naming the file, the line, the value and ``hint`` (how to fix it)."""

    def __init__(self, path: Path, lines: list[int], fields: list[list[str]], hint: str, header: list[str] | None = None, header_line: int = 0):
        self.path, self.lines, self.fields, self.hint = path, lines, fields, hint
        self.header, self.header_line = header, header_line

    def __len__(self) -> int:
        return len(self.fields)

    def fail(self, i: int, problem: str) -> InputError:
        return InputError(f"{self.path}, line {self.lines[i]}: {problem}; {self.hint}")

    def check_width(self, minimum: int, maximum: int | None = None, *, expected: str) -> None:
        """Each line has ``minimum`` .. ``maximum`` columns (trailing empty fields beyond
        ``maximum`` are dropped: a trailing tab is not a column)."""
        for i, row in enumerate(self.fields):
            if maximum is not None and len(row) > maximum:
                while len(row) > maximum and row[-1] == "":
                    row.pop()
            if len(row) < minimum or (maximum is not None and len(row) > maximum):
                raise self.fail(i, f"{len(row)} column{'s' if len(row) != 1 else ''}, expected {expected}")

    def column(self, index: int) -> pd.Series:
        return pd.Series([row[index] for row in self.fields], dtype=object)

    def texts(self, index: int, name: str, *, allow_empty: bool = False) -> np.ndarray:
        col = self.column(index)
        if not allow_empty:
            empty = (col.str.strip() == "").to_numpy()
            if empty.any():
                raise self.fail(int(np.argmax(empty)), f"empty {name}")
        return col.to_numpy(dtype=object, copy=True)  # a view would be read-only (copy-on-write): callers edit frames

    def integers(self, index: int, name: str, *, minimum: int | None = 0) -> np.ndarray:
        """Whole numbers (``12``; ``1e3`` and ``12.0`` too, as pandas' int64 parser takes
        them), ≥ ``minimum`` unless None."""
        col = self.column(index)
        num = pd.to_numeric(col, errors="coerce")
        as_float = num.to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(as_float) | (as_float != np.floor(as_float)) | (np.abs(as_float) > MAX_INTEGER)
        if bad.any():
            i = int(np.argmax(bad))
            kind = "non-integer" if np.isfinite(as_float[i]) and abs(as_float[i]) <= MAX_INTEGER else "non-numeric"
            if np.isfinite(as_float[i]) and abs(as_float[i]) > MAX_INTEGER:
                kind = "out-of-range"
            raise self.fail(i, f"{kind} {name} {col[i]!r}")
        values = num.to_numpy(dtype=np.int64, copy=True) if num.dtype.kind in "iu" else as_float.astype(np.int64)
        if minimum is not None and (values < minimum).any():
            i = int(np.argmax(values < minimum))
            raise self.fail(i, f"{'negative' if values[i] < 0 else 'too small'} {name} {col[i]!r} (must be ≥ {minimum})")
        return values

    def floats(self, index: int, name: str, *, missing: Iterable[str] = (), coerce: bool = False) -> np.ndarray:
        """Numbers; the spellings in ``missing`` read as NaN. ``coerce``: anything else that is
        not a number reads as NaN too (no error)."""
        col = self.column(index)
        values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, copy=True)  # writable, not a view
        if not coerce:
            bad = np.isnan(values) & ~col.str.strip().isin(list(missing)).to_numpy()
            if bad.any():
                i = int(np.argmax(bad))
                raise self.fail(i, f"non-numeric {name} {col[i]!r}")
        return values

    def choice(self, index: int, name: str, allowed: Sequence[str]) -> np.ndarray:
        col = self.column(index)
        bad = ~col.isin(list(allowed)).to_numpy()
        if bad.any():
            i = int(np.argmax(bad))
            raise self.fail(i, f"{name} {col[i]!r} (must be {' or '.join(map(repr, allowed))})")
        return col.to_numpy(dtype=object, copy=True)

    def ordered(self, low: np.ndarray, high: np.ndarray, low_name: str, high_name: str) -> None:
        bad = high < low
        if bad.any():
            i = int(np.argmax(bad))
            raise self.fail(i, f"{high_name} {high[i]} before {low_name} {low[i]} (reversed coordinates?)")


def _split(path: Path, numbered: Iterable[tuple[int, str]], comment: str | None) -> tuple[list[int], list[list[str]]]:
    lines, fields = [], []
    for n, line in numbered:
        if not line.strip() or (comment and line.startswith(comment)):
            continue
        lines.append(n)
        fields.append(line.split("\t"))
    return lines, fields


def read_rows(
    path: str | Path,
    *,
    what: str,
    hint: str,
    comment: str | None = "#",
    header: bool = False,
    allow_empty: bool = False,
    text: str | None = None,
) -> Rows:
    """All data lines of a small text table (``read_text``, or ``text`` already read from
    ``path``), split on tabs. An empty file (no data line; with ``header``, no line after
    the header) is an error unless ``allow_empty``."""
    path = Path(path)
    if text is None:
        text = read_text(path, what=what)
    lines, fields = _split(path, enumerate(text.split("\n"), start=1), comment)
    head, head_line = None, 0
    if header and fields:
        head, head_line = fields.pop(0), lines.pop(0)
    if not fields and not allow_empty:
        what_is = "only a header line" if head is not None else "no data lines"
        raise InputError(f"{path} has {what_is}: an empty or truncated {what}; {REDOWNLOAD}")
    return Rows(path, lines, fields, hint, head, head_line)


def fast_table(text: str, columns: int, dtype: dict, comment: str = "#") -> pd.DataFrame | None:
    """pandas' C parser over header-less ``text`` (``read_text`` output) when it reads it
    exactly as ``read_rows`` would, else None (then the caller takes the line-by-line
    path, which also finds the bad line). None whenever the text holds a ``#`` past a line's
    start (pandas would cut the line there), a quote, a line that is not ``columns`` fields
    or a value the dtypes refuse; floats are parsed round-trip exact."""
    if '"' in text or re.search(rf"[^\n]{re.escape(comment)}", text):
        return None
    try:
        df = pd.read_csv(
            io.StringIO(text),
            sep="\t",
            header=None,
            comment=comment,
            dtype=dtype,
            quoting=csv.QUOTE_NONE,
            na_filter=False,
            float_precision="round_trip",
            engine="c",
        )
    except (ValueError, TypeError, OverflowError, IndexError):
        return None
    if df.shape[1] != columns:
        return None
    return df


def scan(path: str | Path, *, what: str, hint: str, check: Callable[[Rows], None], comment: str | None = "#", block: int = 200_000) -> None:
    """Run ``check`` over the file's data lines, ``block`` lines at a time, streaming: it
    raises the precise ``InputError`` (with its line) of the first block that has one. Used
    after a fast reader failed, so the message can name the line; returns if nothing is found."""
    path = Path(path)
    n = 0
    try:
        with open_text(path, what=what) as handle:
            while True:
                chunk = [(n + k + 1, line.rstrip("\n")) for k, line in enumerate(_take(handle, block))]
                if not chunk:
                    return
                n = chunk[-1][0]
                lines, fields = _split(path, chunk, comment)
                if fields:
                    check(Rows(path, lines, fields, hint))
    except DECODE_ERRORS as err:
        raise InputError(f"{path}: {describe(err)} (after line {n}); {_fix(err)}") from err


def _take(handle, count: int) -> list[str]:
    out = []
    for line in handle:
        out.append(line)
        if len(out) == count:
            break
    return out
