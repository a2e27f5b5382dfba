"""Extend a model's context window by rewriting the RoPE fields of its config in transformers' format.

transformers computes the rotary frequencies itself from these fields (its `ROPE_INIT_FUNCTIONS`), so a
model saved with a scaled config loads in stock transformers without `trust_remote_code`.

What `scale_rope` writes on a copy of the config:

* transformers 5.x configs (they carry `rope_parameters`): one flat dict with `rope_type`, `rope_theta`,
  `factor`, `original_max_position_embeddings`, ... ; transformers 4.x configs: `rope_scaling` (None for
  the default type) plus `rope_theta`.
* `revised-yarn` has no rope_type of its own in transformers; it is written as `rope_type: "longrope"` with
  its per-pair divisors as both `short_factor` and `long_factor` and an explicit `attention_factor`, so
  stock transformers reproduces it at every sequence length (see `_revised_yarn_fields`).
* `max_position_embeddings = target_length`, except for `dynamic`: transformers reads
  `max_position_embeddings` as the length past which dynamic NTK starts growing the base, so it stays at
  the native window (the model still runs at any length; nothing in transformers enforces it).
* `longwin_rope`: a record of the method, the extension factor and the native window and base. Stock
  transformers ignores it. It lets `describe_rope` name static NTK (to transformers just a larger base)
  and lets a later `scale_rope` start again from the native settings.

Scaling is always relative to the native window and the native base: scaling an already-scaled config
replaces the previous scaling instead of compounding it.
"""

from __future__ import annotations

import copy
import math
import operator
from typing import TYPE_CHECKING, Any

from longwin.errors import LongwinError
from longwin.models.compat import rope_fields, rope_validator, set_rope_fields

if TYPE_CHECKING:
    from transformers import PretrainedConfig

# Method -> options it accepts, with their defaults (None: transformers' own default applies).
_METHOD_OPTIONS: dict[str, dict[str, float | None]] = {
    "none": {},
    "linear": {},
    "ntk": {},
    "dynamic": {},
    "yarn": {"beta_fast": None, "beta_slow": None, "attention_factor": None},
    "revised-yarn": {"beta_fast": None, "beta_slow": None, "attention_factor": None},
    "llama3": {"low_freq_factor": 1.0, "high_freq_factor": 4.0},
}
SUPPORTED_METHODS: tuple[str, ...] = tuple(_METHOD_OPTIONS)
_RECORD = "longwin_rope"
# 2**24: the largest integer position float32 still represents exactly (RoPE angles are position x frequency)
MAX_POSITIONS = 2**24
_YARN_BETAS = (32.0, 1.0)  # YaRN's (and transformers') default beta_fast, beta_slow


def _rope_fields(config: PretrainedConfig) -> dict[str, Any]:
    """The config's RoPE settings as one flat dict in the 5.x layout (rope_type, rope_theta, factor, ...)."""
    rope = rope_fields(config)
    if any(isinstance(value, dict) for value in rope.values()):
        raise LongwinError(f"{type(config).__name__} has per-layer RoPE parameters, which scale_rope does not support")
    if rope.get("rope_theta") is None:
        raise LongwinError(
            f"{type(config).__name__} has no RoPE (no rope_theta or rope_parameters); "
            "RoPE scaling needs a rotary model such as Llama, Mistral or Qwen2"
        )
    kind, legacy = rope.pop("rope_type", None), rope.pop("type", None)
    rope["rope_type"] = kind or legacy or "default"
    return rope


def _record(config: PretrainedConfig) -> dict[str, Any] | None:
    record = getattr(config, _RECORD, None)
    return record if isinstance(record, dict) else None


def native_window(config: PretrainedConfig) -> int:
    """The context length the model was pretrained with, whatever scaling its config carries now."""
    rope = _rope_fields(config)
    record = _record(config)
    if record is not None:
        return int(record["native_window"])
    # Phi-3-style configs keep the pretraining length at the top level instead of inside the RoPE dict.
    return int(
        rope.get("original_max_position_embeddings")
        or getattr(config, "original_max_position_embeddings", None)
        or config.max_position_embeddings
    )


def _as_int(name: str, value: Any) -> int:
    try:
        number = operator.index(value)
    except TypeError:
        number = 0
    if isinstance(value, bool) or number <= 0:
        raise LongwinError(f"{name} must be a positive integer, got {value!r}")
    return number


def _as_positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise LongwinError(f"RoPE option {name} must be a positive number, got {value!r}")
    return float(value)


