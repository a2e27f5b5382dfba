"""What `longwin bench sharedllm` measures: its options, every one a flag."""

from __future__ import annotations

from dataclasses import dataclass, field

# the prefills compared (not training methods: those are `longwin.methods.METHODS`)
PREFILLS = ("full", "streaming", "sharedllm", "sharedllm-bounded")


@dataclass
class SharedLLMBench:
    model: str = field(
        default="toy",
        metadata={
            "help": "model reference; `toy` falls back to a random "
            "6-layer Llama (hidden 256) when not built; `random` forces it"
        },
    )
    lengths: list[int] = field(
        default_factory=lambda: [2048, 4096, 8192, 16384],
        metadata={"min": 1, "help": "total input lengths (context + local window)"},
    )
    methods: list[str] = field(
        default_factory=lambda: list(PREFILLS),
        metadata={"help": "prefills to measure, a subset of " + ",".join(PREFILLS)},
    )
    # SharedLLM options spelled as `longwin train` spells them (`--sharedllm-*`); the model's shape, when
    # unset, takes SharedLLMConfig's defaults (the one home of them)
    sharedllm_local_length: int = field(
        default=256, metadata={"min": 1, "help": "SharedLLM local window (the tail the upper model reads)"}
    )
    sharedllm_lower_layers: int | None = field(default=None, metadata={"min": 1, "help": "SharedLLM M"})
    sharedllm_chunk_size: int | None = field(default=None, metadata={"min": 1, "help": "SharedLLM chunk size"})
    sharedllm_tree_height: int | None = field(default=None, metadata={"min": 1, "help": "SharedLLM tree height h"})
    sharedllm_kv_per_node: int | None = field(
        default=None, metadata={"min": 1, "help": "SharedLLM KVs per preserved node p"}
    )
    sharedllm_encode_batch_tokens: int = field(
        default=2048,
        metadata={
            "min": 1,
            "help": "sharedllm-bounded: most tokens the lower model encodes per pass (sharedllm: all at once)",
        },
    )
    stream_window: int = field(default=256, metadata={"min": 1, "help": "streaming baseline: recent tokens kept"})
    stream_sinks: int = field(default=4, metadata={"min": 0, "help": "streaming baseline: first tokens kept"})
    stream_segment: int = field(default=256, metadata={"min": 1, "help": "streaming baseline: prefill segment length"})
    rope_method: str = field(default="yarn", metadata={"help": "RoPE scaling of the full-attention model"})
    full_max_length: int = field(
        default=0,
        metadata={
            "min": 0,
            "help": "measure full attention only up to this many tokens (0: every length); past it a CPU "
            "takes minutes a prefill and attention's T x T scores may not fit in memory",
        },
    )
    full_reference_length: int = field(
        default=0,
        metadata={
            "min": 0,
            "help": "also time full attention at this many tokens (e.g. the native window) and give every "
            "SharedLLM prefill's time as a ratio to it: what a long read costs against one native-window forward",
        },
    )
    threads: int = field(default=1, metadata={"min": 1, "help": "torch CPU threads per measurement"})
    repeats: int = field(
        default=2, metadata={"min": 1, "help": "timed prefills per measurement; the fastest is reported"}
    )
    output: str = field(default="benchmarks/results", metadata={"help": "folder for sharedllm_bench.json/.md"})
