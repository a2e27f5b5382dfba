"""Passkey retrieval (Landmark / LongLoRA / PoSE / YaRN format, docs/evaluation-tasks.md#passkey).

A 5-digit key hides in repeated filler at a chosen depth; the number of filler repeats is the
largest that keeps the prompt within the cell's length. Scored by the first integer in the output.
"""

from __future__ import annotations

from longwin.eval.metrics import exact_int_match
from longwin.eval.prompting import Parts, PromptFormatter, fit_largest
from longwin.eval.tasks.base import Cell, DepthTask, Sample, rng_for

TASK_DESCRIPTION = (
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. "
    "I will quiz you about the important information there."
)
GARBAGE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
_FILLER = GARBAGE.replace(". ", ".|").split("|")  # sized by sentence, for a prompt close to the length
FINAL_QUESTION = "What is the pass key?"
ANSWER_PREFIX = " The pass key is"


def info_line(key: int) -> str:
    return f"The pass key is {key}. Remember it. {key} is the pass key."


def filler(start: int, count: int) -> str:
    """`count` filler sentences cycling through GARBAGE from sentence `start` (5 per full line)."""
    return " ".join(_FILLER[(start + i) % len(_FILLER)] for i in range(count))


def passkey_parts(key: int, n_filler: int, depth: float) -> tuple[Parts, int]:
    """Prompt parts with `n_filler` filler sentences, the key line after `depth`% of them."""
    before = round(n_filler * depth / 100)
    prefix = filler(0, before)
    suffix = filler(before, n_filler - before)
    context = "\n".join([TASK_DESCRIPTION, prefix, info_line(key), suffix])
    return Parts(context, "\n" + FINAL_QUESTION, ANSWER_PREFIX), before


class PasskeyTask(DepthTask):
    name = "passkey"
    default_samples = 5
    plot_title, plot_ylabel, heatmap_title = "Passkey retrieval", "Accuracy (%)", "Passkey accuracy"
    default_new_tokens = 10

    def build(self, cell: Cell, fmt: PromptFormatter) -> Sample:
        key = rng_for(self.seed, self.name, cell.length, cell.sample).randint(10000, 99999)
        depth = float(cell.position)
        n = fit_largest(
            lambda k: fmt.count(passkey_parts(key, k, depth)[0]),
            cell.length,
            what="a passkey prompt",
            guess=self._guess.get(cell.length, 8),
        )
        self._guess[cell.length] = n
        parts, before = passkey_parts(key, n, depth)
        text = fmt.render(parts)[0]
        return Sample(
            fmt.encode(parts),
            text,
            key,
            self.max_new_tokens,
            {"filler": n, "depth_actual": round(100 * before / n, 2) if n else depth},
        )

    def score(self, sample: Sample, output: str) -> dict[str, float]:
        return {"score": exact_int_match(output, sample.answer)}
