"""``epx report SWEEP_DIR [--out report.html] [--wandb | --no-wandb]``: the study's answer on one page.

Contract: ``build_report(sweep_dir, out=None) -> Report`` gathers the sweep (``epx.report.study``),
runs every section of ``epx.report.sections.SECTIONS`` and writes one self-contained HTML page
(default ``SWEEP/report.html``, replaced atomically): inline CSS, figures as base64 PNG, no
script, no external URL except the W&B run links. A partial grid still gives a page: each
section lists what it lacks (``Section.missing``) and the top of the page sums them up. A sweep
dir with no finished job is one ``InputError`` (exit 2).

``log_report_run(sweep_dir, path) -> dict`` logs the page as one W&B artifact (type
``report``) from one run of job type ``report`` in the sweep's group (the group, project and
entity the summary run uses: ``epx.analysis.summary.sweep_wandb_identity``; its id is a
function of them, ``resume="allow"``, so a second report continues that run). ``main`` logs
it when ``--wandb`` is given or, unless ``--no-wandb``, when the sweep's jobs logged to W&B;
never when ``WANDB_MODE=disabled``. A W&B failure is one warning (exit 1 only with ``--wandb``).
"""

from __future__ import annotations

import argparse
import hashlib
import html
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from epx.errors import InputError
from epx.io.atomic import write_text
from epx.report.sections import SECTIONS, Section
from epx.report.study import Study, load_study

log = logging.getLogger(__name__)

REPORT_JOB_TYPE = "report"
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}h3{font-size:1.05em}
img{max-width:100%;height:auto;border:1px solid #eee}
table.data{border-collapse:collapse;font-size:.85em;margin:.5em 0}
table.data th,table.data td{border:1px solid #ddd;padding:.2em .5em;text-align:right}
table.data th{background:#f4f4f4}
.missing{background:#fff6e0;border-left:4px solid #e0a000;padding:.4em .8em;margin:.5em 0}
pre.md{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:.8em}
nav a{margin-right:1em}
"""


@dataclass
class Report:
    path: Path
    sections: list[Section]
    jobs: int
    finished: int
    seconds: float

    @property
    def missing(self) -> dict[str, list[str]]:
        return {s.id: s.missing for s in self.sections if s.missing}


def _page(study: Study, sections: list[Section]) -> str:
    esc = html.escape
    models = sorted({str(r.get("model")) for r in study.finished})
    cells = sorted({str(r.get("cell")) for r in study.finished})
    marks = sorted({str(r.get("mark")) for r in study.finished})
    lacking = [(s, m) for s in sections for m in s.missing]
    head = (
        f"<h1>epx report — {esc(study.sweep_dir.name)}</h1>"
        f"<p>Sweep <code>{esc(str(study.sweep_dir.resolve()))}</code>, written "
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}. {len(study.finished)} of {len(study.rows)} jobs finished; "
        f"models {esc(', '.join(models))}; cells {esc(', '.join(cells))}; mark sets {esc(', '.join(marks))}.</p>"
    )
    if lacking:
        head += ('<div class="missing" id="missing-summary"><b>Missing from this report</b><ul>'
                 + "".join(f"<li><a href=\"#{s.id}\">{esc(s.title)}</a>: {esc(m)}</li>" for s, m in lacking) + "</ul></div>")
    nav = "<nav>" + "".join(f'<a href="#{s.id}">{esc(s.title.split(":")[0])}</a>' for s in sections) + "</nav>"
    body = "".join(
        f'<section id="{s.id}"><h2>{esc(s.title)}</h2>'
        + "".join(f'<p class="missing">missing: {esc(m)}</p>' for m in s.missing) + s.html + "</section>"
        for s in sections
    )
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>epx report {esc(study.sweep_dir.name)}</title>"
            f"<style>{CSS}</style></head><body>{head}{nav}{body}</body></html>\n")


def build_report(sweep_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Report:
    started = time.perf_counter()
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise InputError(f"{sweep_dir} is not a directory; give a sweep dir (a Hydra multirun dir)")
    study = load_study(sweep_dir)
    sections = [build(study) for build in SECTIONS.values()]
    path = Path(out) if out is not None else sweep_dir / "report.html"
    write_text(path, _page(study, sections))
    return Report(path=path, sections=sections, jobs=len(study.rows), finished=len(study.finished),
                  seconds=time.perf_counter() - started)


def log_report_run(sweep_dir: str | os.PathLike, path: str | os.PathLike) -> dict[str, Any]:
    import wandb

    from epx.analysis.collect import collect_rows
    from epx.analysis.summary import _summary_mode, job_records, sweep_wandb_identity

    sweep_dir = Path(sweep_dir)
    who = sweep_wandb_identity(sweep_dir, job_records(sweep_dir, collect_rows(sweep_dir)))
    mode = _summary_mode()
    os.environ.setdefault("WANDB_SILENT", "true")
    key = f"{who['entity'] or ''}/{who['project']}/{who['group']}"
    run = wandb.init(project=who["project"], entity=who["entity"], group=who["group"], job_type=REPORT_JOB_TYPE,
                     name=f"report {who['group']}", id="report-" + hashlib.sha256(key.encode()).hexdigest()[:20],
                     resume="allow", dir=str(sweep_dir), mode=mode, reinit="finish_previous",
                     config={"sweep_dir": os.path.abspath(sweep_dir)})
    try:
        artifact = wandb.Artifact(name=f"report-{who['group']}"[:120].replace("/", "-"), type=REPORT_JOB_TYPE,
                                  description=f"epx report of {os.path.abspath(sweep_dir)}")
        artifact.add_file(str(path), name="report.html")
        run.log_artifact(artifact)
        return {"id": run.id, "mode": mode, "group": who["group"], "project": who["project"], "url": getattr(run, "url", None),
                "dir": str(Path(run.dir).parent) if getattr(run, "dir", None) else None}
    finally:
        run.finish()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="epx report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="the page (default SWEEP_DIR/report.html)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--wandb", action="store_true", help="log the page as a W&B artifact")
    group.add_argument("--no-wandb", action="store_true", help="never log to W&B")
    args = parser.parse_args(argv)
    try:
        report = build_report(args.sweep_dir, args.out)
    except (InputError, FileNotFoundError) as err:
        print(f"epx report: {err}", file=sys.stderr)
        return 2
    size = report.path.stat().st_size
    print(f"{report.path} ({size / 1024:.0f} KiB, {report.finished} of {report.jobs} jobs finished, {report.seconds:.1f} s)")
    for section, items in report.missing.items():
        for item in items:
            print(f"  missing in {section}: {item}")
    if os.environ.get("WANDB_MODE") == "disabled" or args.no_wandb:
        return 0
    from epx.analysis.collect import collect_rows
    from epx.analysis.summary import job_records, jobs_logged_to_wandb

    if args.wandb or jobs_logged_to_wandb(job_records(args.sweep_dir, collect_rows(args.sweep_dir))):
        try:
            info = log_report_run(args.sweep_dir, report.path)
        except Exception as err:  # noqa: BLE001 - W&B is optional here: the page is already written
            log.warning("could not log the report to W&B: %s", err)
            print(f"W&B: not logged ({err})", file=sys.stderr)
            return 1 if args.wandb else 0
        print(f"W&B report artifact in run {info['id']} ({info['mode']}, group {info['group']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
