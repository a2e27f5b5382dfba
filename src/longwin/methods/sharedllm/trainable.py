"""Which parameters SharedLLM trains (paper §5): the rest is frozen in place."""

from __future__ import annotations

from torch import nn

from longwin.errors import LongwinError
from longwin.methods.sharedllm.modeling import SharedLLMForCausalLM

MODES = ("cross_attn+top", "cross_attn", "all")


def trainable_parameters(model: SharedLLMForCausalLM, mode: str = "cross_attn+top") -> list[nn.Parameter]:
    """Set requires_grad for a training stage and return the parameters to optimise.

    cross_attn+top  the paper's LM stage: cross-attention blocks + upper layers M..N-1; the embedding,
                    upper layers 0..M-1, final norm, LM head and lower model stay frozen (so the
                    lower model can keep sharing the upper bottom layers).
    cross_attn      cross-attention blocks only (what the released training script does).
    all             the whole upper model, as the released SFT script does; the lower model first
                    gets its own frozen copy of the bottom layers (`untie_lower`).
    """
    if mode not in MODES:
        raise LongwinError(f"unknown SharedLLM training mode {mode!r} (choose from {', '.join(MODES)})")
    if mode == "all":
        model.untie_lower()
    model.requires_grad_(False)
    chosen: list[nn.Module] = [model.cross_attn]
    if mode == "cross_attn+top":
        chosen += list(model.model.layers[model.config.num_lower_layers :])
    elif mode == "all":
        chosen += [model.model, model.lm_head]
    for module in chosen:
        module.requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]
