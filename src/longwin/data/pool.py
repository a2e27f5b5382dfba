"""The training side of a corpus as a pool to draw examples from: documents long enough for a window,
tokenized once, plus a natural-text stream for fillers. Every training method reads its text from here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from longwin.data.corpora import load_documents, split_documents
from longwin.data.tokenized import TokenizedCorpus
from longwin.errors import LongwinError


@dataclass(frozen=True)
class DocumentPool:
    """The training documents long enough for the window, and how many were skipped."""

    corpus: TokenizedCorpus
    usable: np.ndarray
    skipped: int
    min_tokens: int

    def describe(self) -> str:
        return (
            f"{len(self.usable)} training documents ({int(self.corpus.lengths[self.usable].sum()):,} tokens); "
            f"skipped {self.skipped} shorter than {self.min_tokens} tokens"
        )

    def stream(self, rng: random.Random, length: int) -> list[int]:
        """`length` consecutive tokens of natural text from a random place (documents joined when short)."""
        out: list[int] = []
        while len(out) < length:
            doc = self.corpus.doc(int(self.usable[rng.randrange(len(self.usable))]))
            take = min(length - len(out), len(doc))
            start = rng.randrange(len(doc) - take + 1)
            out.extend(doc[start : start + take].tolist())
        return out

    def texts(self, tokenizer, max_chars: int = 2_000_000) -> list[str]:
        """Training documents decoded back to text (up to about `max_chars`), for word and sentence fillers."""
        texts: list[str] = []
        total = 0
        for index in self.usable:
            texts.append(tokenizer.decode(self.corpus.doc(int(index)).tolist(), skip_special_tokens=True))
            total += len(texts[-1])
            if total >= max_chars:
                break
        return texts


def build_pool(
    source: str, tokenizer, *, min_tokens: int, val_fraction: float, seed: int, text_field: str = "text"
) -> DocumentPool:
    """Load, split (train side only) and tokenize `source`, keeping documents of ≥ min_tokens tokens."""
    docs = load_documents(source, text_field=text_field)
    train_docs, _ = split_documents(docs, val_fraction, seed=seed) if val_fraction > 0 else (docs, [])
    corpus = TokenizedCorpus.build(train_docs, tokenizer)
    usable = corpus.indices_longer_than(min_tokens - 1)
    skipped = len(corpus) - len(usable)
    if len(usable) == 0:
        longest = int(corpus.lengths.max()) if len(corpus) else 0
        raise LongwinError(
            f"no training document has {min_tokens} tokens (all {skipped} skipped; longest has "
            f"{longest}): use longer documents or a shorter --train-length"
        )
    return DocumentPool(corpus, usable, skipped, min_tokens)
