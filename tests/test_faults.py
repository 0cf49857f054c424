"""Fault injection (issue 11, part 4): each fault a job can meet, and what epx does about it.

| fault                                    | test                                                  |
|------------------------------------------|-------------------------------------------------------|
| job SIGKILLed mid-training               | test_killed_job_is_summarized_killed_never_ok         |
| training loss becomes inf / NaN          | test_non_finite_loss_fails_the_job_with_the_step      |
| W&B online, host unreachable             | test_wandb_online_without_network_trains_offline      |
| W&B init fails with a communication error| test_wandb_init_comm_error_falls_back_to_offline      |
| disk full during an atomic write         | test_atomic_write_without_room_keeps_the_old_file     |
| disk full during a cache build           | test_cache_build_without_room_keeps_the_old_cache     |
| cache build killed (SIGKILL) mid-way     | test_cache_build_killed_midway_is_rebuilt_on_rerun    |
| two processes build one cell's cache     | test_two_processes_build_one_cache_once               |
| cache bytes damaged / truncated          | test_damaged_cache_data_is_rebuilt_with_a_warning, …  |

Jobs run on small synthetic folders, with ``WANDB_MODE=disabled`` unless a test says otherwise;
subprocesses are used where the fault is a process's death or a process-wide limit.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from omegaconf import open_dict

from conftest import REPO
from epx.analysis.collect import collect_rows
from epx.data.prepare.cache import CellCache
from epx.data.prepare.contract import DatasetSpec
from epx.errors import InputError, NonFiniteLossError
from epx.io.atomic import TMP_MARK
from epx.record import JobRecord

LAUNCH_TIMEOUT = 60
needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process start times and states come from /proc")


def job_overrides(tmp_path: Path, folder: Path, *extra: str) -> list[str]:
    return [
        "dataset=folder",
        f"dataset.root={folder}",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "logger=none",
        "trainer.enable_progress_bar=false",
        *extra,
    ]


def launch(tmp_path: Path, run_dir: Path, folder: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    """``python launch.py`` as a user runs it, in its own process (so it can be killed)."""
    command = [sys.executable, "launch.py", *job_overrides(tmp_path, folder, *extra), f"hydra.run.dir={run_dir}"]
    full_env = {**os.environ, "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "1", **(env or {})}
    return subprocess.Popen(command, cwd=REPO, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run_python(code: str, *, timeout: float = LAUNCH_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO / "tests")},
    )  # fmt: skip


def _cache(folder: Path, cache_dir: Path, **kw) -> CellCache:
    return CellCache(DatasetSpec(root=folder), "E003", cache_dir, **kw)


# ---------------------------------------------------------------- a killed job


def test_killed_job_is_summarized_killed_never_ok(tmp_path, small_synthetic):
    sweep = tmp_path / "sweep"
    job_dir = sweep / "0"
    proc = launch(tmp_path, job_dir, small_synthetic, "model=promoter_cnn", "trainer.max_epochs=1000", "callbacks=none")
    record_path, deadline = job_dir / "metrics.json", time.monotonic() + LAUNCH_TIMEOUT
    try:
        while True:  # the record is saved with n_params right before trainer.fit
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the job never reached training"
            record = JobRecord.read(record_path) if record_path.is_file() else None
            if record is not None and record.n_params and "Trainable params" in _text(job_dir / "launch.log"):
                break
            time.sleep(0.1)
        assert record.status == "running" and record.pid == proc.pid and record.host == socket.gethostname()
        time.sleep(0.5)  # a few training steps
    finally:
        proc.kill()  # SIGKILL: no finally block of the job runs
        proc.wait(30)
    assert JobRecord.read(record_path).status == "running"  # what the dead process left behind
    (row,) = collect_rows(sweep)
    assert row["status"] == "killed"
    assert row["error"] == (
        f"process {proc.pid} on {socket.gethostname()} ended without finishing the job "
        "(killed, out of memory or time limit); rerun it"
    )


def test_job_record_says_running_with_its_process_from_the_start(tmp_path):
    """Written before any step, so a job killed in its first minutes (cache build) is
    summarized ``killed``, not ``missing``."""
    from epx.job import Job

    with Job(tmp_path / "0", JobRecord(cell="E003")).running():
        on_disk = JobRecord.read(tmp_path / "0")
        assert (on_disk.status, on_disk.pid, on_disk.host) == ("running", os.getpid(), socket.gethostname())
    assert JobRecord.read(tmp_path / "0").status == "running"  # the steps set ok themselves


def _text(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


def _running_record(job_dir: Path, pid: int, *, host: str | None = None, written: float | None = None) -> None:
    (job_dir / ".hydra").mkdir(parents=True)
    (job_dir / ".hydra" / "overrides.yaml").write_text("[]\n")
    JobRecord(cell="E003", mark="H3K4me3", fold=0, status="running", host=host or socket.gethostname(), pid=pid).write(job_dir)
    if written is not None:
        os.utime(job_dir / "metrics.json", (written, written))


def test_running_job_of_a_live_process_stays_running(tmp_path):
    _running_record(tmp_path / "0", os.getpid())
    (row,) = collect_rows(tmp_path)
    assert row["status"] == "running" and row["error"] is None


@needs_proc
def test_running_job_whose_pid_now_belongs_to_a_newer_process_is_killed(tmp_path):
    # this process started after the record was last written: the pid was reused
    _running_record(tmp_path / "0", os.getpid(), written=time.time() - 10 * 365 * 86400)
    (row,) = collect_rows(tmp_path)
    assert (row["status"], row["error"].split(" ended")[0]) == ("killed", f"process {os.getpid()} on {socket.gethostname()}")


@needs_proc
def test_running_job_whose_process_is_a_zombie_is_killed(tmp_path):
    """SIGKILLed but not yet reaped by its parent: the pid still answers, the job is dead."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _running_record(tmp_path / "0", child.pid)
        child.kill()
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        (row,) = collect_rows(tmp_path)
        assert row["status"] == "killed"
    finally:
        child.kill()
        child.wait(10)


