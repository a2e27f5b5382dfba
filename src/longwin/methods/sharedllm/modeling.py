"""`SharedLLMForCausalLM`: a Llama-family checkpoint that reads a long context through context trees.

Upper model = the full checkpoint (`self.model`, `self.lm_head`), causal over the local window only,
with tree cross-attention after self-attention in its bottom M layers (`self.cross_attn`).
Lower model = embedding + bottom M layers of the same checkpoint: by default views over the
upper model's own frozen modules; after `untie_lower()` a frozen copy (`self.lower`), for when the
upper bottom layers are trained. Positions follow paper Eq. 2, done correctly: chunk i's keys are
rotated by i on top of their node-local RoPE, every query is rotated to n (the sample's chunk count).
"""

from __future__ import annotations

import copy
import os
import types
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn
from transformers import AutoModel, GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from longwin.errors import LongwinError
from longwin.methods.sharedllm.config import SharedLLMConfig
from longwin.methods.sharedllm.cross_attention import TREE_KWARG, TreeCrossAttention, TreeKV
from longwin.methods.sharedllm.lower import (
    NodeEncoder,
    cosine_to,
    encode_spans,
    eval_mode,
    last_states,
    span_states,
    truncated_view,
)
from longwin.methods.sharedllm.rotary import rotate
from longwin.methods.sharedllm.tree import check_tree_shape, chunk_context, plan_trees
from longwin.models import load_model
from longwin.models.compat import cache_keyword, output_cache, output_cache_field

_init: types.ModuleType
try:  # transformers 5.x: init functions that skip weights already loaded from a checkpoint
    from transformers import initialization as _init
except ImportError:  # 4.5x only initialises missing weights, so plain torch init is safe there
    _init = nn.init

LLAMA_FAMILY = ("llama", "mistral", "qwen2")
_LAYER_PARTS = ("input_layernorm", "post_attention_layernorm", "mlp", "self_attn")
_ATTN_PARTS = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass
class SharedLLMOutput(CausalLMOutputWithPast):
    """CausalLMOutputWithPast plus the tree that was used, so generation can reuse it."""

    tree_kv: TreeKV | None = None


