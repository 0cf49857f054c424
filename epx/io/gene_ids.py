"""Gene ids: one normaliser, so the TSS file, the expression table and the converters join.

Contract: ``normalise_gene_ids(ids) -> Series`` (same index as ``ids`` when it is a Series)
drops an Ensembl version suffix: a trailing ``.N`` (``ENSG00000116213.11`` →
``ENSG00000116213``) or a ``.N`` just before GENCODE's ``_PAR_Y`` tag, keeping the tag
(``ENSG00000182378.14_PAR_Y`` → ``ENSG00000182378_PAR_Y``). GENCODE lists each
pseudo-autosomal gene twice, on chrX and (tagged ``_PAR_Y``) on chrY; keeping the tag stops
the chrY copy from colliding with its chrX twin. Ids without a version pass unchanged;
missing ids (NaN/None) stay missing, so callers can report them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pandas as pd

PAR_Y = "_PAR_Y"
_VERSION = re.compile(rf"\.\d+(?=(?:{PAR_Y})?$)")


def normalise_gene_ids(ids: Iterable[str] | pd.Series) -> pd.Series:
    series = ids if isinstance(ids, pd.Series) else pd.Series(list(ids), dtype=object)
    text = series.astype(str).where(series.notna())  # pandas < 3 would turn NaN into "nan"
    return text.str.replace(_VERSION, "", regex=True)
