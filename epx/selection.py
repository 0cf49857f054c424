"""What a job studies — cell, mark combination, fold — parsed and validated before any work.

Contract: ``parse_marks(value) -> tuple[str, ...]`` accepts one mark (``H3K4me3``), a
``+``-joined combination (``H3K4me3+H3K27ac``), a list, or ``all``; the result is in the
canonical ``MARKS`` order, so equal combinations are one experiment. ``mark_label(marks)``
is the inverse used in tables (``all`` for the seven). ``check_cell`` and ``check_fold``
raise ``InputError`` listing the valid values. ``n_marks(value)`` is the resolver
``${n_marks:${mark}}`` (registered by ``epx.config``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from omegaconf import ListConfig

from epx.constants import MARKS
from epx.errors import InputError
from epx.ids import check_id


def parse_marks(value) -> tuple[str, ...]:
    if isinstance(value, (list, tuple, ListConfig)):
        items = [str(v) for v in value]
    else:
        text = str(value).strip()
        if text.lower() == "all":
            return MARKS
        items = [p for p in text.replace(",", "+").split("+") if p.strip()]
    items = [i.strip() for i in items]
    unknown = [i for i in items if i not in MARKS]
    if unknown or not items:
        raise InputError(
            f"unknown mark {', '.join(unknown) or repr(value)}; valid marks: {', '.join(MARKS)} "
            "(combine with '+', e.g. mark=H3K4me3+H3K27ac, or mark=all)"
        )
    return tuple(m for m in MARKS if m in items)


def mark_label(marks: Sequence[str]) -> str:
    return "all" if tuple(marks) == MARKS else "+".join(marks)


def check_cell(cell: str, valid: Iterable[str], where: str) -> None:
    check_id(cell, "cell")  # it becomes part of file names (signals/{cell}-…, {cache}/{cell}.h5)
    valid = list(valid)
    if cell not in valid:
        raise InputError(f"unknown cell {cell!r} for {where}; valid cells: {', '.join(valid)}")


def check_fold(fold, n_folds: int) -> int:
    try:
        k = int(fold)
    except (TypeError, ValueError):
        k = -1
    if not 0 <= k < n_folds:
        raise InputError(f"unknown fold {fold!r}; valid folds: {', '.join(map(str, range(n_folds)))}")
    return k


def n_marks(value) -> int:
    """The number of marks of ``value`` (the net's input channels); 1 for a bad one."""
    try:
        return len(parse_marks(value))
    except InputError:
        return 1  # the job's own validation reports the bad mark with the full message
