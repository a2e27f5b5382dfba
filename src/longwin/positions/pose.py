"""PoSE positions (docs/position-schemes.md#pose): two chunks, the second shifted by a uniform skip.

Chunk 1 has r1 ~ U{1..(N+1)//2} tokens at positions 0..r1-1; chunk 2 fills the rest of the N-token
window at positions r1+u..N-1+u with u ~ U{0..L-N}. Content: chunk 1 = doc[0:r1]; chunk 2 =
doc[r1+v : N+v] with v ~ U{0..min(doc_len, L)-N}, i.e. the document is cut to its first L tokens as in
CREAM's copy of PoSE, so chunk 2 never reads text beyond the span its positions cover.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from longwin.errors import LongwinError
from longwin.positions.base import Placement, Scheme, contiguous, randint


def _place(train_len: int, target_len: int, generator: torch.Generator, options: Mapping[str, Any]) -> Placement:
    if train_len < 2:
        raise LongwinError(f"pose needs train_len >= 2 for its two chunks, got {train_len}")
    first = randint(1, (train_len + 1) // 2, generator)
    skip = randint(0, target_len - train_len, generator)
    position_ids = contiguous(train_len)
    position_ids[first:] += skip
    return Placement(position_ids, (("chunk1", 0, first), ("chunk2", first, train_len)))


def _gather(placed: Placement, doc_len: int, target_len: int, generator: torch.Generator) -> torch.Tensor:
    (_, _, first), (_, _, train_len) = placed.segments
    offset = randint(0, min(doc_len, target_len) - train_len, generator)
    token_index = contiguous(train_len)
    token_index[first:] += offset
    return token_index


POSE = Scheme(
    name="pose",
    description="PoSE: chunk 1 at positions 0.., chunk 2 after a uniform skip; content from a random later offset",
    extends=True,
    place=_place,
    gather=_gather,
)
