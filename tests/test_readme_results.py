"""The README's results table says only what its records say: every figure recomputed from the record it links."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from longwin.studies.records import read_cells

ROOT = Path(__file__).resolve().parent.parent
ROW = re.compile(r"^\| (?P<study>[^|]+) \| (?P<model>[^|]+) \| (?P<measure>[^|]+) \| (?P<length>[\d,]+) \| "
                 r"(?P<figure>[^|]+) \| \[[^]]+\]\((?P<record>[^)]+)\) \|$")  # fmt: skip


def _rows() -> list[dict[str, str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Results at a glance", 1)[1].split("\n## ", 1)[0]
    return [m.groupdict() for line in section.splitlines() if (m := ROW.match(line.strip()))]


def _recomputed(measure: str, cells: list[dict], length: int) -> str:
    at = [c for c in cells if c["length"] == length]
    assert at, f"no cell at {length}"
    if measure == "perplexity":
        at = [c for c in at if c["position"] == "last-k"]
        return f"{math.exp(sum(c['nll'] for c in at) / sum(c['tokens'] for c in at)):.2f}"
    if measure == "passkey":
        return f"{sum(c['score'] >= 1.0 for c in at)}/{len(at)}"
    if measure == "words copied":
        return f"{round(100 * sum(c['score'] for c in at) / len(at))} %"
    raise AssertionError(f"the README table has a measure no test reads: {measure}")


def test_the_table_is_there_and_links_records():
    rows = _rows()
    assert len(rows) >= 10, "the README's results table has fewer rows than expected: did its format change?"
    assert all((ROOT / r["record"] / "cells.jsonl").is_file() for r in rows)


@pytest.mark.parametrize("row", _rows(), ids=lambda r: f"{r['model']}-{r['measure']}-{r['length']}")
def test_every_figure_is_what_its_record_says(row):
    cells = read_cells(ROOT / row["record"])
    figure = row["figure"].strip()
    expected = _recomputed(row["measure"].strip(), cells, int(row["length"].replace(",", "")))
    if row["measure"].strip() == "perplexity":  # the table rounds large values to one decimal
        assert float(figure) == pytest.approx(float(expected), abs=0.051), (figure, expected)
    else:
        assert figure == expected, (figure, expected)
