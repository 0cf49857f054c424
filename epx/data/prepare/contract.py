"""A dataset folder in the input contract (DESIGN §2.1), described by its config.

Contract: ``DatasetSpec(root, files, interactions, folds, name, generator)`` built by Hydra
from ``conf/dataset/*.yaml``. ``files`` maps each contract file to a pattern relative to
``root`` (``signal`` uses ``{cell}`` and ``{mark}``; ``interactions`` and ``cage`` use ``{cell}``), so
Roadmap's own names (``{cell}-{mark}.fc.signal.bigwig``) work unchanged. ``generator`` is an
optional callable ``generator(root)`` that materialises the folder on first use (the
built-in synthetic dataset). ``check(cells, marks)`` fails before any long work with one
error per problem naming the cell, mark and expected path. ``contacts(cell, chroms=None) ->
(contacts, InteractionAccount)`` is the cell's BEDPE, chromosome names mapped to ``chroms``'
naming (the signals'), past the dataset's ``interactions`` threshold (empty when the cell has
no file), with its counts; ``cage_path(cell)`` the CAGE bigWig when present, else None.
``signal_chroms(cell, marks)`` is the set of chromosomes (in ``chrom_sizes``' naming) that at
least one of those bigWigs has. ``chrom_names``: ``reconcile`` (default: ``1`` ↔ ``chr1``,
``MT`` ↔ ``chrM`` per record) or ``exact`` (only identical names match).

The genome (optional, ``files.genome``: ``genome.fa`` + ``.fai``, read by ``epx.io.fasta``):
``genome_path()`` is the FASTA when present, else None; ``check_genome(chrom_sizes=None, what=)
-> {dataset chrom: FASTA name}`` refuses a missing FASTA (naming the path, the pattern and the
download) and one of another assembly (``epx.io.fasta.match_chroms``: names reconciled as the
bigWig headers are, lengths compared with ``chrom_sizes``; by default the ``chrom.sizes`` file,
and with neither the FASTA's own names are the naming).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from epx.data.prepare.interactions import ContactFilter, InteractionAccount, prepare_contacts
from epx.io.bedpe import read_interactions
from epx.io.chrom_sizes import read_chrom_sizes
from epx.errors import InputError
from epx.ids import check_id
from epx.io.fasta import match_chroms, read_fasta_sizes
from epx.io.naming import reconcile

CHROM_NAMES = ("reconcile", "exact")

DEFAULT_FILES = {
    "signal": "signals/{cell}-{mark}.bigwig",
    "tss": "tss.bed",
    "expression": "expression.tsv",
    "interactions": "interactions/{cell}.bedpe",
    "chrom_sizes": "chrom.sizes",
    "cage": "cage/{cell}.bigwig",  # optional per-bin count target of GraphReg / Epi-CNN
    "genome": "genome.fa",  # optional reference sequence (+ .fai) of the sequence models
}
GENOME_FIX = "epx download hg19 --dest {root} (UCSC hg19, for Roadmap), or put the assembly's FASTA there or set dataset.files.genome"


@dataclass
class DatasetSpec:
    root: str | Path
    files: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_FILES))
    interactions: Mapping[str, Any] = field(default_factory=lambda: {"score_kind": "frequency", "threshold": 1.5})
    folds: Mapping[str, Any] = field(default_factory=lambda: {"scheme": "chromoformer"})
    name: str = "folder"
    generator: Callable[[Path], Any] | None = None
    chrom_names: str = "reconcile"

    def __post_init__(self):
        self.root = Path(os.path.expanduser(str(self.root)))
        self.files = {**DEFAULT_FILES, **dict(self.files or {})}
        if self.chrom_names not in CHROM_NAMES:
            raise InputError(f"dataset.chrom_names={self.chrom_names!r}; choose one of {', '.join(CHROM_NAMES)}")

    @property
    def exact_names(self) -> bool:
        return self.chrom_names == "exact"

    # -- paths -------------------------------------------------------------------------
    def path(self, key: str, **fmt: str) -> Path:
        """``root`` / the key's pattern filled with ``fmt``; each id must be a safe path component
        (``epx.ids.check_id``), so ``cell=../../x`` never reads outside the root."""
        return self.root / self.files[key].format(**{name: check_id(value, name) for name, value in fmt.items()})

    def signal_path(self, cell: str, mark: str) -> Path:
        return self.path("signal", cell=cell, mark=mark)

    def interactions_path(self, cell: str) -> Path:
        return self.path("interactions", cell=cell)

    def contacts(self, cell: str, chroms: Iterable[str] | None = None) -> tuple[Any, InteractionAccount]:
        """The cell's interactions that pass ``interactions.threshold``, with a ``strength`` column."""
        path = self.interactions_path(cell)
        return prepare_contacts(
            read_interactions(path), ContactFilter(**dict(self.interactions)), chroms, what=str(path), exact=self.exact_names
        )

    def signal_chroms(self, cell: str, marks: Iterable[str], chrom_sizes: Mapping[str, int]) -> set[str]:
        found: set[str] = set()
        for mark in marks:
            header = read_chrom_sizes(self.signal_path(cell, mark))
            found |= {name for name, spelled in reconcile(chrom_sizes, header).items() if spelled is not None}
        return found

    def cage_path(self, cell: str) -> Path | None:
        path = self.path("cage", cell=cell)
        return path if path.exists() else None

    def genome_path(self) -> Path | None:
        path = self.path("genome")
        return path if path.exists() else None

    def check_genome(self, chrom_sizes: Mapping[str, int] | None = None, *, what: str | None = None) -> dict[str, str]:
        path = self.genome_path()
        if path is None:
            raise InputError(
                f"dataset {self.name} has no genome FASTA at {self.path('genome')} (dataset.files.genome={self.files['genome']!r}); "
                f"sequence models need one: {GENOME_FIX.format(root=self.root)}"
            )
        fasta_sizes = read_fasta_sizes(path)
        sizes_path = self.path("chrom_sizes")
        if what is None:  # the file the sizes came from, for the error message
            what = str(sizes_path) if sizes_path.exists() else f"the bigWig headers of dataset {self.name}"
        if chrom_sizes is None:
            if not sizes_path.exists():
                return {name: name for name in fasta_sizes}  # nothing to compare: the FASTA's naming is the dataset's
            chrom_sizes = read_chrom_sizes(sizes_path)
        return match_chroms(fasta_sizes, chrom_sizes, what=str(path), reference_what=what, exact=self.exact_names)

    # -- lifecycle -----------------------------------------------------------------------
    def materialize(self) -> "DatasetSpec":
        """Generate the folder if this dataset has a generator (idempotent, locked)."""
        if self.generator is not None:
            self.generator(self.root)
        return self

    def check(self, cells: Iterable[str], marks: Iterable[str]) -> None:
        if not self.root.is_dir():
            raise InputError(
                f"dataset folder not found: {self.root}. Set dataset.root=/path/to/folder "
                "(a folder in the epx input contract, see README 'Use your own data')."
            )
        for key in ("tss", "expression"):
            if not self.path(key).exists():
                raise InputError(f"dataset {self.name}: missing {key} file {self.path(key)} (pattern dataset.files.{key}={self.files[key]!r})")
        missing = [(c, m, self.signal_path(c, m)) for c in cells for m in marks if not self.signal_path(c, m).exists()]
        if missing:
            lines = "\n".join(f"  cell {c}, mark {m}: {p}" for c, m, p in missing[:10])
            more = f"\n  … and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise InputError(
                f"dataset {self.name}: missing bigWig for {len(missing)} requested cell/mark pair(s):\n{lines}{more}\n"
                f"Download/convert them (epx download roadmap …), choose other marks, or fix dataset.files.signal={self.files['signal']!r}."
            )

    def chrom_sizes(self, cell: str, marks: Iterable[str]) -> dict[str, int]:
        """From ``chrom.sizes`` when present, else the union of the bigWig headers."""
        sizes_path = self.path("chrom_sizes")
        if sizes_path.exists():
            return read_chrom_sizes(sizes_path)
        sizes: dict[str, int] = {}
        for mark in marks:
            for chrom, length in read_chrom_sizes(self.signal_path(cell, mark)).items():
                sizes[chrom] = max(length, sizes.get(chrom, 0))
        return sizes
