"""Rows of token ids of different lengths as one padded tensor (the one place padding is written)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def pad(rows: Sequence[Sequence[int]], value: int, *, left: bool) -> torch.Tensor:
    """A (len(rows), longest) tensor of `rows`, filled with `value` on the left or the right."""
    width = max((len(r) for r in rows), default=0)
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, row in enumerate(rows):
        if len(row):
            if left:
                out[i, width - len(row) :] = torch.as_tensor(row, dtype=torch.long)
            else:
                out[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
    return out


def left_pad(rows: Sequence[Sequence[int]], value: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask), left-padded so every row's last token sits in the last column."""
    return pad(rows, value, left=True), pad([[1] * len(r) for r in rows], 0, left=True)
