"""The arguments that serve a saved folder at its extended length in vLLM and llama.cpp.

* vLLM: written for vLLM 0.33 as its docs state it (docs.vllm.ai/en/stable/features/context_extension/:
  `--rope-scaling` is gone; `--hf-overrides '{"rope_parameters": {...}}'` with `--max-model-len`).
  Documented, not verified: no vLLM runs in longwin's tests.
* llama.cpp: written for the llama.cpp vendored in llama-cpp-python 0.3.36 (flags of its `common/arg.cpp`).
  The exported GGUF carries the scaling, so `-c N` is all it needs; the flags are for running the unscaled
  base GGUF training-free. Its `--yarn-attn-factor` is overwritten under YaRN (`src/llama-context.cpp`), so
  an attention factor other than YaRN's default goes in as `--override-kv llama.rope.scaling.attn_factor`.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

from longwin.serving.gguf_rope import GgufRope, gguf_rope
from longwin.serving.rope_keys import rope_dict

VLLM_VERSION = "vLLM 0.33 (docs.vllm.ai stable, features/context_extension)"
LLAMA_CPP_VERSION = "llama.cpp vendored in llama-cpp-python 0.3.36"


@dataclass(frozen=True)
class Hints:
    vllm: list[str]
    llama_gguf: list[str]
    llama_base_flags: list[str] | None  # None: llama.cpp flags cannot express this scaling (per-pair factors)


def serving_hints(config: Any, folder: str, gguf_file: str) -> Hints:
    """The vLLM and llama.cpp command lines for a saved config (a transformers `PretrainedConfig`)."""
    rope = {k: v for k, v in rope_dict(config.to_dict()).items() if v is not None}
    window = int(config.max_position_embeddings)
    overrides = {"rope_parameters": rope, "max_position_embeddings": window}
    vllm = ["vllm", "serve", folder, "--max-model-len", str(window), "--hf-overrides", json.dumps(overrides)]
    plan = gguf_rope(config)
    return Hints(vllm, ["llama-cli", "-m", gguf_file, "-c", str(plan.context_length)], _base_flags(plan))


def _base_flags(plan: GgufRope) -> list[str] | None:
    """llama.cpp flags that give the unscaled base GGUF the same RoPE."""
    if plan.rope_freqs is not None:
        return None
    flags = ["-c", str(plan.context_length), "--rope-freq-base", f"{plan.freq_base:g}"]
    kind = plan.keys.get("rope.scaling.type")
    if kind is None:
        return [*flags, "--rope-scaling", "none"]
    flags += ["--rope-scaling", kind, "--rope-scale", f"{plan.keys['rope.scaling.factor']:g}"]
    if kind == "yarn":
        flags += ["--yarn-orig-ctx", str(plan.keys["rope.scaling.original_context_length"])]
    if "rope.scaling.attn_factor" in plan.keys:
        flags += ["--override-kv", f"llama.rope.scaling.attn_factor=float:{plan.keys['rope.scaling.attn_factor']:.6f}"]
    return flags


def render(hints: Hints) -> str:
    """The hints as shell lines, each engine's version named."""
    lines = [
        f"# vLLM, written for {VLLM_VERSION}; documented, not verified",
        shlex.join(hints.vllm),
        f"# llama.cpp, written for {LLAMA_CPP_VERSION}: the exported GGUF carries the RoPE scaling",
        shlex.join(hints.llama_gguf),
    ]
    if hints.llama_base_flags is None:
        lines.append("# the unscaled base GGUF cannot take this scaling by flags (per-pair factors): use the export")
    else:
        base = shlex.join(["llama-cli", "-m", "BASE.gguf", *hints.llama_base_flags])
        lines += ["# or the unscaled base GGUF with flags:", base]
    return "\n".join(lines)
