"""Applying RoPE with explicit positions, for keys and queries the model's attention never rotates itself."""

from __future__ import annotations

import torch
from transformers.models.llama.modeling_llama import rotate_half


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate [batch, heads, seq, dim] by cos/sin of shape [batch, seq, dim] (as the rotary module returns them)."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return x * cos + rotate_half(x) * sin
