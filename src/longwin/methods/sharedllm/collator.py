"""Batching (context, local window, labels) examples for SharedLLM training.

An example is a mapping with `context_ids` (the long past, read through the trees) and either
- `input_ids` (+ optional `labels`): the LM stage, loss on every local-window token by default, or
- `prompt_ids` + `response_ids`: the instruction stage, loss on the response only; the query for
  the query-aware tree is the prompt (`query_length` = prompt length), as at generation time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from longwin.data.batching import pad
from longwin.errors import LongwinError

IGNORE_INDEX = -100


@dataclass
class SharedLLMCollator:
    """Pads a list of examples into model inputs.

    Contexts are left-truncated to whole chunks of `chunk_size` (what the model would drop anyway)
    and left-padded, so each sample's chunks end where its local window begins; local windows are
    right-padded. Masks mark real tokens; labels are IGNORE_INDEX on padding (and on the prompt).
    """

    pad_token_id: int
    chunk_size: int

    def __call__(self, examples: Sequence[Mapping[str, Sequence[int]]]) -> dict[str, torch.Tensor]:
        contexts, windows, labels, query_lengths = [], [], [], []
        for example in examples:
            context = list(example["context_ids"])
            contexts.append(context[len(context) % self.chunk_size :])
            if "prompt_ids" in example:
                prompt, response = list(example["prompt_ids"]), list(example["response_ids"])
                windows.append(prompt + response)
                labels.append([IGNORE_INDEX] * len(prompt) + response)
                query_lengths.append(len(prompt))
            elif "input_ids" in example:
                window = list(example["input_ids"])
                windows.append(window)
                labels.append(list(example.get("labels", window)))
                # no query: the LM stage always descends right, as the paper's does. The window's last
                # token would be the text being predicted (in a retrieval example, the answer itself).
                query_lengths.append(0)
            else:
                raise LongwinError("a SharedLLM example needs `input_ids` or `prompt_ids` + `response_ids`")
            if len(labels[-1]) != len(windows[-1]) or not windows[-1]:
                raise LongwinError("a SharedLLM example needs a non-empty local window with one label per token")
        batch = {
            "input_ids": pad(windows, self.pad_token_id, left=False),
            "attention_mask": pad([[1] * len(w) for w in windows], 0, left=False),
            "labels": pad(labels, IGNORE_INDEX, left=False),
            "query_length": torch.tensor(query_lengths, dtype=torch.long),
            "context_input_ids": pad(contexts, self.pad_token_id, left=True),
        }
        if len({len(c) for c in contexts}) > 1:
            batch["context_attention_mask"] = pad([[1] * len(c) for c in contexts], 0, left=True)
        return batch
