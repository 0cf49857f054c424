"""pcHi-C for the Roadmap cells: `download roadmap --interactions` against a 127.0.0.1 server holding
GSE86189-layout fixture tables, then `convert roadmap` into interactions/{EID}.bedpe.

Covers: the plan (GEO host, one file per tissue, proxies), resumable + verified + idempotent
download of the bzip2 tables, the conversion (anchors, score, proxy recorded), the dataset's
contact filter applied to the result, and each bad input (other columns, another assembly,
no score column named, a corrupt bz2, HTML instead of bzip2).
"""

from __future__ import annotations

import bz2
import json
import os
from pathlib import Path

import pytest

from epx.errors import InputError
from epx.io.bedpe import read_interactions
from epx.roadmap import download as dl
from epx.roadmap.cli import convert_roadmap
from epx.roadmap.interactions import pchic_cells, pchic_to_bedpe
from test_download import HTML, gz, server  # noqa: F401  (the 127.0.0.1 fixture server)

HEADER = "frag1\tfrag2\tdist\tcount\tscore"


def po_table(tissue: str, rows: int = 300) -> bytes:
    """A promoter-other table in GSE86189's layout (frag1/frag2 as chr.start.end), bzip2."""
    lines = [HEADER]
    for i in range(rows):
        bait = 1_000_000 + 20_000 * i
        other = bait + 5_000 + 1_000 * (i % 40)
        score = 0.5 + (i % 9) * 0.5
        lines.append(f"chr1.{bait}.{bait + 4000}\tchr1.{other}.{other + 3000}\t{other - bait}\t{i % 17}\t{score:.2f}")
    lines.append(f"chr2.500.4500\tchr2.9000.12000\t8500\t3\t{'NA'}")  # no score: dropped, counted
    return bz2.compress(("\n".join(lines) + "\n").encode())


def serve(fake, cells, marks=("H3K4me3",)) -> list[dl.RemoteFile]:
    remotes = dl.plan(cells, marks, "tagalign", base_urls=[fake.url], interactions=True)
    for remote in remotes:
        path = remote.url.removeprefix(fake.url)
        if remote.fmt == "bzip2":
            fake.files[path] = po_table(path)
        elif remote.fmt == "gzip":
            fake.files[path] = gz(path)
        else:
            fake.files[path] = b"chr1\t249250621\nchr2\t243199373\n"
    return remotes


def test_plan_fetches_one_geo_table_per_tissue_with_proxies():
    remotes = dl.plan(["E003", "E016", "E118", "E066"], ["H3K4me3"], interactions=True)
    pchic = [r for r in remotes if r.fmt == "bzip2"]
    # E016 (HUES64) shares H1's table and E118 (HepG2) the liver's: fetched once each
    assert [r.url for r in pchic] == [
        "https://ftp.ncbi.nlm.nih.gov/geo/series/GSE86nnn/GSE86189/suppl/GSE86189_h1.po.all.txt.bz2",
        "https://ftp.ncbi.nlm.nih.gov/geo/series/GSE86nnn/GSE86189/suppl/GSE86189_li11.po.all.txt.bz2",
    ]
    assert pchic[0].dest == Path("raw/pchic/GSE86189_h1.po.all.txt.bz2")
    sources = pchic_cells()
    assert len(sources) == 11 and {c for c, s in sources.items() if s.proxy} == {"E016", "E114", "E118"}
    assert sources["E114"].tissue == "LG" and sources["E116"].tissue == "GM"
    assert not any(r.fmt == "bzip2" for r in dl.plan(["E003"], ["H3K4me3"]))  # off by default


