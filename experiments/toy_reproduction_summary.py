"""The toy reproduction's records: the methods it compares, the lengths of each scale, and the summary over
seeds (mean, sample std and the per-seed values of every key) that the claims and tables read."""

from __future__ import annotations

import csv
import json
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "toy_reproduction"
POSITION_METHODS = ["cream", "pose", "randpos", "pi", "yarn"]
FREE_METHODS = ["yarn-free", "ntk-free"]
# plus the fine-tuned YaRN model as full attention; "sharedllm-no-context" is the trained SharedLLM fed
# only its local window, which separates what the trees add from what fine-tuning its top layers adds
SHARED_METHODS = ["sharedllm", "sharedllm-no-context", "truncation"]
# lines runs from 512 tokens (its smallest prompt has 266); copy (random words planted in prose, a format no
# recipe trains on) is the retention check inside the window and the held-out lookup beyond it
TASKS = ["passkey", "kv-retrieval", "copy", "ppl"]
DEPTHS = ["0", "25", "50", "75", "100"]
MIDDLE = ["25", "50", "75"]
Rows = dict[str, Any]  # one scale's summary: method -> key -> stats


def lengths_for(scale: int) -> list[int]:
    out, n = [], 256
    while n <= 256 * scale:
        out.append(n)
        n *= 2
    return out


def scales(names: Iterable[str]) -> list[str]:
    """Scales of a summary ('s8', 's16'), smallest first."""
    return sorted(names, key=lambda s: int(s[1:]))


def stats(values: list[float]) -> dict[str, Any]:
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "n": len(values),
        "values": values,
    }


def collect(work: Path) -> dict[str, Any]:
    """{scale: {method: {key: stats}}} with keys like 'passkey/accuracy/2048', 'kv-retrieval/pos/50'."""
    raw: dict[str, dict[str, dict[str, list[float]]]] = {}
    for results in sorted(work.glob("s*/seed*/eval*/*/results.json")):
        scale, method = results.parts[-5], results.parts[-2]
        data = json.loads(results.read_text())
        target = raw.setdefault(scale, {}).setdefault(method, {})
        for task, summary in data["tasks"].items():
            for series, points in summary["series"].items():
                for length, value in points.items():
                    if value is not None:
                        target.setdefault(f"{task}/{series}/{length}", []).append(value)
            top = str(max(int(n) for n in summary.get("by_position", {}) or {0: 0}))
            for pos, value in (summary.get("by_position", {}).get(top) or {}).items():
                target.setdefault(f"{task}/at-longest/{pos}", []).append(value)
            for pos, value in (summary.get("by_position_all") or {}).items():
                target.setdefault(f"{task}/pos-all/{pos}", []).append(value)
    return {s: {m: {k: stats(v) for k, v in keys.items()} for m, keys in methods.items()} for s, methods in raw.items()}


def recorded_settings(command_md: Path) -> dict[str, Any]:
    """The `Settings: {...}` line of a record's COMMAND.md ({} when it has none or the file is missing)."""
    lines = command_md.read_text().splitlines() if command_md.is_file() else []
    found = [json.loads(line.removeprefix("Settings: ")) for line in lines if line.startswith("Settings: ")]
    return found[0] if found else {}


def write_summary(summary: dict[str, Any], settings: dict[str, Any], command: str) -> None:
    """summary.json, summary.csv (rounded) and COMMAND.md (the command and its settings) of a run."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    with (RESULTS / "summary.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["scale", "method", "key", "mean", "sd", "n"])
        for scale, methods in summary.items():
            for method, keys in methods.items():
                for key, st in sorted(keys.items()):
                    w.writerow([scale, method, key, round(st["mean"], 4), round(st["sd"], 4), st["n"]])
    (RESULTS / "COMMAND.md").write_text(f"Produced by:\n\n    {command}\n\nSettings: {json.dumps(settings)}\n")


def mean(rows: dict[str, Any], method: str, key: str) -> float | None:
    stats = rows.get(method, {}).get(key)
    return stats["mean"] if stats else None


def paired(rows: dict[str, Any], a: str, b: str, key: str) -> list[float]:
    """Per-seed differences a − b of `key` (seeds in the same order for both), or [] if not both complete."""
    x, y = rows.get(a, {}).get(key), rows.get(b, {}).get(key)
    if not x or not y or x["n"] != y["n"]:
        return []
    return [p - q for p, q in zip(x["values"], y["values"])]


def middle(rows: dict[str, Any], method: str, positions: list[str]) -> float | None:
    vals = [
        rows[method][f"kv-retrieval/pos-all/{p}"]["mean"]
        for p in positions
        if f"kv-retrieval/pos-all/{p}" in rows.get(method, {})
    ]
    return statistics.fmean(vals) if vals else None
