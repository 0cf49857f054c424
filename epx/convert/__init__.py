"""Converters from the formats labs publish into the dataset contract (DESIGN §2.1).

One module per source format: ``tagalign`` (reads → per-bp read-depth bigWig), ``gtf``
(GENCODE/Ensembl annotation → ``tss.bed``), ``interactions`` (pcHi-C / HiChIP /
HiCDCPlus tables → BEDPE), ``expression`` (Roadmap RPKM matrix → ``expression.tsv``).

They parse the source format and nothing else: every output is written by the contract
format's own writer in ``epx.io`` (atomically, so an interrupted conversion never leaves a
half-written file under the final name), gene ids go through ``epx.io.gene_ids`` and
chromosome names through ``epx.io.naming``, the same rules the dataset readers apply.
"""
