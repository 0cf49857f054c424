"""Grid summary (epx.analysis.summary / .collect / .plot / .grid / .callback) on hand-built Hydra sweep dirs."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from epx.analysis.collect import canonical_mark, collect_rows
from epx.analysis.grid import expand_overrides, expected_grid, grid_from_multirun, write_grid
from epx.analysis.plot import heatmap_panels
from epx.analysis.summary import main, summarize, summarize_quietly
from epx.record import SCHEMA_VERSION, JobRecord

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_sweep(sweep: Path, task_overrides: list[str], *, model: str = "promoter_cnn", task: str = "regression") -> None:
    """multirun.yaml as Hydra's BasicSweeper saves it (only the keys the summary reads)."""
    sweep.mkdir(parents=True, exist_ok=True)
    config = {
        "cell": "E003",
        "mark": "H3K4me3",
        "fold": 0,
        "task": {"name": task, "out_dim": 1, "objective": {"_target_": "epx.train.objectives.Regression"}},
        "seed": 0,
        "test_cell": None,
        "hydra": {
            "sweep": {"dir": str(sweep), "subdir": "${hydra.job.num}"},
            "sweeper": {
                "_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                "max_batch_size": None,
                "params": None,
            },
            "overrides": {"hydra": [f"hydra.sweep.dir={sweep}"], "task": task_overrides},
            "runtime": {"choices": {"model": model, "task": task, "trainer": "default"}},
        },
    }
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(config))


def write_job(
    sweep: Path,
    num: int,
    overrides: list[str],
    metrics: dict | str | None = None,
    *,
    model: str = "promoter_cnn",
    config: dict | None = None,
) -> Path:
    """A job dir: .hydra/{overrides,config,hydra}.yaml and, if given, metrics.json
    (a str is written verbatim, to fake a truncated file)."""
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    values = dict(config or {})
    for item in overrides:
        key, value = item.split("=", 1)
        values[key] = yaml.safe_load(value)
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(values))
    (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"runtime": {"choices": {"model": model}}}}))
    if isinstance(metrics, str):
        (job / "metrics.json").write_text(metrics)
    elif metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))
    return job


def metrics_for(overrides: list[str], *, status: str = "ok", test: dict | None = None, **extra) -> dict:
    values = dict(item.split("=", 1) for item in overrides)
    record = {
        "cell": values.get("cell", "E003"),
        "mark": values.get("mark", "H3K4me3"),
        "marks": values.get("mark", "H3K4me3").split("+"),
        "fold": int(values.get("fold", 0)),
        "model": "promoter_cnn",
        "task": "regression",
        "seed": 0,
        "test_cell": None,
        "n_params": 12345,
        "n_genes": {"train": 900, "val": 100, "test": 300},
        "genes": {
            "tss": 1334, "expression": 1334, "used": 1300, "split": {"train": 900, "val": 100, "test": 300},
            "dropped": {"chromosome absent from the signals": 34}, "dropped_total": 34,
        },
        "test": test if test is not None else {"pearson": 0.71, "spearman": 0.66, "mse": 1.3},
        "status": status,
        "error": None,
        "wall_seconds": 12.3,
        "wandb": {"id": "abc", "dir": "wandb", "mode": "offline"},
        "overrides": overrides,
    }
    record.update(extra)
    return record


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


GRID = ["cell=E003,E114", "mark=H3K4me3,H3K27ac", "fold=0"]
# BasicSweeper order: the first override varies slowest.
JOBS = [
    ["cell=E003", "mark=H3K4me3", "fold=0"],
    ["cell=E003", "mark=H3K27ac", "fold=0"],
    ["cell=E114", "mark=H3K4me3", "fold=0"],
    ["cell=E114", "mark=H3K27ac", "fold=0"],
]


