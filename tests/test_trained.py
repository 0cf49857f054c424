"""A finished job's dir is data, never code (``epx.trained``): its saved config is loaded as
written, only ``_target_``s of ``conf/`` are built, no environment resolver of the saved file
is resolved, and checkpoints are read ``weights_only``. No training: configs and checkpoints
are written by hand."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from epx.config import compose
from epx.errors import InputError
from epx.trained import SAVED_CONFIG, job_config, load_checkpoint


def saved_job(tmp_path, *overrides, edit=None):
    job = tmp_path / "job"
    cfg = compose(["dataset=folder", "dataset.root=/data/folder", *overrides])
    plain = OmegaConf.to_container(cfg, resolve=False)
    if edit:
        edit(plain)
    (job / SAVED_CONFIG).parent.mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(plain), job / SAVED_CONFIG)
    return job


def test_the_saved_config_is_the_jobs_own_with_the_overrides_applied(tmp_path):
    job = saved_job(tmp_path, "+model.net.channels=7", "paths.cache_dir=/cache/here")
    cfg = job_config(job, ["cell=E114", "fold=2"])
    assert cfg.model.net.channels == 7  # the job's recipe, whatever conf/ says today
    assert (cfg.cell, cfg.fold, cfg.paths.cache_dir, cfg.paths.output_dir) == ("E114", 2, "/cache/here", str(job))
    other = job_config(job, ["dataset=synthetic"])
    assert other.dataset.name == "synthetic" and other.model.net.channels == 7
    with pytest.raises(InputError, match="experiment=chromoformer_paper: no node experiment"):
        job_config(job, ["experiment=chromoformer_paper"])


def test_a_target_conf_does_not_name_is_refused(tmp_path):
    job = saved_job(tmp_path, edit=lambda plain: plain["callbacks"]["checkpoint"].update(_target_="os.system"))
    with pytest.raises(InputError, match=rf"{job / SAVED_CONFIG}: callbacks.checkpoint._target_ names 'os.system'"):
        job_config(job, [])


def test_environment_resolvers_of_the_saved_config_are_never_resolved(tmp_path, monkeypatch):
    monkeypatch.setenv("EPX_TEST_SECRET", "s3cret")
    job = saved_job(tmp_path, edit=lambda plain: plain["dataset"].update(note="${oc.env:EPX_TEST_SECRET}"))
    with pytest.raises(InputError, match=r"dataset.note = '\$\{oc.env:EPX_TEST_SECRET\}' reads the environment"):
        job_config(job, [])
    # a key conf/ has takes conf/'s own value, never the saved interpolation
    secret = "${oc.env:EPX_TEST_SECRET}"
    job = saved_job(tmp_path / "b", edit=lambda plain: (plain["paths"].update(data_dir=secret), plain["dataset"]["files"].update(tss=secret)))
    cfg = job_config(job, [])
    assert OmegaConf.to_container(cfg.paths)["data_dir"] == "${oc.env:EPX_DATA_DIR,data}" and cfg.dataset.files.tss == "tss.bed"


def test_no_saved_config_is_one_error(tmp_path):
    with pytest.raises(InputError, match="no saved config"):
        job_config(tmp_path, [])


class Payload:
    pass


def test_a_checkpoint_is_read_as_plain_weights_and_its_targets_checked(tmp_path):
    objects = tmp_path / "objects.ckpt"
    torch.save({"hyper_parameters": {"provenance": {"x": Payload()}}, "state_dict": {}}, objects)
    with pytest.raises(InputError, match="not a readable checkpoint of plain weights"):
        load_checkpoint(objects)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"hyper_parameters": {"provenance": {"net": {"_target_": "os.system"}}}, "state_dict": {}}, foreign)
    with pytest.raises(InputError, match=r"\(provenance\): net._target_ names 'os.system'"):
        load_checkpoint(foreign)
