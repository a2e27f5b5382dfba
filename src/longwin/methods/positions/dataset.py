"""Training examples for position-scheme fine-tuning: a document pool → (ids, positions, labels).

Example `i` is a pure function of (seed, i): which document it reads and its position layout are
both drawn from `i`, so data-parallel ranks, resumed runs and reruns see exactly the same stream.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from longwin import positions
from longwin.data.pool import DocumentPool
from longwin.data.retrieval_docs import RetrievalExamples
from longwin.errors import LongwinError
from longwin.methods.positions.mixed_rope import FLAG as NATIVE_FLAG


def _unit(seed: int, index: int) -> int:
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class PositionSchemeDataset(Dataset):
    """`num_samples` examples; each reads one document through the scheme's layout.

    With `retrieval` and a `retrieval_fraction` > 0, that share of examples are retrieval examples
    built on the same sampled position ids (`longwin.data.retrieval_docs`). A `native_fraction` of the
    natural-text examples keeps contiguous positions 0..train_len-1, as in pretraining (native replay); with
    `flag_native` every example says whether it is one (`native_rope`: 1 or 0), for mixed context windows.
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
        flag_native: bool = False,
    ) -> None:
        if not 0 <= retrieval_fraction <= 1:
            raise LongwinError(f"--retrieval-fraction must be between 0 and 1, got {retrieval_fraction}")
        if retrieval_fraction > 0 and retrieval is None:
            raise ValueError("a retrieval fraction needs retrieval examples")
        self.pool, self.scheme, self.train_len, self.target_len = pool, scheme, train_len, target_len
        self.num_samples, self.seed, self.options = num_samples, seed, dict(options or {})
        self.retrieval, self.retrieval_fraction = retrieval, retrieval_fraction
        self.native_fraction, self.flag_native = native_fraction, flag_native
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
                    example = _example(built[0], placed)
                    if self.flag_native:
                        example[NATIVE_FLAG] = torch.tensor(0)
                    return example
        doc = self.pool.corpus.doc(int(self.pool.usable[key % len(self.pool.usable)]))
        native = bool(self.native_fraction) and random.Random(key + 1).random() < self.native_fraction
        if native:
            layout = positions.layout("none", len(doc), self.train_len, self.target_len, seed=key >> 1)
        else:
            layout = positions.layout(
                self.scheme, len(doc), self.train_len, self.target_len, seed=key >> 1, **self.options
            )
        ids = torch.from_numpy(doc[layout.token_index.numpy()].astype(np.int64))
        example = _example(ids, layout.position_ids.clone())
        if self.flag_native:
            example[NATIVE_FLAG] = torch.tensor(int(native))
        return example


def _example(ids: torch.Tensor, position_ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """One training example. The explicit all-ones attention mask matters: without one, transformers
    (4.5x and 5.x) infers packed sequences from `position_ids` (a jump other than +1 starts a new
    sequence), and the attention implementations that act on it (flash-attention, flex) would mask CREAM's
    and PoSE's segments off from each other; on transformers 5.25 SDPA does too, without a KV cache (training)."""
    return {
        "input_ids": ids,
        "labels": ids.clone(),
        "position_ids": position_ids,
        "attention_mask": torch.ones_like(ids),
    }
