"""The 11 RULER tasks that need no download (docs/evaluation-tasks.md#ruler), generated here.

niah_* (8 needle variants over noise, essay or needle haystacks), vt (variable tracking), cwe
(common words) and fwe (frequent coded words), with RULER's templates and answer prefixes, scored
by string_match_all. Every generator takes a haystack size n; the largest n whose prompt fits the
length is used. Word keys come from the embedded word lists (RULER uses wonderwords') and CWE
tops up with made-up words beyond them. Reported: per-task and average scores per length and the
effective length (largest length whose average exceeds the threshold, 85.6 by default).
"""

from __future__ import annotations

import random
import string
from bisect import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from longwin.errors import LongwinError
from longwin.eval.haystack import load_texts, split_sentences
from longwin.eval.metrics import string_match_all
from longwin.eval.plots import save_lines
from longwin.eval.prompting import Parts, PromptFormatter, fit_largest
from longwin.eval.tasks.base import Cell, GenerationTask, Sample, average_series, means_by_length, rng_for
from longwin.eval.tasks.kv_retrieval import random_key
from longwin.eval.tasks.passkey import GARBAGE as NOISE
from longwin.eval.words import ADJECTIVES, NOUNS, all_words, pseudo_words

MAGIC_INTRO = (
    "Some special magic {type_v} are hidden within the following text. Make sure to memorize it. "
    "I will quiz you about the {type_v} afterwards.\n"
)
MAGIC_QUESTION = "\nWhat are all the special magic {type_v} for {query} mentioned in the provided text?"
MAGIC_PREFIX = " The special magic {type_v} for {query} mentioned in the provided text are"
MAGIC_NEEDLE = "One of the special magic {type_v} for {key} is: {value}."

VT_INTRO = "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n"
VT_QUESTION = "\nQuestion: Find all variables that are assigned the value {query} in the text above."
VT_PREFIX = (
    " Answer: According to the chain(s) of variable assignment in the text above, {num} variables are "
    "assigned the value {query}, they are: "
)

CWE_INTRO = (
    "Below is a numbered list of words. In these words, some appear more often than others. "
    "Memorize the ones that appear most often.\n"
)
CWE_QUESTION = "\nQuestion: What are the 10 most common words in the above list?"
CWE_PREFIX = " Answer: The top 10 words that appear most often in the list are:"

FWE_INTRO = (
    "Read the following coded text and track the frequency of each coded word. Find the three most "
    "frequently appeared coded words. "
)
FWE_QUESTION = (
    "\nQuestion: Do not provide any explanation. Please ignore the dots '....'. What are the three most "
    "frequently appeared words in the above coded text?"
)
FWE_PREFIX = " Answer: According to the coded text above, the three most frequently appeared words are:"


@dataclass(frozen=True)
class NiahSpec:
    haystack: str  # noise | essay | needle
    key_type: str  # words | uuids
    value_type: str  # numbers | uuids
    num_keys: int = 1
    num_values: int = 1
    num_queries: int = 1


NIAH: dict[str, NiahSpec] = {
    "niah_single_1": NiahSpec("noise", "words", "numbers"),
    "niah_single_2": NiahSpec("essay", "words", "numbers"),
    "niah_single_3": NiahSpec("essay", "words", "uuids"),
    "niah_multikey_1": NiahSpec("essay", "words", "numbers", num_keys=4),
    "niah_multikey_2": NiahSpec("needle", "words", "numbers"),
    "niah_multikey_3": NiahSpec("needle", "uuids", "uuids"),
    "niah_multivalue": NiahSpec("essay", "words", "numbers", num_values=4),
    "niah_multiquery": NiahSpec("essay", "words", "numbers", num_keys=4, num_queries=4),
}
NEW_TOKENS = {**{name: 128 for name in NIAH}, "vt": 30, "cwe": 120, "fwe": 50}
SUBTASKS = tuple(NEW_TOKENS)

# a generator maps a haystack size n to (prompt parts, gold strings)
Generator = Callable[[int], tuple[Parts, list[str]]]


def _draw(rng: random.Random, kind: str) -> str:
    if kind == "words":
        return f"{rng.choice(ADJECTIVES)}-{rng.choice(NOUNS)}"
    if kind == "numbers":
        return str(rng.randint(10**6, 10**7 - 1))
    return random_key(rng)


def _insert(units: list[str], items: Sequence[str], fractions: Sequence[float]) -> list[str]:
    """Insert items (in order) at the given fractions of the unit list."""
    out = list(units)
    for item, frac in sorted(zip(items, fractions), key=lambda p: p[1], reverse=True):
        out.insert(round(frac * len(units)), item)
    return out


def _join_query(keys: Sequence[str]) -> str:
    return ", ".join(keys[:-1]) + ", and " + keys[-1] if len(keys) > 1 else keys[0]


