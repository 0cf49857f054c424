"""Atomic writers for a job's outputs (metrics.json, predictions.csv, folds.json).

Each file is written to a temp file in the same directory and renamed into place, so a
killed job leaves either the previous complete file or none — never a truncated one that
``epx summarize`` or a later job would trust.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd


def _atomic(path: Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            write(handle)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_json(path: Path, data: dict) -> Path:
    return _atomic(path, lambda h: json.dump(data, h, indent=2, default=str))


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    return _atomic(path, lambda h: frame.to_csv(h, index=False))
