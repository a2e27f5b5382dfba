"""Options shared by the Python API (`evaluate(..., **options)`) and the `longwin eval` flags."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from longwin.errors import LongwinError

NIAH_NEEDLE = "The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day."
NIAH_QUESTION = "What is the best thing to do in San Francisco?"
NIAH_ANSWER = "eat a sandwich and sit in Dolores Park"
# priming the answer sentence: small instruct models otherwise often stop right after "Answer:"
NIAH_PREFIX = "Answer: The best thing to do in San Francisco is"


def _opt(default: Any, help_text: str, **bounds: float) -> Any:
    """A field with its help text and optional `min` / `max` bounds (checked by `longwin.config`)."""
    metadata = {"help": help_text, **bounds}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class EvalOptions:
    """Task options; 0 / empty means "the task's own default"."""

    samples: int = _opt(0, "samples per cell (0: task default; longbench: 0 = every item)", min=0)
    depths: list[float] = _opt([0.0, 25.0, 50.0, 75.0, 100.0], "passkey/needle depths in percent", min=0, max=100)
    positions: list[float] = _opt(
        [0.0, 25.0, 50.0, 75.0, 100.0], "kv-retrieval gold positions in percent of the pairs", min=0, max=100
    )
    max_new_tokens: int = _opt(0, "override every task's number of generated tokens (0: task defaults)", min=0)
    kv_key_chars: int = _opt(
        0, "kv-retrieval keys and values of this many hex digits (0: 36-character UUIDs)", min=0, max=32
    )
    chat_template: bool = _opt(False, "wrap prompts in the tokenizer's chat template (instruct models)")
    batch_size: int = _opt(4, "prompts per generation batch (same length only, left padded)", min=1)
    batch_tokens: int = _opt(32768, "cap on batch_size x prompt length", min=1)
    haystack: str = _opt(
        "", "needle/ruler/copy haystack: corpus name or path (default: the essays); text the model never trained on"
    )
    needle: str = _opt(NIAH_NEEDLE, "needle sentence")
    question: str = _opt(NIAH_QUESTION, "needle question")
    answer: str = _opt(NIAH_ANSWER, "needle answer key phrase (exact match, case-insensitive)")
    needle_prefix: str = _opt(
        "",
        "text the model continues after the needle question "
        f"(default: '{NIAH_PREFIX}' for the default needle, else 'Answer:')",
    )
    corpus: str = _opt("", "perplexity corpus: name or path (default: Paul Graham essays)")
    conventions: list[str] = _opt(
        ["sliding", "chunks", "last-k"],
        "perplexity conventions: sliding, chunks, last-k, short (chunks' tokens with at most --short-context "
        "tokens of context: the short side of key-token perplexity)",
    )
    stride: int = _opt(0, "sliding-window stride in tokens (0: half the window)", min=0)
    last_k: int = _opt(256, "last-k convention: tokens scored at the end of each window", min=1)
    sample_spacing: int = _opt(
        32768,
        "perplexity: sample i ends at stream offset (i + 1) x this, whatever the lengths (so runs of different "
        "length grids score the same tokens; a shorter corpus is shared evenly); at least the longest window "
        "(2L for sliding)",
        min=4,
    )
    short_context: int = _opt(4096, "short convention: the most context a token is scored with (LongPPL: 4K)", min=2)
    key_alpha: float = _opt(2.0, "--compare key tokens: log p(long) - log p(short) above this (nats; LongPPL)")
    key_beta: float = _opt(-2.0, "--compare key tokens: log p(long) above this (LongPPL)")
    keep_share: float = _opt(0.85, "--compare effective length: share of the first run's in-window score kept", min=0)
    ppl_tolerance: float = _opt(0.10, "--compare effective length: perplexity at most (1 + this) x in-window", min=0)
    ruler_tasks: list[str] = _opt([], "RULER subtasks (default: all 11 offline ones)")
    threshold: float = _opt(85.6, "RULER effective-length threshold (average score, percent)", min=0, max=100)
    data_dir: str = _opt("", "folder of LongBench JSONL files (<task>.jsonl)")
    longbench_tasks: list[str] = _opt([], "LongBench tasks to run (default: every known task file in --data-dir)")
    save_prompts: bool = _opt(False, "also write every prompt to prompts.jsonl")
    progress: bool = _opt(True, "show a progress bar")


def make_options(values: dict[str, Any]) -> EvalOptions:
    """Build options from keyword arguments, naming the valid ones when a key is unknown."""
    names = [f.name for f in fields(EvalOptions)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise LongwinError(f"unknown eval option(s): {', '.join(unknown)} (valid: {', '.join(names)})")
    return EvalOptions(**values)