def niah_generator(spec: NiahSpec, rng: random.Random, sentences: list[str]) -> Generator:
    keys: list[str] = []
    while len(keys) < spec.num_keys:  # distinct keys
        key = _draw(rng, spec.key_type)
        if key not in keys:
            keys.append(key)
    values = [[_draw(rng, spec.value_type) for _ in range(spec.num_values)] for _ in keys]
    type_v = spec.value_type
    needles = [MAGIC_NEEDLE.format(type_v=type_v, key=k, value=v) for k, vs in zip(keys, values) for v in vs]
    rng.shuffle(needles)
    fractions = [rng.random() for _ in needles]
    queries = keys[: spec.num_queries]
    answers = [v for vs in values[: spec.num_queries] for v in vs]
    intro, question, prefix = MAGIC_INTRO, MAGIC_QUESTION, MAGIC_PREFIX
    if spec.num_queries * spec.num_values == 1:  # RULER's singular wording
        intro, question, prefix = (
            t.replace("Some", "A").replace("are all", "is").replace("are", "is") for t in (intro, question, prefix)
        )
        type_v = type_v[:-1]
    start = rng.randrange(len(sentences)) if sentences else 0
    distractor_rng = random.Random(rng.random())
    distractors: list[str] = []

    def haystack(n: int) -> tuple[list[str], str]:
        if spec.haystack == "noise":
            return [NOISE] * n, "\n"
        if spec.haystack == "essay":
            return [sentences[(start + i) % len(sentences)] for i in range(n)], " "
        while len(distractors) < n:  # a prefix of one seeded sequence, never a queried key
            key = _draw(distractor_rng, spec.key_type)
            if key not in keys:
                distractors.append(
                    MAGIC_NEEDLE.format(type_v=spec.value_type, key=key, value=_draw(distractor_rng, spec.value_type))
                )
        return distractors[:n], "\n"

    def generate(n: int) -> tuple[Parts, list[str]]:
        units, sep = haystack(n)
        context = sep.join(_insert(units, needles, fractions))
        query = _join_query(queries)
        return (
            Parts(
                intro.format(type_v=type_v) + context,
                question.format(type_v=type_v, query=query),
                prefix.format(type_v=type_v, query=query),
            ),
            answers,
        )

    return generate


def _vt_chain(rng: random.Random) -> tuple[list[str], list[str], str]:
    names: list[str] = []
    while len(names) < 5:  # one chain, four hops
        name = "".join(rng.choices(string.ascii_uppercase, k=5))
        if name not in names:
            names.append(name)
    value = str(rng.randint(10000, 99999))
    statements = [f"VAR {names[0]} = {value}"] + [f"VAR {names[i + 1]} = VAR {names[i]}" for i in range(4)]
    return names, statements, value


def _vt_text(statements: list[str], fractions: list[float], n: int) -> str:
    return "\n".join(_insert([NOISE] * n, statements, fractions))


def vt_generator(rng: random.Random) -> Generator:
    ex_names, ex_statements, ex_value = _vt_chain(rng)
    example = (
        VT_INTRO
        + _vt_text(ex_statements, sorted(rng.random() for _ in ex_statements), 5)
        + VT_QUESTION.format(query=ex_value)
        + VT_PREFIX.format(num=5, query=ex_value)
        + " ".join(ex_names)
    )
    names, statements, value = _vt_chain(rng)
    fractions = sorted(rng.random() for _ in statements)  # chain order kept

    def generate(n: int) -> tuple[Parts, list[str]]:
        context = example + "\n\n" + VT_INTRO + _vt_text(statements, fractions, n)
        return Parts(context, VT_QUESTION.format(query=value), VT_PREFIX.format(num=5, query=value)), names

    return generate


def _numbered(words: Sequence[str]) -> str:
    return " ".join(f"{i + 1}. {w}" for i, w in enumerate(words))


