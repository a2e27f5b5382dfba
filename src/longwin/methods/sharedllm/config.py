"""`SharedLLMConfig`: the base checkpoint's config plus the SharedLLM options, saved as one config.json.

The base config is nested (not flattened) so any Llama-family model type round-trips unchanged;
`get_text_config()` returns it, which is what generation and cache code ask for.
"""

from __future__ import annotations

from typing import Any

from transformers import AutoConfig, PretrainedConfig

MODEL_TYPE = "longwin-sharedllm"


class SharedLLMConfig(PretrainedConfig):
    """Options (paper defaults in brackets: docs/sharedllm.md).

    num_lower_layers  M: layers in the lower model and injected upper layers [4]
    chunk_size        tokens per context chunk / tree root [1024]
    tree_height       h: number of splits per tree; h+1 nodes are preserved [3]
    kv_per_node       p: KVs kept per preserved node (uniform subsampling) [32]
    query_aware       split-and-search by cosine similarity to the query (the query is the local
                      window's last token, or token query_length-1; query_length 0 = no query, which the
                      LM stage's examples get); False = always descend right, the paper's LM-stage policy
                      [True, as in the instruction stage and the released code]
    chunk_positions   rotate cross-attention keys by their chunk id i (on top of their node-local RoPE)
                      and queries to n = the sample's chunk count (Eq. 2); False: keys keep only
                      their local RoPE and queries sit at position 0, so chunk order is invisible
    split_noise       sigma of the split-point noise as a fraction of the node length, training only [0.2]
    cross_attn_init_scale  the cross-attention's o_proj starts as this multiple of the layer's self-attention
                      o_proj; 0 = zero, so the model equals the base before training [0: the paper does not
                      say; its code draws it at random; on SmolLM2 every copy tried (0.25-1) made the
                      untrained stack worse with its trees than without: docs/results-sharedllm.md]
    share_lower       the lower model reuses the upper model's frozen bottom layers (no copy)
    encode_batch_tokens  most tokens the lower model encodes per pass (bounds memory on long contexts);
                      0 encodes every node of one length at once, as the paper does, which on a 2-core CPU
                      reads a 128K context 1.7x slower than 2,048 a pass (docs/results-sharedllm.md) [2048]
    local_length      the local window the model was trained with (`--sharedllm-local-length`), so evaluation
                      splits prompts as training did; 0 = not recorded: the base's native window [0]
    """

    model_type = MODEL_TYPE
    sub_configs = {"base_config": AutoConfig}

    def __init__(
        self,
        base_config: PretrainedConfig | dict[str, Any] | None = None,
        num_lower_layers: int = 4,
        chunk_size: int = 1024,
        tree_height: int = 3,
        kv_per_node: int = 32,
        query_aware: bool = True,
        chunk_positions: bool = True,
        split_noise: float = 0.2,
        cross_attn_init_scale: float = 0.0,
        share_lower: bool = True,
        encode_batch_tokens: int = 2048,
        local_length: int = 0,
        **kwargs: Any,
    ) -> None:
        if isinstance(base_config, dict):
            base_config = dict(base_config)
            base_config = AutoConfig.for_model(base_config.pop("model_type"), **base_config)
        self.base_config = base_config
        self.num_lower_layers = num_lower_layers
        self.chunk_size = chunk_size
        self.tree_height = tree_height
        self.kv_per_node = kv_per_node
        self.query_aware = query_aware
        self.chunk_positions = chunk_positions
        self.split_noise = split_noise
        self.cross_attn_init_scale = cross_attn_init_scale
        self.share_lower = share_lower
        self.encode_batch_tokens = encode_batch_tokens
        self.local_length = local_length
        if base_config is not None:
            for key in ("vocab_size", "hidden_size", "num_hidden_layers", "initializer_range"):
                kwargs.setdefault(key, getattr(base_config, key, None))
            for key in ("tie_word_embeddings", "bos_token_id", "eos_token_id", "pad_token_id"):
                if getattr(base_config, key, None) is not None:
                    kwargs.setdefault(key, getattr(base_config, key))
        super().__init__(**kwargs)

    def get_text_config(self, *args: Any, **kwargs: Any) -> PretrainedConfig:
        return self.base_config if self.base_config is not None else self

    @property
    def kv_per_chunk(self) -> int:
        """(h+1)·p: the number of context KVs each chunk contributes to every injected layer."""
        return (self.tree_height + 1) * self.kv_per_node
