"""Motifs: position weight matrices in MEME minimal format, and tables of planted motif sites.

MEME minimal format (https://meme-suite.org/meme/doc/meme-format.html), DNA only:

- ``write_meme(path, motifs, background=None)`` writes ``{name: (W, 4) probabilities}`` (columns
  A C G T, each row summing to 1) in ``motifs`` order: the ``MEME version 4`` header,
  ``ALPHABET= ACGT``, ``strands: + -``, the background letter frequencies when given, then per
  motif ``MOTIF name`` and ``letter-probability matrix: alength= 4 w= W`` with W rows of 4
  numbers (``%.6g``). Atomic (``epx.io.atomic``).
- ``read_meme(path) -> {name: float64 (W, 4)}`` in file order; ``read_meme_background(path)``
  gives the background frequencies (A C G T) or None where the file has none. Lines the
  reader does not need (``URL``, ``nsites=`` extras, comments) are skipped. A malformed
  file — no ``MEME version`` line, an alphabet other than ACGT, a ``MOTIF`` without a
  matrix, a row of other than 4 numbers, a non-number, a negative probability, a row not
  summing to 1 (± 0.02), fewer rows than ``w=``, a name listed twice, no motif at all — is one
  ``InputError`` naming the file and the line.

Motif sites (``motif_sites.tsv``, the synthetic genome's planted instances; ``epx.synthetic.sequence``):
a tab-separated table with a header, one row per site, columns ``SITE_COLUMNS``: chrom, start,
end (0-based, half-open), strand (+/-: the strand the motif reads on), motif, role
(promoter|enhancer|decoy), target (the gene id or element id the site drives; empty for a
decoy) and score (its log-odds in bits against the background). ``write_motif_sites(path,
table)`` / ``read_motif_sites(path) -> DataFrame`` (errors name the file and line, through
``epx.io.tables``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from epx.errors import InputError
from epx.io.atomic import write_csv, write_text
from epx.io.tables import read_rows

ALPHABET = "ACGT"
ROW_TOLERANCE = 0.02  # MEME files print 3-6 decimals: rows sum to 1 only up to rounding
SITE_COLUMNS = ["chrom", "start", "end", "strand", "motif", "role", "target", "score"]
SITE_ROLES = ("promoter", "enhancer", "decoy")
_MATRIX = re.compile(r"letter-probability matrix:(.*)")
_KEY = re.compile(r"(\w+)=\s*(\S+)")


# ----------------------------------------------------------------------------- MEME writing


def write_meme(path: str | os.PathLike, motifs: Mapping[str, np.ndarray], background: np.ndarray | None = None) -> Path:
    lines = ["MEME version 4", "", f"ALPHABET= {ALPHABET}", "", "strands: + -", ""]
    if background is not None:
        freqs = np.asarray(background, np.float64)
        lines += ["Background letter frequencies", " ".join(f"{b} {f:.6g}" for b, f in zip(ALPHABET, freqs)), ""]
    for name, pwm in motifs.items():
        pwm = np.asarray(pwm, np.float64)
        if not name or any(c.isspace() for c in name):
            raise ValueError(f"motif name {name!r} must be one word")
        if pwm.ndim != 2 or pwm.shape[1] != 4:
            raise ValueError(f"motif {name}: expected a (W, 4) matrix, got shape {pwm.shape}")
        lines += [f"MOTIF {name}", f"letter-probability matrix: alength= 4 w= {len(pwm)}"]
        lines += [" ".join(f"{p:.6g}" for p in row) for row in pwm]
        lines.append("")
    return write_text(Path(path), "\n".join(lines) + "\n")


# ----------------------------------------------------------------------------- MEME reading


class _MemeParser:
    """One pass over the lines; keeps the line number for every error."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError as err:
            raise InputError(f"motif file not found: {path}") from err
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(f"{path}: cannot read it as a MEME text file ({err})") from err
        self.motifs: dict[str, np.ndarray] = {}
        self.background: np.ndarray | None = None

    def fail(self, index: int, problem: str) -> InputError:
        return InputError(f"{self.path}, line {index + 1}: {problem}; see the MEME minimal motif format (meme-suite.org/meme/doc/meme-format.html)")

    def parse(self) -> _MemeParser:
        header = next((i for i, line in enumerate(self.lines) if line.strip()), None)
        if header is None or not self.lines[header].strip().startswith("MEME version"):
            raise self.fail(header or 0, "not a MEME motif file (its first line must be 'MEME version 4')")
        i = header + 1
        while i < len(self.lines):
            i = self._line(i)
        if not self.motifs:
            raise InputError(f"{self.path}: no MOTIF in this MEME file")
        return self

    def _line(self, i: int) -> int:
        text = self.lines[i].strip()
        if text.startswith("ALPHABET"):
            alphabet = text.partition("=")[2].strip()
            if alphabet != ALPHABET:
                raise self.fail(i, f"alphabet {alphabet!r}: only DNA ({ALPHABET}) motifs are read")
        elif text.startswith("Background letter frequencies"):
            return self._background(i + 1)
        elif text.startswith("MOTIF"):
            return self._motif(i)
        return i + 1

    def _background(self, i: int) -> int:
        while i < len(self.lines) and not self.lines[i].strip():
            i += 1
        fields = self.lines[i].split() if i < len(self.lines) else []
        pairs = dict(zip(fields[::2], fields[1::2]))
        try:
            self.background = np.array([float(pairs[b]) for b in ALPHABET])
        except (KeyError, ValueError) as err:
            raise self.fail(min(i, len(self.lines) - 1), f"background frequencies must read 'A p C p G p T p', got {' '.join(fields)!r}") from err
        return i + 1

    def _motif(self, i: int) -> int:
        words = self.lines[i].split()
        if len(words) < 2:
            raise self.fail(i, "MOTIF without a name")
        name = words[1]
        if name in self.motifs:
            raise self.fail(i, f"motif {name} is listed twice")
        j = i + 1
        while j < len(self.lines) and not _MATRIX.match(self.lines[j].strip()):
            if self.lines[j].strip().startswith("MOTIF"):
                break
            j += 1
        if j >= len(self.lines) or not _MATRIX.match(self.lines[j].strip()):
            raise self.fail(i, f"motif {name} has no 'letter-probability matrix:' line")
        keys = dict(_KEY.findall(_MATRIX.match(self.lines[j].strip()).group(1)))
        if keys.get("alength", "4") != "4":
            raise self.fail(j, f"motif {name}: alength= {keys['alength']}, expected 4 (A C G T)")
        if "w" not in keys or not keys["w"].isdigit() or int(keys["w"]) < 1:
            raise self.fail(j, f"motif {name}: the matrix line needs 'w= WIDTH' (a positive whole number)")
        width = int(keys["w"])
        rows = []
        k = j + 1
        while len(rows) < width:
            while k < len(self.lines) and not self.lines[k].strip():
                k += 1
            if k >= len(self.lines) or self.lines[k].strip().startswith("MOTIF"):
                raise self.fail(min(k, len(self.lines) - 1), f"motif {name}: {len(rows)} matrix row(s), w= says {width}")
            rows.append(self._row(k, name))
            k += 1
        self.motifs[name] = np.array(rows)
        return k

    def _row(self, k: int, name: str) -> np.ndarray:
        fields = self.lines[k].split()
        if len(fields) != 4:
            raise self.fail(k, f"motif {name}: {len(fields)} number(s) in a matrix row, expected 4 (A C G T)")
        try:
            row = np.array([float(f) for f in fields])
        except ValueError as err:
            raise self.fail(k, f"motif {name}: non-numeric probability in {self.lines[k].strip()!r}") from err
        if not np.isfinite(row).all() or (row < 0).any():
            raise self.fail(k, f"motif {name}: probabilities must be finite and >= 0, got {self.lines[k].strip()!r}")
        if abs(row.sum() - 1.0) > ROW_TOLERANCE:
            raise self.fail(k, f"motif {name}: a matrix row sums to {row.sum():.4g}, expected 1")
        return row


