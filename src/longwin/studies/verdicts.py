"""Claims and verdicts: a verdict's threshold is a named value (`Bar`), printed from that value, never a
literal inside the prose that states it."""

from __future__ import annotations

from dataclasses import dataclass

from longwin.eval.metrics import wilson
from longwin.eval.paired import Interval

Claim = tuple[str, str]  # (the claim, its verdict with the figures behind it)


@dataclass(frozen=True)
class Bar:
    """A threshold a measured value must clear: at least `limit` (`at_most` False) or at most it."""

    limit: float
    at_most: bool = False

    def passed(self, value: float) -> bool:
        return value <= self.limit if self.at_most else value >= self.limit

    def meets(self, value: float) -> str:
        """'meets' or 'misses', as a verdict sentence says it."""
        return "meets" if self.passed(value) else "misses"

    def __format__(self, spec: str) -> str:
        return format(self.limit, spec or "g")


def holds(ok: bool | None) -> str:
    """A claim's verdict word: not measured (None), holds or does not hold."""
    return "not measured" if ok is None else ("**holds**" if ok else "**does not hold**")


def overlap(a: tuple[float, int], b: tuple[float, int]) -> bool:
    """Whether the Wilson 95 % intervals of two (successes, cells) counts overlap."""
    (a_low, a_high), (b_low, b_high) = wilson(*a), wilson(*b)
    return a_low <= b_high and b_low <= a_high


def below(a: tuple[float, int], b: tuple[float, int]) -> bool:
    """Whether the Wilson 95 % interval of count `a` lies wholly below that of `b`: a loss, not noise."""
    return wilson(*a)[1] < wilson(*b)[0]


def all_overlap(counts: list[tuple[float, int]]) -> bool:
    """Whether every pair of Wilson 95 % intervals of (hits, total) counts overlaps."""
    bounds = [wilson(*c) for c in counts]
    return max(low for low, _ in bounds) <= min(high for _, high in bounds)


def said(interval: Interval | None, neutral: float, lower_is_better: bool) -> str:
    """'better' / 'worse' / 'no measurable difference' from a paired 95 % interval around `neutral` (1 for a
    ratio, 0 for a difference in points); 'not measured' without one."""
    if interval is None or not interval.bounded:
        return "not measured"
    if interval.low <= neutral <= interval.high:
        return "no measurable difference"
    return "better" if (interval.high < neutral) == lower_is_better else "worse"
