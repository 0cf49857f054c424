"""Hi-C contact maps for GraphReg's graph: readers (``maps``: .hic via hic-straw, .cool/.mcool via
cooler, at 5 kb) and a distance-stratified significance filter (``significance``) writing BEDPE
with ``score_kind: qvalue``. HiC-DC+'s own calls import through ``epx convert interactions
--format hicdcplus``."""