def read_meme(path: str | os.PathLike) -> dict[str, np.ndarray]:
    return _MemeParser(Path(path)).parse().motifs


def read_meme_background(path: str | os.PathLike) -> np.ndarray | None:
    return _MemeParser(Path(path)).parse().background


# ----------------------------------------------------------------------------- motif sites


def write_motif_sites(path: str | os.PathLike, table: pd.DataFrame) -> Path:
    missing = [c for c in SITE_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"motif site table lacks column(s) {missing}")
    return write_csv(Path(path), table[SITE_COLUMNS], sep="\t", float_format="%.3f")


def read_motif_sites(path: str | os.PathLike) -> pd.DataFrame:
    path = Path(path)
    hint = f"expected the columns {' '.join(SITE_COLUMNS)} (tab-separated, with that header)"
    rows = read_rows(path, what="motif site table", hint=hint, comment=None, header=True, allow_empty=True)
    if rows.header != SITE_COLUMNS:
        raise InputError(f"{path}, line {rows.header_line or 1}: header {rows.header}; {hint}")
    rows.check_width(len(SITE_COLUMNS), len(SITE_COLUMNS), expected=f"{len(SITE_COLUMNS)}")
    start, end = rows.integers(1, "start"), rows.integers(2, "end")
    rows.ordered(start, end, "start", "end")
    return pd.DataFrame(
        {
            "chrom": rows.texts(0, "chrom"),
            "start": start,
            "end": end,
            "strand": rows.choice(3, "strand", ("+", "-")),
            "motif": rows.texts(4, "motif"),
            "role": rows.choice(5, "role", SITE_ROLES),
            "target": rows.texts(6, "target", allow_empty=True),
            "score": rows.floats(7, "score"),
        }
    )
