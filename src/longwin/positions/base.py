"""The shapes every position scheme shares: what a scheme is, and what it hands the data pipeline.

A scheme works in two steps so that `sample` (positions only) and `layout` (positions plus the document
tokens that fill them) draw identical positions from the same seed: `place` consumes the generator
first, and `gather` only afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from longwin.errors import LongwinError

Segments = tuple[tuple[str, int, int], ...]


class DocumentTooShort(LongwinError):
    """A document has fewer tokens than the scheme needs; the data pipeline counts and skips it."""


class Placement(NamedTuple):
    """Positions for one train window and its named segments (name, start, end), end exclusive."""

    position_ids: torch.Tensor
    segments: Segments


@dataclass(frozen=True, eq=False)
class Layout:
    """One training example: position ids, the document token indices that fill them, and segments.

    `segments` holds (name, start, end) slices of the train window, end exclusive, covering it in order.
    """

    position_ids: torch.Tensor
    token_index: torch.Tensor
    segments: Segments


Place = Callable[[int, int, torch.Generator, Mapping[str, Any]], Placement]
Gather = Callable[[Placement, int, int, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class Scheme:
    """A registered position scheme.

    `place(train_len, target_len, generator, options)` validates the options and draws positions;
    `gather(placement, doc_len, target_len, generator)` picks the document tokens for them.
    `extends` marks schemes that only make sense when train_len < target_len.
    """

    name: str
    description: str
    extends: bool
    place: Place
    gather: Gather
    options: tuple[str, ...] = ()


def contiguous(n: int) -> torch.Tensor:
    """0..n-1 as a LongTensor (the first n document tokens, or the native positions)."""
    return torch.arange(n, dtype=torch.long)


def gather_prefix(placed: Placement, doc_len: int, target_len: int, generator: torch.Generator) -> torch.Tensor:
    """A `gather` for schemes that read the document's first train_len tokens in order."""
    return contiguous(len(placed.position_ids))


def randint(low: int, high: int, generator: torch.Generator) -> int:
    """A uniform integer in [low, high], both ends inclusive (the reference's `random.randint`)."""
    return int(torch.randint(low, high + 1, (), generator=generator))
