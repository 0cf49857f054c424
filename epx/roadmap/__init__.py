"""Roadmap Epigenomics data in: the download manifest, the downloader and the CLI.

``manifest.yaml`` lists the URLs (Roadmap portal, GENCODE v19, UCSC hg19 chrom sizes);
``download.py`` fetches a cells × marks grid resumably and verified; ``cli.py`` adds the
``epx download`` and ``epx convert`` subcommands. Converters live in ``epx.convert``.
"""
