"""Training methods, one folder each, and their registry.

A method turns a `TrainConfig` into `TrainParts` (model, examples, collator, card fields); the runner
(`longwin.training.runner.train`) does the rest. Adding one: a folder with its options dataclass and a
`build`, plus one line below (docs/architecture.md).
"""

from __future__ import annotations

from longwin.errors import LongwinError
from longwin.methods import positions, sharedllm
from longwin.methods.base import CommonOptions, Method, Section, TrainConfig, TrainParts
from longwin.methods.lora import LoraOptions
from longwin.methods.positions import PositionsOptions
from longwin.methods.sharedllm.method import build as build_sharedllm
from longwin.methods.sharedllm.options import SharedLLMOptions

METHODS: dict[str, Method] = {
    "positions": Method(
        "positions",
        "fine-tune with manipulated position ids (CREAM, PoSE, RandPos, contiguous) on rescaled RoPE",
        (PositionsOptions, LoraOptions),
        positions.build,
    ),
    "sharedllm": Method(
        "sharedllm",
        "train a SharedLLM: the base stacked on its own bottom layers",
        (SharedLLMOptions,),
        build_sharedllm,
    ),
}


def sections() -> list[type[Section]]:
    """Every option section some method reads, each once, in registry order."""
    return list(dict.fromkeys(cls for method in METHODS.values() for cls in method.sections))


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise LongwinError(f"unknown training method {name!r} (known: {', '.join(METHODS)})")
    return METHODS[name]


__all__ = ["METHODS", "CommonOptions", "Method", "TrainConfig", "TrainParts", "get_method", "sections", "sharedllm"]
