"""Input fuzzing (issue 11, part 5): every reader of a user-supplied file, fed random
malformed versions of a valid file, either raises ``epx.errors.InputError`` whose message
names the file, or reads it correctly — never another exception type.

Each test builds a valid file from random rows, renders it with random line ends (LF or
CRLF), an optional UTF-8 BOM, optional ``#`` comment lines and optional gzip, then applies
at most one mutation:

- ``none``: the file is valid; it must read back exactly (a round trip);
- ``truncate``: the bytes (plain or gzip) cut at a random point; a read that succeeds must
  give the rows before the cut (the last, cut row may read differently);
- ``flip``: one random byte xor-ed with a random value;
- ``field``: one field of one line replaced by a bad value (text, empty, negative,
  fractional, unicode digits, a bad strand...);
- ``columns``: one line loses or gains a column;
- ``swap``: start and end of one line exchanged (reversed coordinates);
- ``naming``: some lines' chromosomes lose their ``chr`` prefix (mixed naming);
- ``header``: a header line without ``#`` added on top;
- ``empty``, ``blank``, ``binary``: an empty file, only blank lines/comments, random bytes.

A read that succeeds after a mutation must still satisfy the format's invariants
(integer non-negative coordinates, strands ``+``/``-``, ...). Each mutation kind is a
pytest parameter, so every kind gets its cases. The bigWig readers (``read_binned``,
``open_for_reading``, ``read_chrom_sizes`` on a bigWig) get random truncations and byte
flips of a small bigWig written by ``epx.io.bigwig.write_bigwig``; flips inside the
chromosome B+ tree run in a child process (``test_bigwig_corrupt_chromosome_tree``:
libBigWig segfaulted on some of them until ``epx.io.bigwig.check_structure`` walked the
tree first).

Deterministic (``derandomize=True``, no example database) so CI sees the same cases every
run; about 25 s on 2 cores. The module prints ``fuzz cases run: N in total; <reader> n, ...``
at its end; ``pytest tests/test_fuzz.py --hypothesis-show-statistics`` adds hypothesis'
per-test counts and the share of each outcome (read / InputError) as events.
"""

from __future__ import annotations

import collections
import gzip
import itertools
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis.control import currently_in_test_context
from hypothesis import strategies as st

from epx.convert.expression import read_rpkm
from epx.convert.gtf import gtf_to_tss
from epx.convert.interactions import PRESETS, convert_interactions
from epx.convert.tagalign import tagalign_to_bigwig
from epx.data.prepare.folds import column_folds
from epx.errors import InputError
from epx.io.bedpe import COLUMNS as BEDPE_COLUMNS
from epx.io.bedpe import read_interactions
from epx.io.bigwig import open_for_reading, read_binned, write_bigwig
from epx.io.chrom_sizes import read_chrom_sizes
from epx.io.expression import read_expression, read_expression_table
from epx.io.gene_ids import normalise_gene_ids
from epx.io.tss import read_tss