@pytest.fixture()
def mixed_sweep(tmp_path: Path) -> Path:
    """2 cells × 2 marks × 1 fold: job 0 ok, 1 failed, 2 never started, 3 truncated metrics."""
    sweep = tmp_path / "sweep"
    write_sweep(sweep, GRID)
    write_job(sweep, 0, JOBS[0], metrics_for(JOBS[0]))
    write_job(sweep, 1, JOBS[1], metrics_for(JOBS[1], status="failed", test={}, error="RuntimeError: boom\n  at line 3"))
    write_job(sweep, 3, JOBS[3], '{"cell": "E114", "mark": "H3K27')
    return sweep


def test_expected_grid_is_hydras_expansion(tmp_path: Path) -> None:
    write_sweep(tmp_path, GRID)
    assert expected_grid(tmp_path) == JOBS


def test_csv_has_one_row_per_job_with_exact_values(mixed_sweep: Path) -> None:
    csv_path, png_path = summarize(mixed_sweep)
    assert (csv_path, png_path) == (mixed_sweep / "summary.csv", mixed_sweep / "summary.png")
    rows = read_csv(csv_path)
    assert list(rows[0]) == [
        "job", "cell", "mark", "fold", "model", "task", "seed", "test_cell", "status",
        "n_params", "n_train", "n_val", "n_test", "genes_used", "genes_dropped", "primary_metric",
        "test_pearson", "test_spearman", "test_mse", "wall_seconds", "wandb_id", "error", "overrides",
    ]  # fmt: skip
    assert [(r["job"], r["cell"], r["mark"], r["fold"], r["status"]) for r in rows] == [
        ("0", "E003", "H3K4me3", "0", "ok"),
        ("1", "E003", "H3K27ac", "0", "failed"),
        ("2", "E114", "H3K4me3", "0", "missing"),
        ("3", "E114", "H3K27ac", "0", "unreadable"),
    ]
    ok, failed, missing, unreadable = rows
    assert ok == {
        "job": "0", "cell": "E003", "mark": "H3K4me3", "fold": "0", "model": "promoter_cnn",
        "task": "regression", "seed": "0", "test_cell": "", "status": "ok", "n_params": "12345",
        "n_train": "900", "n_val": "100", "n_test": "300", "genes_used": "1300", "genes_dropped": "34",
        "primary_metric": "pearson", "test_pearson": "0.71",
        "test_spearman": "0.66", "test_mse": "1.3", "wall_seconds": "12.3", "wandb_id": "abc",
        "error": "", "overrides": "cell=E003 mark=H3K4me3 fold=0",
    }  # fmt: skip
    assert failed["error"] == "RuntimeError: boom at line 3"
    assert failed["test_pearson"] == ""
    # A job that never started still says what it was: overrides + the sweep's defaults.
    assert (missing["model"], missing["task"], missing["seed"], missing["n_params"]) == ("promoter_cnn", "regression", "0", "")
    assert missing["overrides"] == "cell=E114 mark=H3K4me3 fold=0"
    assert "metrics.json" in unreadable["error"] and "JSONDecodeError" in unreadable["error"]
    assert not list(mixed_sweep.glob(".summary*"))  # no temp files left behind


def test_png_is_a_real_image(mixed_sweep: Path) -> None:
    _, png_path = summarize(mixed_sweep)
    data = png_path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 5_000


def test_heatmap_means_over_folds_and_counts_them(tmp_path: Path) -> None:
    write_sweep(tmp_path, ["cell=E003", "mark=H3K4me3,H3K9me3", "fold=0,1"])
    jobs = expected_grid(tmp_path)
    scores = {0: 0.6, 1: 0.8, 2: 0.1}  # job 3 (H3K9me3, fold 1) failed
    for num, overrides in enumerate(jobs):
        status = "ok" if num in scores else "failed"
        test = {"pearson": scores[num], "mse": 1.0} if num in scores else {}
        write_job(tmp_path, num, overrides, metrics_for(overrides, status=status, test=test))
    (panel,) = heatmap_panels(collect_rows(tmp_path))
    assert (panel.model, panel.task, panel.metric) == ("promoter_cnn", "regression", "pearson")
    assert panel.marks == ["H3K4me3", "H3K9me3"] and panel.cells == ["E003"]
    np.testing.assert_allclose(panel.values, [[0.7], [0.1]])
    assert panel.folds_used.tolist() == [[2], [1]]
    assert panel.folds_in_grid.tolist() == [[2], [2]]


