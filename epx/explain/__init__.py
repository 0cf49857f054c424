"""Interpretation of trained jobs (issue 13): attribution, attention, in-silico perturbation.

``ExplainJob.load(job_dir)`` opens a finished job (net from its checkpoint's provenance, its
data set up); ``epx.explain.adapters`` says, per input builder, how to fetch inputs, predict
per gene, place positions on the genome and define perturbation regions; on top of them:
``attribute`` / ``profile`` / ``gene_tracks`` (``attribution``), ``pcre_table`` /
``graph_attention`` (``attention``), ``perturb`` (``perturb``) and ``attribution_bigwigs``
(``export``). Model-free mark activity and enhancer validation live beside them
(``activity``, ``elements``, ``validation``).

The names below load on first use (PEP 562 ``__getattr__``): importing ``epx.explain`` or one
of its light modules (``epx.explain.elements``) loads neither Lightning nor captum.
"""

from __future__ import annotations

import importlib
import sys
import types

# public name -> the module that defines it
EXPORTS: dict[str, str] = {
    **dict.fromkeys(("ADAPTERS", "REGIONS", "GeneBatch", "Layout", "adapter_for", "register"), "epx.explain.adapters"),
    **dict.fromkeys(("graph_attention", "pcre_table"), "epx.explain.attention"),
    **dict.fromkeys(("METHODS", "Attribution", "GeneTrack", "attribute", "gene_tracks", "mark_tracks", "profile"), "epx.explain.attribution"),
    "attribution_bigwigs": "epx.explain.export",
    "ExplainJob": "epx.explain.job",
    "perturb": "epx.explain.perturb",
}
__all__ = sorted(EXPORTS)


def __getattr__(name: str):
    if name not in EXPORTS:
        raise AttributeError(f"module 'epx.explain' has no attribute {name!r}")
    value = getattr(importlib.import_module(EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *EXPORTS})


class _Package(types.ModuleType):
    """Importing the submodule ``epx.explain.perturb`` sets the package's ``perturb`` to that
    module; the function of the same name keeps the name, as when the package imported it."""

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, types.ModuleType) and EXPORTS.get(name) == value.__name__:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
