"""Tree cross-attention: the sub-block SharedLLM inserts after self-attention in the upper bottom M layers.

It has its own RMSNorm and q_proj/o_proj but no k/v projections: keys and values are the lower
model's KV cache of the same layer ("self-injection"). Attention is non-causal over all injected
KVs of the sample. The block is wired in with hooks on the unchanged transformers decoder layer:
`input_layernorm` sees the residual stream h, and `self_attn`'s output a is replaced by
a + CrossAttn(h + a), so the layer's own residual add yields h + a + CrossAttn(h + a) and its
MLP runs after it, exactly the order of the paper (§2.3). Both hooks run inside the layer's
forward, so gradient checkpointing recomputes them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.llama.modeling_llama import LlamaRMSNorm, repeat_kv

from longwin.methods.sharedllm.rotary import rotate

# The keyword under which the tree travels from the upper model's forward down to each self_attn call.
TREE_KWARG = "sharedllm_tree"


@dataclass
class TreeKV:
    """The injected context of a batch, built once per context and reused at every decoding step.

    keys/values: one tensor per injected layer, [batch, kv_heads, n_max·(h+1)·p, head_dim]; keys carry
    their local RoPE plus (with chunk positions) a rotation by their chunk id.
    key_mask: [batch, n_max·(h+1)·p] bool (True = real KV), None when every sample has n_max chunks.
    query_cos/query_sin: RoPE of the query position (the sample's chunk count n), [batch, 1, head_dim].
    spans: [trees, h+1, 2] preserved (start, length) per tree; chunk_counts: [batch] chunks per sample.
    """

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    key_mask: torch.Tensor | None
    query_cos: torch.Tensor
    query_sin: torch.Tensor
    spans: torch.Tensor
    chunk_counts: torch.Tensor

    @property
    def num_keys(self) -> int:
        return self.keys[0].shape[2] if self.keys else 0


class TreeCrossAttention(nn.Module):
    """Cross-attention of one upper layer over the tree KVs of the same lower layer."""

    def __init__(
        self, hidden_size: int, num_heads: int, num_kv_heads: int, head_dim: int, rms_norm_eps: float, q_bias: bool
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.kv_groups = num_heads // num_kv_heads
        self.norm = LlamaRMSNorm(hidden_size, eps=rms_norm_eps)
        self.q_proj = nn.Linear(hidden_size, num_heads * head_dim, bias=q_bias)
        self.o_proj = nn.Linear(num_heads * head_dim, hidden_size, bias=False)
        self._residual: torch.Tensor | None = None

    @classmethod
    def for_layer(cls, layer: nn.Module, config: Any) -> TreeCrossAttention:
        """A block shaped like `layer`'s self-attention (heads, head_dim, q bias), on its device and dtype."""
        q_proj = cast(Any, layer).self_attn.q_proj  # the decoder layer's own attention module
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        block = cls(
            config.hidden_size,
            config.num_attention_heads,
            config.num_key_value_heads,
            head_dim,
            config.rms_norm_eps,
            q_proj.bias is not None,
        )
        return block.to(device=q_proj.weight.device, dtype=q_proj.weight.dtype)

    @torch.no_grad()
    def init_from(self, layer: nn.Module, output_scale: float = 0.0) -> None:
        """norm := the layer's input_layernorm and q_proj := its self-attention q_proj, so the block's queries
        are the layer's own and q·k over the lower model's keys (the same layer's) is meaningful at step 0;
        o_proj := output_scale × the self-attention o_proj (0: the model equals the base at step 0)."""
        decoder: Any = cast(Any, layer)  # a transformers decoder layer: input_layernorm, self_attn
        self.norm.weight.copy_(decoder.input_layernorm.weight)
        self.q_proj.weight.copy_(decoder.self_attn.q_proj.weight)
        if self.q_proj.bias is not None:
            self.q_proj.bias.copy_(decoder.self_attn.q_proj.bias)
        self.o_proj.weight.copy_(output_scale * decoder.self_attn.o_proj.weight)

    def queries_keys_values(
        self, hidden_states: torch.Tensor, tree: TreeKV, layer: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rotated queries [batch, heads, length, d] and the tree's keys/values expanded to every head."""
        batch, length, _ = hidden_states.shape
        q = self.q_proj(self.norm(hidden_states)).view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)
        q = rotate(q, tree.query_cos.to(q.dtype), tree.query_sin.to(q.dtype))
        k = repeat_kv(tree.keys[layer].to(q.dtype), self.kv_groups)
        v = repeat_kv(tree.values[layer].to(q.dtype), self.kv_groups)
        return q, k, v

    def forward(self, hidden_states: torch.Tensor, tree: TreeKV, layer: int) -> torch.Tensor:
        batch, length, _ = hidden_states.shape
        q, k, v = self.queries_keys_values(hidden_states, tree, layer)
        mask = None
        if tree.key_mask is not None:
            # A sample without chunks attends to its all-zero padding, which yields exactly zero (no NaN).
            mask = tree.key_mask | ~tree.key_mask.any(dim=1, keepdim=True)
            mask = mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.o_proj(out.transpose(1, 2).reshape(batch, length, -1))

    # --- hooks on the wrapped decoder layer ---------------------------------------------------------

    def capture_residual(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        """Forward hook on `input_layernorm`: remember its input, the residual stream h."""
        self._residual = args[0]

    def inject(self, module: nn.Module, args: tuple, kwargs: dict, output: tuple) -> tuple | None:
        """Forward hook on `self_attn`: a -> a + CrossAttn(h + a) when a tree is passed."""
        residual, self._residual = self._residual, None
        tree = kwargs.get(TREE_KWARG)
        if tree is None or tree.num_keys == 0:
            return None
        attn_out = output[0]
        extra = self(residual + attn_out, tree, module.layer_idx)
        return (attn_out + extra, *output[1:])
