"""``truth.tsv``: the built-in synthetic dataset's generative facts per gene, read + write.

Contract: ``read_truth(path, columns=None) -> DataFrame`` and ``write_truth(table, path) ->
Path`` (atomic, tab-separated). The file is not part of the input contract: only the
synthetic dataset writes it (``gene_id``, ``chrom``, ``tss``, ``strand``, ``gene_end``,
``program``, ``distal_driven``, ``polycomb``, ...). A reader needs ``gene_id`` (text) and
``distal_driven`` (0/1, the genes a distal enhancer drives); ``columns`` picks what it reads
(both always). A missing or unreadable file, a missing column or a ``distal_driven`` that is
not 0/1 is one ``InputError`` naming the file and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from epx.errors import InputError
from epx.io.atomic import write_csv

FILE_NAME = "truth.tsv"
REQUIRED = ("gene_id", "distal_driven")
HINT = "truth.tsv is the synthetic dataset's own (epx synth writes it); regenerate the folder, or give a TSV with gene_id and distal_driven (0/1)"


def read_truth(path: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    path = Path(path)
    wanted = list(dict.fromkeys([*REQUIRED, *(columns or [])])) if columns is not None else None
    try:
        table = pd.read_csv(path, sep="\t", dtype={"gene_id": str}, usecols=lambda name: wanted is None or name in wanted)
    except FileNotFoundError as err:
        raise InputError(f"{path}: no such file; {HINT}") from err
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputError(f"{path}: not a readable truth table ({type(err).__name__}: {' '.join(str(err).split())[:200]}); {HINT}") from err
    missing = [name for name in (wanted or REQUIRED) if name not in table.columns]
    if missing:
        raise InputError(f"{path}: no {', '.join(missing)} column (found: {', '.join(map(str, table.columns))}); {HINT}")
    distal = pd.to_numeric(table["distal_driven"], errors="coerce")
    bad = ~distal.isin([0, 1])
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise InputError(f"{path}: line {row + 2}: distal_driven {table['distal_driven'].iloc[row]!r} (must be 0 or 1); {HINT}")
    return table.assign(distal_driven=distal.astype(int))


def write_truth(table: pd.DataFrame, path: str | Path) -> Path:
    return write_csv(path, table, sep="\t")