def test_classification_panel_uses_auroc(tmp_path: Path) -> None:
    write_sweep(tmp_path, ["fold=0,1"], task="classification")
    for num, overrides in enumerate(expected_grid(tmp_path)):
        test = {"auroc": 0.8 + 0.1 * num, "auprc": 0.5, "accuracy": 0.7}
        write_job(tmp_path, num, overrides, metrics_for(overrides, task="classification", test=test))
    rows = collect_rows(tmp_path)
    (panel,) = heatmap_panels(rows)
    assert (panel.task, panel.metric) == ("classification", "auroc")
    np.testing.assert_allclose(panel.values, [[0.85]])
    header = list(read_csv(summarize(tmp_path)[0])[0])
    assert [c for c in header if c.startswith("test_") and c != "test_cell"] == ["test_auroc", "test_auprc", "test_accuracy"]


def test_one_panel_per_model_and_marks_in_design_order(tmp_path: Path) -> None:
    write_sweep(tmp_path, ["model=promoter_cnn,linear", "mark=all,H3K27ac+H3K4me3,H3K27ac,H3K4me3"])
    for num, overrides in enumerate(expected_grid(tmp_path)):
        model = overrides[0].split("=")[1]
        write_job(tmp_path, num, overrides, metrics_for(overrides, model=model), model=model)
    panels = heatmap_panels(collect_rows(tmp_path))
    assert [panel.model for panel in panels] == ["linear", "promoter_cnn"]
    assert panels[0].marks == ["H3K4me3", "H3K27ac", "H3K4me3+H3K27ac", "all"]


def test_canonical_mark() -> None:
    assert canonical_mark("H3K27ac+H3K4me3") == "H3K4me3+H3K27ac"
    assert canonical_mark(["H3K27ac", "H3K4me3"]) == "H3K4me3+H3K27ac"
    assert canonical_mark("all") == "all"
    assert canonical_mark("myMark") == "myMark"


def test_only_failed_jobs_still_writes_both(tmp_path: Path) -> None:
    write_sweep(tmp_path, ["fold=0,1"])
    for num, overrides in enumerate(expected_grid(tmp_path)):
        write_job(tmp_path, num, overrides, metrics_for(overrides, status="failed", test={}, error="OOM"))
    csv_path, png_path = summarize(tmp_path)
    assert [row["status"] for row in read_csv(csv_path)] == ["failed", "failed"]
    assert png_path.read_bytes().startswith(PNG_MAGIC)


def test_running_job_dir_without_metrics_is_missing_with_its_config(tmp_path: Path) -> None:
    write_sweep(tmp_path, ["fold=0,1"])
    jobs = expected_grid(tmp_path)
    write_job(tmp_path, 0, jobs[0], metrics_for(jobs[0]))
    write_job(tmp_path, 1, jobs[1], config={"cell": "E003", "mark": "H3K4me3", "task": "regression", "seed": 7})
    rows = read_csv(summarize(tmp_path)[0])
    assert [(row["job"], row["status"], row["fold"], row["seed"]) for row in rows] == [
        ("0", "ok", "0", "0"),
        ("1", "missing", "1", "7"),
    ]


def test_never_started_job_takes_task_name_from_the_group_choice(tmp_path: Path) -> None:
    write_sweep(tmp_path, ["fold=0,1"], task="classification")
    jobs = expected_grid(tmp_path)
    write_job(tmp_path, 0, jobs[0], metrics_for(jobs[0], task="classification", test={"auroc": 0.8}))
    rows = read_csv(summarize(tmp_path)[0])
    assert [(row["status"], row["task"]) for row in rows] == [("ok", "classification"), ("missing", "classification")]


