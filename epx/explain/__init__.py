"""Interpretation of trained jobs (issue 13): attribution, attention, in-silico perturbation.

``ExplainJob.load(job_dir)`` opens a finished job (net from its checkpoint's provenance, its
data set up); ``epx.explain.adapters`` says, per input builder, how to fetch inputs, predict
per gene, place positions on the genome and define perturbation regions; on top of them:
``attribute`` / ``profile`` / ``gene_tracks`` (``attribution``), ``pcre_table`` /
``graph_attention`` (``attention``), ``perturb`` (``perturb``) and ``attribution_bigwigs``
(``export``). Model-free mark activity and enhancer validation live beside them
(``activity``, ``elements``, ``validation``).
"""

from epx.explain.adapters import ADAPTERS, REGIONS, GeneBatch, Layout, adapter_for, register
from epx.explain.attention import graph_attention, pcre_table
from epx.explain.attribution import METHODS, Attribution, GeneTrack, attribute, gene_tracks, mark_tracks, profile
from epx.explain.export import attribution_bigwigs
from epx.explain.job import ExplainJob
from epx.explain.perturb import perturb

__all__ = [
    "ADAPTERS", "METHODS", "REGIONS", "Attribution", "ExplainJob", "GeneBatch", "GeneTrack", "Layout", "adapter_for",
    "attribute", "attribution_bigwigs", "gene_tracks", "graph_attention", "mark_tracks", "pcre_table", "perturb", "profile",
    "register",
]
