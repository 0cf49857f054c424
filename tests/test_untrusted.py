"""A job dir is data, never code (issue 23, part 1): one test per attack, each a clear refusal
with nothing executed and nothing written outside the job dir.

Attacks: a pickle-bomb checkpoint (``epx predict``, ``epx explain``, a job resuming from
``last.ckpt``), an injected ``_target_`` (in the recorded overrides, the saved config, or a
command-line override), an environment interpolation (``epx diff``), an alias bomb (the saved
config read by ``epx predict`` and by ``epx diff``), a traversal id (``cell=../../x``). One
small linear job (on a 4-chromosome synthetic folder of its own) is trained once (in-process)
and copied for each attack; an alias bomb in a sweep dir makes its job unreadable in
``epx summarize`` and ``epx status``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from epx.analysis.collect import collect_rows
from epx.analysis.diff import DiffError, diff_text
from epx.analysis.status import main as status_main
from epx.analysis.summary import main as summarize_main
from epx.config import compose
from epx.errors import InputError
from epx.explain.run import explain
from epx.predict import predict
from epx.record import JobRecord
from epx.run import train
from epx.trained import SAVED_CONFIG, job_config, open_job
from test_faults import job_overrides


class Bomb:
    """Unpickled, it would create the file ``MARKER`` names (in the env, so the test knows where)."""

    def __reduce__(self):
        return (os.system, (f"touch {os.environ['EPX_TEST_MARKER']}",))


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 10) + "]\n" for i in range(9)
)  # 10**10 leaves once expanded


def _cfg(tmp: Path, folder: Path, out: Path, *extra: str):
    return compose(job_overrides(tmp, folder, "model=linear", "mark=H3K4me3", "trainer.max_epochs=1", "dataset.folds.scheme=balanced",
                                 "dataset.folds.n_folds=4", f"paths.output_dir={out}", *extra))  # fmt: skip


@pytest.fixture(scope="module")
def tiny_synthetic(tmp_path_factory) -> Path:
    """4 chromosomes x 500 kb, 24 genes, one cell: every attack needs a real job, not a big one."""
    from epx.synthetic.generate import generate

    return generate(tmp_path_factory.mktemp("untrusted_data") / "tiny", seed=1, n_chroms=4, chrom_length=500_000, genes_per_chrom=6, cells=("E003",))


@pytest.fixture(scope="module")
def trained(tiny_synthetic, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("untrusted")
    record = train(_cfg(tmp, tiny_synthetic, tmp / "job"))
    assert record.finished, record.error
    return tmp / "job"


@pytest.fixture
def marker(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "EXECUTED"
    monkeypatch.setenv("EPX_TEST_MARKER", str(path))
    return path


def copy_job(trained: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy, ignore=shutil.ignore_patterns("predict", "explain"))
    return copy


def bomb_checkpoints(job: Path) -> None:
    for ckpt in (job / "checkpoints").glob("*.ckpt"):
        torch.save({"state_dict": {}, "hyper_parameters": {"provenance": Bomb()}}, ckpt)


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


# ---------------------------------------------------------------- pickle bombs


def test_a_pickle_bomb_checkpoint_is_refused_by_predict_unexecuted(trained, tmp_path, marker):
    job = copy_job(trained, tmp_path)
    bomb_checkpoints(job)
    with pytest.raises(InputError, match=r"best.ckpt: not a readable checkpoint of plain weights .*never unpickles code"):
        predict(job)
    assert not marker.exists() and not (job / "predict").exists()


def test_a_pickle_bomb_checkpoint_is_refused_by_explain_unexecuted(trained, tmp_path, marker):
    job = copy_job(trained, tmp_path)
    bomb_checkpoints(job)
    with pytest.raises(InputError, match="not a readable checkpoint of plain weights"):
        explain(job, {"activity": {}})
    assert not marker.exists() and not (job / "explain").exists()


def test_a_pickle_bomb_last_ckpt_is_refused_when_a_job_resumes(trained, tmp_path, tiny_synthetic, marker):
    job = copy_job(trained, tmp_path)
    record = JobRecord.read(job)
    record.status = "interrupted"
    record.write(job)
    torch.save({"state_dict": {}, "loops": Bomb()}, job / "checkpoints" / "last.ckpt")
    with pytest.raises(InputError, match=r"last.ckpt: not a readable checkpoint of plain weights \(UnpicklingError: Trying to load unsupported GLOBAL posix.system whose module posix is blocked\.\)"):
        train(_cfg(tmp_path, tiny_synthetic, job))
    failed = JobRecord.read(job)
    assert failed.status == "failed" and "last.ckpt: not a readable checkpoint of plain weights" in failed.error
    assert not marker.exists()


def test_a_copied_job_dir_scores_its_own_checkpoint(trained, tmp_path):
    job = copy_job(trained, tmp_path)
    assert Path(JobRecord.read(job).checkpoint).parent == trained / "checkpoints"  # the record names the original
    assert open_job(job).checkpoint.parent == job / "checkpoints"


# ---------------------------------------------------------------- injected config


def test_an_injected_target_is_refused_and_writes_nothing(trained, tmp_path, marker):
    job = copy_job(trained, tmp_path)
    record = JobRecord.read(job)  # recorded overrides are never composed again: inert
    record.overrides.append(f"+evil={{_target_: epx.io.atomic.write_text, path: {marker}, text: x}}")
    record.write(job)
    assert open_job(job).cfg.get("evil") is None and not marker.exists()
    with pytest.raises(InputError, match=r"evil._target_ names 'epx.io.atomic.write_text', which no config of conf/ names"):
        job_config(job, [f"+evil={{_target_: epx.io.atomic.write_text, path: {marker}, text: x}}"])
    saved = (job / SAVED_CONFIG).read_text()
    (job / SAVED_CONFIG).write_text(saved + f"evil:\n  _target_: epx.io.atomic.write_text\n  path: {marker}\n  text: x\n")
    with pytest.raises(InputError, match=r"config.yaml: evil._target_ names 'epx.io.atomic.write_text'"):
        predict(job)
    assert not marker.exists() and not (job / "predict").exists()


def test_diff_never_prints_an_environment_value(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("EPX_TEST_SECRET", "s3cret-value")
    job = copy_job(trained, tmp_path)
    saved = (job / SAVED_CONFIG).read_text()
    (job / SAVED_CONFIG).write_text(saved + "note: ${oc.env:EPX_TEST_SECRET}\nquoted: key=${note}\n")
    for markdown in (False, True):
        text = diff_text(str(trained), str(job), markdown=markdown)
        assert "s3cret-value" not in text and "${oc.env:EPX_TEST_SECRET}" in text


# ---------------------------------------------------------------- alias bomb


def test_an_alias_bomb_is_refused_quickly_with_one_error(trained, tmp_path):
    job = copy_job(trained, tmp_path)
    (job / SAVED_CONFIG).write_text(ALIAS_BOMB)
    start = time.perf_counter()
    with pytest.raises(InputError, match="aliases expand to more than 200,000 nodes"):
        predict(job)
    with pytest.raises(DiffError, match="aliases expand to more than"):
        diff_text(str(trained), str(job), markdown=False)
    assert time.perf_counter() - start < 5 and not (job / "predict").exists()
    (job / SAVED_CONFIG).write_text("x: '" + "y" * (5 << 20) + "'\n")
    with pytest.raises(InputError, match="more than the 4,194,304 a job config may have"):
        job_config(job, [])


def test_an_alias_bomb_in_a_sweep_dir_makes_its_job_unreadable_in_summarize_and_status(trained, tmp_path, capsys):
    sweep = tmp_path / "sweep"
    (sweep / "0").mkdir(parents=True)
    shutil.copytree(trained, sweep / "0", dirs_exist_ok=True, ignore=shutil.ignore_patterns("predict", "explain"))
    shutil.copytree(sweep / "0", sweep / "1")
    (sweep / "0" / ".hydra" / "overrides.yaml").write_text(ALIAS_BOMB)  # walked by str(item) before bounds
    (sweep / "1" / ".hydra" / "overrides.yaml").write_text("[]\n")
    (sweep / "1" / SAVED_CONFIG).write_text(ALIAS_BOMB)
    (sweep / "multirun.yaml").write_text(ALIAS_BOMB)
    start = time.perf_counter()
    rows = {row["job"]: row for row in collect_rows(sweep)}
    assert {job: row["status"] for job, row in rows.items()} == {"0": "unreadable", "1": "unreadable"}
    assert re.search(r"0/\.hydra/overrides\.yaml: its YAML anchors and aliases expand to more than 200,000 nodes", rows["0"]["error"])
    assert re.search(r"1/\.hydra/config\.yaml: its YAML anchors and aliases expand", rows["1"]["error"])
    assert summarize_main([str(sweep)]) == 0
    assert status_main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "unreadable" in out and "aliases expand to more than" in out
    assert time.perf_counter() - start < 10  # never expanded: no hang, no memory


# ---------------------------------------------------------------- traversal ids


@pytest.mark.parametrize("cell", ["../../x", "E003\u200b"])
def test_a_traversal_or_whitespace_cell_id_is_refused_naming_it(trained, tmp_path, tiny_synthetic, cell):
    folder = tmp_path / "folder"
    folder.mkdir()
    for entry in tiny_synthetic.iterdir():
        if entry.name != "expression.tsv":
            (folder / entry.name).symlink_to(entry)
    expression = pd.read_csv(tiny_synthetic / "expression.tsv", sep="\t")
    expression[cell] = expression["E003"]  # the id comes from the data
    expression.to_csv(folder / "expression.tsv", sep="\t", index=False)
    before = files_under(tmp_path)
    with pytest.raises(InputError, match=re.escape(f"cell {cell!r} is not a safe id")):
        predict(trained, [f"dataset.root={folder}", f"cell={json.dumps(cell, ensure_ascii=False)}"])
    with pytest.raises(InputError, match=re.escape(f"cell {cell!r} is not a safe id")):
        train(_cfg(tmp_path, folder, tmp_path / "job", f"cell={json.dumps(cell, ensure_ascii=False)}"))
    job = tmp_path / "job"
    assert files_under(tmp_path) - before <= files_under(job) | {job}  # nothing outside the job dir
    assert not [*tmp_path.parent.glob("x*"), *tmp_path.glob("x*")]  # where ../../x would have landed
