"""Downloader against a local HTTP server (127.0.0.1, port 0) serving small generated files.

Covers: the plan from the manifest, a full grid download into the contract layout,
resume after a dropped connection (Range), a server that ignores Range, a corrupt or
half-written file re-fetched, HTML instead of gzip (recovered, or one clear error),
404 naming the URL, md5 from a published list, a second call making no request, and
the CLI wiring.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from epx.constants import MARKS
from epx.roadmap import download as dl
from epx.roadmap.cli import add_subcommands

HTML = b"<!DOCTYPE html><html><body>503 Service Temporarily Unavailable</body></html>"


class FakeServer:
    """Files by URL path; per-path misbehaviour; a log of (path, Range header) requests."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.drop_after: dict[str, int] = {}  # path → bytes sent before dropping, once
        self.ignore_range: set[str] = set()
        self.html_times: dict[str, int] = {}  # path → serve HTML this many times first
        self.url = ""

    def handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                if server.html_times.get(self.path, 0) > 0:
                    server.html_times[self.path] -= 1
                    return self._send(200, HTML, {"Content-Type": "text/html"})
                body = server.files.get(self.path)
                if body is None:
                    return self._send(404, b"not found", {})
                if rng and self.path not in server.ignore_range:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        return self._send(416, b"", {"Content-Range": f"bytes */{len(body)}"})
                    headers = {"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"}
                    return self._send(206, body[start:], headers)
                self._send(200, body, {}, drop=server.drop_after.pop(self.path, None))

            def _send(self, code, body, headers, drop=None):
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body if drop is None else body[:drop])
                self.wfile.flush()

        return Handler


@pytest.fixture
def server():
    fake = FakeServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield fake
    httpd.shutdown()
    httpd.server_close()


def gz(text: str, noise: int = 4000) -> bytes:
    """gzip of ``text`` plus incompressible bytes, so bodies span several KB."""
    return gzip.compress(text.encode() + random.Random(text).randbytes(noise), mtime=0)


