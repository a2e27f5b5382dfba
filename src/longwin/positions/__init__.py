"""Position-id schemes: train on train_len tokens while the model sees positions up to target_len.

`sample` returns the position ids alone; `layout` also says which tokens of a document fill them.
Both draw positions first from a dedicated generator seeded by `seed`, so for one seed
`sample(...)` equals `layout(...).position_ids` for any document long enough.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import torch

from longwin.errors import LongwinError
from longwin.positions.alpha import cream_alpha_pmf, sample_alpha
from longwin.positions.base import DocumentTooShort, Layout, Scheme
from longwin.positions.cream import CREAM
from longwin.positions.endprompt import ENDPROMPT
from longwin.positions.pose import POSE
from longwin.positions.simple import FULL, NONE, RANDPOS

SCHEMES: Mapping[str, Scheme] = MappingProxyType({s.name: s for s in (CREAM, POSE, RANDPOS, NONE, FULL, ENDPROMPT)})

__all__ = ["SCHEMES", "DocumentTooShort", "Layout", "Scheme", "cream_alpha_pmf", "layout", "sample", "sample_alpha"]


def _length(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LongwinError(f"{name} must be a positive integer, got {value!r}")
    return value


def _resolve(name: str, train_len: int, target_len: int, options: Mapping[str, Any]) -> Scheme:
    """Look the scheme up and check what every scheme needs; scheme-specific checks happen in `place`."""
    scheme = SCHEMES.get(name)
    if scheme is None:
        raise LongwinError(f"unknown position scheme {name!r}; known: {', '.join(sorted(SCHEMES))}")
    _length("train_len", train_len)
    _length("target_len", target_len)
    if scheme.extends and train_len >= target_len:
        raise LongwinError(
            f"scheme {name!r} extends the window: train_len ({train_len}) must be smaller "
            f"than target_len ({target_len})"
        )
    if train_len > target_len:
        raise LongwinError(f"train_len ({train_len}) must not exceed target_len ({target_len})")
    unknown = sorted(set(options) - set(scheme.options))
    if unknown:
        accepted = ", ".join(scheme.options) or "none"
        raise LongwinError(f"unknown option(s) {', '.join(unknown)} for scheme {name!r}; accepted: {accepted}")
    return scheme


def _generator(seed: int) -> torch.Generator:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise LongwinError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    return torch.Generator().manual_seed(seed)


def sample(scheme: str, train_len: int, target_len: int, *, seed: int, **options: Any) -> torch.Tensor:
    """train_len strictly increasing position ids in [0, target_len), fully determined by `seed`."""
    chosen = _resolve(scheme, train_len, target_len, options)
    return chosen.place(train_len, target_len, _generator(seed), options).position_ids


def layout(scheme: str, doc_len: int, train_len: int, target_len: int, *, seed: int, **options: Any) -> Layout:
    """Positions plus the indices of the doc_len-token document's tokens that fill them.

    Raises DocumentTooShort when doc_len < train_len (after the options were found valid, so a bad
    configuration is never mistaken for short documents).
    """
    chosen = _resolve(scheme, train_len, target_len, options)
    if isinstance(doc_len, bool) or not isinstance(doc_len, int) or doc_len < 0:
        raise LongwinError(f"doc_len must be a non-negative integer, got {doc_len!r}")
    generator = _generator(seed)
    placed = chosen.place(train_len, target_len, generator, options)
    if doc_len < train_len:
        raise DocumentTooShort(f"document has {doc_len} tokens; scheme {scheme!r} needs at least {train_len}")
    token_index = chosen.gather(placed, doc_len, target_len, generator)
    return Layout(placed.position_ids, token_index, placed.segments)
