"""Content copy at a distance: a span of random words planted in real text, cued again at the end.

What it measures is the induction a long-context model must keep at every distance: seeing the start of
a sequence it read earlier, continue it. The format (a bare run of random words, cued by its first
words at the very end, no instruction) appears in no training recipe and no other task, so a model
cannot have been taught it: a method that wins passkey by learning the passkey format, or that forgets
how to look back, shows here.

Prompt: whole sentences of a corpus (the essays by default, as for the needle) with a span of
`SPAN_WORDS` random words inserted at the sentence boundary nearest the cell's depth (0 % = the span is as far
back as the prompt allows, 100 % = just before the cue); then a
blank line and the span's first `CUE_WORDS` words. The model continues greedily. Score: the share of
the remaining words it reproduces, in order, before its first mistake (1.0 = the whole rest copied).

The words are drawn from the haystack's `POOL` most frequent lowercase words that the model's tokenizer
writes as one token after a space, so every word of the span is one random token: what is random is the
order, which no language statistics predict, and a small vocabulary (the toy's) is measured like a large one.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from longwin.errors import LongwinError
from longwin.eval.haystack import load_texts, split_sentences
from longwin.eval.prompting import Parts, PromptFormatter, fit_largest
from longwin.eval.tasks.base import Cell, DepthTask, Sample, rng_for
from longwin.eval.tasks.needle import insert_at_depth

SPAN_WORDS = 16
CUE_WORDS = 4
POOL = 300


def word_pool(sentences: Sequence[str], tokenizer: Any, size: int = POOL) -> list[str]:
    """The `size` most frequent lowercase words (4+ letters) of `sentences` that `tokenizer` encodes as one
    token after a space and decodes back unchanged."""
    counts = Counter(w for s in sentences for w in re.findall(r"\b[a-z]{4,}\b", s))
    pool = []
    for word, _ in counts.most_common():
        ids = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
        if len(ids) == 1 and tokenizer.decode(ids).strip() == word:
            pool.append(word)
            if len(pool) == size:
                break
    if len(pool) < 2 * SPAN_WORDS:
        raise LongwinError(
            f"the copy task needs {2 * SPAN_WORDS} single-token words in its haystack; this tokenizer has {len(pool)}"
        )
    return pool


def first_run(output: str, expected: Sequence[str]) -> int:
    """How many of `expected` the output's words reproduce in order from the start (punctuation ignored)."""
    words = [w.strip(".,;:!?\"'()").lower() for w in output.split()]
    count = 0
    for got, want in zip(words, expected):
        if got != want:
            break
        count += 1
    return count


class CopyTask(DepthTask):
    name = "copy"
    default_samples = 2
    plot_title, plot_ylabel, heatmap_title = "Copy a span read earlier", "Words copied (%)", "Copy by depth of the span"
    default_new_tokens = 40

    def __init__(self, options, seed) -> None:
        super().__init__(options, seed)
        self.settings.update(haystack=options.haystack or "essays", span=SPAN_WORDS, cue=CUE_WORDS, pool=POOL)
        self._sentences: list[str] | None = None
        self._pool: list[str] = []

    def _parts(self, start: int, count: int, span: list[str], depth: float) -> tuple[Parts, float]:
        assert self._sentences is not None  # build() loads them first
        sentences = [self._sentences[(start + i) % len(self._sentences)] for i in range(count)]
        context, actual = insert_at_depth(sentences, " ".join(span) + ".", depth)
        return Parts(context, "\n\n", " ".join(span[:CUE_WORDS])), actual

    def build(self, cell: Cell, fmt: PromptFormatter) -> Sample:
        if self._sentences is None:
            self._sentences = split_sentences(load_texts(self.options.haystack, max_chars=4_000_000))
            self._pool = word_pool(self._sentences, fmt.tokenizer)
        rng = rng_for(self.seed, self.name, cell.length, cell.position, cell.sample)
        span = [rng.choice(self._pool) for _ in range(SPAN_WORDS)]
        start = rng.randrange(len(self._sentences))
        depth = float(cell.position)
        n = fit_largest(
            lambda k: fmt.count(self._parts(start, k, span, depth)[0]),
            cell.length,
            what="a copy prompt",
            guess=self._guess.get(cell.length, 8),
        )
        self._guess[cell.length] = n
        parts, actual = self._parts(start, n, span, depth)
        prompt = fmt.encode(parts)
        return Sample(
            prompt,
            fmt.render(parts)[0],
            span[CUE_WORDS:],
            self.max_new_tokens,
            {"depth_actual": actual, "distance_tokens": round(len(prompt.ids) * (100 - actual) / 100)},
        )

    def score(self, sample: Sample, output: str) -> dict[str, float]:
        copied = first_run(output, sample.answer)
        return {"score": copied / len(sample.answer), "whole": float(copied == len(sample.answer))}
