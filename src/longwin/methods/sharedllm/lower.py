"""The lower model: truncated views of the checkpoint that encode tree nodes and probe similarity.

A view is an instance of the checkpoint's own base-model class (LlamaModel, MistralModel, ...)
whose embedding, first n decoder layers, final norm and rotary embedding are the *same module
objects* as the source model's, so transformers' own masking, caching and attention code runs
and no weights are copied. Every node is encoded as an independent sequence (positions 0..l-1).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.models.llama.modeling_llama import repeat_kv

from longwin.methods.sharedllm.rotary import rotate
from longwin.methods.sharedllm.tree import keep_positions
from longwin.models.compat import cache_layer_kv, output_cache, truncate_layer_types


def truncated_view(model: PreTrainedModel, num_layers: int, final_norm: bool = True) -> PreTrainedModel:
    """A `type(model)` running only the first `num_layers` layers, sharing all modules with `model`;
    without `final_norm` its last hidden state is the residual stream itself."""
    config = copy.deepcopy(model.config)
    config.num_hidden_layers = num_layers
    truncate_layer_types(config, num_layers)
    with torch.device("meta"):
        view = type(model)(config)
    view.embed_tokens = model.embed_tokens
    view.layers = nn.ModuleList(cast(nn.ModuleList, model.layers)[:num_layers])
    view.norm = model.norm if final_norm else nn.Identity()
    view.rotary_emb = model.rotary_emb
    view.train(model.training)
    return view


@contextmanager
def eval_mode(*models: nn.Module) -> Iterator[None]:
    """Run frozen views in eval mode: no dropout, and no gradient-checkpointing wrapper dropping the KV cache.

    The views share modules with the (possibly training) upper model, so the flags are restored after.
    """
    modules = {m for model in models for m in model.modules()}
    saved = {m: m.training for m in modules}
    for m in modules:
        m.training = False
    try:
        yield
    finally:
        for m, flag in saved.items():
            m.training = flag


def last_states(
    view: PreTrainedModel,
    input_ids: torch.Tensor | None,
    attention_mask: torch.Tensor | None = None,
    inputs_embeds: torch.Tensor | None = None,
    index: torch.Tensor | None = None,
) -> torch.Tensor:
    """Final-normed hidden state at `index` (default: the last real token) of each row, [rows, hidden]."""
    out = view(input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=attention_mask, use_cache=False)
    hidden = out.last_hidden_state
    if index is None:
        if attention_mask is None:
            index = torch.full((hidden.shape[0],), hidden.shape[1] - 1, device=hidden.device)
        else:
            positions = torch.arange(hidden.shape[1], device=hidden.device)
            index = (attention_mask.bool() * (positions + 1)).argmax(dim=1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index.to(hidden.device)]


def last_token_state(view: PreTrainedModel, input_ids: torch.Tensor) -> torch.Tensor:
    """Final-normed state of each row's last token after the view's first layer, [rows, hidden].

    Equal to `last_states` on a one-layer view, but it computes only what the last token needs:
    keys and values at every position, queries, attention output and MLP at the last one. This
    keeps the query-aware search cheap (the paper reports about +12% time for it).
    """
    base: Any = view  # a decoder base model: its submodules (and their attributes) vary by architecture
    embeds = base.embed_tokens(input_ids)
    length = embeds.shape[1]
    cos, sin = base.rotary_emb(embeds, torch.arange(length, device=embeds.device)[None])
    last = torch.tensor([length - 1], device=embeds.device)
    return base.norm(_kept_outputs(base.layers[0], embeds, cos, sin, last)[0])[:, 0]


def _keys_values(attn: Any, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A Llama-family attention's keys (rotated by cos/sin) and values for its normed input x, each
    [rows, kv_heads, length, head_dim]: what its KV cache would hold."""
    rows, length, _ = x.shape
    k = rotate(attn.k_proj(x).view(rows, length, -1, attn.head_dim).transpose(1, 2), cos, sin)
    v = attn.v_proj(x).view(rows, length, -1, attn.head_dim).transpose(1, 2)
    return k, v


