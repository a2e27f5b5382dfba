"""Fixed-length pretraining windows that mix natural text with synthetic retrieval examples.

Each window starts with BOS at position 0 and is filled with whole examples; when the next example
does not fit, the gap is filled with a natural-text fragment of exactly the remaining length, so no
example is cut and no compute goes to padding. With `shuffle` the pieces are then put in a random
order: otherwise the last tokens of every window are natural filler, and a model learns from its
distance to BOS that nothing is retrieved at the end of its window (docs/toy-model.md). Window `i`
is a pure function of (seed, i): the dataset needs no pre-generation and a resumed run sees the
same data.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

from longwin.data import synthetic
from longwin.data.tokenizer import first_regular_id

DEFAULT_MIX = {"natural": 0.25, "copy": 0.15, "passkey_grass": 0.15, "passkey_text": 0.12, "kv": 0.15, "lines": 0.18}


@dataclass
class MixSources:
    """Everything the windows are drawn from (natural token arrays, filler sentences, words)."""

    natural: Sequence[np.ndarray]
    sentences: Sequence[str]
    words: Sequence[str]
    cumulative: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        """Documents are drawn in proportion to their length (cumulative table, built once)."""
        lengths = np.array([len(d) for d in self.natural], dtype=np.float64)
        self.cumulative = np.cumsum(lengths / lengths.sum())


class PretrainMixDataset(Dataset):
    """`num_windows` windows of `seq_len` tokens with labels = input_ids (dense LM loss)."""

    def __init__(
        self,
        sources: MixSources,
        tokenizer,
        *,
        seq_len: int,
        num_windows: int,
        seed: int,
        mix: dict[str, float] | None = None,
        shuffle: bool = True,
    ) -> None:
        self.sources, self.tok, self.seq_len, self.shuffle = sources, tokenizer, seq_len, shuffle
        self.num_windows, self.seed = num_windows, seed
        mix = mix or DEFAULT_MIX
        self.kinds, self.kind_p = list(mix), np.array(list(mix.values()), dtype=np.float64)
        self.kind_p /= self.kind_p.sum()
        self._kind_cumulative = np.cumsum(self.kind_p)
        self.bos, self.eos = tokenizer.bos_token_id, tokenizer.eos_token_id
        self._first_regular = first_regular_id(tokenizer)  # random spans never hold special ids
        # tokens per filler unit, measured once, to size examples to the space left
        self._unit_tokens = {k: self._measure(k) for k in synthetic.GENERATORS}

    def __len__(self) -> int:
        return self.num_windows

    def _encode(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def _render(self, kind: str, rng: random.Random, units: int) -> list[int]:
        fn, pool_name = synthetic.GENERATORS[kind]
        pool = {"grass": synthetic.GRASS_SENTENCES, "sentences": self.sources.sentences, "words": self.sources.words}[
            pool_name
        ]
        return self._encode(fn(rng, pool, units)) + [self.eos]

    def _measure(self, kind: str) -> float:
        rng = random.Random(0)
        small, big = len(self._render(kind, rng, 2)), len(self._render(kind, rng, 12))
        return max((big - small) / 10, 1.0)

    def _natural(self, rng: random.Random, n: int) -> list[int]:
        nat = self.sources.natural
        doc = nat[int(np.searchsorted(self.sources.cumulative, rng.random()))]
        doc = doc if len(doc) > n else np.resize(doc, n + 1)
        start = rng.randrange(len(doc) - n + 1)
        return doc[start : start + n].tolist()

    def _example(self, kind: str, rng: random.Random, room: int) -> list[int] | None:
        if kind in ("copy", "copy_random"):  # a span and its repeat: copying by content, at any offset
            n = rng.randint(8, max(8, (room - 1) // 2))
            span = (
                self._natural(rng, n)
                if kind == "copy"
                else [rng.randrange(self._first_regular, len(self.tok)) for _ in range(n)]
            )
            return span + span if 2 * n <= room else None
        if kind == "recall":  # text, a passage, unrelated text, the passage again: recall after a gap
            n = rng.randint(8, max(8, min(48, room // 4)))
            if 2 * n + 8 > room:
                return None
            gap = rng.randint(8, room - 2 * n)
            lead = rng.randint(0, room - 2 * n - gap)
            span = self._natural(rng, n)
            return self._natural(rng, lead) + span + self._natural(rng, gap) + span
        # aim at a random size up to the room left, shrink until it fits
        target = rng.randint(min(40, room), room)
        units = max(int(target / self._unit_tokens[kind]), 1)
        for _ in range(4):
            ids = self._render(kind, rng, units)
            if len(ids) <= room:
                return ids
            units = int(units * room / len(ids) * 0.9)
            if units < 1:
                return None
        return None

    def window(self, index: int) -> list[int]:
        rng = random.Random(f"{self.seed}:{index}")
        pieces, size = [], 1  # BOS comes first
        while size < self.seq_len:
            room = self.seq_len - size
            kind = self.kinds[int(np.searchsorted(self._kind_cumulative, rng.random()))]
            ex = None if kind == "natural" or room < 24 else self._example(kind, rng, room)
            if ex is None:
                ex = self._natural(rng, min(room, rng.randint(16, self.seq_len)))
            pieces.append(ex)
            size += len(ex)
        if self.shuffle:
            rng.shuffle(pieces)
        return [self.bos, *(t for piece in pieces for t in piece)][: self.seq_len]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        ids = torch.tensor(self.window(index), dtype=torch.long)
        return {"input_ids": ids, "labels": ids.clone()}
