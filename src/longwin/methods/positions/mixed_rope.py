"""Mixed context windows (LongRoPE2, arXiv 2502.20082): the native-replay share of the examples runs with the
base's own RoPE at its own positions, the rest with the scaled RoPE on the scheme's positions.

The switch is per example, inside one batch: the decoder's rotary embedding is wrapped so that it answers
with the original cos/sin for the examples an example-level `native_rope` flag marks, and with the scaled
ones otherwise. The flag travels with the batch (the dataset sets it) and a pre-forward hook on the decoder
takes it out of the keyword arguments, so every path that runs the decoder (the model's forward, the
chunked loss, LoRA, DDP) sees it. Nothing is saved differently: rotary frequencies are not in the state
dict, and the wrapper is removed after training, so the saved model uses the scaled RoPE at every length.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from longwin.errors import LongwinError

FLAG = "native_rope"


class MixedRotary(nn.Module):
    """The scaled rotary embedding, with the original one's output for the examples marked native."""

    def __init__(self, scaled: nn.Module, original: nn.Module) -> None:
        super().__init__()
        self.scaled, self.original = scaled, original
        self.native: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cos, sin = self.scaled(x, position_ids)
        if self.native is None:  # no host sync on the flag's values: both cos/sin are cheap to compute
            return cos, sin
        cos0, sin0 = self.original(x, position_ids)
        if cos0.shape[0] != cos.shape[0]:  # position ids shared by the batch: one row for every example
            cos0, sin0, cos, sin = (t.expand(len(self.native), *t.shape[1:]) for t in (cos0, sin0, cos, sin))
        mask = self.native.to(cos.device, torch.bool).view(-1, *([1] * (cos.dim() - 1)))
        return torch.where(mask, cos0, cos), torch.where(mask, sin0, sin)


def _decoder(model: Any) -> Any:
    base = getattr(model, "get_base_model", lambda: model)()
    decoder = base.get_decoder()
    rotary = getattr(decoder, "rotary_emb", None)
    if not isinstance(rotary, nn.Module) or not hasattr(rotary, "inv_freq"):
        raise LongwinError(
            f"--native-rope original needs one rotary embedding in the decoder; {type(base).__name__} has none "
            "(use --native-rope scaled)"
        )
    return decoder


def mix_rope(model: Any, base_config: Any) -> Callable[[], None]:
    """Wrap `model`'s rotary embedding with the base config's unscaled one beside it; returns the undo."""
    decoder = _decoder(model)
    scaled = decoder.rotary_emb
    original = type(scaled)(config=base_config).to(scaled.inv_freq.device)
    mixed = MixedRotary(scaled, original)
    decoder.rotary_emb = mixed

    def take_flag(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        mixed.native = kwargs.pop(FLAG, None)
        return args, kwargs

    hook = decoder.register_forward_pre_hook(take_flag, with_kwargs=True)

    def undo() -> None:
        hook.remove()
        decoder.rotary_emb = scaled

    return undo
