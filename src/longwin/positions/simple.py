"""Baselines whose tokens are simply the document's first train_len tokens: randpos, none, full."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from longwin.positions.base import Placement, Scheme, contiguous, gather_prefix


def _whole(train_len: int) -> tuple[tuple[str, int, int], ...]:
    return (("window", 0, train_len),)


def _random_subset(
    train_len: int, target_len: int, generator: torch.Generator, options: Mapping[str, Any]
) -> Placement:
    chosen = torch.randperm(target_len, generator=generator)[:train_len]
    return Placement(chosen.sort().values, _whole(train_len))


def _native(train_len: int, target_len: int, generator: torch.Generator, options: Mapping[str, Any]) -> Placement:
    return Placement(contiguous(train_len), _whole(train_len))


RANDPOS = Scheme(
    name="randpos",
    description="RandPos: a sorted uniform random subset of range(target_len) of size train_len",
    extends=True,
    place=_random_subset,
    gather=gather_prefix,
)
NONE = Scheme(
    name="none",
    description="contiguous 0..train_len-1 at the native window (plain fine-tuning; the PI-only baseline)",
    extends=False,
    place=_native,
    gather=gather_prefix,
)
FULL = Scheme(
    name="full",
    description="contiguous 0..train_len-1 for full-length training, e.g. train_len = target_len (train-at-L)",
    extends=False,
    place=_native,
    gather=gather_prefix,
)
