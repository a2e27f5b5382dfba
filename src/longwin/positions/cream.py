"""CREAM positions (docs/position-schemes.md#cream): head pinned at 0, tail pinned at L-1, a Gaussian-placed middle.

Every example splits the N = train_len window into head (positions 0..Lh-1), a contiguous middle of
Lm = N - Lh - Lt positions ending at P_e, and tail (positions L-Lt..L-1), L = target_len. The regime is
drawn per example (the reference drew it once per 3,000-example map batch): continuity
(Lh = Lt = ceil(4s)) with probability p_continuity, else relativity (Lh = Lt = N // 3).
P_e ~ U{lo..hi} with lo = Lh + floor((Lm-1)·alpha), hi = floor(alpha·N) - Lt - 1, alpha from `alpha.py`.

Non-integer s = L / N is supported: alpha ranges over {1, 1.5, ..., floor(2s)/2} <= s, k = ceil(4s), and
the bounds are computed in integers from r = 2·alpha. For integer s (and even N) this is exactly the
reference; elsewhere it is the natural integer version of it (the reference needed integer s).

Content (docs/position-schemes.md#content, with the overlap bug fixed): head = doc[0:Lh]; middle =
doc[P_s:P_e+1] at its true offsets when P_e < doc_len - Lt, else the Lm tokens just before the tail; tail =
the last Lt tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from longwin.errors import LongwinError
from longwin.positions.alpha import MODES, check_alpha_args, sample_r
from longwin.positions.base import Placement, Scheme, contiguous, randint

REGIMES = ("continuity", "relativity")
_LENGTH_OPTIONS = ("head_len", "tail_len") + tuple(
    f"{regime}_{part}_len" for regime in REGIMES for part in ("head", "tail")
)
OPTIONS = ("sigma", "mode", "p_continuity") + _LENGTH_OPTIONS


@dataclass(frozen=True)
class CreamSettings:
    """Validated options for one call; `lengths` maps regime -> (head_len, tail_len)."""

    sigma: float
    mode: str
    p_continuity: float
    lengths: Mapping[str, tuple[int, int]]


def default_lengths(train_len: int, target_len: int) -> dict[str, tuple[int, int]]:
    """Reference head/tail lengths: continuity k = ceil(4s) (4·s for integer s), relativity N // 3."""
    k = -(-4 * target_len // train_len)
    third = train_len // 3
    return {"continuity": (k, k), "relativity": (third, third)}


def _length_option(options: Mapping[str, Any], regime: str, part: str, default: int) -> int:
    """A per-regime override beats the shared `head_len`/`tail_len`, which beats the default."""
    name = next((n for n in (f"{regime}_{part}_len", f"{part}_len") if n in options), None)
    if name is None:
        return default
    value = options[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LongwinError(f"cream option {name} must be a positive integer, got {value!r}")
    return value


def settings(train_len: int, target_len: int, options: Mapping[str, Any]) -> CreamSettings:
    """Check options against the window sizes; every regime that can be drawn must leave a middle."""
    sigma = options.get("sigma", 3.0)
    mode = options.get("mode", "faithful")
    check_alpha_args(target_len / train_len, sigma, mode)
    p = options.get("p_continuity", 0.5)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise LongwinError(f"cream option p_continuity must be a probability in [0, 1], got {p!r}")
    defaults = default_lengths(train_len, target_len)
    lengths = {
        regime: (
            _length_option(options, regime, "head", defaults[regime][0]),
            _length_option(options, regime, "tail", defaults[regime][1]),
        )
        for regime in REGIMES
    }
    for regime, chance in (("continuity", p), ("relativity", 1.0 - p)):
        head, tail = lengths[regime]
        if chance > 0 and regime == "continuity" and (head, tail) == defaults[regime] and head + tail >= train_len:
            longest = (train_len - 1) // 2 * train_len // 4
            raise LongwinError(
                f"CREAM cannot reach a target {target_len / train_len:g} times its {train_len}-token training window: "
                f"its continuity head and tail (4 x that ratio each) would fill the window. Use --target-length "
                f"<= {longest}, a longer --train-length, or --scheme-options p_continuity=0"
            )
        if chance > 0 and (min(head, tail) < 1 or head + tail >= train_len):
            raise LongwinError(
                f"cream {regime} needs head, tail >= 1 and train_len > head + tail, got train_len={train_len}, "
                f"head={head}, tail={tail} (set {regime}_head_len/{regime}_tail_len or p_continuity)"
            )
    return CreamSettings(float(sigma), mode, float(p), lengths)


def middle_bounds(r: int, head: int, tail: int, train_len: int) -> tuple[int, int]:
    """Inclusive range of the middle's last position P_e for alpha = r / 2, integer-exact
    (docs/position-schemes.md#middle-placement)."""
    middle = train_len - head - tail
    return head + ((middle - 1) * r) // 2, (r * train_len) // 2 - tail - 1


def _place(train_len: int, target_len: int, generator: torch.Generator, options: Mapping[str, Any]) -> Placement:
    cfg = settings(train_len, target_len, options)
    continuity = torch.rand((), generator=generator, dtype=torch.float64).item() < cfg.p_continuity
    head, tail = cfg.lengths["continuity" if continuity else "relativity"]
    middle = train_len - head - tail
    r = int(sample_r(target_len / train_len, 1, sigma=cfg.sigma, mode=cfg.mode, generator=generator)[0])
    end = randint(*middle_bounds(r, head, tail, train_len), generator)
    position_ids = torch.cat(
        [
            contiguous(head),
            torch.arange(end - middle + 1, end + 1, dtype=torch.long),
            torch.arange(target_len - tail, target_len, dtype=torch.long),
        ]
    )
    segments = (("head", 0, head), ("middle", head, head + middle), ("tail", head + middle, train_len))
    return Placement(position_ids, segments)


def _gather(placed: Placement, doc_len: int, target_len: int, generator: torch.Generator) -> torch.Tensor:
    spans = {name: (start, end) for name, start, end in placed.segments}
    head = spans["head"][1]
    mid_lo, mid_hi = spans["middle"]
    tail = spans["tail"][1] - spans["tail"][0]
    first, last = int(placed.position_ids[mid_lo]), int(placed.position_ids[mid_hi - 1])
    if last < doc_len - tail:
        middle = torch.arange(first, last + 1, dtype=torch.long)
    else:
        middle = torch.arange(doc_len - tail - (mid_hi - mid_lo), doc_len - tail, dtype=torch.long)
    return torch.cat([contiguous(head), middle, torch.arange(doc_len - tail, doc_len, dtype=torch.long)])


CREAM = Scheme(
    name="cream",
    description=(
        "CREAM: head at 0, tail at target_len-1, middle placed by a truncated Gaussian; "
        f"50/50 continuity/relativity (alpha modes: {', '.join(MODES)})"
    ),
    extends=True,
    place=_place,
    gather=_gather,
    options=OPTIONS,
)
