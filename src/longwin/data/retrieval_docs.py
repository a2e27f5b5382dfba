"""Retrieval examples laid out on a position scheme's ids: evidence far back, question at the end.

Fine-tuning a small model on natural text alone erases the retrieval skill it learned in
pretraining (docs/toy-model.md), so the toy extension recipes mix in these examples. Each one is
built *for* the sampled position ids, at token level: think of a virtual document of target-length
tokens whose token at offset p is what the model sees at position p. Filler (grass sentences,
natural text, JSON pairs or register lines) fills every slot from a stream indexed by position, so
the gaps a scheme skips look like skipped text; the evidence overwrites slots of one contiguous
run of positions; the question and its answer take the last slots of the last run long enough to
hold them. The model is trained with the full LM loss, so the answer is predicted from evidence
that sits as far back as the positions say. The same examples serve every scheme, which keeps a
comparison between schemes fair. Templates follow `longwin.data.synthetic` (training formats), not
the benchmark prompts of `longwin.eval`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from longwin.data import synthetic
from longwin.data.tokenizer import first_regular_id
from longwin.errors import LongwinError

KINDS = ("passkey_grass", "passkey_text", "kv", "lines", "copy", "copy_random")
COPY_CUE = 4  # tokens of a `copy`/`copy_random` span repeated as its cue; the rest is the answer
Stream = Callable[[random.Random, int], list[int]]  # (rng, length) -> that many natural-text tokens


@dataclass(frozen=True)
class Pieces:
    """Token ids of one example's parts; `filler` covers offsets 0..target_len-1 of the virtual document."""

    intro: list[int]
    filler: list[int]
    evidence: list[int]
    question: list[int]
    answer: list[int]


def runs(position_ids: torch.Tensor) -> list[tuple[int, int]]:
    """[start, end) slot ranges whose positions are consecutive integers."""
    ids = position_ids.tolist()
    out, start = [], 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or ids[i] != ids[i - 1] + 1:
            out.append((start, i))
            start = i
    return out


