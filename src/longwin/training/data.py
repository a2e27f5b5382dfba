"""Training examples for position-scheme fine-tuning: tokenized documents → (ids, positions, labels).

Example `i` is a pure function of (seed, i): which document it reads and its position layout are
both drawn from `i`, so data-parallel ranks, resumed runs and reruns see exactly the same stream.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from longwin import positions
from longwin.data.corpora import load_documents, split_documents
from longwin.data.retrieval_docs import RetrievalExamples
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


def _unit(seed: int, index: int) -> int:
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class PositionSchemeDataset(Dataset):
    """`num_samples` examples; each reads one document through the scheme's layout.

    With `retrieval` and a `retrieval_fraction` > 0, that share of examples are retrieval examples
    built on the same sampled position ids (`longwin.data.retrieval_docs`). A `native_fraction` of the
    natural-text examples keeps contiguous positions 0..train_len-1, as in pretraining (native replay).
    """

    def __init__(
        self,
        pool: DocumentPool,
        scheme: str,
        *,
        train_len: int,
        target_len: int,
        num_samples: int,
        seed: int,
        options: dict[str, Any] | None = None,
        retrieval: RetrievalExamples | None = None,
        retrieval_fraction: float = 0.0,
        native_fraction: float = 0.0,
    ) -> None:
        if not 0 <= retrieval_fraction <= 1:
            raise LongwinError(f"--retrieval-fraction must be between 0 and 1, got {retrieval_fraction}")
        if retrieval_fraction > 0 and retrieval is None:
            raise ValueError("a retrieval fraction needs retrieval examples")
        self.pool, self.scheme, self.train_len, self.target_len = pool, scheme, train_len, target_len
        self.num_samples, self.seed, self.options = num_samples, seed, dict(options or {})
        self.retrieval, self.retrieval_fraction = retrieval, retrieval_fraction
        self.native_fraction = native_fraction
        # fail now, in one line, on a bad scheme/options rather than inside a dataloader worker
        positions.sample(scheme, train_len, target_len, seed=0, **self.options)

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        key = _unit(self.seed, index)
        if self.retrieval is not None:
            rng = random.Random(key)
            if rng.random() < self.retrieval_fraction:
                placed = positions.sample(self.scheme, self.train_len, self.target_len, seed=key >> 1, **self.options)
                built = self.retrieval.build(rng, placed, self.target_len)
                if built is not None:
                    ids = built[0]
                    return {"input_ids": ids, "labels": ids.clone(), "position_ids": placed}
        doc = self.pool.corpus.doc(int(self.pool.usable[key % len(self.pool.usable)]))
        if self.native_fraction and random.Random(key + 1).random() < self.native_fraction:
            layout = positions.layout("none", len(doc), self.train_len, self.target_len, seed=key >> 1)
        else:
            layout = positions.layout(
                self.scheme, len(doc), self.train_len, self.target_len, seed=key >> 1, **self.options
            )
        ids = torch.from_numpy(doc[layout.token_index.numpy()].astype(np.int64))
        return {"input_ids": ids, "labels": ids.clone(), "position_ids": layout.position_ids.clone()}
