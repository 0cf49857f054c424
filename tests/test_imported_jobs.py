"""Imported job dirs (``epx import graphreg`` / ``epx import chromoformer``, issue 21 part 3) are
used by ``epx predict`` and ``epx explain`` like trained jobs, end to end.

The published files are the reference models of ``../shared/reference`` (random weights, so the
scores mean nothing; what is tested is that the commands run on the imported weights and agree
with each other). Datasets:

- Chromoformer (7 marks, pcHi-C, ``layout=published``): the real E003 slice
  (``../shared/data/roadmap_e003_demo``; its 100 genes lie on 6 chromosomes, hence the balanced
  fold scheme), and, for the enhancer validation that needs an element table, the small
  synthetic dataset (7 marks, interactions, ``elements.tsv``).
- Epi-GraphReg / Epi-CNN (3 tracks): the small synthetic dataset with 3 of its marks, given in
  the file's channel order. Its chromosomes are 1 Mb, so the jobs read 1 Mb windows (both nets
  are convolutional + graph attention, window-agnostic): the same code as 6 Mb, 6x less work.
  The E003 slice does not fit GraphReg: whole hg19 chromosomes in 6 Mb windows for 100 genes.

Tests that need ``../shared`` skip, naming it, where it is absent. The end-to-end tests are
``slow`` (each runs a 5.3 M-parameter or 6-window model over every gene, then captum); the
default suite keeps the mark-order check (``pytest -m slow tests/test_imported_jobs.py`` runs
the rest, ~3.5 min on 2 shared cores).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import E003_DEMO, REPO

REFERENCE = REPO.parent / "shared" / "reference"
GRAPHREG = REFERENCE / "graphreg_published"
CHROMOFORMER = REFERENCE / "chromoformer_published"
RTOL = 1e-4
FILE_ORDER = ["H3K27ac", "H3K9ac", "H3K4me3"]  # the Keras file's channels 0, 1, 2 (not epx's canonical order)
GRAPHREG_DATA = [f"mark={'+'.join(FILE_ORDER)}", "model.inputs.window_bp=1000000", "model.inputs.step_bp=500000"]
SMALL_EXPLAIN = ["attribution", "attribution.max_genes=3", "attribution.n_steps=4", "attention", "attention.max_genes=3"]


def _need(path):
    if not path.exists():
        pytest.skip(f"{path} not found (the reference models and the E003 slice live in ../shared beside the repo)")
    return path


def _rel(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float((np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-12)).max())


def _folder(root, cache) -> list[str]:
    return ["dataset=folder", f"dataset.root={root}", f"paths.cache_dir={cache}", "logger=none"]


def _predict_and_explain(out, *request):
    """``epx predict JOB`` and ``epx explain JOB ...`` as a user runs them; the tables they wrote."""
    from epx.cli import main as cli

    assert cli(["predict", str(out)]) == 0
    assert cli(["explain", str(out), *request, "--no-wandb"]) == 0
    predicted = json.loads((out / "predict" / "as_trained" / "metrics.json").read_text())
    predictions = pd.read_csv(out / "predict" / "as_trained" / "predictions.csv").set_index("gene_id")
    return predicted, predictions


def _explained_predictions_agree(out, predictions, *, classifier: bool) -> pd.DataFrame:
    """explain's forward (the gene score) is predict's prediction: one net, one set of weights."""
    genes = pd.read_csv(out / "explain" / "attribution" / "attribution_genes.tsv", sep="\t")
    score = genes["prediction"].to_numpy()
    if classifier:  # the gene score is the log-odds of "expressed", predictions.csv its probability
        score = 1 / (1 + np.exp(-score))
    np.testing.assert_allclose(score, predictions.loc[genes["gene_id"], "prediction"].to_numpy(), rtol=1e-4, atol=1e-5)
    assert (genes["delta"].abs() <= 0.05).mean() >= 0.6  # IG completeness through the imported weights
    return genes


# ---------------------------------------------------------------- mark order (fast, no dataset)


def test_marks_given_in_the_files_channel_order_meet_the_weights_trained_on_them():
    """epx's data hold marks in the canonical order; ``mark=`` lists the file's channels in the
    file's order, and the first layer's columns are reordered so the outputs are the file's."""
    from epx.imports.chromoformer import (
        batch_from_published,
        read_state_dict,
        reorder_marks,
    )
    from epx.imports.chromoformer import to_net as chromoformer_net
    from epx.imports.graphreg import read_keras, to_net
    from epx.imports.jobdir import file_channels

    inputs, expected = np.load(_need(GRAPHREG / "inputs.npz")), np.load(GRAPHREG / "expected.npz")
    channels = file_channels([f"mark={'+'.join(FILE_ORDER)}"], ("H3K4me3", "H3K27ac", "H3K9ac"))
    assert channels == [2, 0, 1]
    assert file_channels(["mark=all"], tuple("ABC")) == [0, 1, 2] and file_channels([], ("A",)) == [0]
    net = to_net(read_keras(GRAPHREG / "epi_cnn.h5"), "epi_cnn", channels)
    with torch.no_grad():
        y = net(x=torch.from_numpy(inputs["X"][..., channels]).transpose(1, 2)).numpy()  # canonical order in
    assert _rel(y, expected["cnn_y"]) < RTOL

    arrays = dict(np.load(_need(CHROMOFORMER / "inputs.npz")))
    order = [6, 0, 5, 1, 4, 2, 3]  # the job's mark i is the file's column order[i]
    state = read_state_dict(CHROMOFORMER / "regressor.state_dict.pt")
    permuted = {k: (v[..., order] if k.endswith("_feats_" + k.rsplit("_", 1)[-1]) else v) for k, v in arrays.items()}
    with torch.no_grad():
        out = chromoformer_net(reorder_marks(state, order), "regressor.pt")(**batch_from_published(permuted)).numpy()
    assert _rel(out, np.load(CHROMOFORMER / "regressor.expected.npz")["output"]) < RTOL


