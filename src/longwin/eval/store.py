"""Finished cells as JSON lines, appended one by one, so an interrupted run resumes where it stopped.

A cell counts as done only under the same fingerprint (task settings, seed, model, template):
rerunning with other options into the same folder recomputes instead of mixing results.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class CellStore:
    FILE = "cells.jsonl"

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / self.FILE
        self._rows: dict[tuple[str, str], dict[str, Any]] = {}
        if self.path.exists():
            with self.path.open(encoding="utf-8") as f:
                for line in f:
                    try:
                        row = json.loads(line)
                        self._rows[(row["key"], row["fingerprint"])] = row
                    except (json.JSONDecodeError, KeyError, TypeError):
                        continue  # a line cut short by the interruption
            if self.path.stat().st_size:
                with self.path.open("rb+") as f:  # end a cut-short line so the next append starts clean
                    f.seek(-1, 2)
                    if f.read(1) != b"\n":
                        f.write(b"\n")

    def get(self, key: str, fingerprint: str) -> dict[str, Any] | None:
        return self._rows.get((key, fingerprint))

    def add(self, row: dict[str, Any]) -> None:
        self._rows[(row["key"], row["fingerprint"])] = row
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
