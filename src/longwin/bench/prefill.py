"""One prefill per method on the same base model: full attention, streaming, SharedLLM (bounded or not)."""

from __future__ import annotations

from typing import Any, cast

from longwin.bench.streaming import streaming_prefill

RANDOM_MODEL: dict[str, Any] = dict(
    hidden_size=256,
    intermediate_size=688,
    num_hidden_layers=6,
    num_attention_heads=8,
    num_key_value_heads=8,
    vocab_size=2048,
    max_position_embeddings=2048,
)


def _base_model(spec: dict[str, Any], scaled: bool) -> tuple[Any, dict[str, Any]]:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, PretrainedConfig

    from longwin.models.compat import dtype_keyword
    from longwin.rope import describe_rope, scale_rope

    config: PretrainedConfig
    if spec["model"] == "random":
        config = LlamaConfig(**RANDOM_MODEL)
    else:
        from longwin.models import model_path

        folder = model_path(spec["model"])
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
    if scaled and max(spec["lengths"]) > config.max_position_embeddings:
        config = scale_rope(config, spec["rope_method"], max(spec["lengths"]))
    config._attn_implementation = "sdpa"
    model: Any
    if spec["model"] == "random":
        torch.manual_seed(0)
        model = LlamaForCausalLM(cast(LlamaConfig, config))  # scale_rope copies the config's own class
    else:
        model = AutoModelForCausalLM.from_pretrained(
            folder, config=config, local_files_only=True, **{dtype_keyword(): torch.float32}
        )
    return model.eval(), describe_rope(config)


def make_prefill(spec: dict[str, Any]) -> tuple[Any, dict[str, Any], int]:
    """A callable running the method's prefill on `ids`, a note on the model setup, and the vocabulary size."""
    method = spec["method"]
    model, rope = _base_model(spec, scaled=method == "full")
    vocab = model.config.vocab_size
    if method == "full":
        return (lambda ids: model(input_ids=ids, use_cache=True, logits_to_keep=1).logits), {"rope": rope}, vocab
    if method == "streaming":
        return (lambda ids: streaming_prefill(model, ids, spec)), {"rope": rope}, vocab
    from longwin.methods.sharedllm import SharedLLMForCausalLM

    shared = SharedLLMForCausalLM.from_base(
        model,
        num_lower_layers=spec["sharedllm_lower_layers"],
        chunk_size=spec["sharedllm_chunk_size"],
        tree_height=spec["sharedllm_tree_height"],
        kv_per_node=spec["sharedllm_kv_per_node"],
        query_aware=True,
        encode_batch_tokens=spec["sharedllm_encode_batch_tokens"] if method == "sharedllm-bounded" else 0,
    )
    window = spec["sharedllm_local_length"]

    def sharedllm(ids: Any) -> Any:
        return shared(
            input_ids=ids[:, -window:], context_input_ids=ids[:, :-window], use_cache=True, logits_to_keep=1
        ).logits

    return sharedllm, {"rope": rope}, vocab
