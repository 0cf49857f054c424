"""The one list of keys that say how or where a job runs (``epx.config.RUN_KEYS``): the config
digest, a named sweep's job-dir name (Hydra's own ``override_dirname``) and ``epx diff`` all
leave out every one of them, and all three see a key that changes what a job computes."""

from __future__ import annotations

import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir

from epx.analysis.diff import changes, diff_text, flatten
from epx.config import CONF_DIR, RUN_KEYS, compose, is_run_key, run_key
from epx.job import config_digest

# one override per run key (hydra.* overrides never reach a job's name or digest: Hydra keeps them apart)
SAMPLES = {
    "paths": "paths.data_dir=/elsewhere",
    "dataset.root": "dataset.root=/elsewhere/data",
    "data.cache_dir": "data.cache_dir=/elsewhere/cache",
    "sweep": "sweep=another",
    "rerun": "rerun=true",
    "threads": "threads=3",
    "num_workers": "num_workers=2",
    "data.num_workers": "data.num_workers=2",
    "compute": "compute.compile=true",
    "data.pin_memory": "data.pin_memory=false",
    "trainer.accelerator": "trainer.accelerator=cpu",
    "trainer.enable_progress_bar": "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary": "trainer.enable_model_summary=false",
    "trainer.log_every_n_steps": "trainer.log_every_n_steps=50",
    "logger": "logger=csv",
    "tags": "tags=[x]",
    "analysis": "analysis=[perturb]",
}
BASE = ["sweep=study", "fold=1"]


def job_dir_name(overrides: list[str]) -> str:
    """What Hydra names the job dir of a named sweep: its override_dirname (conf/hydra)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=overrides, return_hydra_config=True)
    return str(cfg.hydra.job.override_dirname)


def with_override(override: str) -> list[str]:
    key = override.split("=", 1)[0]
    return [item for item in BASE if item.split("=", 1)[0] != key] + [override]


def test_every_run_key_has_a_sample_and_says_why():
    assert set(SAMPLES) == {entry.key for entry in RUN_KEYS} - {"hydra"}
    assert all(entry.kind in ("where", "how") and entry.why for entry in RUN_KEYS)
    assert run_key("compute.compile").key == "compute" and is_run_key("+logger.mode") and not is_run_key("trainer.max_epochs")


def test_compute_compile_does_not_rename_a_named_sweeps_job_dir():
    assert job_dir_name([*BASE, "compute.compile=true"]) == job_dir_name(BASE) == "fold=1"


@pytest.mark.parametrize("key", sorted(SAMPLES))
def test_digest_dir_name_and_diff_agree_on_a_run_key(key):
    override = SAMPLES[key]
    base, changed = compose(BASE), compose(with_override(override))
    assert config_digest(changed) == config_digest(base), override
    assert job_dir_name(with_override(override)) == job_dir_name(BASE), override
    a, b = flatten(base), flatten(changed)
    assert changes(a.values, b.values) == [], override  # never a config difference
    assert changes({**a.machine, **a.how}, {**b.machine, **b.how}), override  # but noted or shown apart


def test_a_key_of_what_the_job_computes_changes_all_three():
    override = "trainer.max_epochs=3"
    base, changed = compose(BASE), compose([*BASE, override])
    assert config_digest(changed) != config_digest(base)
    assert job_dir_name([*BASE, override]) != job_dir_name(BASE)
    assert changes(flatten(base).values, flatten(changed).values) == [("trainer.max_epochs", 30, 3)]


def test_diff_shows_how_a_job_runs_apart_from_what_it_computes():
    out = diff_text("fold=1", "fold=1 compute.compile=true trainer.max_epochs=3")
    config, how = (
        [line for line in part.splitlines() if line[:1] in ("+", "-") and not line.startswith(("+++", "---"))]
        for part in out.split("# how the jobs run")
    )
    assert config == ["-trainer.max_epochs: 30", "+trainer.max_epochs: 3"]
    assert how == ["-compute.compile: false", "+compute.compile: true"]
