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
    """A folder stock transformers loads: merged LoRA by default, else the adapter alone.

    Under ZeRO-3 or FSDP each rank holds shards only (rank 0's parameters are empty), so every rank first
    gathers the full state dict (a collective) and rank 0 merges the adapters into it arithmetically."""
    if not (options.enabled and options.merge):
        trainer.save_model(str(folder))
        return
    model = trainer.accelerator.unwrap_model(trainer.model)
    if getattr(trainer, "is_fsdp_enabled", False) or _zero3(trainer):
        wrapped = trainer.deepspeed if getattr(trainer, "is_deepspeed_enabled", False) else trainer.model
        state = trainer.accelerator.get_state_dict(wrapped)
        if trainer.is_world_process_zero():
            merged = merge_lora_state(state, model.peft_config["default"])
            model.get_base_model().save_pretrained(folder, state_dict=merged, safe_serialization=True)
    elif trainer.is_world_process_zero():
        model.merge_and_unload().save_pretrained(folder, safe_serialization=True)


def _zero3(trainer: Any) -> bool:
    if not getattr(trainer, "is_deepspeed_enabled", False):
        return False
    return trainer.accelerator.state.deepspeed_plugin.zero_stage == 3


def merge_lora_state(state: dict[str, Any], config: Any) -> dict[str, Any]:
    """The base model's state dict with every LoRA adapter of a PEFT state dict merged in
    (W + B A x alpha / r, or alpha / sqrt(r) under rsLoRA) and PEFT's key prefixes removed."""
    import math

    scale = config.lora_alpha / (math.sqrt(config.r) if getattr(config, "use_rslora", False) else config.r)
    merged: dict[str, Any] = {}
    for key, tensor in state.items():
        name = key.removeprefix("base_model.model.")
        if ".lora_" in name or ".original_module." in name:
            continue
        name = name.replace(".modules_to_save.default.", ".")
        if ".base_layer." in name:
            prefix = key.rsplit(".base_layer.", 1)[0]
            a, b = state.get(f"{prefix}.lora_A.default.weight"), state.get(f"{prefix}.lora_B.default.weight")
            name = name.replace(".base_layer.", ".")
            if a is not None and b is not None and name.endswith(".weight"):
                tensor = (tensor.float() + scale * (b.float() @ a.float())).to(tensor.dtype)
        merged[name] = tensor
    return merged