def test_running_job_on_another_host_cannot_be_judged_and_stays_running(tmp_path):
    _running_record(tmp_path / "0", 1, host="some-other-node")
    (row,) = collect_rows(tmp_path)
    assert row["status"] == "running"


# ---------------------------------------------------------------- a diverging loss


def test_non_finite_loss_fails_the_job_with_the_step(tmp_path, small_synthetic, monkeypatch):
    from epx.config import compose
    from epx.models.promoter_cnn import PromoterCNN
    from epx.run import train

    real_forward, calls = PromoterCNN.forward, []

    def diverges_on_third_step(self, *args, **kwargs):
        out = real_forward(self, *args, **kwargs)
        if self.training:
            calls.append(1)
            if len(calls) >= 3:
                return out + float("inf")
        return out

    monkeypatch.setattr(PromoterCNN, "forward", diverges_on_third_step)
    cfg = compose(job_overrides(tmp_path, small_synthetic, "model=promoter_cnn", "trainer.max_epochs=3", "trainer.enable_model_summary=false"))
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "job")
    with pytest.raises(NonFiniteLossError) as info:
        train(cfg)
    message = str(info.value)
    assert "global step 2" in message and "epoch 0" in message and "inf" in message
    assert "learning rate" in message and "gradient_clip_val" in message and "NaN" in message
    record = JobRecord.read(tmp_path / "job")
    assert record.status == "failed" and record.error == f"NonFiniteLossError: {message}"
    assert record.test == {} and record.primary_value is None
    assert not (tmp_path / "job" / "predictions.csv").exists()


def test_huge_learning_rate_fails_the_job_not_a_nan_metric(tmp_path, small_synthetic):
    from epx.config import compose
    from epx.run import train

    cfg = compose(
        job_overrides(
            tmp_path, small_synthetic, "model=promoter_cnn", "model.module.optimizer.lr=1e25", "trainer.max_epochs=5",
            "trainer.enable_model_summary=false", "callbacks=none",
        )
    )  # fmt: skip
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "job")
    with pytest.raises(NonFiniteLossError, match=r"global step \d+"):
        train(cfg)
    record = JobRecord.read(tmp_path / "job")
    assert record.status == "failed" and record.test == {}


