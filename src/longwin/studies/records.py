"""Reading a study's committed records back: the finished cells of one record, never mixing in cells that
another model or other settings (another fingerprint) left in the same file."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from longwin.errors import LongwinError


class MixedRecord(LongwinError):
    """A record's cells come from more than one fingerprint and nothing says which one is the record's."""


def cells_by_fingerprint(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """Fingerprint -> the cells of `folder/cells.jsonl` under it, the last line of each key winning."""
    path = folder / "cells.jsonl"
    if not path.is_file():
        return {}
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        rows[(row["key"], row["fingerprint"])] = row
    out: dict[str, list[dict[str, Any]]] = {}
    for (_, fingerprint), row in rows.items():
        out.setdefault(fingerprint, []).append(row)
    return out


def listed_fingerprints(folder: Path) -> set[str] | None:
    """The fingerprints `results.csv` lists (the record's finished run), or None without one."""
    path = folder / "results.csv"
    if not path.is_file():
        return None
    with path.open(newline="") as f:
        return {row["fingerprint"] for row in csv.DictReader(f)}


def read_cells(folder: Path) -> list[dict[str, Any]]:
    """The cells of one record, in file order: those of the fingerprint `results.csv` lists, or of the only
    fingerprint there is. No cells: []. Cells of several fingerprints that nothing tells apart: MixedRecord."""
    groups = cells_by_fingerprint(folder)
    listed = listed_fingerprints(folder)
    if listed is not None:
        groups = {fp: cells for fp, cells in groups.items() if fp in listed}
    if len(groups) > 1:
        raise MixedRecord(f"{folder}: cells of {len(groups)} fingerprints ({', '.join(sorted(groups))}) in one record")
    return next(iter(groups.values()), [])


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON record (results.json, training.json, a probe's summary), or None when it is not there yet."""
    return json.loads(path.read_text()) if path.is_file() else None


def task_cells(path: Path, task: str) -> int | None:
    """How many cells a record's results.json counts for `task` (None: no record, or not that task)."""
    record = read_json(path / "results.json")
    return None if record is None else record["tasks"].get(task, {}).get("cells")
