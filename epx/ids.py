"""Ids that become parts of file names: one safe pattern, one error naming the id.

Contract: ``check_id(value, what) -> str`` returns ``value`` when it is a safe path component
(``SAFE_ID``: a letter or digit first, then letters, digits, ``.``, ``_``, ``-``, ``+``; at most
``MAX_ID`` characters; never ``..``), else raises one ``InputError`` quoting it with ``repr``
(so a ``../`` or invisible whitespace shows) and naming ``what`` it is. Cell ids come from the
data (an expression table's header) and the command line, and are put into paths
(``signals/{cell}-{mark}.bigwig``, ``{cache}/{cell}.h5``): ``cell=../../x`` must never read or
write outside the dataset root and the cache dir.
"""

from __future__ import annotations

import re

from epx.errors import InputError

MAX_ID = 128
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def check_id(value: object, what: str) -> str:
    text = str(value)
    if len(text) > MAX_ID or not SAFE_ID.fullmatch(text) or ".." in text:
        raise InputError(
            f"{what} {text!r} is not a safe id: ids become file names, so they are letters, digits and . _ + - "
            f"(a letter or digit first, no '..', at most {MAX_ID} characters); rename it in the data or the command line"
        )
    return text