def test_job_dirs_without_multirun_yaml(tmp_path: Path) -> None:
    write_job(tmp_path, 0, ["fold=0"], metrics_for(["fold=0"]))
    write_job(tmp_path, 1, ["fold=1"], None)
    rows = read_csv(summarize(tmp_path)[0])
    assert [(row["job"], row["status"]) for row in rows] == [("0", "ok"), ("1", "missing")]


def test_not_a_sweep_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="not a Hydra sweep dir"):
        summarize(tmp_path)
    assert summarize_quietly(tmp_path / "nope") is None
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "nope")])
    assert exit_info.value.code == 2
    assert "does not exist" in capsys.readouterr().err


def _after_table(out: str) -> list[str]:
    """``epx summarize``'s lines after its summary table (issue 24): the paths, then W&B's."""
    lines = out.splitlines()
    end = max(i for i, line in enumerate(lines) if re.match(r"^\d+ jobs: ", line))
    while end + 1 < len(lines) and lines[end + 1].startswith("  "):  # the failed/missing jobs named
        end += 1
    return lines[end + 1 :]


def test_main_prints_the_table_then_both_paths(mixed_sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(mixed_sweep)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("job ") and _after_table(out) == [str(mixed_sweep / "summary.csv"), str(mixed_sweep / "summary.png")]


def test_callback_summarizes_a_real_multirun_with_a_failed_job(tmp_path: Path) -> None:
    """Hydra 1.3 skips on_multirun_end when a job raises; on_job_end must still leave a summary."""
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent(
            """
            import json, pathlib, hydra
            from hydra.core.hydra_config import HydraConfig

            @hydra.main(version_base="1.3", config_path=None, config_name=None)
            def main(cfg):
                out = pathlib.Path(HydraConfig.get().runtime.output_dir)
                ok = cfg.fold != 1
                record = {"cell": "E003", "mark": "H3K4me3", "fold": cfg.fold, "model": "promoter_cnn",
                          "task": "regression", "status": "ok" if ok else "failed",
                          "test": {"pearson": 0.5} if ok else {}, "error": None if ok else "boom"}
                (out / "metrics.json").write_text(json.dumps(record))
                if not ok:
                    raise RuntimeError("boom")

            main()
            """
        )
    )
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        [
            sys.executable, str(app), "-m", "+fold=0,1,2", f"hydra.sweep.dir={sweep}",
            "+hydra.callbacks.summary._target_=epx.analysis.callback.SummaryCallback",
        ],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr  # the failed job fails the sweep
    rows = read_csv(sweep / "summary.csv")
    assert [(row["job"], row["status"]) for row in rows] == [("0", "ok"), ("1", "failed"), ("2", "ok")]
    assert (sweep / "summary.png").read_bytes().startswith(PNG_MAGIC)


# ---------------------------------------------------------------- job records of every schema version


def test_old_job_dir_without_schema_version_summarizes(tmp_path: Path) -> None:
    """A sweep from before the typed record: metrics.json without schema_version or
    primary_metric, no grid.json; the primary metric comes from the task."""
    write_sweep(tmp_path, ["fold=0,1"], task="classification")
    old = {
        "cell": "E003", "mark": "H3K4me3", "marks": ["H3K4me3"], "fold": 0, "model": "promoter_cnn",
        "task": "classification", "seed": 0, "test_cell": None, "n_params": 7,
        "n_genes": {"train": 10, "val": 2, "test": 3}, "test": {"auroc": 0.9, "auprc": 0.4},
        "status": "ok", "error": None, "wall_seconds": 1.5, "wandb": None, "overrides": ["fold=0"],
    }  # fmt: skip
    write_job(tmp_path, 0, ["fold=0"], old)
    write_job(tmp_path, 1, ["fold=1"], {**old, "fold": 1, "status": "failed", "test": {}, "error": "boom"})
    assert not (tmp_path / "grid.json").exists()
    rows = read_csv(summarize(tmp_path)[0])
    assert [(r["job"], r["status"], r["primary_metric"], r["test_auroc"], r["n_test"]) for r in rows] == [
        ("0", "ok", "auroc", "0.9", "3"),
        ("1", "failed", "auroc", "", "3"),
    ]
    assert {(r["genes_used"], r["genes_dropped"]) for r in rows} == {("", "")}  # no gene accounting then
    (panel,) = heatmap_panels(collect_rows(tmp_path))
    assert panel.metric == "auroc"
    np.testing.assert_allclose(panel.values, [[0.9]])


