"""A saved config's RoPE scaling as llama.cpp reads it from a GGUF (keys checked against llama.cpp's
`src/llama-model.cpp`, `src/llama-context.cpp` and `ggml/src/ggml-cpu/ops.cpp` in llama-cpp-python 0.3.36).

* linear: `rope.scaling.type = linear`, `rope.scaling.factor = s`.
* YaRN: `rope.scaling.type = yarn`, `factor`, `original_context_length`. llama.cpp scales cos/sin by
  `rope.scaling.attn_factor * (1 + 0.1 ln s)` (the YaRN kernel multiplies by 1 + 0.1 ln s itself and the
  context cancels its own copy of it), where transformers scales by `attention_factor` (default
  1 + 0.1 ln s); so `attn_factor = attention_factor / (1 + 0.1 ln s)`, 1.0 for the default, and models
  trained with `attention_factor = 1.0` keep it. The Llama loader reads no YaRN betas, so only the
  defaults (32, 1) are exported.
* longrope (revised YaRN) and llama3: per-pair divisors as the `rope_freqs` tensor, which llama.cpp's Llama
  graph divides each pair's frequency by, plus `attn_factor` (the YaRN kernel is off, so it is applied as
  is). The divisors are transformers' own frequencies: native inv_freq / scaled inv_freq.
* default (none, static NTK): the base alone (`rope.freq_base`, already the NTK base).
* dynamic NTK has no llama.cpp counterpart and is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from longwin.errors import LongwinError
from longwin.serving.rope_keys import rope_dict, rotary_half

_DEFAULT_BETAS = (32.0, 1.0)


@dataclass(frozen=True)
class GgufRope:
    """What goes into the GGUF for one config's RoPE: scalar keys (suffixes after `llama.`) and an optional
    `rope_freqs` divisor per rotary pair."""

    context_length: int
    freq_base: float
    keys: dict[str, Any] = field(default_factory=dict)
    rope_freqs: list[float] | None = None


def gguf_rope(config: Any) -> GgufRope:
    """The GGUF RoPE entries of a transformers config (a `PretrainedConfig`); one line if llama.cpp cannot
    run it."""
    rope = rope_dict(config.to_dict())
    kind, theta, window = rope["rope_type"], float(rope["rope_theta"]), int(config.max_position_embeddings)
    if kind == "default":
        return GgufRope(window, theta)
    if kind == "linear":
        return GgufRope(window, theta, {"rope.scaling.type": "linear", "rope.scaling.factor": float(rope["factor"])})
    if kind == "yarn":
        return GgufRope(window, theta, _yarn_keys(rope))
    if kind in ("longrope", "llama3"):
        return _divisor_rope(config, rope, window, theta)
    raise LongwinError(f"llama.cpp has no {kind} RoPE scaling (its types: none, linear, yarn, per-pair factors)")


def _yarn_keys(rope: dict[str, Any]) -> dict[str, Any]:
    betas = (float(rope.get("beta_fast") or 32.0), float(rope.get("beta_slow") or 1.0))
    if betas != _DEFAULT_BETAS:
        raise LongwinError(
            f"YaRN betas {betas} are not llama.cpp's defaults {_DEFAULT_BETAS}, and its Llama loader reads none "
            "from the GGUF"
        )
    factor = float(rope["factor"])
    keys = {
        "rope.scaling.type": "yarn",
        "rope.scaling.factor": factor,
        "rope.scaling.original_context_length": int(rope["original_max_position_embeddings"]),
    }
    if rope.get("attention_factor") is not None:
        keys["rope.scaling.attn_factor"] = float(rope["attention_factor"]) / (1.0 + 0.1 * math.log(factor))
    return keys


def _divisor_rope(config: Any, rope: dict[str, Any], window: int, theta: float) -> GgufRope:
    """Per-pair divisors from transformers' own inv_freq (at the full window, so longrope uses its long factors)."""
    import torch
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    if rope["rope_type"] == "longrope" and rope.get("short_factor") != rope.get("long_factor"):
        raise LongwinError("longrope with different short and long factors switches by length; llama.cpp's Llama "
                           "graph takes one set of per-pair factors")  # fmt: skip
    scaled, attention = ROPE_INIT_FUNCTIONS[rope["rope_type"]](config, "cpu", seq_len=window)
    dim = 2 * rotary_half(config.to_dict(), rope)
    native = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))  # llama.cpp's own frequencies
    divisors = (native / scaled).tolist()
    keys: dict[str, Any] = {"rope.scaling.type": "none"}
    if not math.isclose(float(attention), 1.0):
        keys["rope.scaling.attn_factor"] = float(attention)
    return GgufRope(window, theta, keys, divisors)
