"""SharedLLM training examples: a document pool → (context chunks, local window) pairs.

Each example is a few whole context chunks (read through the context trees) followed by a local
window of at most the native window, so the upper model's self-attention never leaves its
pretraining range. The chunk count is drawn per example between --sharedllm-min-chunks and what
--target-length allows, so one model serves every context length up to it. Stages (docs/sharedllm.md):

- `lm`: loss on every local-window token (the paper's LM stage);
- `instruct`: loss on responses only, with the prompt as the tree's query (the paper's SFT stage).
  Responses come from synthetic retrieval documents and --sharedllm-instructions records; natural
  text keeps the LM loss, as the paper mixes pretraining text into its SFT data.

A share of examples (--retrieval-fraction) are synthetic retrieval documents with the
evidence in the context and the question + answer in the local window: a small model only learns
to read the tree from such a dense signal. Trained on those alone it unlearns reading evidence from
its own window, so --sharedllm-local-evidence puts a share of them wholly in the local window, behind
natural context. Example i is a pure function of (seed, i).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from longwin.data.pool import DocumentPool
from longwin.data.retrieval_docs import RetrievalExamples
from longwin.errors import LongwinError
from longwin.methods.base import CommonOptions
from longwin.methods.sharedllm.options import SharedLLMOptions

STAGES = ("lm", "instruct")


@dataclass(frozen=True)
class ChunkedWindow:
    """How an example is cut: `chunks` whole chunks of `chunk` tokens, then `local_length` tokens."""

    local_length: int
    chunk: int
    min_chunks: int
    max_chunks: int

    def draw(self, rng: random.Random) -> int:
        return rng.randint(self.min_chunks, self.max_chunks)


def make_layout(common: CommonOptions, opts: SharedLLMOptions, chunk: int, native: int) -> ChunkedWindow:
    """How examples are cut, refusing local windows the upper model was not pretrained on."""
    local = opts.local_length or common.train_length or native
    if local > native and not common.allow_long_train_window:
        raise LongwinError(
            f"local window {local} is above the native window {native}: the upper model's "
            f"self-attention would leave its pretraining range; pass --allow-long-train-window true "
            f"if you mean it"
        )
    max_chunks = (common.target_length - local) // chunk
    if max_chunks < 1:
        raise LongwinError(
            f"--target-length {common.target_length} leaves {common.target_length - local} context tokens "
            f"after the {local}-token local window: less than one chunk of {chunk}"
        )
    if not 1 <= opts.min_chunks <= max_chunks:
        raise LongwinError(
            f"--sharedllm-min-chunks must be between 1 and the {max_chunks} chunks that "
            f"--target-length {common.target_length} allows, got {opts.min_chunks}"
        )
    return ChunkedWindow(local, chunk, opts.min_chunks, max_chunks)


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def load_instructions(path: str) -> list[dict[str, str]]:
    """Instruction records {prompt, response[, context]} from a JSONL file."""
    file = Path(path)
    if not file.is_file():
        raise LongwinError(f"--sharedllm-instructions: no such file {path}")
    records = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LongwinError(f"{path}:{number}: not JSON ({exc.msg})") from None
        if not (
            isinstance(row, dict)
            and all(isinstance(row.get(k), str) for k in ("prompt", "response"))
            and isinstance(row.get("context", ""), str)
        ):
            raise LongwinError(
                f"{path}:{number}: an instruction record needs string fields prompt and response "
                f"(and optionally context)"
            )
        records.append(row)
    if not records:
        raise LongwinError(f"--sharedllm-instructions: {path} has no records")
    return records


class SharedLLMDataset(Dataset):
    """`num_samples` examples for `SharedLLMCollator`: natural text, retrieval documents, instructions."""

    def __init__(
        self,
        pool: DocumentPool,
        tokenizer: Any,
        layout: ChunkedWindow,
        *,
        num_samples: int,
        seed: int,
        stage: str = "lm",
        retrieval: RetrievalExamples | None = None,
        retrieval_fraction: float = 0.0,
        local_evidence: float = 0.0,
        instructions: Sequence[dict[str, str]] = (),
    ) -> None:
        if stage not in STAGES:
            raise LongwinError(f"unknown SharedLLM stage {stage!r} (choose from {', '.join(STAGES)})")
        if not 0 <= retrieval_fraction <= 1:
            raise LongwinError(f"--retrieval-fraction must be between 0 and 1, got {retrieval_fraction}")
        if not 0 <= local_evidence <= 1:
            raise LongwinError(f"--sharedllm-local-evidence must be between 0 and 1, got {local_evidence}")
        if retrieval_fraction > 0 and retrieval is None:
            raise ValueError("a retrieval fraction needs retrieval documents")
        self.pool, self.tokenizer, self.layout = pool, tokenizer, layout
        self.num_samples, self.seed, self.stage = num_samples, seed, stage
        self.retrieval, self.retrieval_fraction, self.local_evidence = retrieval, retrieval_fraction, local_evidence
        self.instructions = list(instructions)

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        rng = random.Random(f"{self.seed}:{index}")
        chunks = self.layout.draw(rng)
        if self.retrieval is not None and rng.random() < self.retrieval_fraction:
            example = self._retrieval(rng, chunks)
            if example is not None:
                return example
        if self.stage == "instruct" and self.instructions:
            return self._instruction(rng)
        return self._natural(rng, chunks)

    def _doc(self, rng: random.Random) -> Any:
        usable = self.pool.usable
        return self.pool.corpus.doc(int(usable[rng.randrange(len(usable))]))

    def _natural(self, rng: random.Random, chunks: int) -> dict[str, list[int]]:
        """A random span of one document: `chunks` chunks of context (fewer if the document is short)."""
        lay = self.layout
        doc = self._doc(rng)
        chunks = min(chunks, (len(doc) - lay.local_length) // lay.chunk)
        span = chunks * lay.chunk + lay.local_length
        start = rng.randrange(len(doc) - span + 1)
        tokens = doc[start : start + span].tolist()
        return {"context_ids": tokens[: chunks * lay.chunk], "input_ids": tokens[chunks * lay.chunk :]}

    def _retrieval(self, rng: random.Random, chunks: int) -> dict[str, list[int]] | None:
        """A retrieval example: question and answer at the end of the local window, evidence in the context
        (or, for a --sharedllm-local-evidence share, earlier in the local window)."""
        assert self.retrieval is not None  # __getitem__ asks for one only when there are retrieval documents
        lay, cut = self.layout, chunks * self.layout.chunk
        local_only = bool(self.local_evidence) and rng.random() < self.local_evidence  # drawn only when asked
        span = lay.local_length if local_only else cut + lay.local_length
        built = self.retrieval.build(rng, torch.arange(span), span, evidence_by=None if local_only else cut)
        if built is None:
            return None
        tokens, answer = built[0].tolist(), built[1]
        if local_only:  # the context is unrelated natural text; the whole document sits in the local window
            context, window = self._natural(rng, chunks)["context_ids"], tokens
        else:
            context, window = tokens[:cut], tokens[cut:]
        if self.stage == "instruct" and answer < len(window):
            return {"context_ids": context, "prompt_ids": window[:-answer], "response_ids": window[-answer:]}
        return {"context_ids": context, "input_ids": window}

    def _instruction(self, rng: random.Random) -> dict[str, list[int]]:
        """A record whose prompt tail fits the local window with its response; the prompt's head joins the context."""
        lay, tok = self.layout, self.tokenizer
        record = self.instructions[rng.randrange(len(self.instructions))]
        context = ([tok.bos_token_id] + _encode(tok, record["context"])) if record.get("context") else []
        prompt = _encode(tok, record["prompt"])
        response = (_encode(tok, record["response"]) + [tok.eos_token_id])[: lay.local_length // 2]
        cut = max(0, len(prompt) - (lay.local_length - len(response)))
        context = (context + prompt[:cut])[-lay.max_chunks * lay.chunk :]
        return {"context_ids": context, "prompt_ids": prompt[cut:], "response_ids": response}
