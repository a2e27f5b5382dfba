"""Load the model to extend: its config rescaled for the target window, then (optionally) LoRA."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from longwin import positions
from longwin.errors import LongwinError
from longwin.training.config import ExtendConfig

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass
class Prepared:
    model: Any  # a PreTrainedModel, or the peft model wrapping it (--lora)
    tokenizer: PreTrainedTokenizerBase
    native_window: int
    train_length: int


def check_windows(ext: ExtendConfig, native: int) -> int:
    """The training window, refusing ones above the native window unless explicitly allowed."""
    train_len = ext.train_length or native
    if train_len > native and not ext.allow_long_train_window:
        raise LongwinError(
            f"--train-length {train_len} is above the native window {native}: that is full-length "
            f"fine-tuning; pass --allow-long-train-window true if you mean it"
        )
    if ext.target_length <= native:
        raise LongwinError(f"--target-length {ext.target_length} must be above the native window {native}")
    return train_len


def prepare(ext: ExtendConfig) -> Prepared:
    from transformers import AutoConfig

    from longwin.models import load_model, model_path
    from longwin.rope import native_window, scale_rope

    base_config = AutoConfig.from_pretrained(model_path(ext.model), local_files_only=True)
    native = native_window(base_config)
    train_len = check_windows(ext, native)
    scaled = scale_rope(base_config, ext.rope, ext.target_length, **ext.rope_options)
    positions.sample(ext.scheme, train_len, ext.target_length, seed=0, **ext.scheme_options)  # before weights load
    model, tokenizer = load_model(
        ext.model, dtype=ext.dtype, attn_implementation=ext.attn_implementation, config=scaled
    )
    model.train()
    if ext.lora:
        model = apply_lora(model, ext)
    return Prepared(model, tokenizer, native, train_len)


def apply_lora(model, ext: ExtendConfig):
    """LoRA adapters on `lora_target`; LongLoRA-style fully trained embeddings and norms on request."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=ext.lora_r,
        lora_alpha=ext.lora_alpha,
        lora_dropout=ext.lora_dropout,
        target_modules=list(ext.lora_target),
        modules_to_save=["embed_tokens", "norm"] if ext.lora_trainable_embeddings else None,
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise LongwinError(f"cannot add LoRA adapters: {str(exc).splitlines()[0]}") from None