class RetrievalExamples:
    """Builds retrieval examples of the kinds in `KINDS` for given position ids."""

    def __init__(self, tokenizer: Any, natural: Stream, texts: Sequence[str], kinds: Sequence[str] = KINDS) -> None:
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown or not kinds:
            raise LongwinError(
                f"unknown retrieval kind(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(KINDS)}"
            )
        self.tokenizer, self.natural, self.kinds = tokenizer, natural, list(kinds)
        self.words = synthetic.word_list(texts)
        if "lines" in self.kinds and len(self.words) < 10:
            raise LongwinError("the training text has too few words for the 'lines' retrieval kind")
        self._grass: dict[int, list[int]] = {}
        self._first_regular = first_regular_id(tokenizer)

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _repeat(self, unit: Callable[[], str], length: int) -> list[int]:
        """Tokens of `unit()` strings joined until `length` tokens (each unit drawn afresh)."""
        out: list[int] = []
        while len(out) < length:
            out.extend(self._ids("".join(unit() for _ in range(16))))
        return out[:length]

    def _grass_stream(self, rng: random.Random, length: int) -> list[int]:
        start = rng.randrange(len(synthetic.GRASS_SENTENCES))
        cached = self._grass.get(start)
        if cached is None or len(cached) < length:
            sentences = synthetic.GRASS_SENTENCES
            units = 2 * length // 4 + 16  # a grass sentence is at least 4 tokens
            cached = self._ids(" ".join(sentences[(start + i) % len(sentences)] for i in range(units)))
            self._grass[start] = cached
        return cached[:length]

    def pieces(self, kind: str, rng: random.Random, length: int) -> Pieces:
        """The parts of one example of `kind` over a virtual document of `length` tokens."""
        if kind.startswith("passkey"):
            key = synthetic.random_key(rng, 5 if rng.random() < 0.6 else None)
            filler = self._grass_stream(rng, length) if kind == "passkey_grass" else self.natural(rng, length)
            return Pieces(
                self._ids(rng.choice(synthetic.PASSKEY_INTROS) + "\n"),
                filler,
                self._ids(f"\nThe pass key is {key}. Remember it. {key} is the pass key.\n"),
                self._ids("\nWhat is the pass key? The pass key is"),
                self._ids(f" {key}."),
            )
        if kind == "kv":
            make = (
                (lambda: synthetic.random_uuid(rng)) if rng.random() < 0.5 else (lambda: synthetic.random_hex(rng, 8))
            )
            key, value = make(), make()
            filler = self._repeat(lambda: f'"{make()}": "{make()}", ', length)
            return Pieces(
                self._ids(
                    "Extract the value corresponding to the specified key in the JSON object below.\n\nJSON data:\n{"
                ),
                filler,
                self._ids(f'"{key}": "{value}", '),
                self._ids(f'}}\n\nKey: "{key}"\nCorresponding value: "'),
                self._ids(f'{value}"'),
            )
        if kind in ("copy", "copy_random"):  # replay of the toy's pretraining recall / random-copy windows
            n = rng.randint(16, 48)
            span = self.natural(rng, n) if kind == "copy" else self._random_tokens(rng, n)
            return Pieces([], self.natural(rng, length), span, span[:COPY_CUE], span[COPY_CUE:])
        name = self._line_name(rng)
        value = synthetic.random_key(rng, rng.choice((4, 5)))

        def line() -> str:
            other = self._line_name(rng)
            return (
                f"line {other}: REGISTER_CONTENT is <{synthetic.random_key(rng, rng.choice((4, 5)))}>\n"
                if other != name
                else ""
            )

        return Pieces(
            self._ids("Below is a record of lines I want you to remember. Now the record start:\n\n"),
            self._repeat(line, length),
            self._ids(f"line {name}: REGISTER_CONTENT is <{value}>\n"),
            self._ids(
                f"\nNow the record is over. Tell me what is the <REGISTER_CONTENT> in line {name}? "
                f"I need the number.\nThe <REGISTER_CONTENT> in line {name} is <"
            ),
            self._ids(f"{value}>."),
        )

    def _random_tokens(self, rng: random.Random, n: int) -> list[int]:
        """`n` uniform token ids above the special tokens."""
        return [rng.randrange(self._first_regular, len(self.tokenizer)) for _ in range(n)]

    def _line_name(self, rng: random.Random) -> str:
        return f"{rng.choice(self.words)}-{rng.choice(self.words)}"

    def build(
        self, rng: random.Random, position_ids: torch.Tensor, target_len: int, *, evidence_by: int | None = None
    ) -> tuple[torch.Tensor, int] | None:
        """(token ids for `position_ids`, answer length), or None if no kind fits them.

        `position_ids` are strictly increasing and < target_len. The question and answer take the end
        of the last run of consecutive positions that holds them (of the whole window when no run
        does); the evidence lies inside one run before them, ending by slot `evidence_by` when given
        (SharedLLM: inside the context, not the local window). The answer is the last tokens.
        """
        kinds = self.kinds[:]
        rng.shuffle(kinds)
        for kind in kinds:
            pieces = self.pieces(kind, rng, target_len)
            ids = self._place(pieces, rng, position_ids, evidence_by)
            if ids is not None:
                return ids, len(pieces.answer)
        return None

    @staticmethod
    def _place(
        p: Pieces, rng: random.Random, position_ids: torch.Tensor, evidence_by: int | None = None
    ) -> torch.Tensor | None:
        spans = runs(position_ids)
        qa = p.question + p.answer
        fits = [i for i, (s, e) in enumerate(spans) if e - s >= len(qa)]
        if not fits:  # a scheme without long runs (randpos) trains every span gapped: so do its examples
            spans, fits = [(0, len(position_ids))], [0]
        last = fits[-1]
        q_start = spans[last][1] - len(qa)
        limit = q_start if evidence_by is None else min(q_start, evidence_by)
        for intro_end in (len(p.intro), 0):  # drop the intro when it leaves the evidence no room
            starts = [
                at
                for s, e in spans[: last + 1]  # the evidence inside one run, after intro, before question
                for at in range(max(s, intro_end), min(e, limit) - len(p.evidence) + 1)
            ]
            if starts:
                break
        else:
            return None
        slots = position_ids.tolist()
        tokens = [p.filler[pos] for pos in slots]
        tokens[:intro_end] = p.intro[:intro_end]
        at = rng.choice(starts)
        tokens[at : at + len(p.evidence)] = p.evidence
        tokens[q_start : q_start + len(qa)] = qa
        return torch.tensor(tokens, dtype=torch.long)