# ---------------------------------------------------------------- W&B without network


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_wandb_online_without_network_trains_offline(tmp_path, small_synthetic):
    run_dir = tmp_path / "job"
    env = {"WANDB_MODE": "online", "WANDB_BASE_URL": f"http://127.0.0.1:{closed_port()}", "WANDB_API_KEY": "0123456789" * 4}
    start = time.monotonic()
    proc = launch(tmp_path, run_dir, small_synthetic, "model=linear", "trainer=debug", "logger=wandb", env=env)
    output, _ = proc.communicate(timeout=LAUNCH_TIMEOUT)
    assert proc.returncode == 0, output[-3000:]
    assert time.monotonic() - start < LAUNCH_TIMEOUT
    record = JobRecord.read(run_dir)
    assert record.status == "ok" and record.wandb["mode"] == "offline"
    offline_dir = Path(record.wandb["dir"])
    assert offline_dir.is_dir() and offline_dir.name.startswith("offline-run-") and offline_dir.is_relative_to(run_dir)
    warnings = [line for line in _text(run_dir / "launch.log").splitlines() if "is not reachable" in line]
    assert len(warnings) == 1, warnings
    assert f"wandb sync {offline_dir}" in warnings[0] and "WARNING" in warnings[0]


def test_wandb_init_comm_error_falls_back_to_offline(tmp_path, monkeypatch, caplog):
    """The host answers but W&B's init fails on the network (proxy, outage): offline, one warning."""
    import lightning.pytorch.loggers as pl_loggers
    import wandb

    from epx.train import loggers

    made = []

    class FakeWandbLogger:
        def __init__(self, **kwargs):
            self.kwargs = kwargs
            made.append(kwargs["mode"])

        @property
        def experiment(self):
            if self.kwargs["mode"] == "online":
                raise wandb.errors.CommError("Post http://wandb.example/graphql: context deadline exceeded")
            run_dir = Path(self.kwargs["save_dir"]) / "wandb" / "offline-run-1-abc" / "files"
            run_dir.mkdir(parents=True, exist_ok=True)
            return type("Run", (), {"id": "abc", "dir": str(run_dir)})()

    monkeypatch.setattr(pl_loggers, "WandbLogger", FakeWandbLogger)
    monkeypatch.setattr(loggers, "wandb_reachable", lambda: None)
    logger = loggers.wandb_logger(save_dir=tmp_path, name="n", group=None, job_type="m", tags=[], run_config={}, mode="online")
    assert made == ["online", "offline"] and logger.kwargs["mode"] == "offline"
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and f"wandb sync {tmp_path / 'wandb' / 'offline-run-1-abc'}" in warnings[0].getMessage()
    assert "context deadline exceeded" in warnings[0].getMessage()


def test_wandb_reachability_check_is_quick_and_names_the_host(monkeypatch):
    from epx.train.loggers import wandb_reachable

    port = closed_port()
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    start = time.monotonic()
    problem = wandb_reachable()
    assert problem is not None and f"127.0.0.1:{port}" in problem and time.monotonic() - start < 5
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert wandb_reachable() is None


# ---------------------------------------------------------------- no room on the disk

NO_ROOM_PRELUDE = """
    import resource, signal
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
    def limit(size):
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))
"""


def test_atomic_write_without_room_keeps_the_old_file(tmp_path):
    old = {"status": "ok", "test": {"pearson": 0.5}}
    (tmp_path / "metrics.json").write_text(json.dumps(old))
    (tmp_path / "notes.txt").write_text("previous notes")
    result = run_python(
        NO_ROOM_PRELUDE
        + f"""
    from pathlib import Path
    from epx.errors import StorageError
    from epx.io.atomic import write_json, write_text
    limit(4096)
    for write, path, data in ((write_json, "metrics.json", {{"big": ["x" * 100] * 1000}}), (write_text, "notes.txt", "y" * 100_000)):
        try:
            write(Path({str(tmp_path)!r}) / path, data)
        except StorageError as err:
            print("StorageError:", err)
    """
    )
    assert result.returncode == 0, result.stderr
    errors = result.stdout.splitlines()
    assert len(errors) == 2
    for line, name in zip(errors, ("metrics.json", "notes.txt"), strict=True):
        assert line.startswith(f"StorageError: cannot write {tmp_path / name}: file too large")
        assert "paths.cache_dir" in line and "hydra.sweep.dir" in line
    assert json.loads((tmp_path / "metrics.json").read_text()) == old
    assert (tmp_path / "notes.txt").read_text() == "previous notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "notes.txt"]  # no temp left


