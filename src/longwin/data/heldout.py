"""Held-out evaluation text: the longest held-out documents, cut to an exact token count.

One builder for every study: the perplexity text and the haystacks of an evaluation come from documents
that `longwin train`'s own split (`corpora.split_documents`, by id) kept out of training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from longwin.data.corpora import Document


def whole_rows(documents: Sequence[Document]) -> list[dict[str, str]]:
    """`documents` whole, in their order, as JSONL rows (`id`, `text`): a haystack or perplexity corpus file."""
    return [{"id": doc.id, "text": doc.text} for doc in documents]


def heldout_rows(documents: Sequence[Document], tokenizer: Any, tokens: int, count: int) -> list[dict[str, str]]:
    """The first `tokens` tokens of each of the `count` longest `documents` that have that many (count 0:
    all of them), longest first, as JSONL rows (`id`, `text`)."""
    rows = []
    for doc in sorted(documents, key=lambda d: -len(d.text)):
        ids = tokenizer(doc.text, add_special_tokens=False)["input_ids"]
        if len(ids) >= tokens:
            rows.append({"id": doc.id, "text": tokenizer.decode(ids[:tokens])})
        if len(rows) == count:
            break
    return rows
