"""Key tokens (LongPPL, arXiv 2410.23771): the tokens a long context actually helps predict.

A token is *key* when an evaluator's log-probability of it with the long context beats that with a short
context by more than `alpha` nats, and the long-context log-probability itself is above `beta` (not
negligible). Evaluation uses them to separate context use from adaptation (`longwin.eval.paired`); SharedLLM's
context distillation weights its loss toward them (`longwin.methods.sharedllm.context_distill`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from longwin.errors import LongwinError


@dataclass(frozen=True)
class KeyTokenRule:
    """LongPPL's two criteria, with the paper's defaults."""

    alpha: float = 2.0  # log p_long - log p_short above this (nats)
    beta: float = -2.0  # log p_long above this


def key_tokens(long_nll: torch.Tensor, short_nll: torch.Tensor, rule: KeyTokenRule = KeyTokenRule()) -> torch.Tensor:
    """Mask of the key tokens by an evaluator's losses with the long and with the short context."""
    if long_nll.shape != short_nll.shape:
        raise LongwinError("key tokens need the evaluator's long- and short-context losses on the same tokens")
    return ((short_nll - long_nll) > rule.alpha) & (-long_nll > rule.beta)
