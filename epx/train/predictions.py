"""Per-gene predictions of a trained module over every split: what ``predictions.csv`` holds.

Contract: ``prediction_table(trainer, module, dm) -> DataFrame[gene_id, chrom, split, target,
prediction]``, one row per gene of each non-empty split, in the DataModule's split order
(train, val, test) and batch order. The module predicts with the weights it holds now. Both
a training job (``epx.run``) and a re-scoring (``epx predict``) write their table with it, so
the two are comparable row for row.
"""

from __future__ import annotations

import lightning as L
import pandas as pd
import torch


def prediction_table(trainer: L.Trainer, module: L.LightningModule, dm) -> pd.DataFrame:
    frames = []
    for split, loader in dm.predict_dataloaders().items():
        if len(loader.dataset) == 0:
            continue
        outs = trainer.predict(module, dataloaders=loader, ckpt_path=None)
        gene = torch.cat([o["gene"] for o in outs]).numpy()
        table = dm.tables[split]
        frames.append(
            pd.DataFrame(
                {
                    "gene_id": table["gene_id"].to_numpy()[gene],
                    "chrom": table["chrom"].to_numpy()[gene],
                    "split": split,
                    "target": torch.cat([o["target"] for o in outs]).numpy(),
                    "prediction": torch.cat([o["prediction"] for o in outs]).numpy(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def metrics_of_test(results: list[dict]) -> dict[str, float]:
    """``trainer.test``'s ``test/<name>`` values as ``{name: float}``."""
    return {k.split("/", 1)[1]: float(v) for k, v in (results[0] if results else {}).items() if k.startswith("test/")}