def test_record_primary_metric_drives_the_heatmap(tmp_path: Path) -> None:
    """Schema-2 records whose objective's headline is spearman: the regression panel shows
    spearman, and a job without a record yet joins that panel rather than a pearson one."""
    write_sweep(tmp_path, ["fold=0,1,2"])
    jobs = expected_grid(tmp_path)
    for num, spearman in ((0, 0.2), (1, 0.4)):
        overrides = jobs[num]
        record = JobRecord(
            cell="E003", mark="H3K4me3", marks=["H3K4me3"], fold=num, model="promoter_cnn", task="regression",
            seed=0, primary_metric="spearman", test={"pearson": 0.9, "spearman": spearman}, status="ok",
            overrides=overrides,
        )  # fmt: skip
        write_job(tmp_path, num, overrides, record.to_dict())
    assert JobRecord.read(tmp_path / "0").schema_version == SCHEMA_VERSION == 2
    rows = collect_rows(tmp_path)
    (panel,) = heatmap_panels(rows)
    assert (panel.model, panel.task, panel.metric) == ("promoter_cnn", "regression", "spearman")
    np.testing.assert_allclose(panel.values, [[0.3]])
    assert (panel.folds_used.tolist(), panel.folds_in_grid.tolist()) == ([[2]], [[3]])
    csv_rows = read_csv(summarize(tmp_path)[0])
    assert [(r["status"], r["primary_metric"]) for r in csv_rows] == [("ok", "spearman"), ("ok", "spearman"), ("missing", "")]


def test_unreadable_schema_version_is_an_unreadable_row(tmp_path: Path) -> None:
    write_job(tmp_path, 0, ["fold=0"], {**metrics_for(["fold=0"]), "schema_version": "two"})
    (row,) = read_csv(summarize(tmp_path)[0])
    assert row["status"] == "unreadable" and "metrics.json" in row["error"]


def test_unknown_marks_are_kept_as_given() -> None:
    assert canonical_mark(["myMark", "H3K4me3"]) == "myMark+H3K4me3"
    assert canonical_mark("H3K4me3+myMark") == "H3K4me3+myMark"
    assert canonical_mark(None) is None


# ---------------------------------------------------------------- the expected grid (grid.json)