FUZZ = settings(
    max_examples=40,  # per reader and mutation kind
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SLOW_FUZZ = settings(FUZZ, max_examples=15)  # cases that write and read a bigWig

INPUT_ERROR = "InputError"
BAD_VALUES = ["", "abc", "-5", "1.5", "NaN", "inf", "?", "+", "1e3", "\u0661\u0662", "99999999999999999999999", " 7", "chr1", "-"]
CHROMS = ["chr1", "chr2", "chrX", "chr10"]
SIZES = {"chr1": 4000, "chr2": 3000, "chrX": 2500, "chr10": 1000}

_TMP = tempfile.TemporaryDirectory(prefix="epx-fuzz-")
_counter = itertools.count()


def _new_dir() -> Path:
    folder = Path(_TMP.name) / f"case{next(_counter)}"
    folder.mkdir()
    return folder


def _event(label: str) -> None:
    if currently_in_test_context():  # not in the child process of the chromosome-tree test
        event(label)


def attempt(call, path: Path):
    """``call()``'s result, or INPUT_ERROR when it raised an InputError naming ``path``.
    Any other exception escapes and fails the test (the bug this file hunts)."""
    try:
        result = call()
    except InputError as err:
        assert str(path) in str(err), f"InputError does not name the file {path}: {err}"
        _event("outcome: InputError")
        return INPUT_ERROR
    _event("outcome: read")
    return result


# ----------------------------------------------------------------------------- rendering


@st.composite
def renderings(draw, *, comments: bool = True, gz: bool = True) -> dict:
    return {
        "crlf": draw(st.booleans()),
        "bom": draw(st.booleans()),
        "comment": comments and draw(st.booleans()),
        "gzip": gz and draw(st.booleans()),
        "final_newline": draw(st.booleans()),
    }


def render(lines: list[str], style: dict) -> bytes:
    if style["comment"]:
        lines = ["# written by the fuzzer"] + lines
    end = "\r\n" if style["crlf"] else "\n"
    text = end.join(lines) + (end if style["final_newline"] and lines else "")
    data = text.encode()
    if style["bom"]:
        data = b"\xef\xbb\xbf" + data
    return data


def store(folder: Path, name: str, data: bytes, style: dict) -> Path:
    if style["gzip"]:
        path = folder / f"{name}.gz"
        path.write_bytes(gzip.compress(data, mtime=0))
    else:
        path = folder / name
        path.write_bytes(data)
    return path


MUTATIONS = ["none", "truncate", "flip", "field", "columns", "swap", "naming", "header", "empty", "blank", "binary"]
TABLE_MUTATIONS = [k for k in MUTATIONS if k not in ("swap", "naming")]  # tables with a header, no coordinates
CASES: collections.Counter = collections.Counter()  # fuzz cases run, per reader


@st.composite
def mutations(draw) -> dict:
    """The random parts of a mutation; its kind is a pytest parameter, so every kind gets its cases."""
    return {
        "where": draw(st.floats(0, 1, exclude_max=True)),  # relative position (line, byte)
        "column": draw(st.integers(0, 20)),
        "value": draw(st.sampled_from(BAD_VALUES)),
        "byte": draw(st.integers(1, 255)),
        "grow": draw(st.booleans()),
        "blob": draw(st.binary(min_size=1, max_size=64)),
    }


def mutate_lines(lines: list[str], m: dict, *, coords: tuple[int, int] | None, chrom_columns=(0,), first: int = 0) -> list[str]:
    """Line-level mutations; ``first`` lines (a header) are left alone except by 'header'."""
    kind = m["kind"]
    body = lines[first:]
    if not body:
        return lines
    i = first + int(m["where"] * len(body))
    fields = lines[i].split("\t")
    if kind == "field":
        fields[m["column"] % len(fields)] = m["value"]
    elif kind == "columns":
        if m["grow"]:
            fields.append("extra")
        else:
            fields.pop(m["column"] % len(fields))
    elif kind == "swap" and coords is not None:
        a, b = coords
        fields[a], fields[b] = fields[b], fields[a]
    elif kind == "naming":
        return lines[:first] + [
            "\t".join(f.removeprefix("chr") if k in chrom_columns else f for k, f in enumerate(line.split("\t")))
            if n % 2 == 0
            else line
            for n, line in enumerate(body)
        ]
    elif kind == "header":
        return ["chrom\tstart\tend\tname\tscore\tstrand"] + lines
    else:
        return lines
    return lines[:i] + ["\t".join(fields)] + lines[i + 1 :]


def mutate_bytes(stored: bytes, m: dict) -> bytes | None:
    """Byte-level mutations of the stored file (``stored``: gzip or plain), or None."""
    kind = m["kind"]
    if kind == "truncate":
        return stored[: int(m["where"] * len(stored))]
    if kind == "flip" and stored:
        k = int(m["where"] * len(stored))
        return stored[:k] + bytes([stored[k] ^ m["byte"]]) + stored[k + 1 :]
    if kind == "empty":
        return b""
    if kind == "binary":
        return m["blob"]
    return None


def write_case(reader: str, folder: Path, name: str, lines: list[str], style: dict, m: dict, **line_options) -> Path:
    """Render, mutate and store one case of ``reader``; the mutation kind becomes a hypothesis event."""
    CASES[reader] += 1
    event(f"mutation: {m['kind']}")
    lines = mutate_lines(lines, m, **line_options)
    data = b"\n\n# nothing here\n\r\n  \n" if m["kind"] == "blank" else render(lines, style)
    path = store(folder, name, data, style)
    cut = mutate_bytes(path.read_bytes(), m)
    if cut is not None:
        path.write_bytes(cut)
    return path


def exact(m: dict) -> bool:
    """Mutations after which the file is still the valid table it was."""
    return m["kind"] in ("none", "naming")


# ----------------------------------------------------------------------------- TSS (BED6)

gene_ids = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,8}(\.[0-9]{1,2})?", fullmatch=True)


