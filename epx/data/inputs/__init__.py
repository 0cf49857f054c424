"""Input builders, one per model family: how a model's tensors are made from in-memory tracks.

``context`` (``DataContext``, ``target_array``), ``arrays`` (the in-memory batch Dataset),
``promoter`` (promoter CNN, linear), ``chromoformer`` (+ ``pcres``), ``graphreg`` (6 Mb
windows, contact graph, tiling). A builder is configured under ``model.inputs`` and called
``builder(context, rows) -> Dataset``.
"""
