"""Synthetic retrieval text for pretraining the toy base model.

A tiny model does not learn retrieval from answer-only losses (docs/toy-model.md#early-retrieval-probes): it
needs a dense copy signal. So every example here is ordinary text trained with the full LM loss,
in formats that reward copying a span seen earlier — pass keys, key-value lookups, line registers
and repeated spans — with varied fillers so the model learns the skill rather than one template.
These are training formats; the benchmark prompts live in `longwin.eval` and are not reused here.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

GRASS = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
PASSKEY_INTROS = (
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. "
    "I will quiz you about the important information there.",
    "Remember the number hidden in the text below.",
    "Read the text and keep the pass key in mind.",
)


def random_key(rng: random.Random, digits: int | None = None) -> str:
    n = digits or rng.randint(3, 7)
    return str(rng.randint(10 ** (n - 1), 10**n - 1))


def random_hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def random_uuid(rng: random.Random) -> str:
    return "-".join(random_hex(rng, n) for n in (8, 4, 4, 4, 12))


GRASS_SENTENCES = tuple(s if s.endswith(".") else s + "." for s in GRASS.split(". "))


def _filler(rng: random.Random, sentences: Sequence[str], units: int) -> str:
    """`units` consecutive sentences of the pool (cycling), from a random start."""
    start = rng.randrange(len(sentences))
    return " ".join(sentences[(start + i) % len(sentences)] for i in range(units))


def passkey(rng: random.Random, sentences: Sequence[str], units: int) -> str:
    """A pass key hidden at a random depth of `units` filler sentences, then asked for."""
    key = random_key(rng, 5 if rng.random() < 0.6 else None)
    before = rng.randint(0, units)
    info = f"The pass key is {key}. Remember it. {key} is the pass key."
    parts = [
        rng.choice(PASSKEY_INTROS),
        _filler(rng, sentences, before),
        info,
        _filler(rng, sentences, units - before),
        f"What is the pass key? The pass key is {key}.",
    ]
    return "\n".join(p for p in parts if p)


def kv_lookup(rng: random.Random, sentences: Sequence[str], units: int) -> str:
    """A JSON object of `units` key-value pairs and a question about one of them."""
    long_ids = rng.random() < 0.5
    make = (lambda: random_uuid(rng)) if long_ids else (lambda: random_hex(rng, rng.choice((6, 8))))
    pairs = [(make(), make()) for _ in range(max(units, 1))]
    key, value = rng.choice(pairs)
    body = ", ".join(f'"{k}": "{v}"' for k, v in pairs)
    text = (
        "Extract the value corresponding to the specified key in the JSON object below.\n\n"
        f'JSON data:\n{{{body}}}\n\nKey: "{key}"\nCorresponding value: "{value}"'
    )
    return text


def line_registers(rng: random.Random, words: Sequence[str], units: int) -> str:
    """LongChat-style records: `units` named lines, each holding a number; one is asked for."""
    names: list[str] = []
    while len(names) < max(units, 1):
        name = f"{rng.choice(words)}-{rng.choice(words)}"
        if name not in names:
            names.append(name)
    values = [random_key(rng, rng.choice((4, 5))) for _ in names]
    ask = rng.randrange(len(names))
    lines = "\n".join(f"line {n}: REGISTER_CONTENT is <{v}>" for n, v in zip(names, values))
    text = (
        "Below is a record of lines I want you to remember. Now the record start:\n\n"
        f"{lines}\n\nNow the record is over. Tell me what is the <REGISTER_CONTENT> in line {names[ask]}? "
        f"I need the number.\nThe <REGISTER_CONTENT> in line {names[ask]} is <{values[ask]}>."
    )
    return text


# name -> (renderer, pool it draws from: "grass" filler, natural "sentences" or "words")
GENERATORS: dict[str, tuple[Callable[[random.Random, Sequence[str], int], str], str]] = {
    "passkey_grass": (passkey, "grass"),
    "passkey_text": (passkey, "sentences"),
    "kv": (kv_lookup, "sentences"),
    "lines": (line_registers, "words"),
}


def filler_sentences(text: str) -> list[str]:
    """Cheap sentence split for fillers (no NLTK download offline)."""
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split())) if 20 <= len(s.strip()) <= 300]


def word_list(texts: Sequence[str], limit: int = 3000) -> list[str]:
    """Common lowercase words of the corpus, in a deterministic order, for line names."""
    counts: dict[str, int] = {}
    for text in texts:
        for w in re.findall(r"[a-z]{4,10}", text):
            counts[w] = counts.get(w, 0) + 1
    return sorted(counts, key=lambda w: (-counts[w], w))[:limit]