@st.composite
def tss_rows(draw):
    n = draw(st.integers(1, 12))
    return [
        (draw(gene_ids), draw(st.sampled_from(CHROMS)), draw(st.integers(0, 10**9)), draw(st.sampled_from("+-")))
        for _ in range(n)
    ]


def check_tss(df: pd.DataFrame) -> None:
    assert list(df.columns) == ["gene_id", "chrom", "tss", "strand"]
    assert df["tss"].dtype == np.int64 and (df["tss"] >= 0).all()
    assert df["strand"].isin(["+", "-"]).all()
    assert (df["gene_id"].str.len() > 0).all() and (df["chrom"].str.len() > 0).all()


@pytest.mark.parametrize("kind", MUTATIONS)
@FUZZ
@given(tss_rows(), renderings(), mutations())
def test_fuzz_read_tss(kind, rows, style, m):
    m = {**m, "kind": kind}
    lines = [f"{c}\t{t}\t{t + 1}\t{g}\t0\t{s}" for g, c, t, s in rows]
    path = write_case('read_tss', _new_dir(), "tss.bed", lines, style, m, coords=(1, 2))
    df = attempt(lambda: read_tss(path), path)
    if isinstance(df, str):
        assert not exact(m), f"a valid TSS file was refused: {path}"
        return
    check_tss(df)
    expected = pd.DataFrame(
        {"gene_id": normalise_gene_ids([g for g, *_ in rows]), "chrom": [c for _, c, _, _ in rows], "tss": [t for _, _, t, _ in rows], "strand": [s for *_, s in rows]}
    )
    if m["kind"] == "naming":
        expected["chrom"] = [c.removeprefix("chr") if k % 2 == 0 else c for k, c in enumerate(expected["chrom"])]
    if exact(m):
        pd.testing.assert_frame_equal(df, expected.astype({"tss": "int64"}))
    elif m["kind"] == "truncate":
        pd.testing.assert_frame_equal(df.iloc[:-1], expected.iloc[: len(df) - 1].astype({"tss": "int64"}))


# ----------------------------------------------------------------------------- expression

values = st.one_of(st.floats(0, 1e6, allow_nan=False), st.integers(0, 10**6).map(float))


@st.composite
def expression_tables(draw):
    cells = draw(st.lists(st.sampled_from(["E003", "E004", "E005", "E114"]), min_size=1, max_size=3, unique=True))
    ids = draw(st.lists(gene_ids, min_size=1, max_size=10))
    return cells, [(g, [draw(values) for _ in cells]) for g in ids]


def expression_lines(cells, rows) -> list[str]:
    return ["\t".join(["gene_id", *cells])] + ["\t".join([g, *map(repr, v)]) for g, v in rows]


@pytest.mark.parametrize("kind", TABLE_MUTATIONS)
@FUZZ
@given(expression_tables(), renderings(comments=False), mutations())
def test_fuzz_read_expression(kind, table, style, m):
    m = {**m, "kind": kind}
    cells, rows = table
    path = write_case('read_expression', _new_dir(), "expression.tsv", expression_lines(cells, rows), style, m, coords=None, first=1)
    df = attempt(lambda: read_expression_table(path), path)
    if isinstance(df, str):
        assert not exact(m), f"a valid expression table was refused: {path}"
        return
    assert df.index.name == "gene_id" and df.index.is_unique and df.attrs["source"] == str(path)
    rpkm = attempt(lambda: read_expression(path, cells[0]), path)
    if isinstance(rpkm, str):  # only a missing cell column may fail once the table reads
        assert cells[0] not in df.columns
        return
    assert rpkm.dtype == np.float64 and not (rpkm < 0).any() and np.isfinite(rpkm.dropna()).all()
    ids = normalise_gene_ids([g for g, _ in rows])
    first = ~ids.duplicated()
    expected = pd.Series([v[0] for g, v in rows], index=pd.Index(ids, name="gene_id"), dtype="float64")[first.to_numpy()]
    if exact(m):
        pd.testing.assert_series_equal(rpkm, expected, check_names=False)
        assert df.attrs["duplicate_ids"] == ids[~first].tolist()
    elif m["kind"] == "truncate" and len(rpkm) > 1:
        pd.testing.assert_series_equal(rpkm.iloc[:-1], expected.iloc[: len(rpkm) - 1], check_names=False)


