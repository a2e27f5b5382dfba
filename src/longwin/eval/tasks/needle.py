"""Needle in a haystack over real text (docs/evaluation-tasks.md#needle), scored without a judge model.

The haystack is whole sentences of a corpus (Paul Graham essays by default), starting at a seeded
sentence and cycling through the corpus; the needle goes in whole at the sentence boundary nearest
the requested depth. The prompt ends with the question and an answer prefix that starts the answer
sentence. Scores: `score` = the answer key phrase appears in the output (case and spacing ignored);
`rouge_l` = ROUGE-L F of the output's first line against the needle.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from longwin.eval.haystack import load_texts, split_sentences
from longwin.eval.metrics import rouge_l
from longwin.eval.options import NIAH_NEEDLE, NIAH_PREFIX
from longwin.eval.plots import save_heatmap
from longwin.eval.prompting import Parts, PromptFormatter, fit_largest
from longwin.eval.tasks.base import Cell, DepthTask, Sample, by_length, by_length_position, fmt_pos, pct, rng_for


def _squash(text: str) -> str:
    return " ".join(text.lower().split())


def insert_at_depth(sentences: Sequence[str], needle: str, depth: float) -> tuple[str, float]:
    """Join sentences with the needle at the boundary nearest `depth`% of the characters.

    Returns the text and the needle's actual depth in percent of the haystack characters.
    """
    total = sum(len(s) + 1 for s in sentences)
    target, offset, best, best_offset = total * depth / 100, 0, 0, 0
    for i in range(len(sentences) + 1):  # boundary i sits before sentences[i]
        if abs(offset - target) < abs(best_offset - target):
            best, best_offset = i, offset
        if i < len(sentences):
            offset += len(sentences[i]) + 1
    text = " ".join([*sentences[:best], needle, *sentences[best:]])
    return text, round(100 * best_offset / total, 2) if total else depth


class NeedleTask(DepthTask):
    name = "needle"
    default_samples = 1
    default_new_tokens = 50

    def __init__(self, options, seed) -> None:
        super().__init__(options, seed)
        self.prefix = options.needle_prefix or (NIAH_PREFIX if options.needle == NIAH_NEEDLE else "Answer:")
        self.settings.update(
            haystack=options.haystack or "essays",
            needle=options.needle,
            question=options.question,
            answer=options.answer,
            prefix=self.prefix,
        )
        self._sentences: list[str] | None = None

    def _haystack(self, start: int, count: int) -> list[str]:
        sentences = self._sentences
        assert sentences is not None  # build() loads them first
        return [sentences[(start + i) % len(sentences)] for i in range(count)]

    def _parts(self, start: int, count: int, depth: float) -> tuple[Parts, float]:
        context, actual = insert_at_depth(self._haystack(start, count), self.options.needle, depth)
        return Parts(context, f"\n\n{self.options.question}\n", self.prefix), actual

    def build(self, cell: Cell, fmt: PromptFormatter) -> Sample:
        if self._sentences is None:
            self._sentences = split_sentences(load_texts(self.options.haystack, max_chars=4_000_000))
        start = rng_for(self.seed, self.name, cell.length, cell.sample).randrange(len(self._sentences))
        depth = float(cell.position)
        n = fit_largest(
            lambda k: fmt.count(self._parts(start, k, depth)[0]),
            cell.length,
            what="a needle prompt",
            guess=self._guess.get(cell.length, 8),
        )
        self._guess[cell.length] = n
        parts, actual = self._parts(start, n, depth)
        return Sample(
            fmt.encode(parts),
            fmt.render(parts)[0],
            self.options.answer,
            self.max_new_tokens,
            {"sentences": n, "depth_actual": actual},
        )

    def score(self, sample: Sample, output: str) -> dict[str, float]:
        first_line = next((ln for ln in output.strip().splitlines() if ln.strip()), "")
        return {
            "score": float(_squash(sample.answer) in _squash(output)),
            "rouge_l": rouge_l(first_line, self.options.needle),
        }

    def summarize(self, rows: list[dict]) -> dict[str, Any]:
        return {
            "metric": "exact match (%)",
            "higher_is_better": True,
            "series": {"exact": by_length(rows), "rouge_l": by_length(rows, "rouge_l")},
            "series_metrics": {"rouge_l": "ROUGE-L F (x100)"},
            "by_position": by_length_position(rows),
            "by_position_rouge_l": by_length_position(rows, "rouge_l"),
            "overall": pct(r["score"] for r in rows),
            "overall_rouge_l": pct(r["rouge_l"] for r in rows),
        }

    def plots(self, summary: dict[str, Any], rows: list[dict], out_dir: Path, window: int | None) -> list[str]:
        depths, lengths = [fmt_pos(d) for d in self.depths], list(summary["series"]["exact"])
        save_heatmap(
            out_dir / "needle_heatmap.png",
            summary["by_position"],
            rows=depths,
            cols=lengths,
            title=f"Needle in a haystack: exact match (overall {summary['overall']:.1f}%)",
        )
        save_heatmap(
            out_dir / "needle_heatmap_rouge.png",
            summary["by_position_rouge_l"],
            rows=depths,
            cols=lengths,
            title=f"Needle in a haystack: ROUGE-L x100 (overall {summary['overall_rouge_l']:.1f})",
        )
        return ["needle_heatmap.png", "needle_heatmap_rouge.png"]
