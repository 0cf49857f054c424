"""The one LightningDataModule: dataset folder + cell + marks + fold → in-memory splits.

Contract: ``EpxDataModule(spec, cell, marks, fold, inputs, target_column, cache_dir, ...)``,
built from ``conf/data/default.yaml`` (``marks`` may be ``A+B``, a list or ``all``).
``account_inputs()`` materialises the folder (synthetic), checks the cells and every requested
file, and accounts for every gene and interaction (``epx.data.prepare.genes.GeneAccount``:
used in a split, or dropped for a named reason; ``InteractionAccount``: read, kept, matched,
genes linked). The builder declares what it needs (``epx.data.inputs.protocol.InputBuilder``,
checked when the DataModule is built): its ``sources`` (``epx.data.sources.SOURCES``: only
those are checked, prepared and loaded; a builder without ``contacts`` never reads the
interactions, one without ``tracks`` never builds the histone cache), its
``contact_tolerance_bp`` and ``requires_contacts`` (contacts that reach no gene refuse the
job; Epi-CNN reads them only to score GraphReg's "contact" bins, so it sets False). Each
source's cheap check (e.g. ``genome.fa`` present and of the right assembly) runs here too.
Cheap: no cache is built. ``input_report()`` is what the job
record keeps of it, ``write_dropped(path)`` the ``genes_dropped.tsv``. ``prepare_data()``
refuses, before any long work, a job that would drop more than ``max_dropped_fraction`` of
the TSS file's genes or whose interactions reach no gene, then builds the cell's cache once
(locked), for each declared source. ``setup()`` loads the declared sources for the used
genes' chromosomes into memory (``DataContext.sources``) and asks the model's ``inputs``
builder for one Dataset per split. Batches come from memory
(``ArrayDataset.__getitems__``), never from per-item file reads; with ``pin_memory`` (``auto``:
when the trainer runs on CUDA) they are pinned so the copies to the GPU are non-blocking.

Genes whose TSS is closer to a chromosome end than the builder's ``reach_bp`` (how far its
window reaches from the TSS) are dropped (``min_end_distance_bp`` overrides it, e.g. to give
every model of a comparison the same genes); chromosomes matching ``exclude_chroms`` (regular
expressions; chrM and unplaced/alt contigs by default) are left out.

Cross-cell-type mode (``test_cell``): train and validate on ``cell``; the test split holds the
same held-out chromosomes but reads ``test_cell``'s signals, interactions and expression —
meaningful only when both cells' signals are comparably normalised (README).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
from torch.utils.data import DataLoader

from epx.data.inputs.context import DataContext
from epx.data.inputs.protocol import check_builder
from epx.data.prepare.cache import CellCache
from epx.data.prepare.cache import fingerprint as cache_fingerprint
from epx.data.prepare.contract import DatasetSpec
from epx.data.prepare.folds import assign_splits, fold_record
from epx.data.prepare.genes import DEFAULT_EXCLUDE, GeneAccount, account_genes, write_dropped
from epx.data.prepare.interactions import ContactFilter, InteractionAccount
from epx.data.prepare.silence import check_lengths, signal_account
from epx.data.sources import SOURCES
from epx.errors import InputError
from epx.io.atomic import write_csv
from epx.io.bedpe import empty_interactions
from epx.io.chrom_sizes import read_chrom_sizes
from epx.io.fingerprint import fingerprint as content_fingerprint
from epx.selection import check_cell, parse_marks

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
        pin_memory: bool | str = "auto",
        bin_bp: int = 100,
        cache_dtype: str = "float32",
        test_cell: str | None = None,
        max_dropped_fraction: float = 0.05,
        max_silent_fraction: float = 0.9,
        exclude_chroms: Sequence[str] = DEFAULT_EXCLUDE,
        min_end_distance_bp: int | None = None,
    ):
        super().__init__()
        check_builder(inputs, tuple(SOURCES))
        self.spec, self.cell, self.marks, self.fold = spec, str(cell), parse_marks(marks), int(fold)
        self.inputs, self.target_column = inputs, target_column
        self.test_cell = str(test_cell) if test_cell and str(test_cell) != self.cell else None
        self.caches: dict[str, CellCache] = {}
        self.cache_dir, self.bin_bp = Path(cache_dir), bin_bp
        self.cache_dtype = cache_dtype
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.datasets: dict = {}
        self.genes: pd.DataFrame | None = None
        self.split: pd.Series | None = None
        self.max_dropped_fraction = float(max_dropped_fraction)
        self.max_silent_fraction = float(max_silent_fraction)
        self.signal_accounts: dict = {}
        self.exclude_chroms = tuple(exclude_chroms or ())
        self.min_end_distance_bp = min_end_distance_bp
        self.accounts: dict[str, GeneAccount] | None = None
        self.contact_accounts: dict[str, InteractionAccount] = {}
        self.contacts: dict[str, pd.DataFrame] = {}
        self._genome_cache = None

    @property
    def sources(self) -> tuple[str, ...]:
        """The sources this job's builder reads (the only ones checked, prepared, loaded)."""
        return tuple(self.inputs.sources)

    @property
    def cells(self) -> list[str]:
        return [self.cell] + ([self.test_cell] if self.test_cell else [])

    def cell_cache(self, cell: str) -> CellCache:
        """The cell's histone cache (cheap to make: nothing is built until ``ensure``)."""
        if cell not in self.caches:
            self.caches[cell] = CellCache(self.spec, cell, self.cache_dir, bin_bp=self.bin_bp, dtype=self.cache_dtype)
        return self.caches[cell]

    def chrom_sizes(self, cell: str | None = None) -> dict[str, int]:
        """The dataset's chromosome sizes as this job reads them (``chrom.sizes``, else the
        cell's bigWig headers), in the dataset's naming."""
        return dict(self.cell_cache(cell or self.cell).chrom_sizes)

    def genome_cache(self):
        """The dataset's cell-independent genome cache (the ``genome`` source)."""
        if self._genome_cache is None:
            from epx.data.prepare.genome import GenomeCache

            self._genome_cache = GenomeCache(self.spec, self.cache_dir)
        return self._genome_cache

    @property
    def fingerprint(self) -> str:
        """The cache fingerprint of the dataset as this job reads it (inputs + binning)."""
        return self.cell_cache(self.cell).dir.name

    def fingerprint_as(self, dtype: str) -> str:
        """The fingerprint this dataset's cache would have stored as ``dtype``: what a job
        trained on another ``data.cache_dtype`` recorded, if the inputs are unchanged."""
        cache = self.cell_cache(self.cell)
        return cache_fingerprint(self.spec, cache.chrom_sizes, self.bin_bp, dtype)

    def input_files(self) -> dict[str, Path]:
        """Every file this job reads, by its name relative to the dataset root."""
        spec = self.spec
        paths = [spec.path("tss"), spec.path("expression"), spec.path("chrom_sizes")]
        for cell in self.cells:
            if {"tracks", "windows"} & set(self.sources):
                paths += [spec.signal_path(cell, mark) for mark in self.marks]
            if "contacts" in self.sources:
                paths.append(spec.interactions_path(cell))
            paths.append(spec.path("cage", cell=cell))
        if "genome" in self.sources:
            paths.append(spec.path("genome"))
        return {os.path.relpath(path, spec.root): path for path in paths if path.is_file()}

    def input_fingerprints(self) -> dict[str, dict]:
        """``{name: content fingerprint}`` of ``input_files()`` (``epx.io.fingerprint``): what a
        checkpoint's provenance records, so ``epx predict`` can name the inputs that changed."""
        return {name: content_fingerprint(path) for name, path in self.input_files().items()}

    def check_cells(self) -> None:
        """Folders without a fixed cell list: a cell must be a column of the expression table."""
        path = self.spec.path("expression")
        if path.exists():
            with path.open() as f:
                header = f.readline().rstrip("\n").split("\t")
            for cell in self.cells:
                check_cell(cell, [c for c in header if c != "gene_id"], f"{path} (its expression columns)")

    @property
    def reach_bp(self) -> int:
        """How far this job's windows reach from a TSS (genes nearer a chromosome end are dropped)."""
        if self.min_end_distance_bp is not None:
            return int(self.min_end_distance_bp)
        return int(self.inputs.reach_bp)

    def _account(self, cell: str) -> GeneAccount:
        cache = self.cell_cache(cell)
        return account_genes(
            self.spec.path("tss"),
            self.spec.path("expression"),
            cell,
            cache.chrom_sizes,
            signal_chroms=self.spec.signal_chroms(cell, self.marks, cache.chrom_sizes),
            exclude_chroms=self.exclude_chroms,
            flank_bp=self.reach_bp,
            exact_names=self.spec.exact_names,
        )

    def _used_rows(self, cell: str) -> np.ndarray:
        """Gene-table rows this job uses for ``cell``: every split of the training cell; the
        test chromosomes' genes of a cross-cell ``test_cell``."""
        if cell == self.cell:
            return np.flatnonzero((self.split != "unused").to_numpy())
        test_chroms = set(self.genes["chrom"][self.split == "test"])
        return np.flatnonzero(self.accounts[cell].genes["chrom"].isin(test_chroms).to_numpy())

    def account_inputs(self) -> dict[str, GeneAccount]:
        """Every gene and interaction accounted for; cheap (no cache build), computed once."""
        if self.accounts is not None:
            return self.accounts
        self.spec.materialize()
        self.check_cells()
        self.spec.check(self.cells, self.marks)
        if {"tracks", "windows"} & set(self.sources):
            self._check_lengths()
        accounts = {cell: self._account(cell) for cell in self.cells}
        genes = accounts[self.cell].genes
        try:
            split = assign_splits(genes, self.fold, **dict(self.spec.folds))
        except InputError:
            # the real cause first: genes lost to ids that match nothing leave too few for the folds
            for account in accounts.values():
                account.check(self.max_dropped_fraction)
            raise
        accounts[self.cell].drop_unassigned((split == "unused").to_numpy())
        self.genes, self.split, self.accounts = genes, split, accounts
        for cell in self.cells:
            for name in self.sources:
                SOURCES[name].check(self, cell)
            if "contacts" not in self.sources:  # e.g. a promoter model: the interactions are not read at all
                self.contacts[cell] = ContactFilter().apply(empty_interactions())
                continue
            contacts, account = self.spec.contacts(cell, chroms=self.cell_cache(cell).chrom_sizes)
            account.link(accounts[cell].genes.iloc[self._used_rows(cell)], contacts, tolerance_bp=int(self.inputs.contact_tolerance_bp))
            self.contacts[cell], self.contact_accounts[cell] = contacts, account
        for account in accounts.values():
            account.log()
        return accounts

    def input_report(self) -> dict:
        """The job record's ``genes`` and ``interactions`` (a cross-cell test cell's under ``test_cell``)."""
        accounts = self.account_inputs()
        genes = accounts[self.cell].summary(self.split)
        interactions = self.contact_accounts[self.cell].summary() if self.cell in self.contact_accounts else {}
        if self.test_cell:
            genes["test_cell"] = {**accounts[self.test_cell].summary(), "used": len(self._used_rows(self.test_cell))}
            if self.test_cell in self.contact_accounts:
                interactions["test_cell"] = self.contact_accounts[self.test_cell].summary()
        return {"genes": genes, "interactions": interactions}

    def write_dropped(self, path: str | Path) -> Path:
        return write_dropped(self.account_inputs(), path)

    def check_inputs(self) -> None:
        """Refuse a job that would lose too many genes, or whose interactions reach no gene."""
        for account in self.account_inputs().values():
            account.check(self.max_dropped_fraction)
        if self.inputs.requires_contacts:
            for account in self.contact_accounts.values():
                account.check()

    def prepare_data(self) -> None:
        self.check_inputs()
        for cell in self.cells:
            for name in self.sources:
                SOURCES[name].prepare(self, cell)

    def _context(self, cell: str, genes: pd.DataFrame, chroms) -> DataContext:
        chroms = list(chroms)
        sources = {name: SOURCES[name].load(self, cell, chroms) for name in self.sources}
        return DataContext(genes, cell, self.marks, self.target_column, sources, cage=self.spec.cage_path(cell))

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.account_inputs()
        genes, split = self.genes, self.split
        context = self._context(self.cell, genes, genes["chrom"][split != "unused"].unique())
        self._check_signals(self.cell, context, genes[(split != "unused").to_numpy()])
        self.tables = {name: genes for name in SPLITS}
        for name in SPLITS:
            if name == "test" and self.test_cell:
                continue
            self.datasets[name] = self.inputs(context, np.flatnonzero((split == name).to_numpy()), split=name)
        if self.test_cell:
            # same held-out chromosomes, the other cell's signal, interactions and expression
            test_genes = self.accounts[self.test_cell].genes
            rows = self._used_rows(self.test_cell)
            self.tables["test"] = test_genes
            test_chroms = sorted(set(genes["chrom"][split == "test"]))
            test_context = self._context(self.test_cell, test_genes, test_chroms)
            self._check_signals(self.test_cell, test_context, test_genes.iloc[rows])
            self.datasets["test"] = self.inputs(test_context, rows, split="test")

    def _check_lengths(self) -> None:
        """chrom sizes vs every bigWig header (vs the FASTA): one error naming both lengths."""
        sizes_path = self.spec.path("chrom_sizes")
        if sizes_path.exists():
            sizes, what = self.chrom_sizes(), str(sizes_path)
        else:  # the sizes are the headers' union: compare every header with the first
            first = self.spec.signal_path(self.cell, self.marks[0])
            sizes, what = read_chrom_sizes(first), f"the header of {first}"
        check_lengths(self.spec, self.cells, self.marks, sizes, what)

    def _check_signals(self, cell: str, context: DataContext, genes: pd.DataFrame) -> None:
        """Per mark: genes whose window reads only zeros, chromosomes missing from a header or
        without coverage; logged, kept (``signal_report``), refused past ``max_silent_fraction``."""
        tracks = context.sources.get("tracks")
        if tracks is None:
            return
        headers = {mark: read_chrom_sizes(self.spec.signal_path(cell, mark)) for mark in self.marks}
        window = self.inputs.intervals(genes, base_bp=self.bin_bp)
        account = signal_account(
            cell, tracks.tracks, genes, self.marks, self.bin_bp, self.reach_bp, headers, exact=self.spec.exact_names, bounds=window.bounds()
        )
        account.log()
        self.signal_accounts[cell] = account
        account.check(self.max_silent_fraction, {mark: self.spec.signal_path(cell, mark) for mark in self.marks})

    def signal_report(self) -> dict:
        """The job record's ``signals``: per cell and mark, what says nothing (after ``setup``)."""
        return {cell: account.summary() for cell, account in self.signal_accounts.items()}

    def write_silent(self, path: str | Path) -> Path:
        """``signals_silent.tsv``: one row per mark and chromosome (or all-zero genes) that says nothing."""
        tables = [account.rows() for account in self.signal_accounts.values()]
        return write_csv(path, pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(), sep="\t")

    def n_genes(self) -> dict[str, int]:
        n = {name: int((self.split == name).sum()) for name in SPLITS}
        if self.test_cell:
            n["test"] = len(self._used_rows(self.test_cell))
        return n

    def fold_record(self) -> dict:
        return fold_record(self.genes, self.split, self.fold, self.spec.folds.get("scheme", "chromoformer"))

    def pins(self) -> bool:
        """Whether batches are put in pinned host memory: ``pin_memory`` ``auto`` means when
        the attached trainer runs on CUDA (then Lightning's copies to it are non-blocking)."""
        if str(self.pin_memory) != "auto":
            return bool(self.pin_memory)
        trainer = self.trainer
        return trainer is not None and trainer.strategy.root_device.type == "cuda"

    def _loader(self, name: str, shuffle: bool, gene_items: bool = False) -> DataLoader:
        dataset = self.inputs.gene_dataset(self.datasets[name]) if gene_items else self.datasets[name]
        return DataLoader(
            dataset,
            batch_size=self.batch_size if shuffle else self.eval_batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=self.inputs.collate_fn,
            pin_memory=self.pins(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloaders(self) -> dict[str, DataLoader]:
        """Per split, the loader of what per-gene predictions need (``InputBuilder.gene_dataset``)."""
        return {name: self._loader(name, shuffle=False, gene_items=True) for name in SPLITS}