# ----------------------------------------------------------------------------- BEDPE


@st.composite
def bedpe_rows(draw):
    n = draw(st.integers(1, 10))
    rows = []
    for _ in range(n):
        s1, s2 = draw(st.integers(0, 10**8)), draw(st.integers(0, 10**8))
        rows.append(
            (draw(st.sampled_from(CHROMS)), s1, s1 + draw(st.integers(1, 10**4)), draw(st.sampled_from(CHROMS)), s2, s2 + draw(st.integers(1, 10**4)), draw(st.sampled_from([".", "g1", "ENSG5"])), draw(values))
        )
    return rows


def check_bedpe(df: pd.DataFrame) -> None:
    assert list(df.columns) == BEDPE_COLUMNS
    for c in ("start1", "end1", "start2", "end2"):
        assert df[c].dtype == np.int64 and (df[c] >= 0).all()
    assert (df["start1"] <= df["end1"]).all() and (df["start2"] <= df["end2"]).all()
    assert df["score"].dtype == np.float64


@pytest.mark.parametrize("kind", MUTATIONS)
@FUZZ
@given(bedpe_rows(), renderings(), mutations())
def test_fuzz_read_interactions(kind, rows, style, m):
    m = {**m, "kind": kind}
    lines = ["\t".join([a, str(b), str(c), d, str(e), str(f), g, repr(h)]) for a, b, c, d, e, f, g, h in rows]
    path = write_case('read_interactions', _new_dir(), "E003.bedpe", lines, style, m, coords=(1, 2), chrom_columns=(0, 3))
    df = attempt(lambda: read_interactions(path), path)
    if isinstance(df, str):
        assert m["kind"] not in ("none", "naming", "empty", "blank"), f"a valid or empty BEDPE was refused: {path}"
        return
    check_bedpe(df)
    if m["kind"] in ("empty", "blank"):
        assert df.empty  # an empty BEDPE (plain, or gzip of nothing, or 0 bytes named .gz) is "no interactions"
        return
    expected = pd.DataFrame(rows, columns=BEDPE_COLUMNS).astype({"score": "float64"})
    if m["kind"] == "naming":
        for c in ("chrom1", "chrom2"):
            expected[c] = [x.removeprefix("chr") if k % 2 == 0 else x for k, x in enumerate(expected[c])]
    if exact(m):
        pd.testing.assert_frame_equal(df, expected)
    elif m["kind"] == "truncate" and len(df) > 1:
        pd.testing.assert_frame_equal(df.iloc[:-1], expected.iloc[: len(df) - 1])


# ----------------------------------------------------------------------------- chrom sizes


@st.composite
def size_tables(draw):
    chroms = draw(st.lists(st.sampled_from(CHROMS + ["chrM", "chrUn_gl000220", "1", "MT"]), min_size=1, max_size=8, unique=True))
    return {c: draw(st.integers(1, 3 * 10**8)) for c in chroms}


