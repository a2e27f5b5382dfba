"""What every staged study in experiments/ shares: run `longwin` commands, and a command line that runs the
stages not done yet in order (resumable: a stage is done when its committed record is complete), lists
them, or writes the report from the records."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from longwin.eval.metrics import wilson

ROOT = Path(__file__).resolve().parents[1]


def run_longwin(argv: list[str]) -> None:
    print("+ longwin " + " ".join(argv), flush=True)
    subprocess.run([sys.executable, "-m", "longwin", *argv], check=True, cwd=ROOT)


def hit_count(scores: list[float]) -> str:
    """A by-depth cell of pass/fail scores: hits / cells."""
    return f"{sum(scores):.0f}/{len(scores)}"


def mean_share(scores: list[float]) -> str:
    """A by-depth cell of fractional scores: their mean, in percent."""
    return f"{100 * sum(scores) / len(scores):.0f} %"


def depth_row(
    label: str,
    cells: list[dict[str, Any]],
    depths: Sequence[float],
    shown: Callable[[list[float]], str],
    success: Callable[[dict[str, Any]], float],
    what: str = "",
) -> str:
    """One Markdown row of a by-depth table: `shown(scores)` per depth ('–' where none), then the share of
    cells that succeeded (`success`) over every depth, with its Wilson 95 % interval."""
    by_depth = [[r["score"] for r in cells if float(r["position"]) == d] for d in depths]
    wins = [success(r) for r in cells]
    low, high = wilson(sum(wins), len(wins))
    share = f"{100 * sum(wins) / len(wins):.0f} %{what} ({low:.0f}–{high:.0f})"
    return f"| {label} | " + " | ".join(shown(s) if s else "–" for s in by_depth) + f" | {share} |"


def study_main(
    doc: str,
    stages: Sequence[str],
    done: Callable[[str], bool],
    run_stage: Callable[[str, Path], None],
    report: Callable[[], str],
    report_path: Path,
    default_work: str,
) -> int:
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--work", default=default_work, help="models and held-out text (not committed)")
    parser.add_argument("--stages", default="", help="comma-separated stages (default: all, in priority order)")
    parser.add_argument("--list", action="store_true", help="list the stages and whether each is done")
    parser.add_argument("--report", action="store_true", help=f"write {report_path.relative_to(ROOT)} from the records")
    args = parser.parse_args()
    chosen = [s for s in args.stages.split(",") if s] or list(stages)
    unknown = [s for s in chosen if s not in stages]
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(unknown)}; known: {', '.join(stages)}")
    if args.list:
        for stage in stages:
            print(f"{'done' if done(stage) else 'todo'}  {stage}")
        return 0
    if args.report:
        report_path.write_text(report())
        print(report_path)
        return 0
    for stage in chosen:
        if done(stage):
            print(f"= {stage}: done", flush=True)
            continue
        print(f"> {stage}", flush=True)
        run_stage(stage, Path(args.work))
    return 0