# ---------------------------------------------------------------- Chromoformer, published layout


@pytest.fixture(scope="module")
def chromoformer_e003(tmp_path_factory):
    from epx.imports.chromoformer import import_chromoformer

    source = _need(CHROMOFORMER / "classifier.state_dict.pt")
    root = tmp_path_factory.mktemp("imported_e003")
    out = root / "classifier"
    import_chromoformer(source, out, overrides=[*_folder(_need(E003_DEMO), root / "cache"), "dataset.folds.scheme=balanced"])
    return out


@pytest.mark.slow  # ~60 s on 2 shared cores (25-30 s idle): import, epx predict over 100 genes, epx explain
def test_imported_chromoformer_predicts_and_explains_on_the_e003_slice(chromoformer_e003):
    out = chromoformer_e003
    predicted, predictions = _predict_and_explain(out, *SMALL_EXPLAIN)
    assert predicted["kind"] == "predict" and predicted["status"] == "ok" and predicted["source_job"] == str(out.resolve())
    assert predicted["model"] == "chromoformer" and predicted["task"] == "classification"
    assert predicted["n_genes"]["test"] > 0 and predictions["prediction"].between(0, 1).all()
    assert predictions["prediction"].std() > 0  # the genes' inputs reach the imported weights
    _explained_predictions_agree(out, predictions, classifier=True)

    # attributions are placed with the published geometry: TSS-anchored promoter bins at every resolution
    profile = pd.read_csv(out / "explain" / "attribution" / "attribution_profile.tsv", sep="\t")
    for r in (2000, 500, 100):
        offsets = profile.loc[profile["input"] == f"promoter_{r}", "offset_bp"]
        assert offsets.min() == -20_000 and offsets.max() == 20_000 - r
        assert (profile["input"] == f"pcres_{r}").any()
    # every attended pCRE is a partner of the gene's own promoter anchor in the pcHi-C file (published selection)
    attention = pd.read_csv(out / "explain" / "attention" / "pcre_attention.tsv", sep="\t")
    bedpe = pd.read_csv(E003_DEMO / "interactions" / "E003.bedpe", sep="\t", header=None)
    partners = set(zip(bedpe[6], bedpe[3], bedpe[4], bedpe[5]))  # name = gene id, then the pCRE anchor
    assert len(attention) > 0 and all(row in partners for row in zip(attention["gene_id"], attention["chrom"], attention["start"], attention["end"]))
    heads = [c for c in attention.columns if c.startswith("attention_l")]
    assert len(heads) == 6 * 8 and attention[heads].notna().all().all()


