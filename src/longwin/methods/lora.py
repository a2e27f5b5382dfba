"""LoRA as an option of any method that fine-tunes a plain causal LM (section `lora:`): PEFT does the work."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from longwin.errors import LongwinError


@dataclass
class LoraOptions:
    """PEFT LoRA settings; the flags keep their `--lora-*` names."""

    SECTION: ClassVar[str] = "lora"
    FLAG_PREFIX: ClassVar[str] = "lora_"

    enabled: bool = field(
        default=False, metadata={"flat": "lora", "help": "train LoRA adapters instead of all weights"}
    )
    r: int = field(default=8, metadata={"min": 1})
    alpha: int = field(default=16, metadata={"min": 1})
    dropout: float = field(default=0.0, metadata={"min": 0, "max": 1})
    target: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    trainable_embeddings: bool = field(
        default=False, metadata={"help": "LongLoRA-style: also train embeddings and norms fully"}
    )
    merge: bool = field(
        default=True, metadata={"flat": "merge_lora", "help": "save a merged plain model (else the adapter)"}
    )


def apply_lora(model: Any, options: LoraOptions) -> Any:
    """LoRA adapters on `options.target`; LongLoRA-style fully trained embeddings and norms on request."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=options.r,
        lora_alpha=options.alpha,
        lora_dropout=options.dropout,
        target_modules=list(options.target),
        modules_to_save=["embed_tokens", "norm"] if options.trainable_embeddings else None,
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise LongwinError(f"cannot add LoRA adapters: {str(exc).splitlines()[0]}") from None


def save_lora_model(trainer: Any, folder: Any, options: LoraOptions) -> None:
    """A folder stock transformers loads: merged LoRA by default, else the adapter alone."""
    if options.enabled and options.merge:
        if trainer.is_world_process_zero():
            merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
            merged.save_pretrained(folder, safe_serialization=True)
    else:
        trainer.save_model(str(folder))
