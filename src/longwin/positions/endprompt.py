"""EndPrompt positions (arXiv 2605.14589; docs/position-schemes.md#endprompt): the intact short text, its
last few tokens moved to the end of the target window.

The N-token window keeps its first N-c tokens at positions 0..N-c-1 (the "short context") and gives its
last c tokens (the "terminal prompt", `terminal_len`: by default 20 as in the authors' main script, or half
the window when that is shorter than 40 tokens) positions
L-c..L-1, so every window trains one relative distance near L. Content: the first N tokens of the document
in order, as the authors' `preprocess_fixed_split_pose` does: the terminal prompt is the text that follows
the short context, not a separate prompt. Deterministic: nothing is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from longwin.errors import LongwinError
from longwin.positions.base import Placement, Scheme, contiguous, gather_prefix


def _place(train_len: int, target_len: int, generator: torch.Generator, options: Mapping[str, Any]) -> Placement:
    terminal = options.get("terminal_len", min(20, train_len // 2))
    if train_len < 2:
        raise LongwinError(f"endprompt needs train_len >= 2 for its two segments, got {train_len}")
    if isinstance(terminal, bool) or not isinstance(terminal, int) or not 1 <= terminal < train_len:
        raise LongwinError(f"endprompt: terminal_len must be an integer in [1, train_len), got {terminal!r}")
    first = train_len - terminal
    position_ids = contiguous(train_len)
    position_ids[first:] += target_len - train_len
    return Placement(position_ids, (("context", 0, first), ("terminal", first, train_len)))


ENDPROMPT = Scheme(
    name="endprompt",
    description="EndPrompt: the window's text in order, its last terminal_len tokens at positions ending at L-1",
    extends=True,
    place=_place,
    gather=gather_prefix,
    options=("terminal_len",),
)
