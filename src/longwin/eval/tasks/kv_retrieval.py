"""Lost-in-the-Middle key-value retrieval (docs/evaluation-tasks.md#kv-retrieval).

UUID pairs from a seeded RNG are rendered as a JSON object; the gold pair is moved to a chosen
relative position. `--kv-key-chars N` draws keys and values of N hex digits instead of 36-character
UUIDs: short enough for a small model to copy, so the position curve measures where it looks, not
whether it can spell a UUID. As many pairs as fit the cell's length are used, so positions are reported as
percent of the pairs (comparable across lengths). Scored by the gold value appearing in the output.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from pathlib import Path
from statistics import mean
from typing import Any

from longwin.eval.metrics import substring_match
from longwin.eval.plots import save_lines
from longwin.eval.prompting import Parts, PromptFormatter, fit_largest
from longwin.eval.tasks.base import Cell, GenerationTask, Sample, fmt_pos, rng_for

INSTRUCTION = "Extract the value corresponding to the specified key in the JSON object below."


def random_key(rng: random.Random, chars: int = 0) -> str:
    """A UUID (chars 0, the benchmark's keys) or `chars` random hex digits."""
    if chars:
        return f"{rng.getrandbits(4 * chars):0{chars}x}"
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def format_records(records: Sequence[tuple[str, str]]) -> str:
    """`{"k1": "v1",\\n "k2": "v2",\\n ... "kN": "vN"}` exactly as the original prompt files."""
    last = len(records) - 1
    return "".join(
        ("{" if i == 0 else " ") + f'"{k}": "{v}"' + ("}" if i == last else ",\n") for i, (k, v) in enumerate(records)
    )


def kv_parts(pairs: Sequence[tuple[str, str]], gold_index: int) -> Parts:
    """Prompt parts with pairs[0] (the gold pair) moved to `gold_index`."""
    records = list(pairs[1:])
    records.insert(gold_index, pairs[0])
    context = f"{INSTRUCTION}\n\nJSON data:\n{format_records(records)}"
    return Parts(context, f'\n\nKey: "{pairs[0][0]}"\n', "Corresponding value:")


def gold_index(position: float, n_pairs: int) -> int:
    return round(position / 100 * (n_pairs - 1))


class KvRetrievalTask(GenerationTask):
    name = "kv-retrieval"
    default_samples = 3
    default_new_tokens = 50

    def __init__(self, options, seed) -> None:
        super().__init__(options, seed)
        self.positions = list(options.positions)
        self.key_chars = options.kv_key_chars
        self.settings["positions"] = self.positions
        if self.key_chars:  # absent for UUIDs, so earlier results keep their fingerprint
            self.settings["key_chars"] = self.key_chars
        self._guess: dict[int, int] = {}

    def cells(self, lengths: Sequence[int]) -> list[Cell]:
        return [Cell(self.name, n, fmt_pos(p), s) for n in lengths for p in self.positions for s in range(self.samples)]

    def build(self, cell: Cell, fmt: PromptFormatter) -> Sample:
        rng = rng_for(self.seed, self.name, cell.length, cell.sample)
        pairs: list[tuple[str, str]] = []

        def pairs_upto(n: int) -> list[tuple[str, str]]:
            while len(pairs) < n:  # always drawn in the same order: a prefix of one fixed sequence
                pairs.append((random_key(rng, self.key_chars), random_key(rng, self.key_chars)))
            return pairs[:n]

        position = float(cell.position)
        n = fit_largest(
            lambda k: fmt.count(kv_parts(pairs_upto(k), gold_index(position, k))),
            cell.length,
            what="a key-value prompt",
            lo=1,
            guess=self._guess.get(cell.length, 8),
        )
        self._guess[cell.length] = n
        parts = kv_parts(pairs_upto(n), gold_index(position, n))
        return Sample(
            fmt.encode(parts),
            fmt.render(parts)[0],
            pairs[0][1],
            self.max_new_tokens,
            {"gold_key": pairs[0][0], "num_pairs": n, "gold_index": gold_index(position, n)},
        )

    def score(self, sample: Sample, output: str) -> dict[str, float]:
        return {"score": substring_match(output, sample.answer)}

    def summarize(self, rows: list[dict]) -> dict[str, Any]:
        summary = super().summarize(rows)
        positions = list(dict.fromkeys(r["position"] for r in rows))
        summary["by_position_all"] = {
            p: round(100 * mean(r["score"] for r in rows if r["position"] == p), 2) for p in positions
        }
        summary["num_pairs"] = {
            str(n): round(mean(r["num_pairs"] for r in rows if r["length"] == n), 1)
            for n in sorted({r["length"] for r in rows})
        }
        return summary

    def plots(self, summary: dict[str, Any], rows: list[dict], out_dir: Path, window: int | None) -> list[str]:
        curves = {
            f"{n} tokens (~{summary['num_pairs'][n]:g} pairs)": points for n, points in summary["by_position"].items()
        }
        save_lines(
            out_dir / "kv_retrieval_position.png",
            curves,
            title="Key-value retrieval vs gold position",
            xlabel="Gold position (% of pairs)",
            ylabel="Accuracy (%)",
            lengths_on_x=False,
        )
        return ["kv_retrieval_position.png"]