@pytest.mark.parametrize(
    "arguments",
    [
        GRID,
        [],
        ["fold=0"],
        ["a=1,2", "+b=range(3)", "c=choice(x,y)", "d=[1,2]", "e='q,r'", "a=5,6"],
        ["model=promoter_cnn,linear", "mark=all,H3K27ac+H3K4me3", "~seed", "++f=3", "g=range(0,4,2)"],
    ],
)
def test_expand_overrides_matches_hydras_basic_sweeper(arguments: list[str]) -> None:
    """The public-parser expansion equals BasicSweeper's own (imported here only as the oracle)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    (hydras,) = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(arguments), max_batch_size=None)
    assert expand_overrides(arguments) == [list(job) for job in hydras]


def test_grid_json_is_preferred_to_multirun_yaml(tmp_path: Path) -> None:
    write_sweep(tmp_path, GRID)
    write_grid(tmp_path, JOBS[::-1][:3])  # what the callback recorded wins over a re-expansion
    assert json.loads((tmp_path / "grid.json").read_text())["schema_version"] == 1
    assert expected_grid(tmp_path) == JOBS[::-1][:3]
    rows = collect_rows(tmp_path)
    assert [(row["job"], row["cell"], row["mark"], row["status"]) for row in rows] == [
        ("0", "E114", "H3K27ac", "missing"),
        ("1", "E114", "H3K4me3", "missing"),
        ("2", "E003", "H3K27ac", "missing"),
    ]
    (tmp_path / "grid.json").write_text('{"jobs": [["cell=E0')  # truncated: fall back to multirun.yaml
    assert expected_grid(tmp_path) == JOBS


def test_summary_imports_no_private_hydra_module(tmp_path: Path) -> None:
    """``import epx.analysis.summary`` loads no hydra._internal module (``import hydra`` itself
    would), and neither does summarizing a sweep with grid.json whose jobs all have records."""
    write_grid(tmp_path, [["fold=0"]])
    write_job(tmp_path, 0, ["fold=0"], metrics_for(["fold=0"]))
    code = textwrap.dedent(
        f"""
        import sys
        import epx.analysis.summary as summary
        private = lambda: sorted(name for name in sys.modules if name.startswith("hydra._internal"))
        assert private() == [], private()
        summary.summarize({str(tmp_path)!r})
        assert private() == [], private()
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    sources = [Path(__file__).parents[1] / "epx" / "analysis" / f"{name}.py" for name in ("summary", "collect", "plot", "grid")]
    for source in sources:
        assert not re.search(r"^\s*(from|import)\s+hydra\._internal", source.read_text(), re.MULTILINE), source