def test_download_resumes_verifies_and_is_idempotent_then_converts(server, tmp_path):  # noqa: F811
    remotes = serve(server, ["E003", "E114"])
    h1 = next(r for r in remotes if r.fmt == "bzip2" and "h1" in r.url).url.removeprefix(server.url)
    server.drop_after[h1] = 700  # the connection drops once mid-file: resumed with Range
    server.html_times[next(r for r in remotes if "lg" in r.url).url.removeprefix(server.url)] = 1  # an error page once
    files = dl.download_roadmap("E003,E114", "H3K4me3", tmp_path, base_urls=[server.url], backoff_s=0,
                                progress=False, interactions=True)
    assert (tmp_path / "raw/pchic/GSE86189_h1.po.all.txt.bz2").read_bytes() == server.files[h1]
    assert any(rng == "bytes=700-" for path, rng in server.requests if path == h1)
    assert len(files) == len(remotes) and not list(tmp_path.rglob("*.part"))
    n = len(server.requests)
    dl.download_roadmap("E003,E114", "H3K4me3", tmp_path, base_urls=[server.url], progress=False, interactions=True)
    assert len(server.requests) == n  # verified files are not fetched again

    # convert: signals name the cells; the tagAlign step is not what this test is about
    for p in (tmp_path / "raw").glob("*.tagAlign.gz"):
        p.unlink()
    (tmp_path / "signals").mkdir()
    for cell in ("E003", "E114"):
        (tmp_path / "signals" / f"{cell}-H3K4me3.bigwig").write_bytes(b"")
    for out in ("tss.bed", "expression.tsv"):  # newer than the (fixture) GTF and RPKM: kept as they are
        (tmp_path / out).touch()
        os.utime(tmp_path / out, (2e9, 2e9))
    with pytest.raises(InputError, match=r"--pchic-score COLUMN.*'frag1', 'frag2', 'dist', 'count', 'score'"):
        convert_roadmap(tmp_path)  # no score column named: refused before any conversion
    written = convert_roadmap(tmp_path, pchic_score="score")
    assert sorted(p.name for p in written) == ["E003.bedpe", "E114.bedpe"]
    bedpe = read_interactions(tmp_path / "interactions/E003.bedpe")
    assert len(bedpe) == 300 and bedpe.loc[0, ["chrom1", "start1", "end1", "start2"]].tolist() == ["chr1", 1_000_000, 1_004_000, 1_005_000]
    assert set(bedpe["name"]) == {"H1"}
    source = json.loads((tmp_path / "interactions/E114.source.json").read_text())
    assert source["tissue"] == "LG" and "A549" in source["proxy"] and source["dropped_no_score"] == 1
    assert convert_roadmap(tmp_path, pchic_score="score") == []  # up to date: nothing redone


def test_dataset_filter_keeps_what_chromoformer_keeps(tmp_path):
    from epx.data.prepare.interactions import ContactFilter

    src = tmp_path / "t.po.all.txt.bz2"
    src.write_bytes(po_table("h1"))
    pchic_to_bedpe(src, tmp_path / "E003.bedpe", score_column="score")
    kept = ContactFilter("frequency", 1.5).apply(read_interactions(tmp_path / "E003.bedpe"))
    assert len(kept) > 0 and (kept["score"] >= 1.5).all() and (kept["strength"] == kept["score"]).all()


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("bait_chr\tbait_start\tscore\nchr1\t5\t3\n", r"no column 'frag1', 'frag2'.*its columns are \['bait_chr'"),
        (f"{HEADER}\nchr1.1000.5000\tchr1.249250000.249260000\t5\t1\t2\n", r"past hg19's chr1 length 249250621.*GRCh38"),
        (f"{HEADER}\n1.1000.5000\t1.9000.12000\t5\t1\t2\n", r"chromosome '1' of frag1 is not an hg19 chromosome"),
        (f"{HEADER}\nchr1:1000-5000\tchr1.9000.12000\t5\t1\t2\n", r"line 2: frag1 'chr1:1000-5000' is not written chr.start.end"),
        (f"{HEADER}\nchr1.1000.5000\tchr1.9000.12000\t5\t1\thigh\n", r"line 2: score score='high' is not a number"),
    ],
)
def test_bad_tables_are_one_error_naming_the_file(tmp_path, body, match):
    src = tmp_path / "GSE86189_h1.po.all.txt.bz2"
    src.write_bytes(bz2.compress(body.encode()))
    with pytest.raises(InputError, match=match) as err:
        pchic_to_bedpe(src, tmp_path / "out.bedpe", score_column="score")
    assert str(src) in str(err.value) and not (tmp_path / "out.bedpe").exists()


def test_truncated_bz2_and_html_are_refused(server, tmp_path):  # noqa: F811
    src = tmp_path / "cut.bz2"
    src.write_bytes(po_table("h1")[:200])
    with pytest.raises(InputError, match=r"cut.bz2: unreadable pcHi-C table"):
        pchic_to_bedpe(src, tmp_path / "o.bedpe", score_column="score")
    server.files["/x.bz2"] = HTML
    remote = dl.RemoteFile(url=server.url + "/x.bz2", dest=Path("raw/x.bz2"), fmt="bzip2")
    with pytest.raises(ValueError, match=r"HTML page.*instead of bzip2"):
        dl.fetch(remote, tmp_path, dl.Ledger(tmp_path), retries=1, backoff_s=0, timeout=5, progress=False)
