"""What a generated answer said, for verdicts that tell a misread from a refusal."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any


def first_number(output: str) -> str:
    """The first run of digits in an output, or "" when it has none."""
    found = re.search(r"\d+", output)
    return found.group() if found else ""


def wrong_numbers(cells: Sequence[dict[str, Any]]) -> int:
    """Cells answered with a number of the key's length that is not the key (a misread, not a refusal)."""
    return sum(
        len(got) == len(str(c["answer"])) and got != str(c["answer"])
        for got, c in ((first_number(c["output"]), c) for c in cells)
    )
