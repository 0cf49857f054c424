"""epx's ``model.inputs.layout=published`` vs the original Chromoformer dataset, on the E003 slice.

Runs the ORIGINAL ``chromoformer/data.py`` (``ChromoformerDataset``, imported from a checkout
of github.com/dohlee/chromoformer given by ``--original``) on its own demo inputs
(``demo/demo_meta.csv`` and the per-bp ``demo/demo_data/*.npy``), and epx's published layout
on ``../shared/data/roadmap_e003_demo`` (the same 100 genes as bigWigs + BEDPE), and prints
the max absolute difference per tensor and resolution, over every gene, plus how many genes'
pCRE sets (regions, order, scores) differ.

    python benchmarks/compare_chromoformer_published.py --original /path/to/chromoformer-checkout

Nothing of the original is copied into epx: it is imported from the checkout at run time.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
E003 = REPO.parent / "shared" / "data" / "roadmap_e003_demo"


def original_items(checkout: Path) -> dict:
    spec = importlib.util.spec_from_file_location("chromoformer_data", checkout / "chromoformer" / "data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import pandas as pd

    meta = checkout / "demo" / "demo_meta.csv"
    genes = pd.read_csv(meta).gene_id.tolist()
    ds = module.ChromoformerDataset(str(meta), str(checkout / "demo" / "demo_data"), genes)
    return {g: ds[i] for i, g in enumerate(genes)}


def epx_batch(tmp: Path):
    from hydra.utils import instantiate

    from epx.config import compose

    cfg = compose(["experiment=chromoformer_paper", "dataset=folder", f"dataset.root={E003}", "dataset.folds.scheme=balanced",
                   "mark=all", "cell=E003", f"paths.cache_dir={tmp}", "logger=none"])
    dm = instantiate(cfg.data, target_column="label")
    dm.prepare_data()
    dm.setup()
    out = {}
    for ds in dm.datasets.values():
        batch = ds.__getitems__(np.arange(len(ds)))
        ids = dm.genes["gene_id"].to_numpy()[batch["gene"].numpy()]
        for k, gene in enumerate(ids):
            out[gene] = (batch["x"], k)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--original", type=Path, required=True, help="a checkout of github.com/dohlee/chromoformer (with demo/)")
    args = parser.parse_args(argv)
    if not (E003 / "tss.bed").exists():
        print(f"the E003 slice is not at {E003}", file=sys.stderr)
        return 2
    theirs = original_items(args.original)
    with tempfile.TemporaryDirectory() as tmp:
        ours = epx_batch(Path(tmp))
    worst: dict[str, float] = {}
    differ = []
    for gene, item in theirs.items():
        x, k = ours[gene]
        n = int((~item["interaction_masks"][2000][0, 0]).sum()) - 1
        got_n = int(x["pcre_mask"][k].sum())
        freq = item["interaction_freq"][0, 1 : n + 1].numpy()
        if got_n != n or not np.allclose(x["freq"][k, :n].numpy(), freq, atol=1e-6):
            differ.append(gene)
            continue
        for r in (2000, 500, 100):
            pairs = {
                "promoter": (x["promoter"][r][k].T, item["promoter_feats"][r][0]),
                "pcres": (x["pcres"][r][k, :n].transpose(1, 2), item["pcre_feats"][r][:n]),
                "pcre_bin_mask": (x["pcre_bin_mask"][r][k, :n], ~item["pcre_pad_masks"][r][:n, 0].all(dim=-2)),
            }
            for name, (a, b) in pairs.items():
                diff = float((a.float() - b.float()).abs().max()) if a.numel() else 0.0
                worst[f"{name}[{r}]"] = max(worst.get(f"{name}[{r}]", 0.0), diff)
        worst["freq"] = max(worst.get("freq", 0.0), float(np.abs(x["freq"][k, :n].numpy() - freq).max(initial=0.0)))
        worst["pcre_mask"] = max(worst.get("pcre_mask", 0.0), float(x["pcre_mask"][k, n:].any()))
    print(f"{len(theirs)} genes, {sum(int(x[0]['pcre_mask'][x[1]].sum()) for x in ours.values())} pCREs (epx); "
          f"genes whose pCRE set differs: {len(differ)} {differ[:5]}")
    for name, value in worst.items():
        print(f"  max |epx - original| {name:<20s} {value:.3g}")
    return 0 if not differ else 1


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    raise SystemExit(main())
