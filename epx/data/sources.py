"""The named sources a builder can declare, and how the DataModule prepares and loads each.

Contract: ``SOURCES`` maps a source name (what ``InputBuilder.sources`` lists) to a
``Source`` with three steps, each taking the ``EpxDataModule`` and a cell:

- ``check(dm, cell)``: cheap, before any long work (a missing file is one ``InputError``
  naming it and the fix);
- ``prepare(dm, cell)``: the once-per-cell (or once-per-dataset) long work, e.g. a cache build;
- ``load(dm, cell, chroms)``: the in-memory object the builder reads, for those chromosomes.

A job prepares and loads only the sources its builder declares, so a model that reads only
sequence never builds the histone cache and a promoter model never opens the interactions.
A new kind of input is one entry here (plus its reader in ``epx/io`` and its cache), never a
branch in the DataModule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


def _nothing(dm, cell: str) -> None:
    return None


@dataclass(frozen=True)
class Source:
    description: str
    load: Callable[[Any, str, Iterable[str]], Any]
    prepare: Callable[[Any, str], None] = _nothing
    check: Callable[[Any, str], None] = _nothing


def _prepare_tracks(dm, cell: str) -> None:
    dm.cell_cache(cell).ensure(dm.marks)


def _load_tracks(dm, cell: str, chroms: Iterable[str]):
    from epx.data.tracks import SignalTracks

    return SignalTracks(dm.cell_cache(cell).load(dm.marks, chroms=list(chroms), half=True), dm.marks, base_bp=dm.bin_bp)


def _load_contacts(dm, cell: str, chroms: Iterable[str]):
    return dm.contacts[cell]


def _check_genome(dm, cell: str) -> None:
    dm.spec.check_genome(dm.chrom_sizes(cell))


def _prepare_genome(dm, cell: str) -> None:
    dm.genome_cache().ensure()


def _load_genome(dm, cell: str, chroms: Iterable[str]):
    from epx.data.genome import GenomeSequence

    return GenomeSequence(dm.genome_cache().load(list(chroms)))


def _window_store(dm, cell: str):
    from epx.data.prepare.windows import WindowStore

    return WindowStore(dm.spec, cell, dm.cache_dir, dm.chrom_sizes(cell), resolutions=dm.inputs.resolutions)


def _window_regions(dm, cell: str):
    # the builder that reads `windows` says which regions its genes need (promoters and pCREs)
    genes = dm.account_inputs()[cell].genes.iloc[dm._used_rows(cell)]
    return dm.inputs.regions(genes, dm.contacts[cell], where=dm.spec.interactions_path(cell))


def _prepare_windows(dm, cell: str) -> None:
    _window_store(dm, cell).ensure(dm.marks, _window_regions(dm, cell))


def _load_windows(dm, cell: str, chroms: Iterable[str]):
    return _window_store(dm, cell).load(dm.marks, _window_regions(dm, cell))


SOURCES: dict[str, Source] = {
    "tracks": Source("the cell's histone marks, binned genome-wide (the HDF5 cell cache)", _load_tracks, _prepare_tracks),
    "contacts": Source("the cell's interactions past the dataset's threshold (BEDPE)", _load_contacts),
    "windows": Source("the cell's marks binned from exact bases over the builder's regions (the per-region window store)",
                       _load_windows, _prepare_windows),
    "genome": Source("the reference sequence as base codes (genome.fa, the genome cache)", _load_genome, _prepare_genome, _check_genome),
}
