"""Options of SharedLLM training (section `sharedllm:`, flags `--sharedllm-*`).

The model's shape (layers, chunk, tree, KVs per node, query awareness, noise, chunk positions) defaults to
`None`, which means "as `SharedLLMConfig` says": that class is the one home of SharedLLM's defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

STAGES = ("lm", "instruct", "distill")
# options only the distill stage reads: given with another stage, they are refused
DISTILL_OPTIONS = (
    "teacher", "teacher_cache", "distill_examples", "distill_top_k", "distill_key_weight", "distill_lm_weight",
)  # fmt: skip
# options that shape the model: passed to SharedLLMConfig when given, its own defaults otherwise
MODEL_OPTIONS = {
    "lower_layers": "num_lower_layers",
    "chunk_size": "chunk_size",
    "tree_height": "tree_height",
    "kv_per_node": "kv_per_node",
    "query_aware": "query_aware",
    "split_noise": "split_noise",
    "chunk_positions": "chunk_positions",
    "cross_attn_init_scale": "cross_attn_init_scale",
}


@dataclass
class SharedLLMOptions:
    """How the stacked model is built from the base and what it is trained on."""

    SECTION: ClassVar[str] = "sharedllm"
    FLAG_PREFIX: ClassVar[str] = "sharedllm_"

    lower_layers: int | None = field(default=None, metadata={"min": 1, "help": "M: bottom layers of the lower model"})
    chunk_size: int | None = field(default=None, metadata={"min": 1, "help": "tokens per context chunk"})
    tree_height: int | None = field(default=None, metadata={"min": 1, "help": "h: splits per context tree"})
    kv_per_node: int | None = field(default=None, metadata={"min": 1, "help": "p: KVs kept per preserved node"})
    query_aware: bool | None = field(
        default=None, metadata={"help": "split-and-search by similarity to the query (else always descend right)"}
    )
    split_noise: float | None = field(
        default=None,
        metadata={
            "min": 0,
            "help": "sigma of the tree split-point noise as a fraction of the node length, training only (the "
            "paper's LM stage: 0.2 = l/5; its instruction stage: 0.1 = l/10)",
        },
    )
    chunk_positions: bool | None = field(
        default=None,
        metadata={
            "help": "rotate context keys by their chunk id and queries to the chunk count; false hides chunk order, "
            "the paper's ablation"
        },
    )
    cross_attn_init_scale: float | None = field(
        default=None,
        metadata={
            "min": 0,
            "help": "the cross-attention's o_proj starts as this multiple of the layer's self-attention o_proj "
            "(0: zero, the model equals the base at step 0; a saved SharedLLM keeps its trained weights)",
        },
    )
    trainable: str = field(
        default="cross_attn+top",
        metadata={
            "help": "cross_attn+top (paper LM stage), cross_attn or all",
            "choices": ["cross_attn+top", "cross_attn", "all"],
        },
    )
    local_length: int = field(default=0, metadata={"min": 0, "help": "tokens the upper model decodes (default N)"})
    stage: str = field(
        default="lm",
        metadata={
            "help": "lm: loss on the whole local window; instruct: loss on responses only (prompt = query); "
            "distill: KL to the base reading context + window with full attention (context distillation)",
            "choices": list(STAGES),
        },
    )
    min_chunks: int = field(
        default=1,
        metadata={
            "min": 1,
            "help": "fewest context chunks per example (drawn uniformly up to what --target-length allows)",
        },
    )
    instructions: str = field(
        default="",
        metadata={
            "help": "instruct stage: JSONL of {prompt, response[, context]} records "
            "(else natural text gets the LM loss)"
        },
    )
    local_evidence: float = field(
        default=0.0,
        metadata={
            "min": 0,
            "max": 1,
            "help": "share of retrieval examples with the evidence in the local window, behind natural context "
            "(keeps the upper model's own retrieval; the rest put it in the context)",
        },
    )

    teacher: str = field(
        default="",
        metadata={"help": "distill stage: the frozen teacher (default --model, which must then be a plain causal LM)"},
    )
    teacher_cache: str = field(
        default="",
        metadata={
            "help": "distill stage: folder of the teacher's stored targets, reused by reruns "
            "(default: <output-dir>.teacher-targets)"
        },
    )
    distill_examples: int = field(
        default=0,
        metadata={
            "min": 0,
            "help": "distill stage: distinct examples the teacher scores; steps beyond them repeat them as epochs "
            "(0: one per training example, no repeat)",
        },
    )
    distill_top_k: int = field(
        default=32, metadata={"min": 1, "help": "distill stage: teacher log-probs kept per token (+ the rest's mass)"}
    )
    distill_key_weight: float = field(
        default=5.0,
        metadata={
            "min": 1,
            "help": "distill stage: loss weight of a key token (the teacher predicts it far better with the "
            "context than without it; LongPPL's rule), 1 for the others",
        },
    )
    distill_lm_weight: float = field(
        default=0.0, metadata={"min": 0, "help": "distill stage: weight of the LM loss next to the KL"}
    )

    def model_options(self) -> dict[str, Any]:
        """The given model-shape options, as `SharedLLMConfig` keywords."""
        return {key: getattr(self, name) for name, key in MODEL_OPTIONS.items() if getattr(self, name) is not None}
