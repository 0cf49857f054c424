"""A gene is silent only when the whole window its builder reads is zero: a GraphReg gene reads
a tile of megabases (``reach_bp`` 0), so its TSS bin alone must not decide."""

import numpy as np
import pandas as pd

from epx.data.prepare.silence import signal_account


def test_a_gene_is_silent_only_over_the_window_its_builder_reads():
    column = np.zeros((100, 1), np.float32)
    column[80, 0] = 1.0  # signal 3 kb downstream of the TSS bin, none at it
    genes = pd.DataFrame({"gene_id": ["g"], "chrom": ["chr1"], "tss": [5_050]})
    headers = {"H3K27me3": ["chr1"]}
    tss_only = signal_account("E003", {"chr1": column}, genes, ["H3K27me3"], 100, 0, headers)
    assert tss_only.marks["H3K27me3"].genes_silent == 1
    tile = signal_account("E003", {"chr1": column}, genes, ["H3K27me3"], 100, 0, headers, bounds=(np.array([0]), np.array([10_000])))
    assert tile.marks["H3K27me3"].genes_silent == 0
    # the window's end is exclusive: a window ending where the signal starts reads none of it
    short = signal_account("E003", {"chr1": column}, genes, ["H3K27me3"], 100, 0, headers, bounds=(np.array([0]), np.array([8_000])))
    assert short.marks["H3K27me3"].genes_silent == 1
