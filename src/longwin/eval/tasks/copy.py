"""Content copy at a distance: a span of random words planted in real text, cued again at the end.

What it measures is the induction a long-context model must keep at every distance: seeing the start of
a sequence it read earlier, continue it. The format (a bare run of random words, cued by its first
words at the very end, no instruction) appears in no training recipe and no other task, so a model
cannot have been taught it: a method that wins passkey by learning the passkey format, or that forgets
how to look back, shows here.

Prompt: whole sentences of a corpus (the essays by default, as for the needle) with a span of
`SPAN_WORDS` random words from a fixed common-word list inserted at the sentence boundary nearest the
cell's depth (0 % = the span is as far back as the prompt allows, 100 % = just before the cue); then a
blank line and the span's first `CUE_WORDS` words. The model continues greedily. Score: the share of
the remaining words it reproduces, in order, before its first mistake (1.0 = the whole rest copied).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from longwin.eval.haystack import load_texts, split_sentences
from longwin.eval.plots import save_heatmap, save_lines
from longwin.eval.prompting import Parts, PromptFormatter, fit_largest
from longwin.eval.tasks.base import Cell, GenerationTask, Sample, fmt_pos, rng_for
from longwin.eval.tasks.needle import insert_at_depth

SPAN_WORDS = 16
CUE_WORDS = 4
# common, single-token-ish English words: what is random is their order, not their spelling
WORDS = (
    "apple river stone cloud garden silver window market candle forest engine letter mirror pocket ladder "
    "basket island rocket tunnel violin wagon yellow zebra anchor bottle carpet dragon feather guitar hammer "
    "jacket kettle lemon magnet needle orange pencil quartz rabbit saddle tomato umbrella velvet whistle "
    "blanket copper donkey eagle falcon ginger harbor iron jungle koala lantern meadow nickel oyster parrot"
).split()


def first_run(output: str, expected: Sequence[str]) -> int:
    """How many of `expected` the output's words reproduce in order from the start (punctuation ignored)."""
    words = [w.strip(".,;:!?\"'()").lower() for w in output.split()]
    count = 0
    for got, want in zip(words, expected):
        if got != want:
            break
        count += 1
    return count


class CopyTask(GenerationTask):
    name = "copy"
    default_samples = 2
    default_new_tokens = 40

    def __init__(self, options, seed) -> None:
        super().__init__(options, seed)
        self.depths = list(options.depths)
        self.settings.update(depths=self.depths, haystack=options.haystack or "essays", span=SPAN_WORDS,
                             cue=CUE_WORDS)
        self._sentences: list[str] | None = None
        self._guess: dict[int, int] = {}

    def cells(self, lengths: Sequence[int]) -> list[Cell]:
        return [Cell(self.name, n, fmt_pos(d), s) for n in lengths for d in self.depths for s in range(self.samples)]

    def _parts(self, start: int, count: int, span: list[str], depth: float) -> tuple[Parts, float]:
        sentences = [self._sentences[(start + i) % len(self._sentences)] for i in range(count)]
        context, actual = insert_at_depth(sentences, " ".join(span) + ".", depth)
        return Parts(context, "\n\n", " ".join(span[:CUE_WORDS])), actual

    def build(self, cell: Cell, fmt: PromptFormatter) -> Sample:
        if self._sentences is None:
            self._sentences = split_sentences(load_texts(self.options.haystack, max_chars=4_000_000))
        rng = rng_for(self.seed, self.name, cell.length, cell.position, cell.sample)
        span = [rng.choice(WORDS) for _ in range(SPAN_WORDS)]
        start = rng.randrange(len(self._sentences))
        depth = float(cell.position)
        n = fit_largest(lambda k: fmt.count(self._parts(start, k, span, depth)[0]), cell.length,
                        what="a copy prompt", guess=self._guess.get(cell.length, 8))
        self._guess[cell.length] = n
        parts, actual = self._parts(start, n, span, depth)
        prompt = fmt.encode(parts)
        return Sample(prompt, fmt.render(parts)[0], span[CUE_WORDS:], self.max_new_tokens,
                      {"depth_actual": actual, "distance_tokens": round(len(prompt.ids) * (100 - actual) / 100)})

    def score(self, sample: Sample, output: str) -> dict[str, float]:
        copied = first_run(output, sample.answer)
        return {"score": copied / len(sample.answer), "whole": float(copied == len(sample.answer))}

    def plots(self, summary: dict[str, Any], rows: list[dict], out_dir: Path, window: int | None) -> list[str]:
        lengths = list(summary["series"]["accuracy"])
        save_lines(out_dir / "copy_accuracy.png", summary["series"], title="Copy a span read earlier",
                   xlabel="Prompt length (tokens)", ylabel="Words copied (%)", vline=window)
        save_heatmap(out_dir / "copy_heatmap.png", summary["by_position"], rows=[fmt_pos(d) for d in self.depths],
                     cols=lengths, title=f"Copy by depth of the span (overall {summary['overall']:.1f}%)")
        return ["copy_accuracy.png", "copy_heatmap.png"]
