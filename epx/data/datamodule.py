"""The one LightningDataModule: dataset folder + cell + marks + fold → in-memory splits.

Contract: ``EpxDataModule(spec, cell, marks, fold, inputs, target_column, cache_dir, ...)``,
built from ``conf/data/default.yaml`` (``marks`` may be ``A+B``, a list or ``all``).
``prepare_data()`` materialises the folder (synthetic), checks the cells and every requested
file before any long work, and builds the cell's cache once (locked). ``setup()`` loads the gene table,
assigns chromosome-held-out splits (``spec.folds``), loads the cached tracks of the genes'
chromosomes into memory and asks the model's ``inputs`` builder for one Dataset per split.
Batches come from memory (``ArrayDataset.__getitems__``), never from per-item file reads.

Cross-cell-type mode (``test_cell``): train and validate on ``cell``; the test split holds the
same held-out chromosomes but reads ``test_cell``'s signals, interactions and expression —
meaningful only when both cells' signals are comparably normalised (README).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
from torch.utils.data import DataLoader

from epx.data.inputs.arrays import keep_batch
from epx.data.prepare.cache import CellCache
from epx.data.prepare.contract import DatasetSpec
from epx.data.prepare.folds import assign_splits, fold_record
from epx.data.prepare.genes import load_genes
from epx.data.inputs.context import DataContext
from epx.selection import check_cell, parse_marks
from epx.data.tracks import SignalTracks

SPLITS = ("train", "val", "test")


class EpxDataModule(L.LightningDataModule):
    def __init__(
        self,
        *,
        spec: DatasetSpec,
        cell: str,
        marks: str | Sequence[str],
        fold: int,
        inputs: Callable,
        target_column: str,
        cache_dir: str | Path,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        bin_bp: int = 100,
        test_cell: str | None = None,
    ):
        super().__init__()
        self.spec, self.cell, self.marks, self.fold = spec, str(cell), parse_marks(marks), int(fold)
        self.inputs, self.target_column = inputs, target_column
        self.test_cell = str(test_cell) if test_cell and str(test_cell) != self.cell else None
        self.caches: dict[str, CellCache] = {}
        self.cache_dir, self.bin_bp = Path(cache_dir), bin_bp
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.datasets: dict = {}
        self.genes: pd.DataFrame | None = None
        self.split: pd.Series | None = None

    @property
    def cells(self) -> list[str]:
        return [self.cell] + ([self.test_cell] if self.test_cell else [])

    def _cache(self, cell: str) -> CellCache:
        if cell not in self.caches:
            self.caches[cell] = CellCache(self.spec, cell, self.cache_dir, bin_bp=self.bin_bp)
        return self.caches[cell]

    @property
    def fingerprint(self) -> str:
        """The cache fingerprint of the dataset as this job reads it (inputs + binning)."""
        return self._cache(self.cell).dir.name

    def check_cells(self) -> None:
        """Folders without a fixed cell list: a cell must be a column of the expression table."""
        path = self.spec.path("expression")
        if path.exists():
            header = path.open().readline().rstrip("\n").split("\t")
            for cell in self.cells:
                check_cell(cell, [c for c in header if c != "gene_id"], f"{path} (its expression columns)")

    def prepare_data(self) -> None:
        self.spec.materialize()
        self.check_cells()
        self.spec.check(self.cells, self.marks)
        for cell in self.cells:
            self._cache(cell).ensure(self.marks)

    def _context(self, cell: str, genes: pd.DataFrame, chroms) -> DataContext:
        tracks = SignalTracks(self._cache(cell).load(self.marks, chroms=chroms), self.marks, base_bp=self.bin_bp)
        return DataContext(tracks, genes, self.spec.contacts(cell), cell, self.marks, self.target_column, cage=self.spec.cage_path(cell))

    def _genes(self, cell: str) -> pd.DataFrame:
        return load_genes(self.spec.path("tss"), self.spec.path("expression"), cell, self._cache(cell).chrom_sizes)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        genes = self._genes(self.cell)
        split = assign_splits(genes, self.fold, **dict(self.spec.folds))
        self.genes, self.split = genes, split
        context = self._context(self.cell, genes, genes["chrom"][split != "unused"].unique())
        self.tables = {name: genes for name in SPLITS}
        for name in SPLITS:
            if name == "test" and self.test_cell:
                continue
            self.datasets[name] = self.inputs(context, np.flatnonzero((split == name).to_numpy()))
        if self.test_cell:
            # same held-out chromosomes, the other cell's signal, interactions and expression
            test_genes = self._genes(self.test_cell)
            test_chroms = set(genes["chrom"][split == "test"])
            rows = np.flatnonzero(test_genes["chrom"].isin(test_chroms).to_numpy())
            self.tables["test"] = test_genes
            self.datasets["test"] = self.inputs(self._context(self.test_cell, test_genes, sorted(test_chroms)), rows)

    def n_genes(self) -> dict[str, int]:
        n = {name: int((self.split == name).sum()) for name in SPLITS}
        if self.test_cell:
            n["test"] = int(self.tables["test"]["chrom"].isin(set(self.genes["chrom"][self.split == "test"])).sum())
        return n

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
