"""`longwin eval --compare DIR...`: several finished runs side by side.

One table (task, series, length, then a column per run) as markdown and CSV, and one plot per
task with the task's primary series for every run.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from longwin.errors import LongwinError
from longwin.eval.options import EvalOptions
from longwin.eval.plots import save_lines
from longwin.eval.results import format_value, load_results, markdown_table
from longwin.outputs import check_writable_folder, write_text


def run_names(dirs: Sequence[Path]) -> list[str]:
    """Folder names, or full paths when two folders share a name."""
    names = [d.name or str(d) for d in dirs]
    return names if len(set(names)) == len(names) else [str(d) for d in dirs]


def comparison_rows(runs: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """Rows [task, series, length, value per run]; effective lengths (RULER) as their own rows."""
    rows: list[list[Any]] = []
    tasks = list(dict.fromkeys(t for r in runs for t in r["tasks"]))
    for task in tasks:
        summaries = [r["tasks"].get(task) for r in runs]
        series = list(dict.fromkeys(s for sm in summaries if sm for s in sm["series"]))
        for name in series:
            points = [sm["series"].get(name, {}) if sm else {} for sm in summaries]
            for length in sorted({int(n) for p in points for n in p}):
                rows.append([task, name, length, *[p.get(str(length)) for p in points]])
        if any(sm and "effective_length" in sm for sm in summaries):
            rows.append(
                [task, "effective_length", "", *[sm.get("effective_length") if sm else None for sm in summaries]]
            )
    return rows


def compare_runs(dirs: Sequence[str | Path], out_dir: str | Path, options: EvalOptions | None = None) -> str:
    """Write compare.csv, paired.md and compare_<task>.png into out_dir; return the markdown tables (the
    side-by-side table, then every run against the first: `compare_paired`)."""
    if len(dirs) < 2:
        raise LongwinError("--compare needs at least two result folders")
    paths = [Path(d) for d in dirs]
    runs = [load_results(p) for p in paths]
    names = run_names(paths)
    out = check_writable_folder(out_dir, "--out")
    out.mkdir(parents=True, exist_ok=True)
    header = ["task", "series", "length", *names]
    rows = comparison_rows(runs)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows([[format_value(v) if v is None else v for v in row] for row in rows])
    write_text(out / "compare.csv", buffer.getvalue())
    for task in dict.fromkeys(t for r in runs for t in r["tasks"]):
        present = [(name, r["tasks"][task], r.get("window")) for name, r in zip(names, runs) if task in r["tasks"]]
        primary = next(iter(present[0][1]["series"]))
        curves = {name: sm["series"].get(primary, {}) for name, sm, _ in present}
        windows = {w for _, _, w in present}
        save_lines(
            out / f"compare_{task}.png",
            curves,
            title=f"{task}: {primary}",
            xlabel="Length (tokens)",
            ylabel=present[0][1]["metric"],
            logy=not present[0][1]["higher_is_better"],
            vline=windows.pop() if len(windows) == 1 else None,
        )
    text = markdown_table(header, rows) + "\n\n" + paired_tables(paths, runs, names, options or EvalOptions())
    write_text(out / "compare.md", text + "\n")
    return text


def paired_tables(paths: Sequence[Path], runs: list[dict[str, Any]], names: list[str], options: EvalOptions) -> str:
    """The paired comparisons against the first run, as markdown sections (empty ones left out)."""
    from longwin.eval import compare_paired as cp
    from longwin.eval.paired import run_cells
    from longwin.models.key_tokens import KeyTokenRule

    cells = [run_cells(p) for p in paths]
    rule = KeyTokenRule(options.key_alpha, options.key_beta)
    sections = [
        (
            f"Perplexity relative to {names[0]} on the same tokens (paired 95 % interval)",
            ["convention", "length", "run", "ratio [95 %]"],
            cp.ppl_ratio_rows(cells, names),
        ),
        (
            f"Key-token and rest-token perplexity (key: log p long - short > {rule.alpha}, log p long > {rule.beta};"
            f" ratios to {names[0]}, paired, where it judges)",
            ["evaluator", "length", "run", "key tokens", "key ppl", "rest ppl", "key ratio", "rest ratio"],
            cp.key_token_rows(cells, names, runs[0].get("window"), rule),
        ),
        (
            f"Score minus {names[0]}'s on the same prompts (points, paired 95 % interval)",
            ["task", "length", "run", "difference [95 %]"],
            cp.score_rows(cells, names),
        ),
        (
            f"Effective length (longest length up to which every length keeps {100 * options.keep_share:.0f} % of "
            f"{names[0]}'s in-window score; perplexity: at most {100 * options.ppl_tolerance:.0f} % above it)",
            ["task", "series", "run", "effective length"],
            cp.effective_length_rows(runs, names, options),
        ),
    ]
    return "\n\n".join(f"### {title}\n\n{markdown_table(head, rows)}" for title, head, rows in sections if rows)