def bigwig_bytes(n: int = 300) -> bytes:
    return struct.pack("<I", 0x888FFC26) + bytes(range(256)) * (n // 256 + 1)


def serve_roadmap(fake: FakeServer, cells, marks, *, signal="tagalign") -> dict[str, bytes]:
    """Put a grid's files on the fake server at the manifest's paths; return path → body."""
    for remote in dl.plan(cells, marks, signal, base_urls=[fake.url]):
        path = remote.url.removeprefix(fake.url)
        if remote.fmt == "gzip":
            fake.files[path] = gz(path)
        elif remote.fmt == "bigwig":
            fake.files[path] = bigwig_bytes(5000)
        else:
            fake.files[path] = b"chr1\t1000\nchr2\t500\n"
    return dict(fake.files)


def fetch_one(fake: FakeServer, root: Path, path: str, body: bytes, fmt="gzip", **kw) -> Path:
    fake.files[path] = body
    remote = dl.RemoteFile(url=fake.url + path, dest=Path("raw") / path.rsplit("/", 1)[-1], fmt=fmt)
    return dl.fetch(remote, root, dl.Ledger(root), retries=kw.pop("retries", 3), backoff_s=0,
                    timeout=5, progress=False, **kw)


# ---------------------------------------------------------------- plan and layout


def test_plan_uses_roadmap_portal_layout():
    remotes = dl.plan(["E003"], ["H3K4me3"], "tagalign")
    urls = {r.url for r in remotes}
    assert "https://egg2.wustl.edu/roadmap/data/byFileType/alignments/consolidated/E003-H3K4me3.tagAlign.gz" in urls
    assert "https://egg2.wustl.edu/roadmap/data/byDataType/rna/expression/57epigenomes.RPKM.pc.gz" in urls
    assert any(u.endswith("release_19/gencode.v19.annotation.gtf.gz") for u in urls)
    fc = dl.plan(["E114"], ["H3K27ac"], "fc")[-1]
    assert fc.url.endswith("/foldChange/E114-H3K27ac.fc.signal.bigwig")
    assert fc.dest == Path("signals/E114-H3K27ac.bigwig") and fc.fmt == "bigwig"


def test_base_url_override_all_or_one():
    manifest = dl.load_manifest()
    every = dl.resolve_sources(manifest, ["http://mirror/x/"])
    assert set(every.values()) == {"http://mirror/x"}
    one = dl.resolve_sources(manifest, ["gencode=http://m/g"])
    assert one["gencode"] == "http://m/g" and one["roadmap"] == manifest["sources"]["roadmap"]
    with pytest.raises(ValueError, match="unknown source 'nope'"):
        dl.resolve_sources(manifest, ["nope=http://m"])


def test_unknown_cells_or_marks_list_valid_values(tmp_path):
    with pytest.raises(ValueError, match=r"unknown cells E999.*E003, E004"):
        dl.parse_choices("E003,E999", dl.ROADMAP_CELLS, "cells")
    with pytest.raises(ValueError, match=r"unknown marks H3K4me2.*H3K4me1, H3K4me3"):
        dl.parse_choices("H3K4me2", MARKS, "marks")
    assert dl.parse_choices("all", MARKS, "marks") == MARKS
    # download_roadmap parses marks with the one mark parser, before any request
    with pytest.raises(ValueError, match=r"unknown mark H3K4me2; valid marks: H3K4me1, H3K4me3"):
        dl.download_roadmap("E003", "H3K4me3,H3K4me2", tmp_path, base_urls=["http://127.0.0.1:9"], progress=False)


def test_grid_download_lays_out_contract_and_second_call_makes_no_request(server, tmp_path):
    bodies = serve_roadmap(server, ["E003", "E114"], ["H3K4me3"], signal="fc")
    files = dl.download_roadmap("E003,E114", "H3K4me3", tmp_path, signal="fc",
                                base_urls=[server.url], backoff_s=0, progress=False)
    assert (tmp_path / "signals/E114-H3K4me3.bigwig").read_bytes() == bigwig_bytes(5000)
    assert (tmp_path / "chrom.sizes").read_text().startswith("chr1\t1000")
    assert {f.relative_to(tmp_path).as_posix() for f in files} >= {
        "chrom.sizes", "raw/57epigenomes.RPKM.pc.gz", "raw/gencode.v19.annotation.gtf.gz",
        "signals/E003-H3K4me3.bigwig",
    }
    assert not list(tmp_path.rglob("*.part"))
    n_requests = len(server.requests)
    # 2 cells x 1 mark + 3 shared + the GENCODE MD5SUMS lookup (absent here: 404, tolerated)
    assert n_requests == len(bodies) + 1

    dl.download_roadmap("E003,E114", "H3K4me3", tmp_path, signal="fc",
                        base_urls=[server.url], backoff_s=0, progress=False)
    assert len(server.requests) == n_requests


def test_other_signal_into_same_dest_is_refused(server, tmp_path):
    serve_roadmap(server, ["E003"], ["H3K4me3"], signal="fc")
    dl.download_roadmap("E003", "H3K4me3", tmp_path, signal="fc", base_urls=[server.url], progress=False)
    with pytest.raises(ValueError, match="already holds --signal fc"):
        dl.download_roadmap("E003", "H3K4me3", tmp_path, signal="tagalign", base_urls=[server.url], progress=False)


# ---------------------------------------------------------------- resume and recovery


def test_interrupted_transfer_resumes_with_range(server, tmp_path):
    body = gz("chr1\t1\t37\tN\t1000\t+\n" * 5000)
    server.drop_after["/a.gz"] = 1000
    out = fetch_one(server, tmp_path, "/a.gz", body)
    assert out.read_bytes() == body
    assert server.requests == [("/a.gz", None), ("/a.gz", "bytes=1000-")]


def test_half_downloaded_part_file_is_resumed(server, tmp_path):
    body = gz("x" * 10000 + "y" * 100)
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw/b.gz.part").write_bytes(body[:20])
    out = fetch_one(server, tmp_path, "/b.gz", body)
    assert out.read_bytes() == body
    assert server.requests == [("/b.gz", "bytes=20-")]


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    body = gz("abc" * 3000)
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw/c.gz.part").write_bytes(b"garbage that must not be kept")
    server.ignore_range.add("/c.gz")
    out = fetch_one(server, tmp_path, "/c.gz", body)
    assert out.read_bytes() == body


def test_complete_part_file_is_finished_by_416(server, tmp_path):
    body = gz("done" * 100)
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw/d.gz.part").write_bytes(body)
    out = fetch_one(server, tmp_path, "/d.gz", body)
    assert out.read_bytes() == body and not (tmp_path / "raw/d.gz.part").exists()


def test_corrupt_verified_file_is_refetched(server, tmp_path):
    body = gz("good" * 500)
    out = fetch_one(server, tmp_path, "/e.gz", body)
    out.write_bytes(body[: len(body) // 2])  # truncated after verification
    assert fetch_one(server, tmp_path, "/e.gz", body).read_bytes() == body
    assert [r for r in server.requests if r[0] == "/e.gz"] == [("/e.gz", None)] * 2


def test_unrecorded_existing_file_is_checked_against_server(server, tmp_path):
    body = gz("wget put me here" * 50)
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw/f.gz").write_bytes(body)
    assert fetch_one(server, tmp_path, "/f.gz", body).read_bytes() == body
    assert server.requests == [("/f.gz", f"bytes={len(body)}-")]  # 416: whole already


def test_html_instead_of_gzip_is_refetched(server, tmp_path):
    body = gz("real data" * 100)
    server.html_times["/g.gz"] = 1
    assert fetch_one(server, tmp_path, "/g.gz", body).read_bytes() == body
    assert len(server.requests) == 2


def test_html_instead_of_gzip_every_time_is_one_clear_error(server, tmp_path):
    server.html_times["/h.gz"] = 99
    with pytest.raises(ValueError, match=r"/h\.gz returned an HTML page .* instead of gzip"):
        fetch_one(server, tmp_path, "/h.gz", gz("never served"), retries=1)
    assert not list((tmp_path / "raw").iterdir())  # nothing half-written left behind


def test_404_names_the_url(server, tmp_path):
    remote = dl.RemoteFile(url=server.url + "/missing/E003-H3K4me3.tagAlign.gz", dest=Path("x.gz"), fmt="gzip")
    with pytest.raises(FileNotFoundError, match=r"http://127\.0\.0\.1:\d+/missing/E003-H3K4me3\.tagAlign\.gz: HTTP 404"):
        dl.fetch(remote, tmp_path, dl.Ledger(tmp_path), backoff_s=0, progress=False)
    assert len(server.requests) == 1  # a 404 is not retried


def test_published_md5_is_checked(server, tmp_path):
    body = gz("annotation" * 100)
    server.files["/MD5SUMS"] = f"{hashlib.md5(body).hexdigest()}  ann.gtf.gz\n".encode()
    server.files["/ann.gtf.gz"] = body
    remote = dl.RemoteFile(url=server.url + "/ann.gtf.gz", dest=Path("ann.gtf.gz"), fmt="gzip",
                           checksums_url=server.url + "/MD5SUMS")
    dl.fetch(remote, tmp_path, dl.Ledger(tmp_path), backoff_s=0, progress=False)
    assert json.loads((tmp_path / dl.LEDGER_NAME).read_text())["files"]["ann.gtf.gz"]["md5"] == hashlib.md5(body).hexdigest()

    server.files["/ann.gtf.gz"] = gz("tampered" * 100)
    (tmp_path / "ann.gtf.gz").unlink()
    with pytest.raises(ValueError, match="differs from the published"):
        dl.fetch(remote, tmp_path, dl.Ledger(tmp_path), retries=1, backoff_s=0, progress=False)


def test_format_checks_name_what_they_found(tmp_path):
    html, bw, sizes = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    html.write_bytes(HTML)
    bw.write_bytes(bigwig_bytes())
    sizes.write_text("chr1\t10\nchr2\tten\n")
    assert dl.FORMAT_CHECKS["gzip"](html).startswith("an HTML page")
    assert dl.FORMAT_CHECKS["bigwig"](bw) is None
    assert "not a chrom.sizes table" in dl.FORMAT_CHECKS["chrom_sizes"](sizes)


# ---------------------------------------------------------------- CLI


def test_cli_download_roadmap(server, tmp_path, capsys):
    serve_roadmap(server, ["E003"], ["H3K27ac"])
    parser = argparse.ArgumentParser(prog="epx")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["download", "roadmap", "--cells", "E003", "--marks", "H3K27ac",
                              "--dest", str(tmp_path), "--base-url", server.url, "--no-progress"])
    assert args.func(args) == 0
    assert (tmp_path / "raw/E003-H3K27ac.tagAlign.gz").exists()
    assert "epx convert roadmap" in capsys.readouterr().out
    with pytest.raises(ValueError, match="valid cells"):
        bad = parser.parse_args(["download", "roadmap", "--cells", "E000", "--marks", "H3K27ac",
                                 "--dest", str(tmp_path), "--base-url", server.url])
        bad.func(bad)


# ---------------------------------------------------------------- the genome FASTA (epx download hg19)

GENOME_FA = b">chr1\nACGTNacgtn\nAC\n>chr2\nGGGG\n"


def serve_genome(fake: FakeServer, fasta: bytes = GENOME_FA, md5: str | None = None) -> tuple[str, bytes]:
    """``hg19.fa.gz`` and its ``md5sum.txt`` at the manifest's paths; return the archive path and body."""
    from epx.roadmap.genome import genome_remote

    remote = genome_remote("hg19", base_urls=[fake.url])
    path = remote.url.removeprefix(fake.url)
    body = gzip.compress(fasta + b">pad\n" + b"ACGT" * 3000 + b"\n", mtime=0)  # a few KB: room to drop mid-way
    fake.files[path] = body
    listed = md5 or hashlib.md5(body).hexdigest()
    fake.files[remote.checksums_url.removeprefix(fake.url)] = f"{listed}  hg19.fa.gz\nffff  hg19.2bit\n".encode()
    return path, body


def _download_genome(fake, root, **kw):
    from epx.roadmap.genome import download_genome

    return download_genome(root, "hg19", base_urls=[fake.url], retries=kw.pop("retries", 2), backoff_s=0, timeout=5, progress=False, **kw)


def test_genome_download_unpacks_fasta_and_index_then_makes_no_request(server, tmp_path):
    from epx.io.fasta import FastaFile, decode

    path, _ = serve_genome(server)
    fasta = _download_genome(server, tmp_path)
    assert fasta == tmp_path / "genome.fa" and (tmp_path / "genome.fa.fai").is_file() and (tmp_path / "raw/hg19.fa.gz").is_file()
    with FastaFile(fasta) as f:
        assert f.sizes["chr1"] == 12 and decode(f.codes("chr1")) == b"ACGTNACGTNAC"
    assert any(p.endswith("md5sum.txt") for p, _ in server.requests)  # verified against the published md5
    ledger = json.loads((tmp_path / dl.LEDGER_NAME).read_text())["files"]
    assert ledger["genome.fa"]["from_md5"] == ledger["raw/hg19.fa.gz"]["md5"] is not None
    server.requests.clear()
    (tmp_path / "genome.fa.fai").unlink()
    assert _download_genome(server, tmp_path) == fasta
    assert server.requests == [] and (tmp_path / "genome.fa.fai").is_file()  # offline; the index rebuilt


def test_genome_with_wrong_published_md5_is_refused(server, tmp_path):
    serve_genome(server, md5="0" * 32)
    with pytest.raises(ValueError, match="differs from the published"):
        _download_genome(server, tmp_path, retries=1)
    assert not (tmp_path / "genome.fa").exists()


def test_genome_download_resumes_after_a_dropped_connection(server, tmp_path):
    path, body = serve_genome(server)
    server.drop_after[path] = len(body) // 3
    _download_genome(server, tmp_path)
    assert (path, f"bytes={len(body) // 3}-") in server.requests
    assert (tmp_path / "genome.fa").read_bytes().startswith(GENOME_FA)


def test_killed_decompression_leaves_no_fasta_and_rerun_makes_no_transfer(server, tmp_path, monkeypatch):
    import epx.roadmap.genome as genome

    path, _ = serve_genome(server)

    def killed(src, out, length=0):
        out.write(b">chr1\nAC")
        raise KeyboardInterrupt("killed")

    with monkeypatch.context() as m:
        m.setattr(genome.shutil, "copyfileobj", killed)
        with pytest.raises(KeyboardInterrupt):
            _download_genome(server, tmp_path)
    assert not (tmp_path / "genome.fa").exists() and not list(tmp_path.glob(".genome.fa*"))
    server.requests.clear()
    _download_genome(server, tmp_path)
    assert [p for p, _ in server.requests if p == path] == []  # the verified archive is reused
    assert (tmp_path / "genome.fa").read_bytes().startswith(GENOME_FA)


def test_changed_genome_fasta_is_unpacked_again(server, tmp_path):
    serve_genome(server)
    fasta = _download_genome(server, tmp_path)
    fasta.write_bytes(b">chr1\nAC\n")  # truncated or edited: no longer the recorded unpacking
    _download_genome(server, tmp_path)
    assert fasta.read_bytes().startswith(GENOME_FA)


def test_cli_download_hg19(server, tmp_path, capsys):
    serve_genome(server)
    parser = argparse.ArgumentParser(prog="epx")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["download", "hg19", "--dest", str(tmp_path), "--base-url", server.url, "--no-progress"])
    assert args.func(args) == 0
    assert (tmp_path / "genome.fa.fai").is_file() and "dataset.files.genome=genome.fa" in capsys.readouterr().out
