"""experiments/check_rerun.py: a rerun matches only when every recorded number comes back."""

from __future__ import annotations

import json
from pathlib import Path

import check_rerun


def _write(root: Path, rel: str, data: dict) -> None:
    path = root / rel / "results.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data))


def test_equal_runs_match_and_a_changed_value_is_named(tmp_path):
    cell = {"tasks": {"passkey": {"series": {"accuracy": {"256": 100.0, "512": 50.0}}}}, "name": "cream", "ok": True}
    _write(tmp_path / "a", "s8/seed0/eval/cream", cell)
    _write(tmp_path / "a", "s8/seed1/eval/cream", cell)
    _write(tmp_path / "b", "s8/seed0/eval/cream", cell)
    report = check_rerun.compare(tmp_path / "a", tmp_path / "b")
    assert report["files_compared"] == 1 and report["values_compared"] == 2
    assert report["not_rerun"] == 1 and report["differing"] == []

    changed = json.loads(json.dumps(cell))
    changed["tasks"]["passkey"]["series"]["accuracy"]["512"] = 75.0
    _write(tmp_path / "c", "s8/seed0/eval/cream", changed)
    (row,) = check_rerun.compare(tmp_path / "a", tmp_path / "c")["differing"]
    assert row["key"] == "/tasks/passkey/series/accuracy/512" and (row["recorded"], row["rerun"]) == (50.0, 75.0)
