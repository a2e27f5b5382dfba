"""How the harness talks to a model: an adapter per model type, plain causal LMs by default.

An adapter turns prompts into scores and generations for its kind of model (`EvalModel`); the registry
maps a config's `model_type` to the adapter class, so tasks and the runner never ask what a model is.
Importing this module also registers longwin's own model types with transformers' Auto classes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from longwin.errors import LongwinError
from longwin.eval.model import CausalLMAdapter, EvalModel
from longwin.eval.sharedllm_adapter import SharedLLMAdapter
from longwin.methods.sharedllm import SharedLLMConfig
from longwin.models import load_model


def _flag(value: Any) -> bool:
    """A boolean as `longwin.flags.parse_options` types `true`/`false`."""
    if not isinstance(value, bool):
        raise LongwinError(f"expected true or false, got {value!r}")
    return value


def _positive(value: Any) -> int:
    """A positive integer as `longwin.flags.parse_options` types digits."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LongwinError(f"expected a positive integer, got {value!r}")
    return value


# model_type -> adapter; every other causal LM gets CausalLMAdapter
ADAPTERS: dict[str, type[CausalLMAdapter]] = {
    SharedLLMConfig.model_type: SharedLLMAdapter,  # context to the trees, question in the local window
}
# adapter -> the options `longwin eval --adapter-options` may pass it, each with its parser
ADAPTER_OPTIONS: dict[type[CausalLMAdapter], dict[str, Any]] = {
    SharedLLMAdapter: {"local_length": _positive, "trees": _flag},
}
# old spelling -> option: committed commands (docs/results-sharedllm.md, benchmarks/results) still pass them
ADAPTER_OPTION_ALIASES: dict[str, str] = {"local_window": "local_length"}


def resolve_model(
    model: Any, tokenizer: Any = None, name: str | None = None, options: dict[str, Any] | None = None
) -> EvalModel:
    """Accept an `EvalModel`, a (model, tokenizer) pair, a model plus `tokenizer=`, or a reference
    string/path for `longwin.models.load_model`. `name` labels the results; `options` go to the adapter
    (e.g. SharedLLM's `local_length`, `trees`)."""
    if isinstance(model, EvalModel):
        return model
    if isinstance(model, tuple) and len(model) == 2:
        model, tokenizer = model
    elif isinstance(model, (str, Path)):
        name = name or str(model)
        model, tokenizer = load_model(str(model))
    if not isinstance(model, torch.nn.Module):
        raise LongwinError(
            f"cannot evaluate a {type(model).__name__}: pass a model reference, a causal LM or an EvalModel"
        )
    if tokenizer is None:
        raise LongwinError(
            f"no tokenizer for {name or type(model).__name__}: pass tokenizer=... "
            "(or a model folder with tokenizer files)"
        )
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    adapter = ADAPTERS.get(str(model_type), CausalLMAdapter)
    accepted = ADAPTER_OPTIONS.get(adapter, {})
    options = {ADAPTER_OPTION_ALIASES.get(k, k): v for k, v in (options or {}).items()}
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise LongwinError(
            f"unknown adapter option(s) {', '.join(unknown)} for a {model_type} model "
            f"(accepted: {', '.join(accepted) or 'none'})"
        )
    typed = {k: accepted[k](v) for k, v in options.items()}
    return adapter(model, tokenizer, name=name, **typed)