def _method_options(method: str, options: dict[str, Any]) -> dict[str, float]:
    """Defaults merged with the caller's options (None means "use the default"), checked for sense."""
    allowed = _METHOD_OPTIONS[method]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise LongwinError(
            f"unknown option(s) for RoPE method {method!r}: {', '.join(unknown)}; "
            f"allowed: {', '.join(allowed) or 'none'}"
        )
    values = {name: default for name, default in allowed.items() if default is not None}
    values.update({name: _as_positive_float(name, v) for name, v in options.items() if v is not None})
    if method in ("yarn", "revised-yarn"):
        fast, slow = values.get("beta_fast", _YARN_BETAS[0]), values.get("beta_slow", _YARN_BETAS[1])
        if fast <= slow:
            raise LongwinError(f"{method} needs beta_fast > beta_slow, got beta_fast={fast} and beta_slow={slow}")
    if method == "llama3" and values["high_freq_factor"] <= values["low_freq_factor"]:
        raise LongwinError(
            f"llama3 needs high_freq_factor > low_freq_factor, got {values['high_freq_factor']} "
            f"and {values['low_freq_factor']}"
        )
    return values


def _rotary_dim(config: PretrainedConfig, rope: dict[str, Any]) -> int:
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    partial = rope.get("partial_rotary_factor") or getattr(config, "partial_rotary_factor", None) or 1.0
    return int(head_dim * partial)