@pytest.mark.slow  # ~60 s on 2 shared cores: a 5.3 M-parameter net over every synthetic gene, then validation's IG
def test_imported_chromoformer_explains_pcres_against_the_element_table(small_synthetic, tmp_path):
    from epx.imports.chromoformer import import_chromoformer

    out = tmp_path / "regressor"
    import_chromoformer(_need(CHROMOFORMER / "regressor.state_dict.pt"), out, overrides=_folder(small_synthetic, tmp_path / "cache"))
    assert json.loads((out / "metrics.json").read_text())["source"]["channels"] == [
        "H3K4me1", "H3K4me3", "H3K9me3", "H3K27me3", "H3K36me3", "H3K27ac", "H3K9ac"]
    predicted, predictions = _predict_and_explain(
        out, "attribution", "attribution.max_genes=3", "attribution.n_steps=4",
        "perturb", "perturb.marks=[H3K27ac]", "perturb.n_factors=2", "perturb.max_genes=3",
        "validation", "validation.n_steps=4")
    assert predicted["status"] == "ok" and predicted["task"] == "regression"
    _explained_predictions_agree(out, predictions, classifier=False)
    curves = pd.read_csv(out / "explain" / "perturb" / "perturb_curves.tsv", sep="\t")
    assert {"promoter", "flanks", "pcres"} <= set(curves["region"])
    pooled = pd.read_csv(out / "explain" / "validation" / "validation_pooled.tsv", sep="\t").set_index("scorer")
    assert {"pcre_attribution", "pcre_attention", "distance", "abc"} <= set(pooled.index)
    assert (pooled.loc[["pcre_attribution", "pcre_attention"], "n_unseen"] == 0).all()  # every element sits in a pCRE slot
    assert pooled["auprc"].between(0, 1).all()


# ---------------------------------------------------------------- Epi-GraphReg and Epi-CNN


@pytest.mark.slow  # ~60-90 s each on 2 shared cores: 23 windows of 1 Mb at 100 bp through the 3 splits, then IG
@pytest.mark.parametrize("name", ["epi_graphreg", "epi_cnn"])
def test_imported_graphreg_models_predict_and_explain(name, small_synthetic, tmp_path, capsys):
    from epx.imports.graphreg import import_graphreg

    out = tmp_path / name
    record = import_graphreg(_need(GRAPHREG / f"{name}.h5"), out, overrides=[*_folder(small_synthetic, tmp_path / "cache"), *GRAPHREG_DATA])
    assert record.marks == ["H3K4me3", "H3K27ac", "H3K9ac"] and record.extra["source"]["channels"] == FILE_ORDER
    request = SMALL_EXPLAIN if name == "epi_graphreg" else SMALL_EXPLAIN[:3]  # Epi-CNN has no attention
    predicted, predictions = _predict_and_explain(out, *request)
    assert predicted["kind"] == "predict" and predicted["status"] == "ok"
    assert predicted["model"] == ("graphreg_published" if name == "epi_graphreg" else "epi_cnn")
    assert np.isfinite(predictions["prediction"]).all() and predictions["prediction"].std() > 0
    _explained_predictions_agree(out, predictions, classifier=False)
    if name == "epi_cnn":  # asked for what it has not: one line before any data work
        from epx.cli import main as cli

        assert cli(["explain", str(out), "attention", "--no-wandb"]) == 2
        assert "analysis attention applies to Chromoformer" in capsys.readouterr().err
    if name == "epi_graphreg":  # the paper's layer: edge weights plus the node's own term sum to 1 per head
        attention = pd.read_csv(out / "explain" / "attention" / "graph_attention.tsv", sep="\t")
        totals = attention.groupby(["gene", "layer", "head"])["weight"].sum()
        assert len(totals) == 3 * 2 * 4 and np.allclose(totals, 1, atol=1e-5)