def test_out_of_space_is_recognised_in_library_messages():
    from epx.io.atomic import out_of_space

    assert out_of_space(OSError(28, "No space left on device")) == "no space left on the device"
    hdf5 = "Unable to extend file properly, errno = 27, error message = 'file too large' (file write failed: errno = 27)"
    assert out_of_space(RuntimeError(hdf5)) == "file too large"
    assert out_of_space(OSError("Can't write data (file write failed: errno = 122, error message = 'Disk quota exceeded')"))
    wrapped = RuntimeError("flush failed")
    wrapped.__cause__ = OSError(28, "No space left on device")
    assert out_of_space(wrapped) == "no space left on the device"
    assert out_of_space(OSError(2, "No such file or directory")) is None
    assert out_of_space(RuntimeError("errno = 2, error message = 'No such file or directory'")) is None
    assert out_of_space(ValueError("no space left on device")) is None  # only I/O errors


def test_cache_build_without_room_keeps_the_old_cache(tiny_folder, tmp_path):
    cache_dir = tmp_path / "cache"
    first = _cache(tiny_folder, cache_dir, prefetch_all_marks=False)
    path = first.ensure(["H3K4me3"])
    before = path.read_bytes()
    good = first.load(["H3K4me3"])
    result = run_python(
        NO_ROOM_PRELUDE
        + f"""
    from pathlib import Path
    from epx.data.prepare.cache import CellCache
    from epx.data.prepare.contract import DatasetSpec
    from epx.errors import StorageError
    cache = CellCache(DatasetSpec(root=Path({str(tiny_folder)!r})), "E003", Path({str(cache_dir)!r}), prefetch_all_marks=False)
    limit({len(before) // 2})  # the new file (both marks) is larger than the old one
    try:
        cache.ensure(["H3K4me3", "H3K27ac"])
    except StorageError as err:
        print("StorageError:", err)
    """
    )
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    assert line.startswith(f"StorageError: cannot write {path}: file too large") and "paths.cache_dir" in line
    assert path.read_bytes() == before  # the old cache is untouched ...
    assert list(_cache(tiny_folder, cache_dir).valid_marks()) == ["H3K4me3"]  # ... and still valid
    assert list(path.parent.glob(f"*{TMP_MARK}*")) == []
    np.testing.assert_array_equal(first.load(["H3K4me3"])["chr1"], good["chr1"])


# ---------------------------------------------------------------- the cache under faults


def kill_cache_build_midway(folder: Path, cache_dir: Path, dtype: str = "float32") -> subprocess.CompletedProcess:
    """Build ``folder``'s E003 cache in a child process that SIGKILLs itself once the first
    mark is in the temp file (tests/test_cache_precision.py kills half-precision builds too)."""
    return run_python(
        f"""
    import os, signal
    from pathlib import Path
    from epx.data.prepare import cache as cache_mod
    from epx.data.prepare.cache import CellCache
    from epx.data.prepare.contract import DatasetSpec
    real, calls = cache_mod.read_binned, []
    def read_then_die(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:  # after the first mark is in the temp file
            os.kill(os.getpid(), signal.SIGKILL)
        return real(path, *args, **kwargs)
    cache_mod.read_binned = read_then_die
    CellCache(DatasetSpec(root=Path({str(folder)!r})), "E003", Path({str(cache_dir)!r}), dtype={dtype!r}).ensure(["H3K4me3"])
    """
    )


def test_cache_build_killed_midway_is_rebuilt_on_rerun(tiny_folder, tmp_path):
    cache_dir = tmp_path / "cache"
    result = kill_cache_build_midway(tiny_folder, cache_dir)
    assert result.returncode == -signal.SIGKILL, result.stderr
    cache = _cache(tiny_folder, cache_dir)
    assert not cache.path.exists()
    assert len(list(cache.dir.glob(f"*{TMP_MARK}*"))) == 1  # the dead build's half-written temp file
    assert cache.valid_marks() == {}
    tracks = cache.load(["H3K4me3", "H3K27ac"])
    assert list(cache.dir.glob(f"*{TMP_MARK}*")) == []  # the rerun cleaned it up
    from epx.io.bigwig import read_binned

    for index, mark in enumerate(["H3K4me3", "H3K27ac"]):
        expected = read_binned(tiny_folder / "signals" / f"E003-{mark}.bigwig", cache.chrom_sizes)
        for chrom, values in expected.items():
            np.testing.assert_array_equal(tracks[chrom][:, index], values)