def _revised_yarn_divisors(
    factor: float, native: int, theta: float, rotary_dim: int, beta_fast: float, beta_slow: float
) -> list[float]:
    """Per-pair divisors (1 - gamma_i) * s + gamma_i of the CREAM/PoSE reference code's "revised" YaRN.

    gamma_i is YaRN's extrapolation weight (1: keep the pair's frequency, 0: divide it by s), computed as in
    transformers' `_compute_yarn_parameters` (truncated correction range over the native window), so the
    two methods share their bands and differ only in how the middle band blends: YaRN blends frequencies,
    revised YaRN blends divisors.
    """

    def correction_dim(rotations: float) -> float:  # pair dimension whose wavelength fits `rotations` times
        return rotary_dim * math.log(native / (rotations * 2 * math.pi)) / (2 * math.log(theta))

    low = max(math.floor(correction_dim(beta_fast)), 0)
    high: float = min(math.ceil(correction_dim(beta_slow)), rotary_dim - 1)
    if high == low:
        high += 0.001  # as transformers does, to avoid dividing by zero
    divisors = []
    for i in range(rotary_dim // 2):
        gamma = 1.0 - min(max((i - low) / (high - low), 0.0), 1.0)
        divisors.append((1.0 - gamma) * factor + gamma)
    return divisors


def _revised_yarn_fields(
    factor: float, native: int, theta: float, rotary_dim: int, options: dict[str, float]
) -> dict[str, Any]:
    """Revised YaRN in transformers' `longrope` layout (inv_freq_i / factor_i), loadable without custom code.

    transformers picks `long_factor` only once the largest position id exceeds
    `original_max_position_embeddings` and `short_factor` below it; both get the revised-YaRN divisors so
    that the frequencies are the same at every length (CREAM trains short sequences whose position ids span
    the target window). `attention_factor` is written out because longrope's own default,
    sqrt(1 + ln s / ln N), is not YaRN's 0.1 ln s + 1.
    """
    divisors = _revised_yarn_divisors(
        factor,
        native,
        theta,
        rotary_dim,
        options.get("beta_fast", _YARN_BETAS[0]),
        options.get("beta_slow", _YARN_BETAS[1]),
    )
    return {
        "rope_type": "longrope",
        "rope_theta": theta,
        "factor": factor,
        "original_max_position_embeddings": native,
        "attention_factor": options.get("attention_factor", 0.1 * math.log(factor) + 1.0),
        "short_factor": divisors,
        "long_factor": list(divisors),
    }


def _scaled_fields(
    method: str, factor: float, native: int, theta: float, rotary_dim: int, options: dict[str, float]
) -> dict[str, Any]:
    """The new RoPE dict (5.x layout) for one method."""
    if method == "none":
        return {"rope_type": "default", "rope_theta": theta}
    if method == "ntk":
        # Static NTK-aware base change b' = b * s^(d/(d-2)); transformers only sees a larger base.
        if rotary_dim <= 2:
            raise LongwinError(f"ntk needs a rotary dimension above 2, got {rotary_dim}")
        return {"rope_type": "default", "rope_theta": theta * factor ** (rotary_dim / (rotary_dim - 2))}
    if method == "revised-yarn":
        return _revised_yarn_fields(factor, native, theta, rotary_dim, options)
    fields: dict[str, Any] = {"rope_type": method, "rope_theta": theta, "factor": factor}
    if method in ("yarn", "llama3"):
        fields["original_max_position_embeddings"] = native
    return {**fields, **options}


def scale_rope(
    config: PretrainedConfig, method: str, target_length: int, *, original_length: int | None = None, **options: Any
) -> PretrainedConfig:
    """A copy of `config` whose RoPE runs at `target_length` tokens with `method`.

    Methods: `none` (frequencies unchanged; only `max_position_embeddings` rises, i.e. plain extrapolation),
    `linear` (position interpolation, s = target/original), `ntk` (static NTK-aware base change),
    `dynamic` (transformers' dynamic NTK), `yarn` (options beta_fast, beta_slow, attention_factor),
    `revised-yarn` (the CREAM/PoSE code's YaRN variant, same options; stored as transformers' `longrope`),
    `llama3` (options low_freq_factor=1, high_freq_factor=4). `original_length` defaults to the native
    window (`native_window`); the base used is always the native one.
    """
    rope = _rope_fields(config)
    if method not in _METHOD_OPTIONS:
        raise LongwinError(f"unknown RoPE scaling method {method!r}; supported: {', '.join(SUPPORTED_METHODS)}")
    target = _as_int("target_length", target_length)
    native = native_window(config) if original_length is None else _as_int("original_length", original_length)
    if target <= native:
        raise LongwinError(f"target_length {target} must exceed the native window {native}")
    if target > MAX_POSITIONS:
        raise LongwinError(
            f"target_length {target} is past {MAX_POSITIONS:,} positions, where float32 position "
            f"angles can no longer tell neighbouring tokens apart"
        )
    factor = target / native
    record = _record(config)
    theta = float(record["native_rope_theta"]) if record is not None else float(rope["rope_theta"])
    fields = _scaled_fields(method, factor, native, theta, _rotary_dim(config, rope), _method_options(method, options))

    scaled = copy.deepcopy(config)
    set_rope_fields(scaled, fields)
    scaled.max_position_embeddings = native if method == "dynamic" else target
    if hasattr(scaled, "original_max_position_embeddings"):
        scaled.original_max_position_embeddings = native
    setattr(scaled, _RECORD, {"method": method, "factor": factor, "native_window": native, "native_rope_theta": theta})
    _check_accepted(scaled, method)
    return scaled


def _check_accepted(scaled: PretrainedConfig, method: str) -> None:
    """Refuse what the family's own config validator rejects (transformers 5.x: Phi-3 takes only longrope), which
    transformers otherwise reports only when the model is saved, after training."""
    validate = rope_validator(scaled)
    if validate is None:
        return
    try:
        validate()
    except (ValueError, TypeError) as error:
        reason = " ".join(str(error).split())
        raise LongwinError(f"{type(scaled).__name__} does not take {method} RoPE scaling: {reason}") from error


def unscaled(config: PretrainedConfig) -> PretrainedConfig:
    """A copy of `config` with the native RoPE (base, window, no scaling): the model a scaled config must differ
    from, which is how a RoPE config that changes nothing is caught."""
    rope = _rope_fields(config)
    record = _record(config)
    theta = float(record["native_rope_theta"]) if record is not None else float(rope["rope_theta"])
    native = native_window(config)
    plain = copy.deepcopy(config)
    set_rope_fields(plain, {"rope_type": "default", "rope_theta": theta})
    plain.max_position_embeddings = native
    if record is not None:
        delattr(plain, _RECORD)
    return plain


def describe_rope(config: PretrainedConfig) -> dict[str, Any]:
    """The config's RoPE scaling in plain terms, for run reports.

    `factor` is the window extension factor (target/native; 1.0 for an unscaled config), `rope_theta` the
    base in effect and `target_length` the length the scaling is meant for.
    """
    rope = _rope_fields(config)
    record = _record(config)
    native = native_window(config)
    if record is not None:
        method, factor = record["method"], float(record["factor"])
    else:
        method = "none" if rope["rope_type"] == "default" else rope["rope_type"]
        factor = float(rope.get("factor") or 1.0)
    target = round(native * factor) if rope["rope_type"] == "dynamic" else int(config.max_position_embeddings)
    return {
        "method": method,
        "rope_type": rope["rope_type"],
        "factor": factor,
        "native_window": native,
        "target_length": target,
        "rope_theta": float(rope["rope_theta"]),
        "max_position_embeddings": int(config.max_position_embeddings),
    }
