"""A job's console: each line once, no third-party noise, no progress bars in a log file, one
closing line per job, a multirun's summary table, and ``launch.log`` holding all of it (issue 24).
"""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

from conftest import REPO

from epx.console import (
    NOISE_WARNINGS,
    closing_line,
    progress_bars_wanted,
    quiet_third_party,
)

NOISE = ("litlogger", "anonymous setting", "SpearmanCorrcoef", "padding='same'", "LeafSpec", "`weights_only` was not set")
LOG_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\]\[[\w.]+\]\[\w+\] - ")


def _record(**kw):
    base = {"status": "ok", "primary_metric": "pearson", "test": {"pearson": 0.78251, "mse": 0.41, "spearman": 0.7},
            "genes": {"used": 1840, "dropped_total": 230}, "error": None, "wall_seconds": 186.0, "smoke": False, "reused": False}
    return SimpleNamespace(**{**base, **kw})


def test_closing_line_says_status_metrics_genes_time_and_dir():
    line = closing_line(_record(), "/x/job")
    assert line == "job ok: pearson 0.7825 | mse 0.4100, spearman 0.7000 | genes 1840 used, 230 dropped | 3.1 min | /x/job"
    smoke = closing_line(_record(smoke=True, test={}, wall_seconds=4.2), "/j")
    assert smoke.startswith("job ok (smoke run: not a result): pearson n/a") and "4.2 s" in smoke
    failed = closing_line(_record(status="failed", test={}, genes={}, error="InputError: bad\nmore"), "/j")
    assert "job failed: pearson n/a" in failed and "error: InputError: bad |" in failed


def test_progress_bars_only_on_a_terminal():
    assert progress_bars_wanted(io.StringIO()) is False

    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert progress_bars_wanted(Tty()) is True


def test_named_warnings_are_filtered_narrowly(monkeypatch):
    from epx import console

    monkeypatch.setattr(console, "_done", False)
    with warnings.catch_warnings(record=True) as caught:
        quiet_third_party()
        logging.captureWarnings(False)  # back to the recorder of this test
        for category, module, message, _why in NOISE_WARNINGS:
            text = message.replace("\\", "").replace(".*", "") + " (test)"
            warnings.warn_explicit(text, category, "f.py", 1, module=module + ".x")
        warnings.warn_explicit("Metric `SpearmanCorrcoef` will save all targets", UserWarning, "f.py", 1, module="epx.mine")
    assert [str(w.message) for w in caught] == ["Metric `SpearmanCorrcoef` will save all targets"]  # only from its module


def _launch(args, cwd, tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled", "WANDB_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(REPO / "launch.py"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=400, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _check_quiet(proc, log_files, *, once=True):
    console = proc.stdout + proc.stderr
    assert "\r" not in console and "\x1b[" not in console  # no progress bar outside a terminal
    for noise in NOISE:
        assert noise not in console, noise
    lines = [line for line in console.splitlines() if LOG_LINE.match(line)]
    messages = [LOG_LINE.sub("", line) for line in lines]
    if once:  # (in a multirun, jobs say the same things)
        assert len(messages) == len(set(messages)), "a log line printed twice"
    assert not [line for line in proc.stderr.splitlines() if line.startswith("INFO:")]  # Lightning's own copy
    if log_files:
        logged = "".join(Path(f).read_text() for f in log_files)
        missing = [m for m in messages if m not in logged]
        assert not missing, f"console lines not in launch.log: {missing[:3]}"
    return messages


def test_a_job_ends_with_its_result_and_prints_each_line_once(tmp_path, small_synthetic):
    data = ["dataset=folder", f"dataset.root={small_synthetic}", f"paths.cache_dir={tmp_path / 'cache'}", "cell=E003"]
    run = tmp_path / "run"
    proc = _launch([*data, "trainer=cpu", "trainer.max_epochs=2", f"hydra.run.dir={run}"], tmp_path, tmp_path)
    messages = _check_quiet(proc, [run / "launch.log"])
    epochs = [m for m in messages if re.match(r"epoch \d/2: ", m)]
    assert len(epochs) == 2 and "val/pearson" in epochs[0]
    assert re.match(rf"job ok: pearson -?\d\.\d{{4}} \| .*mse .*genes \d+ used, \d+ dropped \| [\d.]+ s \| {re.escape(str(run))}$", messages[-1]), messages[-1]


def test_a_multirun_ends_with_its_summary_table(tmp_path, small_synthetic):
    data = ["dataset=folder", f"dataset.root={small_synthetic}", f"paths.cache_dir={tmp_path / 'cache'}", "cell=E003"]
    sweep = tmp_path / "sweep"
    proc = _launch(["-m", *data, "model=linear", "fold=0,1", "logger=none", f"hydra.sweep.dir={sweep}"], tmp_path, tmp_path)
    console = proc.stdout + proc.stderr
    assert len(re.findall(r"- job ok: pearson", console)) == 2
    table = console[console.index("grid summary (") :]
    assert re.search(r"job\s+model\s+cell\s+mark\s+fold\s+status\s+primary", table)
    assert re.search(r"\n0\s+linear\s+E003\s+H3K4me3\s+0\s+ok\s+pearson -?\d\.\d{4}", table)
    assert "2 jobs: 2 ok" in table
    _check_quiet(proc, [], once=False)


def _sweep_with_a_smoke_run(tmp_path):
    from epx.record import JobRecord

    sweep = tmp_path / "sweep"
    for job, smoke, value in (("0", False, 0.61), ("1", True, -0.34)):
        (sweep / job).mkdir(parents=True)
        record = JobRecord(cell="E003", mark="H3K4me3", fold=int(job), model="chromoformer", task="regression", seed=0,
                           primary_metric="pearson", test={"pearson": value}, status="ok", smoke=smoke, wall_seconds=5.0)
        record.write(sweep / job)
    return sweep


def test_smoke_runs_are_marked_and_left_out_of_summaries(tmp_path, capsys):
    from epx.analysis.collect import collect_rows
    from epx.analysis.status import job_states
    from epx.analysis.summary import main as summarize
    from epx.record import is_smoke

    assert is_smoke({"fast_dev_run": True}) and is_smoke({"fast_dev_run": 3}) and not is_smoke({"max_epochs": 30})
    sweep = _sweep_with_a_smoke_run(tmp_path)
    assert [row["job"] for row in collect_rows(sweep)] == ["0"]
    assert {row["job"]: row["state"] for row in job_states(sweep)} == {"0": "ok", "1": "smoke"}
    assert summarize([str(sweep), "--no-wandb"]) == 0
    table = capsys.readouterr().out
    assert re.search(r"^0\s+chromoformer\s+E003\s+H3K4me3\s+0\s+ok\s+pearson 0.6100$", table, re.MULTILINE) and "-0.34" not in table
    assert "1 jobs: 1 ok" in table
    assert summarize([str(sweep), "--no-wandb", "--include-smoke"]) == 0
    assert "pearson -0.3400" in capsys.readouterr().out


def test_other_commands_print_lightning_lines_once():
    code = (
        "import logging\n"
        "logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')\n"
        "from epx.console import quiet_commands\n"
        "quiet_commands()\n"
        "import lightning.pytorch\n"
        "logging.getLogger('lightning.pytorch.utilities.rank_zero').info('hello once')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (proc.stdout + proc.stderr).count("hello once") == 1