@pytest.mark.parametrize("kind", MUTATIONS)
@FUZZ
@given(size_tables(), renderings(), mutations())
def test_fuzz_read_chrom_sizes(kind, sizes, style, m):
    m = {**m, "kind": kind}
    lines = [f"{c}\t{n}" for c, n in sizes.items()]
    path = write_case('read_chrom_sizes', _new_dir(), "chrom.sizes", lines, style, m, coords=None)
    got = attempt(lambda: read_chrom_sizes(path), path)
    if isinstance(got, str):
        assert m["kind"] not in ("none", "naming") or len(set(c.removeprefix("chr") for c in sizes)) < len(sizes), f"valid chrom sizes refused: {path}"
        return
    assert got and all(isinstance(c, str) and c for c in got) and all(type(n) is int and n > 0 for n in got.values())
    if m["kind"] == "none":
        assert list(got.items()) == list(sizes.items())
    elif m["kind"] == "naming":
        assert list(got.values()) == list(sizes.values())


# ----------------------------------------------------------------------------- fold table


@pytest.mark.parametrize("kind", TABLE_MUTATIONS)
@FUZZ
@given(
    st.lists(gene_ids, min_size=1, max_size=10, unique_by=lambda g: normalise_gene_ids([g])[0]),
    st.data(),
    renderings(comments=False),
    mutations(),
)
def test_fuzz_fold_table(kind, ids, data, style, m):
    m = {**m, "kind": kind}
    folds = [data.draw(st.integers(0, 3)) for _ in ids]
    lines = ["gene_id\tfold"] + [f"{g}\t{k}" for g, k in zip(ids, folds)]
    path = write_case('column_folds', _new_dir(), "folds.tsv", lines, style, m, coords=None, first=1)
    genes = pd.DataFrame({"gene_id": normalise_gene_ids(ids), "chrom": "chr1"})
    got = attempt(lambda: column_folds(genes, n_folds=4, table=path), path)
    if isinstance(got, str):
        assert not exact(m), f"a valid fold table was refused: {path}"
        return
    assert got.dtype.kind == "i" and got.between(-1, 3).all()
    if exact(m):
        assert got.tolist() == folds


# ----------------------------------------------------------------------------- GTF → tss.bed


@st.composite
def gtf_genes(draw):
    n = draw(st.integers(1, 8))
    genes = []
    for k in range(n):
        start = draw(st.integers(1, 10**7))
        genes.append(
            (draw(st.sampled_from(CHROMS)), start, start + draw(st.integers(0, 10**5)), draw(st.sampled_from("+-")), f"ENSG{k:05d}.{draw(st.integers(1, 9))}", draw(st.sampled_from(["protein_coding", "lincRNA"])))
        )
    return genes


@pytest.mark.parametrize("kind", MUTATIONS)
@FUZZ
@given(gtf_genes(), renderings(), mutations())
def test_fuzz_gtf_to_tss(kind, genes, style, m):
    m = {**m, "kind": kind}
    lines = [
        f'{c}\tHAVANA\tgene\t{s}\t{e}\t.\t{st_}\t.\tgene_id "{g}"; gene_type "{t}"; gene_name "N";'
        for c, s, e, st_, g, t in genes
    ]
    folder = _new_dir()
    path = write_case('gtf_to_tss', folder, "genes.gtf", lines, style, m, coords=(3, 4))
    out = folder / "tss.bed"
    stats = attempt(lambda: gtf_to_tss(path, out), path)
    if isinstance(stats, str):
        assert not exact(m) or not any(t == "protein_coding" for *_, t in genes), f"a valid GTF was refused: {path}"
        return
    got = read_tss(out)
    check_tss(got)
    if exact(m) and any(t == "protein_coding" for *_, t in genes):
        coding = [(c if not (m["kind"] == "naming" and k % 2 == 0) else c.removeprefix("chr"), s, e, st_, g) for k, (c, s, e, st_, g, t) in enumerate(genes) if t == "protein_coding"]
        expected = pd.DataFrame(
            {"gene_id": normalise_gene_ids([g for *_, g in coding]), "chrom": [c for c, *_ in coding], "tss": [(e if st_ == "-" else s) - 1 for c, s, e, st_, g in coding], "strand": [st_ for *_, st_, _ in coding]}
        ).sort_values(["chrom", "tss"], kind="stable").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected.astype({"tss": "int64"}))


# ----------------------------------------------------------------------------- RPKM matrix → expression.tsv