def test_callback_writes_grid_json_before_the_first_job(tmp_path: Path) -> None:
    """A real multirun with hydra.sweeper.params, a key in both params and the command line,
    range() and a '+' override: grid.json exists when job 0 runs and lists exactly the
    overrides Hydra gave each job (.hydra/overrides.yaml), as does re-expanding multirun.yaml."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text(
        textwrap.dedent(
            """
            a: 0
            b: x
            hydra:
              sweeper:
                params:
                  a: 1,2
                  +d: 5
              callbacks:
                summary:
                  _target_: epx.analysis.callback.SummaryCallback
            """
        )
    )
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent(
            """
            import json, pathlib, hydra
            from hydra.core.hydra_config import HydraConfig

            @hydra.main(version_base="1.3", config_path="conf", config_name="config")
            def main(cfg):
                hydra_cfg = HydraConfig.get()
                out = pathlib.Path(hydra_cfg.runtime.output_dir)
                seen = (pathlib.Path(hydra_cfg.sweep.dir) / "grid.json").is_file()
                record = {"schema_version": 2, "cell": "E003", "mark": "H3K4me3", "fold": cfg.c,
                          "model": "toy", "task": "regression", "primary_metric": "pearson",
                          "status": "ok", "test": {"pearson": 0.5}, "grid_seen": seen}
                (out / "metrics.json").write_text(json.dumps(record))

            main()
            """
        )
    )
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        [sys.executable, str(app), "-m", "b=x,y", "+c=range(2)", "a=3,4", f"hydra.sweep.dir={sweep}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    jobs = json.loads((sweep / "grid.json").read_text())["jobs"]
    assert len(jobs) == 8 and jobs[0] == ["a=3", "+d=5", "b=x", "+c=0"]
    launched = [yaml.safe_load((sweep / str(num) / ".hydra" / "overrides.yaml").read_text()) for num in range(len(jobs))]
    assert jobs == launched
    assert grid_from_multirun(sweep) == launched
    assert json.loads((sweep / "0" / "metrics.json").read_text())["grid_seen"] is True
    rows = read_csv(sweep / "summary.csv")
    assert [row["overrides"] for row in rows] == [" ".join(job) for job in jobs]
    assert {(row["status"], row["primary_metric"]) for row in rows} == {("ok", "pearson")}


# ---------------------------------------------------------------- the summary as one W&B run


def offline_env() -> dict[str, str]:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    for key in ("WANDB_API_KEY", "WANDB_PROJECT", "WANDB_ENTITY"):
        env.pop(key, None)
    return env


def test_summarize_logs_table_and_heatmap_as_one_wandb_run(mixed_sweep: Path) -> None:
    """The sweep's jobs logged to W&B (their records hold a run id), so ``epx summarize`` logs
    the summary too: one offline run, job type summary, in the sweep's group; summarizing
    again continues that run (same id)."""
    from wandb_records import read_run

    from epx.analysis.summary import read_run_identity

    outputs = []
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-m", "epx.cli", "summarize", str(mixed_sweep)],
            capture_output=True, text=True, cwd=mixed_sweep.parent, env=offline_env(), timeout=180,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        outputs.append(_after_table(result.stdout))
    group = f"{mixed_sweep.parent.name}_{mixed_sweep.name}"  # epx.run.identity's group of this sweep dir
    first = outputs[0]
    assert first[:2] == [str(mixed_sweep / "summary.csv"), str(mixed_sweep / "summary.png")]
    assert first[2].startswith("W&B summary run summary-") and f"(offline, group {group})" in first[2]
    assert "wandb sync" in first[2]
    files = sorted(mixed_sweep.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 2 and files[0].name == files[1].name  # one run id: the second summary continues the run
    run = read_run(files[0])
    assert (run["group"], run["job_type"]) == (group, "summary")
    assert run["config"]["jobs"] == 4
    summary = run["summary"]
    assert (summary["jobs"], summary["jobs/ok"], summary["jobs/failed"], summary["jobs/missing"], summary["jobs/unreadable"]) == (4, 1, 1, 1, 1)
    assert summary["summary/table/_type"] == "table-file" and summary["summary/heatmap/_type"] == "image-file"
    files_dir = files[0].parent / "files"
    (table_file,) = files_dir.glob("media/table/summary/table_*.table.json")
    table = json.loads(table_file.read_text())
    assert table["columns"] == list(read_csv(mixed_sweep / "summary.csv")[0])
    assert [row[table["columns"].index("status")] for row in table["data"]] == ["ok", "failed", "missing", "unreadable"]
    (image,) = files_dir.glob("media/images/summary/heatmap_*.png")
    assert image.read_bytes().startswith(PNG_MAGIC)
    # the reader that finds the group in a job's own run file reads this one too
    assert read_run_identity(files[0]) == {"group": group, "project": "epx", "entity": "", "job_type": "summary"}


def test_summary_run_group_is_the_jobs_group(mixed_sweep: Path) -> None:
    from epx.analysis.summary import job_records, sweep_wandb_identity

    rows = collect_rows(mixed_sweep)
    records = job_records(mixed_sweep, rows)
    assert sweep_wandb_identity(mixed_sweep, records)["group"] == f"{mixed_sweep.parent.name}_{mixed_sweep.name}"
    record = JobRecord.read(mixed_sweep / "0")
    record.wandb = {**record.wandb, "group": "my_study", "url": "https://wandb.ai/lab/chromatin/runs/abc"}
    record.write(mixed_sweep / "0")
    identity = sweep_wandb_identity(mixed_sweep, job_records(mixed_sweep, rows))
    assert identity == {"group": "my_study", "project": "chromatin", "entity": "lab"}


def test_summarize_logs_nothing_when_logging_is_off(mixed_sweep: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert main([str(mixed_sweep), "--no-wandb"]) == 0
    assert len(_after_table(capsys.readouterr().out)) == 2
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert main([str(mixed_sweep), "--wandb"]) == 0
    assert "WANDB_MODE=disabled" in capsys.readouterr().err
    monkeypatch.setenv("WANDB_MODE", "offline")  # jobs that did not log to W&B: no summary run either
    for job in ("0", "1"):
        record = JobRecord.read(mixed_sweep / job)
        record.wandb = None
        record.write(mixed_sweep / job)
    assert main([str(mixed_sweep)]) == 0
    assert len(_after_table(capsys.readouterr().out)) == 2
    assert not (mixed_sweep / "wandb").exists()