def test_two_processes_build_one_cache_once(tiny_folder, tmp_path):
    cache_dir, go = tmp_path / "cache", tmp_path / "go"
    code = f"""
    import logging, os, sys, time
    from pathlib import Path
    import numpy as np
    from epx.data.prepare import cache as cache_mod
    from epx.data.prepare.cache import CellCache
    from epx.data.prepare.contract import DatasetSpec
    logging.basicConfig(level=logging.INFO, format="%(process)d %(message)s")
    real = cache_mod.read_binned
    def slow(*args, **kwargs):  # a build long enough for the other process to find it locked
        time.sleep(0.5)
        return real(*args, **kwargs)
    cache_mod.read_binned = slow
    (Path({str(tmp_path)!r}) / f"ready-{{os.getpid()}}").touch()
    while not Path({str(go)!r}).exists():
        time.sleep(0.005)
    tracks = CellCache(DatasetSpec(root=Path({str(tiny_folder)!r})), "E003", Path({str(cache_dir)!r})).load(["H3K4me3", "H3K27ac"])
    np.savez(Path({str(tmp_path)!r}) / f"tracks-{{os.getpid()}}.npz", **tracks)
    """
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests")}
    procs = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    deadline = time.monotonic() + LAUNCH_TIMEOUT
    while len(list(tmp_path.glob("ready-*"))) < 2:  # both imported: they start together
        assert time.monotonic() < deadline and all(proc.poll() is None for proc in procs)
        time.sleep(0.01)
    go.touch()
    logs = [proc.communicate(timeout=LAUNCH_TIMEOUT)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], logs
    lines = "\n".join(logs).splitlines()
    assert len([line for line in lines if "caching E003 H3K4me3" in line]) == 1
    assert len([line for line in lines if "caching E003 H3K27ac" in line]) == 1
    assert len([line for line in lines if "waiting for another process building cache" in line]) == 1
    first, second = (np.load(tmp_path / f"tracks-{proc.pid}.npz") for proc in procs)
    assert sorted(first.files) == sorted(second.files) == ["chr1", "chr2"]
    for chrom in first.files:
        np.testing.assert_array_equal(first[chrom], second[chrom])


def _damage_data(path: Path, mark: str = "H3K4me3", chrom: str = "chr1") -> None:
    """Overwrite bytes in the middle of the first stored chunk of ``mark/chrom``."""
    with h5py.File(path, "r") as f:
        info = f[mark][chrom].id.get_chunk_info(0)
    with open(path, "r+b") as handle:
        handle.seek(info.byte_offset + info.size // 2)
        handle.write(b"\xff\x00" * 16)


def test_damaged_cache_data_is_rebuilt_with_a_warning(tiny_folder, tmp_path, caplog):
    cache = _cache(tiny_folder, tmp_path / "cache")
    good = cache.load(["H3K4me3", "H3K27ac"])
    _damage_data(cache.path)
    assert set(cache.valid_marks()) == {"H3K4me3", "H3K27ac"}  # the header looks fine
    tracks = cache.load(["H3K4me3", "H3K27ac"])
    for chrom, values in good.items():
        np.testing.assert_array_equal(tracks[chrom], values)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].startswith(f"cache {cache.path} is corrupt") and "rebuilding it" in warnings[0]


def test_truncated_cache_is_rebuilt_with_a_warning(tiny_folder, tmp_path, caplog):
    cache = _cache(tiny_folder, tmp_path / "cache")
    good = cache.load(["H3K4me3"])
    data = cache.path.read_bytes()
    cache.path.write_bytes(data[: len(data) * 2 // 3])
    np.testing.assert_array_equal(cache.load(["H3K4me3"])["chr2"], good["chr2"])
    assert any("rebuilding it" in r.getMessage() and str(cache.path) in r.getMessage() for r in caplog.records)


def test_cache_that_stays_unreadable_is_one_input_error(tiny_folder, tmp_path, monkeypatch):
    """Damage that a rebuild does not cure (a failing disk): one InputError naming the file."""
    cache = _cache(tiny_folder, tmp_path / "cache")
    cache.ensure(["H3K4me3"])
    real_write = CellCache._write

    def write_damaged(self, keep, build):
        real_write(self, keep, build)
        _damage_data(self.path)

    monkeypatch.setattr(CellCache, "_write", write_damaged)
    _damage_data(cache.path)
    with pytest.raises(InputError) as info:
        cache.load(["H3K4me3"])
    message = str(info.value)
    assert message.startswith(f"cache file {cache.path} cannot be read even after rebuilding it")
    assert f"delete {cache.path} (epx rebuilds it on the next run)" in message
    assert type(info.value) is InputError
