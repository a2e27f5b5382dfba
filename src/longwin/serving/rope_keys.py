"""The RoPE keys of a saved `config.json` that serving engines read, per rope type.

vLLM and llama.cpp's converter read the rope dict of `config.json` (transformers 5.x writes it as
`rope_parameters`, 4.x as `rope_scaling`) and the top-level `max_position_embeddings`. A key they need
that is missing or inconsistent makes the engine run the model at its native RoPE, or refuse it, with
no error at save time; these rules name each such problem in one line.
"""

from __future__ import annotations

import math
from typing import Any

_SCALED_TYPES = ("linear", "dynamic", "yarn", "longrope", "llama3")


def rope_dict(config: dict[str, Any]) -> dict[str, Any]:
    """The flat rope dict of a `config.json` (5.x `rope_parameters`, else 4.x `rope_scaling` + `rope_theta`)."""
    params = config.get("rope_parameters")
    if isinstance(params, dict) and params:
        rope = dict(params)
    else:
        rope = {**(config.get("rope_scaling") or {}), "rope_theta": config.get("rope_theta")}
    rope["rope_type"] = rope.get("rope_type") or rope.get("type") or "default"
    return rope


def rotary_half(config: dict[str, Any], rope: dict[str, Any]) -> int:
    """Number of rotary frequency pairs (half the rotary dimension)."""
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    partial = rope.get("partial_rotary_factor") or config.get("partial_rotary_factor") or 1.0
    return int(head_dim * partial) // 2


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def key_problems(config: dict[str, Any]) -> list[str]:
    """What a serving engine would miss in this `config.json`'s RoPE keys; [] when they are complete."""
    rope = rope_dict(config)
    kind = rope["rope_type"]
    if kind not in _SCALED_TYPES:
        return []
    problems = []
    factor: Any = rope.get("factor")
    original = rope.get("original_max_position_embeddings")
    native = original or (config.get("longwin_rope") or {}).get("native_window")
    window = config.get("max_position_embeddings")
    if not _is_number(factor) or factor <= 1:
        problems.append(f"{kind}: factor must be a number above 1, got {factor!r}")
    if kind in ("yarn", "longrope", "llama3") and not isinstance(original, int):
        problems.append(f"{kind}: original_max_position_embeddings (the native window) is missing")
    if _is_number(factor) and isinstance(native, int):
        expected = native if kind == "dynamic" else round(factor * native)
        if window != expected:
            problems.append(f"{kind}: max_position_embeddings is {window}, engines expect {expected}")
    if kind in ("yarn", "longrope") and "attention_factor" in rope and not _is_number(rope["attention_factor"]):
        problems.append(f"{kind}: attention_factor must be a positive number, got {rope['attention_factor']!r}")
    if kind == "longrope":
        problems.extend(_longrope_problems(config, rope))
    return problems


def _longrope_problems(config: dict[str, Any], rope: dict[str, Any]) -> list[str]:
    """longrope (and revised YaRN stored as longrope): one positive divisor per rotary pair in both lists, and
    an explicit attention factor (longrope's default, sqrt(1 + ln s / ln N), is not YaRN's)."""
    half = rotary_half(config, rope)
    problems = []
    for name in ("short_factor", "long_factor"):
        values = rope.get(name)
        if not isinstance(values, list) or len(values) != half or not all(map(_is_number, values)):
            count = len(values) if isinstance(values, list) else values
            problems.append(f"longrope: {name} must hold {half} positive numbers (one per rotary pair), got {count}")
    if "attention_factor" not in rope:
        problems.append("longrope: attention_factor is missing (engines would use longrope's own default)")
    return problems