@pytest.mark.parametrize("kind", TABLE_MUTATIONS)
@FUZZ
@given(expression_tables(), renderings(comments=False), mutations())
def test_fuzz_read_rpkm(kind, table, style, m):
    m = {**m, "kind": kind}
    cells, rows = table
    path = write_case('read_rpkm', _new_dir(), "57epigenomes.RPKM.pc", expression_lines(cells, rows), style, m, coords=None, first=1)
    got = attempt(lambda: read_rpkm(path), path)
    if isinstance(got, str):
        assert not exact(m) or not normalise_gene_ids([g for g, _ in rows]).is_unique, f"a valid RPKM matrix was refused: {path}"
        return
    assert list(got.columns)[0] == "gene_id" and got["gene_id"].is_unique
    if exact(m) and normalise_gene_ids([g for g, _ in rows]).is_unique:
        assert got["gene_id"].tolist() == normalise_gene_ids([g for g, _ in rows]).tolist()
        np.testing.assert_array_equal(got[cells].to_numpy(np.float64), np.array([v for _, v in rows], dtype=np.float64))


# ----------------------------------------------------------------------------- interaction table → BEDPE

HICHIP_HEADER = "chr1\ts1\te1\tchr2\ts2\te2\tcc\tP-Value_Bias\tQ-Value_Bias"


@pytest.mark.parametrize("kind", MUTATIONS)
@FUZZ
@given(bedpe_rows(), renderings(comments=False), mutations())
def test_fuzz_convert_interactions(kind, rows, style, m):
    m = {**m, "kind": kind}
    lines = [HICHIP_HEADER] + [f"{a}\t{b}\t{c}\t{d}\t{e}\t{f}\t3\t0.5\t{h!r}" for a, b, c, d, e, f, _, h in rows]
    folder = _new_dir()
    path = write_case('convert_interactions', folder, "loops.bed", lines, style, m, coords=(1, 2), chrom_columns=(0, 3), first=1)
    out = folder / "out.bedpe"
    n = attempt(lambda: convert_interactions(path, out, PRESETS["hichip"]), path)
    if isinstance(n, str):
        assert not exact(m), f"a valid interaction table was refused: {path}"
        return
    got = read_interactions(out)
    check_bedpe(got)
    assert len(got) == n
    if m["kind"] == "none":
        expected = pd.DataFrame([(*r[:6], ".", r[7]) for r in rows], columns=BEDPE_COLUMNS).astype({"score": "float64"})
        pd.testing.assert_frame_equal(got, expected)


# ----------------------------------------------------------------------------- tagAlign → bigWig

TAG_SIZES = {"chr1": 600, "chr2": 400}


@st.composite
def reads(draw):
    n = draw(st.integers(1, 15))
    out = []
    for _ in range(n):
        chrom = draw(st.sampled_from(list(TAG_SIZES)))
        start = draw(st.integers(0, TAG_SIZES[chrom] - 1))
        out.append((chrom, start, start + draw(st.integers(1, 60)), draw(st.sampled_from("+-"))))
    return sorted(out)


@pytest.mark.parametrize("kind", MUTATIONS)
@SLOW_FUZZ
@given(reads(), renderings(), mutations())
def test_fuzz_tagalign_to_bigwig(kind, reads, style, m):
    m = {**m, "kind": kind}
    lines = [f"{c}\t{s}\t{e}\tN\t1000\t{strand}" for c, s, e, strand in reads]
    folder = _new_dir()
    path = write_case('tagalign_to_bigwig', folder, "E003-H3K4me3.tagAlign", lines, style, m, coords=(1, 2))
    out = folder / "out.bigwig"
    stats = attempt(lambda: tagalign_to_bigwig(path, TAG_SIZES, out), path)
    if isinstance(stats, str):
        assert m["kind"] != "none", f"a valid tagAlign was refused: {path}"
        return
    binned = read_binned(out, TAG_SIZES, bin_bp=1)
    if m["kind"] == "none":
        for chrom, length in TAG_SIZES.items():
            depth = np.zeros(length)
            for c, s, e, _ in reads:
                if c == chrom:
                    depth[s : min(e, length)] += 1
            np.testing.assert_array_equal(binned[chrom], depth)


# ----------------------------------------------------------------------------- bigWig

