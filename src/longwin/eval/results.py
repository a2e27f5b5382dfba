"""Writing and reading a run's results: results.json (summaries), results.csv (one row per cell).

Every task summary has the same core shape so runs can be compared generically:
`{"metric": str, "higher_is_better": bool, "series": {name: {length: value}}, ...}`; a summary whose
series measure different things names them in `series_metrics`.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from longwin.errors import LongwinError
from longwin.outputs import write_text

RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"
_FIRST_COLUMNS = ("task", "key", "length", "position", "sample", "prompt_tokens", "exceeds_window", "score")


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False, allow_nan=True) + "\n")


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """All rows with the union of their columns; lists and dicts as JSON text. Per-token losses stay in
    `cells.jsonl` only (a spreadsheet has no use for them)."""
    rows = [{k: v for k, v in row.items() if k != "token_nll"} for row in rows]
    columns = [c for c in _FIRST_COLUMNS if any(c in r for r in rows)]
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v for k, v in row.items()}
        )
    write_text(path, buffer.getvalue())


def load_results(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / RESULTS_JSON
    if not path.is_file():
        raise LongwinError(f"{run_dir}: no {RESULTS_JSON} (not a finished `longwin eval` output folder)")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LongwinError(f"{path}: not valid JSON ({getattr(exc, 'msg', exc)})") from None
    tasks = results.get("tasks") if isinstance(results, dict) else None
    if not isinstance(tasks, dict) or not all(
        isinstance(s, dict)
        and isinstance(s.get("series"), dict)
        and {"metric", "higher_is_better"} <= set(s)
        and all(isinstance(points, dict) for points in s["series"].values())
        for s in tasks.values()
    ):
        raise LongwinError(f"{path}: not a `longwin eval` results file (no tasks with metric and series)")
    return results


def format_value(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 1e5 else f"{value:.3g}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(format_value(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def summary_table(results: dict[str, Any]) -> str:
    """One run as markdown: a row per (task, series), a column per length."""
    lengths = sorted({int(n) for s in results["tasks"].values() for pts in s["series"].values() for n in pts})
    rows, notes = [], []
    for task, summary in results["tasks"].items():
        for name, points in summary["series"].items():
            metric = summary.get("series_metrics", {}).get(name, summary["metric"])
            rows.append([task, name, metric, *[points.get(str(n)) for n in lengths]])
        if "effective_length" in summary:
            notes.append(
                f"{task} effective length (average > {summary['threshold']}): "
                f"{format_value(summary['effective_length'])}"
            )
    return "\n".join([markdown_table(["task", "series", "metric", *map(str, lengths)], rows), *notes])
