"""A study's stages: an ordered list of names, a done-check read from the committed records, and a runner
that does the stages not done yet (resumable: rerunning continues where it stopped), lists them, or writes
the report from the records."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


def run_longwin(argv: list[str], cwd: Path) -> None:
    """Run one `longwin` command as its own process (a failure stops the study)."""
    print("+ longwin " + " ".join(argv), flush=True)
    subprocess.run([sys.executable, "-m", "longwin", *argv], check=True, cwd=cwd)


@dataclass(frozen=True)
class Study:
    """A staged study: `stages` in priority order, `done(stage)` from the records, `run(stage, work)` the
    commands of one stage, `report()` the Markdown written to `report_path`."""

    doc: str
    stages: Sequence[str]
    done: Callable[[str], bool]
    run: Callable[[str, Path], None]
    report: Callable[[], str]
    report_path: Path
    default_work: str


def parser_for(study: Study) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=study.doc.splitlines()[0] if study.doc else None)
    parser.add_argument("--work", default=study.default_work, help="models and held-out text (not committed)")
    parser.add_argument("--stages", default="", help="comma-separated stages (default: all, in priority order)")
    parser.add_argument("--list", action="store_true", help="list the stages and whether each is done")
    parser.add_argument("--report", action="store_true", help=f"write {study.report_path.name} from the records")
    return parser


def main(study: Study, argv: Sequence[str] | None = None) -> int:
    """The command line of a study: run the chosen stages not done yet, `--list` them, or `--report`."""
    parser = parser_for(study)
    args = parser.parse_args(argv)
    chosen = [s for s in args.stages.split(",") if s] or list(study.stages)
    unknown = [s for s in chosen if s not in study.stages]
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(unknown)}; known: {', '.join(study.stages)}")
    if args.list:
        for stage in study.stages:
            print(f"{'done' if study.done(stage) else 'todo'}  {stage}")
        return 0
    if args.report:
        study.report_path.write_text(study.report())
        print(study.report_path)
        return 0
    for stage in chosen:
        if study.done(stage):
            print(f"= {stage}: done", flush=True)
            continue
        print(f"> {stage}", flush=True)
        study.run(stage, Path(args.work))
    return 0