BW_SIZES = {"chr1": 3000, "chr2": 1500}


def _small_bigwig(folder: Path, seed: int) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    values = {c: np.repeat(rng.integers(0, 4, n // 50).astype(np.float64), 50) for c, n in BW_SIZES.items()}
    return write_bigwig(folder / "E003-H3K4me3.bigwig", BW_SIZES, values), values


def _chrom_tree(data: bytes) -> range:
    """The bytes of a bigWig's chromosome B+ tree (header: chromTreeOffset, fullDataOffset)."""
    tree, first_data = struct.unpack_from("<QQ", data, 8)
    return range(tree, first_data)


def _bigwig_case(path: Path, values: dict[str, np.ndarray], kind: str) -> None:
    """The three bigWig readers on a damaged file: InputError naming it, or a correct read."""
    sizes = attempt(lambda: read_chrom_sizes(path), path)
    if not isinstance(sizes, str) and kind == "truncate":
        assert sizes == BW_SIZES
    got = attempt(lambda: read_binned(path, BW_SIZES, bin_bp=50), path)
    if not isinstance(got, str):
        for chrom, n in BW_SIZES.items():
            assert got[chrom].shape == (n // 50,) and np.isfinite(got[chrom]).all() and (got[chrom] >= 0).all()
            if kind == "truncate":  # a cut either fails clearly or reads the same values
                np.testing.assert_allclose(got[chrom], values[chrom][::50], rtol=1e-6)
    bw = attempt(lambda: open_for_reading(path), path)
    if not isinstance(bw, str):
        bw.close()


@pytest.mark.parametrize("kind", ["truncate", "flip"])
@settings(FUZZ, max_examples=100)
@given(st.integers(0, 3), st.floats(0, 1, exclude_max=True), st.integers(1, 255))
def test_fuzz_bigwig_readers(kind, seed, where, byte):
    """Random cuts anywhere, random byte flips anywhere but in the chromosome tree (see
    ``test_bigwig_corrupt_chromosome_tree``: libBigWig crashes the process there)."""
    CASES["read_binned/read_chrom_sizes/open_for_reading (bigWig)"] += 1
    event(f"mutation: {kind}")
    path, values = _small_bigwig(_new_dir(), seed)
    data = path.read_bytes()
    if kind == "truncate":
        path.write_bytes(data[: int(where * len(data))])
    else:
        tree = _chrom_tree(data)
        outside = [k for k in range(len(data)) if k not in tree]
        k = outside[int(where * len(outside))]
        path.write_bytes(data[:k] + bytes([data[k] ^ byte]) + data[k + 1 :])
    _bigwig_case(path, values, kind)


_TREE_PROBE = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
import test_fuzz as tf
path, values = tf._small_bigwig(Path({folder!r}), 0)
data = path.read_bytes()
ran = 0
for k in tf._chrom_tree(data):
    for byte in (0x01, 0x80, 0xFF):
        print("case", k, hex(byte), flush=True)
        path.write_bytes(data[:k] + bytes([data[k] ^ byte]) + data[k + 1 :])
        tf._bigwig_case(path, values, "flip")
        ran += 1
print("ran", ran)
"""


def test_bigwig_corrupt_chromosome_tree(tmp_path):
    """Every byte of the chromosome tree flipped (3 ways), in a child process so that a
    crash of the C library fails this test instead of killing the session."""
    proc = subprocess.run(
        [sys.executable, "-c", _TREE_PROBE.format(tests=str(Path(__file__).parent), folder=str(tmp_path))], capture_output=True, text=True, timeout=300
    )
    cases = [line for line in proc.stdout.splitlines() if line.startswith("case")]
    CASES["bigWig chromosome tree (child process)"] += len(cases)
    assert proc.returncode == 0, f"child exited {proc.returncode} at {cases[-1] if cases else '?'}: {proc.stderr[-2000:]}"


@pytest.fixture(scope="module", autouse=True)
def _report_and_clean(request):
    yield
    _TMP.cleanup()
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is not None and capture is not None and CASES:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            reporter.write_line(f"fuzz cases run: {sum(CASES.values())} in total; " + ", ".join(f"{k} {n}" for k, n in CASES.items()))
