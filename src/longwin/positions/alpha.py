"""CREAM's expansion factor alpha: how far into the target window the middle block reaches.

The reference draws x = 2·alpha from a normal with mu = 1 + s and sigma (default 3, in x units) on
[2, 2s] by inverse-CDF look-up, floors it to an integer r and sets alpha = r / 2
(docs/position-schemes.md#alpha). Two modes:

- "faithful" copies the reference: inverse CDF of the *untruncated* normal, so the mass outside
  [2, 2s] piles up as point masses on the ends (clamp), then floor. The exact inverse CDF replaces the
  reference's 1,000-point table; the difference is negligible.
- "truncated" samples a properly truncated normal on [2, 2s], then floors the same way. When 2s is an
  integer the top value alpha = s then has probability zero (its bin [2s, 2s + 1) lies outside the support).

s may be any real > 1 (s = target_len / train_len); r then ranges over {2, ..., floor(2s)}.
"""

from __future__ import annotations

import math

import torch

from longwin.errors import LongwinError

MODES = ("faithful", "truncated")


def check_alpha_args(s: float, sigma: float, mode: str) -> None:
    """Reject arguments for which the alpha distribution is undefined."""
    if not (isinstance(s, (int, float)) and s > 1):
        raise LongwinError(f"the scale s = target_len / train_len must be > 1, got {s!r}")
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
        raise LongwinError(f"sigma must be a positive number, got {sigma!r}")
    if mode not in MODES:
        raise LongwinError(f"unknown alpha mode {mode!r}; known: {', '.join(MODES)}")


def _phi(z: float) -> float:
    """Standard normal CDF."""
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def _largest_r(s: float, mode: str) -> int:
    """Largest r with positive probability: floor(2s), less one in truncated mode when 2s is whole."""
    top = math.floor(2 * s)
    return top - 1 if mode == "truncated" and top == 2 * s else top


def cream_alpha_pmf(s: float, sigma: float = 3.0, mode: str = "faithful") -> dict[float, float]:
    """Exact pmf of alpha = r / 2 over {1, 1.5, ..., floor(2s) / 2}, so tests and docs need no sampling."""
    check_alpha_args(s, sigma, mode)
    mu = 1.0 + s
    top = math.floor(2 * s)

    def cdf(x: float) -> float:
        return _phi((x - mu) / sigma)

    pmf: dict[float, float] = {}
    if mode == "faithful":
        for r in range(2, top + 1):
            below = 0.0 if r == 2 else cdf(r)
            above = 1.0 if r == top else cdf(r + 1)
            pmf[r / 2] = above - below
    else:
        mass = cdf(2 * s) - cdf(2.0)
        for r in range(2, top + 1):
            pmf[r / 2] = (cdf(min(r + 1.0, 2 * s)) - cdf(r)) / mass
    return pmf


def r_from_uniform(u: torch.Tensor, s: float, *, sigma: float, mode: str) -> torch.Tensor:
    """Map uniforms u in [0, 1) to r = 2·alpha (LongTensor) by the inverse CDF of the chosen mode."""
    check_alpha_args(s, sigma, mode)
    mu = 1.0 + s
    u = u.double()
    if mode == "truncated":
        low, high = _phi((2.0 - mu) / sigma), _phi((2.0 * s - mu) / sigma)
        u = low + u * (high - low)
    x = mu + sigma * torch.special.ndtri(u)
    return x.floor().clamp(2, _largest_r(s, mode)).long()


def sample_r(s: float, n: int, *, sigma: float, mode: str, generator: torch.Generator) -> torch.Tensor:
    """n independent draws of r = 2·alpha; integers keep the middle-placement maths exact."""
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return r_from_uniform(u, s, sigma=sigma, mode=mode)


def sample_alpha(
    s: float, n: int, *, sigma: float = 3.0, mode: str = "faithful", generator: torch.Generator
) -> torch.Tensor:
    """n independent draws of alpha (float64), vectorised for distribution checks."""
    if not (isinstance(n, int) and n >= 0):
        raise LongwinError(f"n must be a non-negative integer, got {n!r}")
    return sample_r(s, n, sigma=sigma, mode=mode, generator=generator).double() / 2
