"""epx: Hydra-configured experiments that predict gene expression from histone-mark ChIP-seq.

Subpackages: ``epx.data`` (input contract, cache, folds, datasets), ``epx.models`` (plain
``nn.Module`` nets), ``epx.train`` (the LightningModule and objectives), ``epx.analysis``
(grid summaries). ``epx.run.train`` is the Hydra task function behind ``launch.py``.
"""

__version__ = "0.1.0"