@dataclass
class NodeEncoder:
    """The lower model as tree nodes need it: the keys and values at the positions a node keeps, computed
    exactly but without the work that reaches nothing kept. Layers 0..M-3 run whole (`body`, a view without
    the final norm, whose cache holds their keys and values); layer M-2 computes keys and values at every
    position (the kept positions attend to all of them) but its queries, attention output and MLP only at the
    kept positions; layer M-1 computes only the keys and values of the kept positions. At M = 4, keeping 32
    of each node's 128-512 tokens, that halves the lower model's time (docs/results-sharedllm.md)."""

    body: PreTrainedModel
    tail: list[nn.Module]  # layers M-2 and M-1 (M-1 alone when M = 1)

    @classmethod
    def of(cls, model: PreTrainedModel, num_layers: int) -> NodeEncoder:
        whole = max(num_layers - 2, 0)
        layers = cast(nn.ModuleList, model.layers)
        return cls(truncated_view(model, whole, final_norm=False), list(layers[whole:num_layers]))

    @property
    def num_layers(self) -> int:
        return int(self.body.config.num_hidden_layers) + len(self.tail)

    def __call__(self, input_ids: torch.Tensor, keep: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(K, V) of every lower layer for `input_ids` [rows, length] at positions 0..length-1, at the
        positions `keep` only: each [rows, kv_heads, len(keep), head_dim]."""
        body: Any = self.body
        out = body(input_ids=input_ids, use_cache=True)
        cache, hidden = output_cache(out), out.last_hidden_state
        cos, sin = body.rotary_emb(hidden, torch.arange(hidden.shape[1], device=hidden.device)[None])
        kv = []
        for layer in range(body.config.num_hidden_layers):
            k, v = cache_layer_kv(cache, layer)
            kv.append((k[:, :, keep], v[:, :, keep]))
        if len(self.tail) == 2:
            hidden, kept = _kept_outputs(self.tail[0], hidden, cos, sin, keep)
            kv.append(kept)
        else:
            hidden = hidden[:, keep]
        last: Any = self.tail[-1]
        kv.append(_keys_values(last.self_attn, last.input_layernorm(hidden), cos[:, keep], sin[:, keep]))
        return kv


def _kept_outputs(
    layer: Any, hidden: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, keep: torch.Tensor
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """A decoder layer's output at the positions `keep` only (queries there, keys and values everywhere, causal
    masking), and its (K, V) at `keep`."""
    attn = layer.self_attn
    x = layer.input_layernorm(hidden)
    rows, length, _ = x.shape
    k, v = _keys_values(attn, x, cos, sin)
    q = attn.q_proj(x[:, keep]).view(rows, len(keep), -1, attn.head_dim).transpose(1, 2)
    q = rotate(q, cos[:, keep], sin[:, keep])
    allowed = keep[:, None] >= torch.arange(length, device=x.device)[None]  # causal; no window is shorter than a node
    groups = q.shape[1] // k.shape[1]
    out = F.scaled_dot_product_attention(
        q, repeat_kv(k, groups), repeat_kv(v, groups), attn_mask=allowed, scale=attn.scaling
    )
    h = hidden[:, keep] + attn.o_proj(out.transpose(1, 2).reshape(rows, len(keep), -1))
    h = h + layer.mlp(layer.post_attention_layernorm(h))
    return h, (k[:, :, keep], v[:, :, keep])


def _batches(lengths: torch.Tensor, batch_tokens: int) -> Iterator[tuple[int, torch.Tensor]]:
    """Rows grouped by span length (one rectangular batch per group), split to at most `batch_tokens`
    tokens per batch when `batch_tokens` > 0."""
    for length in torch.unique(lengths).tolist():
        idx = (lengths == length).nonzero(as_tuple=True)[0]
        rows = max(1, batch_tokens // length) if batch_tokens > 0 else len(idx)
        for part in idx.split(rows):
            yield int(length), part


def _gather(chunks: torch.Tensor, rows: torch.Tensor, starts: torch.Tensor, length: int) -> torch.Tensor:
    offsets = starts[:, None] + torch.arange(length, device=starts.device)
    return chunks[rows[:, None], offsets]


def span_states(
    view: PreTrainedModel, chunks: torch.Tensor, spans: torch.Tensor, batch_tokens: int = 0
) -> torch.Tensor:
    """Last-token state (after one layer + final norm) of one span per chunk, [trees, 2] of (start, length),
    each span encoded on its own from position 0."""
    spans = spans.to(chunks.device)
    states = None
    for length, idx in _batches(spans[:, 1], batch_tokens):
        h = last_token_state(view, _gather(chunks, idx, spans[idx, 0], length))
        if states is None:
            states = h.new_empty(spans.shape[0], h.shape[-1])
        states[idx] = h
    return cast(torch.Tensor, states)  # never None: spans holds one span per tree, and trees need a chunk


def encode_spans(
    encoder: NodeEncoder, chunks: torch.Tensor, spans: torch.Tensor, kv_per_node: int, batch_tokens: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-layer (K, V) of all preserved nodes, each node subsampled to `kv_per_node` positions.

    spans: [trees, nodes, 2]. Returns one (K, V) per view layer, each [trees, kv_heads, nodes·p, head_dim],
    nodes in the order given; keys carry RoPE at their node-local positions. `batch_tokens` > 0 bounds
    the tokens encoded per pass (memory), 0 encodes each length group at once (the paper's parallelism).
    """
    trees, nodes, _ = spans.shape
    flat = spans.reshape(-1, 2).to(chunks.device)
    rows = torch.arange(trees, device=chunks.device).repeat_interleave(nodes)
    kept: dict[tuple[int, int], torch.Tensor] = {}  # (layer, 0=K / 1=V) -> [trees·nodes, H, p, d]
    for length, idx in _batches(flat[:, 1], batch_tokens):
        keep = keep_positions(length, kv_per_node).to(chunks.device)
        per_layer = encoder(_gather(chunks, rows[idx], flat[idx, 0], length), keep)
        for layer in range(encoder.num_layers):
            for slot, tensor in enumerate(per_layer[layer]):
                if (layer, slot) not in kept:
                    kept[layer, slot] = tensor.new_empty(trees * nodes, tensor.shape[1], kv_per_node, tensor.shape[3])
                kept[layer, slot][idx] = tensor
    return [
        (_nodes_to_sequence(kept[layer, 0], trees, nodes), _nodes_to_sequence(kept[layer, 1], trees, nodes))
        for layer in range(encoder.num_layers)
    ]


def _nodes_to_sequence(t: torch.Tensor, trees: int, nodes: int) -> torch.Tensor:
    """[trees·nodes, H, p, d] -> [trees, H, nodes·p, d]."""
    _, heads, p, dim = t.shape
    return t.view(trees, nodes, heads, p, dim).permute(0, 2, 1, 3, 4).reshape(trees, heads, nodes * p, dim)


def cosine_to(states: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity in float32."""
    return F.cosine_similarity(states.float(), query.float(), dim=-1)
