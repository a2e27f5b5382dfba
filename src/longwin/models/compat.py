"""The few transformers API differences between 4.5x and 5.x that model loading, RoPE scaling, SharedLLM and
training touch: every transformers-version branch of longwin lives here (tests/test_architecture.py checks)."""

from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PretrainedConfig


def dtype_keyword() -> str:
    """`from_pretrained` took `torch_dtype=` before transformers 4.56 and `dtype=` since."""
    import transformers
    from packaging.version import Version

    return "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"


def rope_theta(config: PretrainedConfig) -> float | None:
    """RoPE base: `config.rope_parameters["rope_theta"]` in 5.x, `config.rope_theta` in 4.x."""
    params = getattr(config, "rope_parameters", None)
    if isinstance(params, dict) and "rope_theta" in params:
        return float(params["rope_theta"])
    theta = getattr(config, "rope_theta", None)
    return None if theta is None else float(theta)


def set_rope_theta(config: PretrainedConfig, theta: float) -> None:
    """Set the RoPE base wherever this transformers version keeps it."""
    params = getattr(config, "rope_parameters", None)
    if isinstance(params, dict):
        params["rope_theta"] = theta
    else:
        config.rope_theta = theta


def rope_fields(config: PretrainedConfig) -> dict[str, Any]:
    """The config's RoPE settings as one flat dict in the 5.x layout: a copy of `rope_parameters` (5.x; per-layer
    families nest dicts in it), else 4.x's `rope_scaling` plus `rope_theta` (which may be None: no RoPE)."""
    params = getattr(config, "rope_parameters", None)
    if isinstance(params, dict) and params:
        return dict(params)
    return {**(getattr(config, "rope_scaling", None) or {}), "rope_theta": getattr(config, "rope_theta", None)}


def set_rope_fields(config: PretrainedConfig, fields: dict[str, Any]) -> None:
    """Write a flat 5.x-layout RoPE dict (with `rope_theta`) where this transformers version keeps it: 5.x's
    `rope_parameters` (keeping its `partial_rotary_factor`, which 5.x keeps there), or 4.x's `rope_theta` plus
    `rope_scaling` (None for the default rope_type)."""
    params = getattr(config, "rope_parameters", None)
    fields = dict(fields)
    if isinstance(params, dict):
        if "partial_rotary_factor" in params:
            fields["partial_rotary_factor"] = params["partial_rotary_factor"]
        config.rope_parameters = fields
    else:
        config.rope_theta = fields.pop("rope_theta")
        config.rope_scaling = fields if fields["rope_type"] != "default" else None


def rope_validator(config: PretrainedConfig) -> Any:
    """The config's own check of its RoPE fields (`validate_rope`, transformers 5.x), or None (4.x has none)."""
    validate = getattr(config, "validate_rope", None)
    return validate if callable(validate) else None


def truncate_layer_types(config: PretrainedConfig, num_layers: int) -> None:
    """Keep the per-layer attention types (`layer_types`, configs of newer transformers) of the first
    `num_layers` layers; older configs have no such list."""
    if getattr(config, "layer_types", None) is not None:
        config.layer_types = list(config.layer_types[:num_layers])


def cache_keyword(model: Any) -> str:
    """The forward keyword for the KV cache: `cache` in newer 5.x (`past_key_values` deprecated), else
    `past_key_values`."""
    return _cache_keyword(type(model).forward)


@functools.cache
def _cache_keyword(forward: Any) -> str:
    """Looked up once per model class: forward passes call this at every decoding step."""
    return "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"


def output_cache(outputs: Any) -> Any:
    """The KV cache a model output carries, under whichever name this transformers version gives it.

    Asked by the current name only: a missing cache (training) under the old name would log
    transformers' deprecation warning.
    """
    return outputs.get(output_cache_field())


@functools.cache
def output_cache_field() -> str:
    """The name of the cache field of model outputs (`cache` in newer 5.x, `past_key_values` before)."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    return "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


def non_reentrant_checkpointing(values: dict[str, Any], fields: set[str]) -> None:
    """Make TrainingArguments `values` ask for non-reentrant activation checkpointing when checkpointing is on
    and no checkpointing kwargs were given. transformers 5.x does this itself (and renamed the options to
    `activation_checkpointing*`); 4.x defaults to reentrant checkpointing, which backpropagates nothing through
    layers whose inputs need no gradient, as under a frozen embedding (SharedLLM's cross_attn+top)."""
    requested = any(values.get(name) for name in ("activation_checkpointing", "gradient_checkpointing"))
    kwargs_fields = [
        name for name in ("activation_checkpointing_kwargs", "gradient_checkpointing_kwargs") if name in fields
    ]
    if requested and kwargs_fields and not any(values.get(name) for name in kwargs_fields):
        values[kwargs_fields[0]] = {"use_reentrant": False}


def cache_layer_kv(cache: Any, layer: int) -> tuple[Any, Any]:
    """(K, V) of one layer of a DynamicCache (4.5x keeps lists, 5.x keeps layer objects)."""
    if hasattr(cache, "layers"):
        return cache.layers[layer].keys, cache.layers[layer].values
    return cache.key_cache[layer], cache.value_cache[layer]


def set_cache_layer_kv(cache: Any, layer: int, keys: Any, values: Any) -> None:
    """Replace one layer's (K, V) in a DynamicCache."""
    if hasattr(cache, "layers"):
        cache.layers[layer].keys, cache.layers[layer].values = keys, values
    else:
        cache.key_cache[layer], cache.value_cache[layer] = keys, values


def cache_layers(cache: Any) -> int:
    """How many layers a DynamicCache holds."""
    return len(cache.layers) if hasattr(cache, "layers") else len(cache.key_cache)
