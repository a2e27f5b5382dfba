"""Turning task text into token ids: optional chat template, context/question split, length fitting.

Every task describes a prompt as `Parts` (long context, question, answer prefix). The formatter
renders them plain (`context + question + answer_prefix`, BOS added by the tokenizer) or inside the
tokenizer's chat template (context and question as the user turn, the answer prefix after the
assistant header, as RULER does), and counts tokens so generators can size their filler.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from longwin.errors import LongwinError
from longwin.eval.model import Prompt


@dataclass(frozen=True)
class Parts:
    """A prompt before tokenisation: the long `context`, then `question`, then `answer_prefix`."""

    context: str
    question: str = ""
    answer_prefix: str = ""


class PromptFormatter:
    """Renders and tokenises `Parts`, with or without the tokenizer's chat template."""

    def __init__(self, tokenizer: Any, chat_template: bool = False) -> None:
        if chat_template and not getattr(tokenizer, "chat_template", None):
            raise LongwinError("--chat-template was asked for but the model's tokenizer has no chat template")
        self.tokenizer = tokenizer
        self.chat_template = chat_template

    def render(self, parts: Parts, *, chat: bool = True) -> tuple[str, int, bool]:
        """(text, character index where the context ends, whether the tokenizer adds special tokens).

        `chat=False` forces plain rendering for completion-style tasks even when the template is on.
        """
        if not (self.chat_template and chat):
            return parts.context + parts.question + parts.answer_prefix, len(parts.context), True
        user = parts.context + parts.question
        text = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
        )
        start = text.find(user)
        context_end = (start if start >= 0 else 0) + len(parts.context)
        return text + parts.answer_prefix.lstrip(), context_end, False

    def encode(self, parts: Parts, *, chat: bool = True) -> Prompt:
        text, context_end, special = self.render(parts, chat=chat)
        if getattr(self.tokenizer, "is_fast", False):
            enc = self.tokenizer(text, add_special_tokens=special, return_offsets_mapping=True)
            ids = list(enc["input_ids"])
            split = sum(1 for start, _ in enc["offset_mapping"] if start < context_end)
        else:
            ids = list(self.tokenizer(text, add_special_tokens=special)["input_ids"])
            split = len(self.tokenizer(text[:context_end], add_special_tokens=special)["input_ids"])
        return Prompt(ids=ids, context_end=min(split, len(ids)))

    def count(self, parts: Parts, *, chat: bool = True) -> int:
        text, _, special = self.render(parts, chat=chat)
        return len(self.tokenizer(text, add_special_tokens=special)["input_ids"])


def fit_largest(
    count: Callable[[int], int], budget: int, *, what: str, lo: int = 0, guess: int = 8, limit: int = 10_000_000
) -> int:
    """Largest n in [lo, limit] with count(n) <= budget, for a count that grows with n.

    RULER sizes haystacks the same way (search on the filler amount, measure with the tokenizer);
    galloping from `guess` (e.g. the answer for the previous sample) keeps the number of
    tokenisations near log2 of the distance to the answer.
    """
    cache: dict[int, int] = {}

    def tokens(n: int) -> int:
        if n not in cache:
            cache[n] = count(n)
        return cache[n]

    if tokens(lo) > budget:
        raise LongwinError(f"length {budget} is too short for {what} (the smallest prompt has {tokens(lo)} tokens)")
    good, step = lo, max(1, guess - lo)
    bad = None
    while bad is None:  # gallop up until a size does not fit
        probe = min(good + step, limit)
        if tokens(probe) > budget:
            bad = probe
        elif probe == limit:
            return limit
        else:
            good, step = probe, step * 2
    while bad - good > 1:
        mid = (good + bad) // 2
        if tokens(mid) <= budget:
            good = mid
        else:
            bad = mid
    return good
