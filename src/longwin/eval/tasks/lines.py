"""LongChat-Lines line retrieval (docs/evaluation-tasks.md#lines), sized by tokens instead of line counts.

Lines are `line <adjective-noun>: REGISTER_CONTENT is <number>`; as many lines as fit the length
are used and one seeded line is asked for. Scored by the first integer in the output.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from statistics import mean
from typing import Any

from longwin.eval.metrics import exact_int_match
from longwin.eval.plots import save_lines
from longwin.eval.prompting import Parts, PromptFormatter, fit_largest
from longwin.eval.tasks.base import Cell, GenerationTask, Sample, rng_for
from longwin.eval.words import ADJECTIVES, NOUNS

HEADER = (
    "Below is a record of lines I want you to remember. Each line begins with 'line <line index>' and "
    "contains a '<REGISTER_CONTENT>' at the end of the line as a numerical value. For each line index, "
    "memorize its corresponding <REGISTER_CONTENT>. At the end of the record, I will ask you to retrieve "
    "the corresponding <REGISTER_CONTENT> of a certain line index. Now the record start:\n\n"
)


class LinesTask(GenerationTask):
    name = "lines"
    default_samples = 5
    default_new_tokens = 15

    def __init__(self, options, seed) -> None:
        super().__init__(options, seed)
        self._guess: dict[int, int] = {}

    def cells(self, lengths: Sequence[int]) -> list[Cell]:
        return [Cell(self.name, n, "-", s) for n in lengths for s in range(self.samples)]

    def build(self, cell: Cell, fmt: PromptFormatter) -> Sample:
        rng = rng_for(self.seed, self.name, cell.length, cell.sample)
        names = [f"{a}-{b}" for a in ADJECTIVES for b in NOUNS]
        rng.shuffle(names)  # line ids in a seeded order, no repeats
        values = [rng.randint(1, 50000) for _ in range(len(names))]
        pick = rng.random()  # the asked line, as a fraction of however many lines fit

        def parts(k: int) -> tuple[Parts, int]:
            asked = min(int(pick * k), k - 1)
            record = "".join(f"line {names[i]}: REGISTER_CONTENT is <{values[i]}>\n" for i in range(k))
            question = (
                f"Now the record is over. Tell me what is the <REGISTER_CONTENT> in line {names[asked]}? "
                "I need the number."
            )
            return Parts(HEADER + record, question), asked

        n = fit_largest(
            lambda k: fmt.count(parts(k)[0]),
            cell.length,
            what="a lines prompt",
            lo=1,
            guess=self._guess.get(cell.length, 8),
            limit=len(names),
        )
        self._guess[cell.length] = n
        prompt_parts, asked = parts(n)
        return Sample(
            fmt.encode(prompt_parts),
            fmt.render(prompt_parts)[0],
            values[asked],
            self.max_new_tokens,
            {"num_lines": n, "line_index": asked, "line_position": round(100 * asked / max(n - 1, 1), 2)},
        )

    def score(self, sample: Sample, output: str) -> dict[str, float]:
        return {"score": exact_int_match(output, sample.answer)}

    def summarize(self, rows: list[dict]) -> dict[str, Any]:
        summary = super().summarize(rows)
        del summary["by_position"]
        summary["num_lines"] = {
            str(n): round(mean(r["num_lines"] for r in rows if r["length"] == n), 1)
            for n in sorted({r["length"] for r in rows})
        }
        return summary

    def plots(self, summary: dict[str, Any], rows: list[dict], out_dir: Path, window: int | None) -> list[str]:
        save_lines(
            out_dir / "lines_accuracy.png",
            summary["series"],
            title="LongChat-Lines retrieval",
            xlabel="Prompt length (tokens)",
            ylabel="Accuracy (%)",
            vline=window,
        )
        return ["lines_accuracy.png"]
