"""Retention against the base: what extending a model cost where the base already worked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

K = TypeVar("K")


def change(mine: float, base: float) -> float:
    """`mine` against `base`, in percent (+ = higher than the base)."""
    return 100 * (mine / base - 1)


def signed(percent: float) -> str:
    """A relative change as the reports print it: '+3.2 %'."""
    return f"{percent:+.1f} %"


def retention_cells(mine: Mapping[K, float], base: Mapping[K, float], at: list[K], missing: str = "–") -> list[str]:
    """One cell per key of `at`: `mine` against the base's value there, or `missing` where either lacks it."""
    return [signed(change(mine[k], base[k])) if k in mine and k in base else missing for k in at]
