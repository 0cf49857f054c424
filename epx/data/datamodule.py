"""The one LightningDataModule: dataset folder + cell + marks + fold → in-memory splits.

Contract: ``EpxDataModule(spec, cell, marks, fold, inputs, target_column, cache_dir, ...)``.
``prepare_data()`` materialises the folder (synthetic), checks every requested file before
any long work, and builds the cell's cache once (locked). ``setup()`` loads the gene table,
assigns chromosome-held-out splits (``spec.folds``), loads the cached tracks of the genes'
chromosomes into memory and asks the model's ``inputs`` builder for one Dataset per split.
Batches come from memory (``ArrayDataset.__getitems__``), never from per-item file reads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
from torch.utils.data import DataLoader

from epx.data.arrays import keep_batch
from epx.data.cache import CellCache
from epx.data.contract import DatasetSpec
from epx.data.folds import assign_splits, fold_record
from epx.data.genes import load_genes
from epx.data.inputs import DataContext
from epx.data.interactions import read_interactions
from epx.data.tracks import SignalTracks

SPLITS = ("train", "val", "test")


class EpxDataModule(L.LightningDataModule):
    def __init__(
        self,
        *,
        spec: DatasetSpec,
        cell: str,
        marks: Sequence[str],
        fold: int,
        inputs: Callable,
        target_column: str,
        cache_dir: str | Path,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        bin_bp: int = 100,
    ):
        super().__init__()
        self.spec, self.cell, self.marks, self.fold = spec, cell, tuple(marks), int(fold)
        self.inputs, self.target_column = inputs, target_column
        self.cache = None
        self.cache_dir, self.bin_bp = Path(cache_dir), bin_bp
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.datasets: dict = {}
        self.genes: pd.DataFrame | None = None
        self.split: pd.Series | None = None

    def _cache(self) -> CellCache:
        if self.cache is None:
            self.cache = CellCache(self.spec, self.cell, self.cache_dir, bin_bp=self.bin_bp)
        return self.cache

    def prepare_data(self) -> None:
        self.spec.materialize()
        self.spec.check([self.cell], self.marks)
        self._cache().ensure(self.marks)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        cache = self._cache()
        genes = load_genes(self.spec.path("tss"), self.spec.path("expression"), self.cell, cache.chrom_sizes)
        folds = dict(self.spec.folds)
        split = assign_splits(genes, self.fold, **folds)
        self.genes, self.split = genes, split
        used = genes["chrom"][split != "unused"].unique()
        tracks = SignalTracks(cache.load(self.marks, chroms=used), self.marks, base_bp=self.bin_bp)
        interactions = read_interactions(self.spec.interactions_path(self.cell))
        self.context = DataContext(tracks, genes, interactions, self.cell, self.marks, self.target_column)
        for name in SPLITS:
            rows = np.flatnonzero((split == name).to_numpy())
            self.datasets[name] = self.inputs(self.context, rows)

    def n_genes(self) -> dict[str, int]:
        return {name: int((self.split == name).sum()) for name in SPLITS}

    def fold_record(self) -> dict:
        return fold_record(self.genes, self.split, self.fold, self.spec.folds.get("scheme", "chromoformer"))

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        dataset = self.datasets[name]
        return DataLoader(
            dataset,
            batch_size=self.batch_size if shuffle else self.eval_batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=getattr(dataset, "collate_fn", keep_batch),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloaders(self) -> dict[str, DataLoader]:
        return {name: self._loader(name, shuffle=False) for name in SPLITS}
