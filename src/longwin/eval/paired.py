"""Comparisons that compare like with like: paired intervals, key tokens and effective length.

Two models scored on the same tokens (or the same prompts) differ far less in noise than their separate
intervals suggest, so every interval here is paired: one bootstrap resample of token blocks (perplexity) or
prompts (accuracy) is applied to both models at once. Cells that did not score the same tokens (their
`tokens_sha` differ) are never paired.

Key tokens (LongPPL; the rule lives in `longwin.models.key_tokens`, shared with training): key-token perplexity
measures context use; perplexity on the other tokens measures adaptation.

Effective length: the longest evaluated length up to which a model keeps the bar at every length: for an
accuracy, `share` of the reference's mean score inside its native window (NoLiMa's 85 %); for perplexity,
at most `1 + tolerance` times the reference's in-window perplexity.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from longwin.errors import LongwinError

BLOCK = 128  # tokens a bootstrap block holds: neighbouring tokens' losses are correlated, blocks barely
RESAMPLES = 2000
LEVEL = 0.95
MIN_BLOCKS = 8  # fewer resampling units than this give no honest interval (the bounds are left NaN)


@dataclass(frozen=True)
class Interval:
    """A point estimate and its 95 % bounds (NaN bounds: too few resampling units to bootstrap)."""

    value: float
    low: float
    high: float
    units: int = 0  # blocks (perplexity) or prompts (accuracy) the bootstrap resampled

    @property
    def bounded(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))


def run_cells(run_dir: str | Path) -> list[dict[str, Any]]:
    """The cells a finished run's results were made from (its results.csv rows), read from cells.jsonl with
    their per-token losses; a file's cells of another model fingerprint are left out."""
    import csv

    folder = Path(run_dir)
    try:
        with (folder / "results.csv").open(newline="", encoding="utf-8") as f:
            wanted = {(r["key"], r["fingerprint"]) for r in csv.DictReader(f)}
        lines = (folder / "cells.jsonl").read_text(encoding="utf-8").splitlines()
    except (OSError, KeyError) as exc:
        raise LongwinError(f"{run_dir}: cannot read its cells ({exc})") from None
    cells = [json.loads(line) for line in lines if line.strip()]
    return [c for c in cells if (c.get("key"), c.get("fingerprint")) in wanted]


def _blocks(losses: Sequence[torch.Tensor], keep: Sequence[torch.Tensor] | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-block sums and counts of the kept losses. Blocks are cut in token positions (never straddling
    samples), so sparse key tokens spread over many blocks; blocks that keep no token are left out."""
    sums, counts = [], []
    for i, loss in enumerate(losses):
        values = loss.double().numpy()
        kept = np.ones(len(values), dtype=bool) if keep is None else keep[i].numpy().astype(bool)
        for start in range(0, len(values), BLOCK):
            mask = kept[start : start + BLOCK]
            if mask.any():
                sums.append(values[start : start + BLOCK][mask].sum())
                counts.append(float(mask.sum()))
    return np.asarray(sums), np.asarray(counts, dtype=float)


def perplexity_ratio(
    a: Sequence[torch.Tensor],
    b: Sequence[torch.Tensor],
    keep: Sequence[torch.Tensor] | None = None,
    seed: int = 0,
) -> Interval:
    """Perplexity of A over perplexity of B on the same tokens (those `keep` marks, default all), with a
    paired block-bootstrap interval; NaN bounds when fewer than MIN_BLOCKS blocks hold a kept token."""
    shapes = [len(x) for x in a]
    if shapes != [len(x) for x in b] or not a or (keep is not None and shapes != [len(m) for m in keep]):
        raise LongwinError("a paired perplexity ratio needs both models' losses on the same tokens")
    sa, counts = _blocks(a, keep)
    sb, _ = _blocks(b, keep)
    if not len(sa):
        raise LongwinError("a paired perplexity ratio needs at least one kept token")
    value = math.exp((sa.sum() - sb.sum()) / counts.sum())
    if len(sa) < MIN_BLOCKS:
        return Interval(value, math.nan, math.nan, len(sa))
    picks = np.random.default_rng(seed).integers(0, len(sa), size=(RESAMPLES, len(sa)))
    draws = np.exp((sa[picks].sum(1) - sb[picks].sum(1)) / counts[picks].sum(1))
    low, high = np.quantile(draws, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return Interval(value, float(low), float(high), len(sa))


def score_difference(a: Sequence[float], b: Sequence[float], seed: int = 0) -> Interval:
    """Mean score of A minus that of B on the same prompts (in the scores' unit), paired bootstrap interval."""
    if len(a) != len(b) or not a:
        raise LongwinError("a paired difference needs both models' scores on the same prompts")
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    picks = np.random.default_rng(seed).integers(0, len(diff), size=(RESAMPLES, len(diff)))
    low, high = np.quantile(diff[picks].mean(1), [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return Interval(float(diff.mean()), float(low), float(high), len(diff))


def effective_length(
    series: dict[int, float], reference: float, higher_is_better: bool, share: float = 0.85, tolerance: float = 0.10
) -> int | None:
    """The longest length up to which every evaluated length keeps the bar (see the module docstring), or
    None when the shortest already misses it."""
    best = None
    for length in sorted(series):
        value = series[length]
        kept = value >= share * reference if higher_is_better else value <= (1 + tolerance) * reference
        if not kept or math.isnan(value):
            break
        best = length
    return best


def in_window_reference(series: dict[int, float], window: int | None) -> float | None:
    """The reference's mean score over its lengths inside its native window (None if it has none there)."""
    inside = [v for n, v in series.items() if window is None or n <= window]
    return sum(inside) / len(inside) if inside else None
