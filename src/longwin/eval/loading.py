"""Load a model for evaluation: device, dtype, attention kernel, and training-free RoPE scaling.

Training-free baselines (NTK, YaRN, dynamic NTK, plain PI) are the base model with a rescaled RoPE
config and no fine-tuning, so `--rope yarn --target-length 2048` evaluates one without a train run.
"""

from __future__ import annotations

from typing import Any

from longwin.errors import LongwinError
from longwin.eval import adapters  # noqa: F401  (registers longwin's model types before any load)


def pick_device(device: str) -> str:
    """`auto` picks the GPU when there is one; an explicit GPU request without one fails in one line."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LongwinError(f"--device {device}: no CUDA GPU is visible to torch")
    return device


def check_fits_before_loading(
    ref: str,
    lengths: list[int],
    *,
    device: str,
    dtype: str,
    attn_implementation: str,
    truncate: int,
    batch_size: int,
    batch_tokens: int,
    cache: bool = True,
) -> None:
    """The memory check of `longwin.eval.runner`, from the config alone: a length that cannot fit fails in one
    line before gigabytes of weights are loaded."""
    import torch
    from transformers import AutoConfig

    from longwin.eval.model import check_fits, forward_bytes
    from longwin.models import model_path

    config = AutoConfig.from_pretrained(model_path(ref), local_files_only=True)
    stored = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    name = dtype if dtype != "auto" else stored
    resolved = getattr(torch, name, None) if isinstance(name, str) else name
    width = resolved.itemsize if isinstance(resolved, torch.dtype) else 4
    eager = attn_implementation == "eager"
    check_fits(
        lambda n, cache: forward_bytes(config, min(n, truncate or n), width, eager, cache=cache),
        lengths,
        batch_size,
        batch_tokens,
        torch.device(pick_device(device)),
        cache,
    )


def load_for_eval(
    ref: str,
    *,
    device: str = "auto",
    dtype: str = "auto",
    attn_implementation: str = "",
    rope: str = "",
    target_length: int = 0,
    rope_options: dict[str, Any] | None = None,
) -> tuple[Any, Any]:
    """(model, tokenizer) on `device`; with `rope`, the config is rescaled to `target_length` first."""
    from longwin.models import load_model, model_path

    config = None
    if rope:
        if target_length <= 0:
            raise LongwinError("--rope needs --target-length (the window to scale the RoPE to)")
        from transformers import AutoConfig

        from longwin.rope import scale_rope

        config = scale_rope(
            AutoConfig.from_pretrained(model_path(ref), local_files_only=True),
            rope,
            target_length,
            **(rope_options or {}),
        )
    elif target_length:
        raise LongwinError("--target-length without --rope does nothing: name a RoPE method (e.g. --rope yarn)")
    return load_model(
        ref,
        dtype=None if dtype == "auto" else dtype,
        device=pick_device(device),
        attn_implementation=attn_implementation or None,
        config=config,
    )