def cwe_generator(rng: random.Random, length: int, order_seed: tuple) -> Generator:
    freq_common, freq_rare = (30, 3) if length >= 4096 else (6, 1)
    pool = all_words()
    rng.shuffle(pool)
    example_words = pool[:20]
    example_list = example_words[:10] * 3 + example_words[10:]
    rng.shuffle(example_list)
    example = CWE_INTRO + _numbered(example_list) + CWE_QUESTION + CWE_PREFIX + " " + _numbered(example_words[:10])
    words = pool[20:]
    # every list item takes at least two tokens, so length // 2 distinct words always suffice
    words += pseudo_words(max(0, length // 2 + 10 - len(words)), rng, set(pool))
    common = words[:10]

    def generate(n: int) -> tuple[Parts, list[str]]:
        items = common * freq_common + words[10 : 10 + n] * freq_rare
        rng_for(*order_seed, n).shuffle(items)
        return Parts(example + "\n\n" + CWE_INTRO + _numbered(items), CWE_QUESTION, CWE_PREFIX), list(common)

    return generate


def fwe_generator(rng: random.Random, length: int) -> Generator:
    vocab_size = max(length // 50, 10)
    vocab: list[str] = []
    while len(vocab) < vocab_size:
        word = "".join(rng.choices(string.ascii_lowercase, k=6))
        if word not in vocab:
            vocab.append(word)
    vocab[0] = "..."  # the most frequent "word" is noise, as in RULER
    cum: list[float] = []
    for r in range(1, vocab_size + 1):  # Zipf(2) truncated to the vocabulary
        cum.append((cum[-1] if cum else 0.0) + r**-2.0)
    draws = [vocab[bisect(cum, rng.random() * cum[-1])] for _ in range(length)]
    rank = {w: i for i, w in enumerate(vocab)}

    def generate(n: int) -> tuple[Parts, list[str]]:
        text = draws[:n]
        counts: dict[str, int] = {}
        for w in text:
            if w != "...":
                counts[w] = counts.get(w, 0) + 1
        top = sorted(counts, key=lambda w: (-counts[w], rank[w]))[:3]
        return Parts(FWE_INTRO + " ".join(text), FWE_QUESTION, FWE_PREFIX), top

    return generate


class RulerTask(GenerationTask):
    name = "ruler"
    default_samples = 3

    def __init__(self, options, seed) -> None:
        super().__init__(options, seed)
        self.subtasks = list(dict.fromkeys(options.ruler_tasks)) or list(SUBTASKS)
        unknown = [t for t in self.subtasks if t not in NEW_TOKENS]
        if unknown:
            raise LongwinError(f"unknown RULER task(s) {', '.join(unknown)} (known: {', '.join(SUBTASKS)})")
        self.new_tokens = {t: options.max_new_tokens or NEW_TOKENS[t] for t in self.subtasks}
        self.max_new_tokens = max(self.new_tokens.values())
        self.threshold = options.threshold
        self.settings.update(
            subtasks=self.subtasks,
            new_tokens=self.new_tokens,
            max_new_tokens=self.max_new_tokens,
            haystack=options.haystack or "essays",
        )
        self._sentences: list[str] | None = None
        self._guess: dict[tuple[str, int], int] = {}

    def cells(self, lengths: Sequence[int]) -> list[Cell]:
        return [Cell(self.name, n, t, s) for n in lengths for t in self.subtasks for s in range(self.samples)]

    def _essay_sentences(self) -> list[str]:
        if self._sentences is None:
            self._sentences = split_sentences(load_texts(self.options.haystack, max_chars=4_000_000))
        return self._sentences

    def _generator(self, cell: Cell) -> Generator:
        rng = rng_for(self.seed, self.name, cell.position, cell.length, cell.sample)
        if cell.position in NIAH:
            spec = NIAH[cell.position]
            return niah_generator(spec, rng, self._essay_sentences() if spec.haystack == "essay" else [])
        if cell.position == "vt":
            return vt_generator(rng)
        if cell.position == "cwe":
            return cwe_generator(rng, cell.length, (self.seed, self.name, "cwe-order", cell.length, cell.sample))
        return fwe_generator(rng, cell.length)

    def build(self, cell: Cell, fmt: PromptFormatter) -> Sample:
        generate = self._generator(cell)
        guess_key = (cell.position, cell.length)
        limit = cell.length // 2 if cell.position == "cwe" else cell.length
        n = fit_largest(
            lambda k: fmt.count(generate(k)[0]),
            cell.length,
            what=f"RULER {cell.position}",
            guess=self._guess.get(guess_key, 8),
            limit=limit,
        )
        self._guess[guess_key] = n
        parts, answers = generate(n)
        return Sample(
            fmt.encode(parts),
            fmt.render(parts)[0],
            answers,
            self.new_tokens[cell.position],
            {"subtask": cell.position, "haystack_units": n},
        )

    def score(self, sample: Sample, output: str) -> dict[str, float]:
        return {"score": string_match_all(output, sample.answer)}

    def summarize(self, rows: list[dict]) -> dict[str, Any]:
        raw = {t: means_by_length([r for r in rows if r["position"] == t]) for t in self.subtasks}
        average = average_series([v for v in raw.values() if v])
        passing = [int(n) for n, score in average.items() if score > self.threshold]
        return {
            "metric": "string_match_all (%)",
            "higher_is_better": True,
            "series": {"average": average, **{t: {n: round(v, 2) for n, v in raw[t].items()} for t in raw}},
            "threshold": self.threshold,
            "effective_length": max(passing) if passing else None,
        }

    def plots(self, summary: dict[str, Any], rows: list[dict], out_dir: Path, window: int | None) -> list[str]:
        save_lines(
            out_dir / "ruler_scores.png",
            summary["series"],
            title="RULER (offline tasks)",
            bold="average",
            xlabel="Prompt length (tokens)",
            ylabel="Score (%)",
            vline=window,
            hline=self.threshold,
        )
        return ["ruler_scores.png"]