def check_base_model(model: nn.Module) -> None:
    """Raise LongwinError unless `model` is a Llama/Mistral/Qwen2 causal LM with the expected layout."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    ok = (
        model_type in LLAMA_FAMILY
        and isinstance(layers, nn.ModuleList)
        and len(layers) > 0
        and all(hasattr(inner, part) for part in ("embed_tokens", "norm", "rotary_emb"))
        and all(hasattr(layer, part) for layer in layers for part in _LAYER_PARTS)
        and all(hasattr(layer.self_attn, part) for layer in layers for part in _ATTN_PARTS)
        and getattr(model, "get_output_embeddings", lambda: None)() is not None
    )
    if not ok:
        found = model_type or type(model).__name__
        raise LongwinError(
            f"SharedLLM needs a Llama-family causal LM ({', '.join(LLAMA_FAMILY)}: decoder layers with "
            f"self_attn.q/k/v/o_proj and RoPE), got {found}"
        )


def check_options(config: SharedLLMConfig) -> None:
    """Raise LongwinError for option values the model cannot run with."""
    if config.base_config is None:
        raise LongwinError("a SharedLLMConfig needs the base model's config (base_config); use from_base")
    layers = config.base_config.num_hidden_layers
    if not 1 <= config.num_lower_layers <= layers:
        raise LongwinError(
            f"num_lower_layers must be between 1 and the model's {layers} layers, got {config.num_lower_layers}"
        )
    check_tree_shape(config.chunk_size, config.tree_height, config.kv_per_node)
    window = getattr(config.base_config, "sliding_window", None)
    if window and getattr(config.base_config, "use_sliding_window", True) and window <= config.chunk_size:
        raise LongwinError(
            f"the model's sliding window ({window} tokens) must exceed chunk_size {config.chunk_size}: the lower "
            "model encodes a node of up to a chunk at once, and a windowed cache would drop its first keys"
        )
    if config.split_noise < 0:
        raise LongwinError(f"split_noise must be >= 0, got {config.split_noise}")
    if config.cross_attn_init_scale < 0:
        raise LongwinError(f"cross_attn_init_scale must be >= 0, got {config.cross_attn_init_scale}")
    if config.encode_batch_tokens < 0:
        raise LongwinError(f"encode_batch_tokens must be >= 0, got {config.encode_batch_tokens}")


def _remove_hooks_of(module: nn.Module, owner: type) -> None:
    """Remove forward hooks that are bound methods of `owner` instances (robust to deepcopy, unlike handles)."""
    for key in [k for k, hook in module._forward_hooks.items() if isinstance(getattr(hook, "__self__", None), owner)]:
        for hooks in (module._forward_hooks, module._forward_hooks_with_kwargs, module._forward_hooks_always_called):
            hooks.pop(key, None)


class SharedLLMForCausalLM(PreTrainedModel, GenerationMixin):
    """SharedLLM (Han et al., 2024) on top of a transformers Llama-family model; see the module docstring."""

    config_class = SharedLLMConfig
    config: SharedLLMConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: SharedLLMConfig) -> None:
        super().__init__(config)
        check_options(config)
        base = config.base_config
        assert base is not None  # check_options rejects a missing base_config
        self.model = AutoModel.from_config(base)
        self.lm_head = nn.Linear(base.hidden_size, base.vocab_size, bias=False)
        self.cross_attn = nn.ModuleList(
            TreeCrossAttention.for_layer(self.model.layers[i], base) for i in range(config.num_lower_layers)
        )
        if not config.share_lower:
            self.lower = self._frozen_lower_copy()
        self._connect()
        self.post_init()

    # --- construction -------------------------------------------------------------------------------

    @classmethod
    def from_base(cls, base: PreTrainedModel | str | os.PathLike, **options: Any) -> SharedLLMForCausalLM:
        """Wrap a Llama-family causal LM (a model, or a reference for `longwin.models.load_model`); `options`
        are `SharedLLMConfig` keywords (num_lower_layers, chunk_size, ...), whose defaults it alone holds.

        The base model's modules are adopted, not copied: training the result changes `base` too.
        Cross-attention starts with the layer's own query (its input norm and q_proj) and o_proj = 0, so
        before training the output equals the base model's on the local window (`cross_attn_init_scale`
        copies a scaled self-attention o_proj instead: the trees are read from step 0).
        """
        if isinstance(base, (str, os.PathLike)):
            base, _ = load_model(str(base))
        check_base_model(base)
        config = SharedLLMConfig(copy.deepcopy(base.config), **options, dtype=base.dtype)
        check_options(config)
        with torch.device("meta"):
            model = cls(config)
        model._adopt(base)
        return model

    def _adopt(self, base: PreTrainedModel) -> None:
        self.model = base.model
        self.lm_head = base.get_output_embeddings()
        self.config.base_config = base.model.config
        self.cross_attn = nn.ModuleList(
            TreeCrossAttention.for_layer(self.model.layers[i], self.config.base_config)
            for i in range(self.config.num_lower_layers)
        )
        for block, layer in zip(cast("list[TreeCrossAttention]", self.cross_attn), self.model.layers):
            block.init_from(layer, self.config.cross_attn_init_scale)
        self.generation_config = copy.deepcopy(base.generation_config)
        self._connect()
        self.train(base.training)

    def _frozen_lower_copy(self) -> PreTrainedModel:
        self._disconnect()
        lower = copy.deepcopy(truncated_view(self.model, self.config.num_lower_layers))
        return lower.requires_grad_(False)

    def untie_lower(self) -> None:
        """Give the lower model its own frozen copy of the bottom layers, so the upper ones may train."""
        if not self.config.share_lower:
            return
        self.lower = self._frozen_lower_copy()
        self.config.share_lower = False
        self._connect()

    def _connect(self) -> None:
        """Hook the cross-attention blocks into the upper layers and (re)build the lower-model views."""
        self._disconnect()
        for block, layer in zip(self.cross_attn, self.model.layers):
            layer.input_layernorm.register_forward_hook(block.capture_residual)
            layer.self_attn.register_forward_hook(block.inject, with_kwargs=True)
        source = self.model if self.config.share_lower else self.lower
        self._encoder = NodeEncoder.of(source, self.config.num_lower_layers)
        self._views = {
            "lower": self._encoder.body,
            "lower_probe": truncated_view(source, 1),
            "query_probe": truncated_view(self.model, 1),
        }

    def _disconnect(self) -> None:
        for layer in self.model.layers:
            _remove_hooks_of(layer.input_layernorm, TreeCrossAttention)
            _remove_hooks_of(layer.self_attn, TreeCrossAttention)

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, TreeCrossAttention):
            _init.zeros_(module.o_proj.weight)

    def get_input_embeddings(self) -> nn.Module:
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.embed_tokens = value
        self._connect()

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.lm_head = value

    # --- the context tree ---------------------------------------------------------------------------

    def build_tree(
        self,
        context_input_ids: torch.Tensor,
        context_attention_mask: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        query_length: torch.Tensor | None = None,
    ) -> TreeKV:
        """Chunk the context, plan one tree per chunk, encode the preserved nodes with the lower model.

        The query (for the query-aware policy) is the local window: its state after upper layer 0 and
        the final norm at position `query_length - 1` per sample, else at its last real token. A sample
        whose `query_length` is 0 has no query: its trees always descend right (the LM stage).
        Split noise is drawn only in training mode: one standard-normal draw per level, shared by all trees.
        """
        with torch.no_grad(), eval_mode(*self._views.values()):
            return self._build_tree(
                context_input_ids, context_attention_mask, input_ids, attention_mask, inputs_embeds, query_length
            )

    def _build_tree(
        self,
        context_input_ids: torch.Tensor,
        context_attention_mask: torch.Tensor | None,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
        query_length: torch.Tensor | None,
    ) -> TreeKV:
        cfg = self.config
        device = context_input_ids.device
        chunks, sample, chunk_id, counts = chunk_context(context_input_ids, context_attention_mask, cfg.chunk_size)
        chunks, sample, chunk_id = chunks.to(device), sample.to(device), chunk_id.to(device)
        policy = None
        lengths = None if query_length is None else torch.as_tensor(query_length, device=device)
        if cfg.query_aware and len(chunks) and (lengths is None or bool((lengths > 0).any())):
            index = None if lengths is None else (lengths - 1).clamp_min(0)
            query = last_states(self._views["query_probe"], input_ids, attention_mask, inputs_embeds, index)[sample]
            no_query = torch.zeros_like(sample, dtype=torch.bool) if lengths is None else (lengths == 0)[sample]
            probe = self._views["lower_probe"]

            def policy(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
                right_state = span_states(probe, chunks, right, cfg.encode_batch_tokens)
                left_state = span_states(probe, chunks, left, cfg.encode_batch_tokens)
                return no_query | (cosine_to(right_state, query) >= cosine_to(left_state, query))

        noise = torch.randn(cfg.tree_height).tolist() if self.training and cfg.split_noise > 0 else None
        spans = plan_trees(
            len(chunks), cfg.chunk_size, cfg.tree_height, cfg.kv_per_node, policy, noise, cfg.split_noise
        )
        rotary = self.model.rotary_emb
        positions = counts.to(device) if cfg.chunk_positions else torch.zeros_like(counts, device=device)
        dtype = self.lm_head.weight.dtype
        query_cos, query_sin = rotary(torch.empty(0, device=device, dtype=dtype), positions[:, None])
        if not len(chunks):
            return TreeKV([], [], None, query_cos, query_sin, spans, counts)
        keys, values = [], []
        for k, v in encode_spans(self._encoder, chunks, spans, cfg.kv_per_node, cfg.encode_batch_tokens):
            if cfg.chunk_positions:
                k = self._rotate_by_chunk(k, chunk_id)
            keys.append(self._pack(k, sample, chunk_id, counts))
            values.append(self._pack(v, sample, chunk_id, counts))
        n_max = int(counts.max())
        key_mask = None
        if bool((counts != n_max).any()):
            key_mask = (torch.arange(n_max) < counts[:, None]).repeat_interleave(cfg.kv_per_chunk, dim=1).to(device)
        return TreeKV(keys, values, key_mask, query_cos, query_sin, spans, counts)

    def _rotate_by_chunk(self, keys: torch.Tensor, chunk_id: torch.Tensor) -> torch.Tensor:
        """Add a rotation by the chunk id on top of the node-local RoPE (rotations compose additively).

        The rotary module's attention scaling (YaRN and similar) is already in the local RoPE, so it
        is divided out here instead of being applied twice.
        """
        rotary = self.model.rotary_emb
        positions = chunk_id[:, None].expand(-1, keys.shape[2])
        cos, sin = rotary(keys, positions)
        scale = getattr(rotary, "attention_scaling", 1.0)
        return rotate(keys, cos / scale, sin / scale)

    @staticmethod
    def _pack(t: torch.Tensor, sample: torch.Tensor, chunk_id: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """[trees, H, S, d] -> [batch, H, n_max·S, d], chunks in document order, zero padding after."""
        _, heads, per_chunk, dim = t.shape
        n_max = int(counts.max())
        out = t.new_zeros(len(counts), n_max, heads, per_chunk, dim)
        out[sample, chunk_id] = t
        return out.permute(0, 2, 1, 3, 4).reshape(len(counts), heads, n_max * per_chunk, dim)

    # --- forward and generation ---------------------------------------------------------------------

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        context_input_ids: torch.LongTensor | None = None,
        context_attention_mask: torch.Tensor | None = None,
        query_length: torch.LongTensor | None = None,
        tree_kv: TreeKV | None = None,
        **kwargs: Any,
    ) -> SharedLLMOutput:
        """Causal LM over the local window `input_ids`, reading `context_input_ids` through the trees.

        The context is cut into chunks of `chunk_size` after dropping padding (context_attention_mask)
        and left-truncating a remainder; samples may have different chunk counts (their missing
        chunks are masked). A context shorter than one chunk gives the base model's output.
        `query_length` (per sample, counted from the row start, so for right-padded windows) puts the
        query-aware search's query at token query_length-1 instead of the last real token.
        `tree_kv` (from a previous output) skips building the tree; `labels` score the local window.
        """
        if tree_kv is None and context_input_ids is not None:
            tree_kv = self._context_tree(
                context_input_ids, context_attention_mask, input_ids, attention_mask, inputs_embeds, query_length
            )
        if tree_kv is not None:
            kwargs[TREE_KWARG] = tree_kv
        cache_key = cache_keyword(self.model)
        if past_key_values is not None:  # passed on only when set, under this transformers version's name
            kwargs[cache_key] = past_key_values
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        kwargs.pop(TREE_KWARG, None)
        kwargs.pop(cache_key, None)
        hidden = outputs.last_hidden_state
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden[:, keep, :])
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return SharedLLMOutput(
            loss=loss,
            logits=logits,
            **{output_cache_field(): output_cache(outputs)},
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            tree_kv=tree_kv,
        )

    def _context_tree(
        self,
        context_input_ids: torch.LongTensor,
        context_attention_mask: torch.Tensor | None,
        input_ids: torch.LongTensor | None,
        attention_mask: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
        query_length: torch.LongTensor | None,
    ) -> TreeKV:
        """The trees of a context given with the local window: one context row per local-window row."""
        batch = cast(torch.Tensor, input_ids if input_ids is not None else inputs_embeds).shape[0]
        if context_input_ids.shape[0] != batch:
            raise LongwinError(f"context batch size {context_input_ids.shape[0]} != local-window batch size {batch}")
        return self.build_tree(
            context_input_ids, context_attention_mask, input_ids, attention_mask, inputs_embeds, query_length
        )

    def _update_model_kwargs_for_generation(self, outputs: Any, model_kwargs: dict, *args: Any, **kwargs: Any) -> dict:
        """Keep the prefill's tree for every later decoding step (the tree is built once per prompt)."""
        model_kwargs = super()._update_model_kwargs_for_generation(outputs, model_kwargs, *args, **kwargs)
        if getattr(outputs, "tree_kv", None) is not None:
            model_kwargs["tree_kv"] = outputs.tree_kv
        return model_kwargs
