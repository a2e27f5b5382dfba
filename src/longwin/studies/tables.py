"""Markdown tables of a study: by-depth task tables with Wilson 95 % intervals, and the counts they show."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from longwin.eval.metrics import wilson

Cell = dict[str, Any]
Success = Callable[[Cell], float]


def hit_count(scores: list[float]) -> str:
    """A by-depth cell of pass/fail scores: hits / cells."""
    return f"{sum(scores):.0f}/{len(scores)}"


def mean_share(scores: list[float]) -> str:
    """A by-depth cell of fractional scores: their mean, in percent."""
    return f"{100 * sum(scores) / len(scores):.0f} %"


def score(cell: Cell) -> float:
    """A cell's own score as its success (a pass key found)."""
    return float(cell["score"])


def share(hits: tuple[float, int]) -> str:
    """(successes, cells) as 'k/n (low–high %)' with the Wilson 95 % interval."""
    low, high = wilson(*hits)
    return f"{hits[0]:.0f}/{hits[1]} ({low:.0f}–{high:.0f} %)"


def hits(cells: Iterable[Cell], success: Success = score) -> tuple[float, int]:
    """(successes, cells) of some cells."""
    rows = list(cells)
    return sum(success(r) for r in rows), len(rows)


def at_length(cells: Iterable[Cell], length: int, depths: Sequence[float] | None = None) -> list[Cell]:
    """The cells of one prompt length (and, given, of those depths only)."""
    rows = [r for r in cells if r["length"] == length]
    return rows if depths is None else [r for r in rows if float(r["position"]) in depths]


def depth_row(
    label: str,
    cells: list[Cell],
    depths: Sequence[float],
    shown: Callable[[list[float]], str],
    success: Success,
    what: str = "",
) -> str:
    """One Markdown row of a by-depth table: `shown(scores)` per depth ('–' where none), then the share of
    cells that succeeded (`success`) over every depth, with its Wilson 95 % interval."""
    by_depth = [[r["score"] for r in cells if float(r["position"]) == d] for d in depths]
    wins = [success(r) for r in cells]
    low, high = wilson(sum(wins), len(wins))
    share_all = f"{100 * sum(wins) / len(wins):.0f} %{what} ({low:.0f}–{high:.0f})"
    return f"| {label} | " + " | ".join(shown(s) if s else "–" for s in by_depth) + f" | {share_all} |"


def depth_table(
    records: dict[str, list[Cell]],
    lengths: Sequence[int],
    depths: Sequence[float],
    shown: Callable[[list[float]], str] = hit_count,
    success: Success = score,
    what: str = "",
) -> list[str]:
    """Header, separator and one row per (row name, length) with cells: hits (or `shown`) per depth, then the
    share of successes over every depth with its Wilson interval. Only the header: nothing measured yet."""
    lines = [
        "| model | length | " + " | ".join(f"depth {d:.0f} %" for d in depths) + " | all (Wilson 95 %) |",
        "|" + "---|" * (len(depths) + 3),
    ]
    for name, cells in records.items():
        for n in lengths:
            at = at_length(cells, n)
            if at:
                lines.append(depth_row(f"{name} | {n // 1024}K", at, depths, shown, success, what))
    return lines


def status_list(stages: Sequence[str], done: Callable[[str], bool]) -> str:
    """The stages as a Markdown list, each 'done' or 'to do' (a missing record is 'to do', never an error)."""
    return "\n".join(f"- {'done' if done(s) else 'to do'}: `{s}`" for s in stages)
