"""The SmolLM2 study's context-use section: key-token and rest-token perplexity from the `keyppl` records.

Plain perplexity cannot tell a model that uses 16K of context from one that adapted to the training
sources' style; key tokens (LongPPL) can. A token is key when its evaluator predicts it much better with the
whole window than with 4K of context (`longwin.models.key_tokens`, the paper's thresholds). An
evaluator's own key tokens favour it, so every comparison names whose key tokens it is on:

- the base, at 8K (inside its window): one set for every row, neutral, but few tokens at 8K;
- each of the two compared rows, on its own key tokens (LongCE's self-difference). A row that is better
  even on the other row's key tokens wins on ground chosen against it: that is the verdict's test.

Every comparison is a paired ratio of perplexities on the same tokens with a 95 % block-bootstrap interval
(blocks of 128 positions; no interval under 8 blocks). The blocks come from 3 documents, so the intervals
cover token-to-token noise, not the spread between documents.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from smollm2_plan import KEY_LENGTHS, NATIVE, RESULTS

from longwin.eval.compare_paired import Losses, fmt, matched, ppl_losses
from longwin.eval.paired import Interval, perplexity_ratio
from longwin.models.key_tokens import KeyTokenRule, key_tokens
from longwin.studies.records import read_cells

RULE = KeyTokenRule()  # LongPPL's alpha = 2 nats, beta = -2
FREE, CONTIGUOUS = "yarn-free", "contiguous-yarn"
TUNED = ["cream-yarn", "pose-yarn", CONTIGUOUS]
PAIRS = [(m, FREE) for m in TUNED] + [
    ("cream-yarn", "pose-yarn"),
    ("cream-yarn", CONTIGUOUS),
    ("pose-yarn", CONTIGUOUS),
]


def _losses(name: str, convention: str, length: int) -> Losses:
    return _read(RESULTS / name / "keyppl", convention, length)


@functools.cache
def _read(folder: Path, convention: str, length: int) -> Losses:
    """One record's decoded per-token losses, read once per report (every table and verdict reuses them)."""
    return ppl_losses(read_cells(folder), convention, length) if (folder / "cells.jsonl").is_file() else {}


def _mask(judge: str, length: int, samples: list[int]) -> list[torch.Tensor] | None:
    long, short = _losses(judge, "chunks", length), _losses(judge, "short", length)
    if not set(samples) <= set(long) & set(short):
        return None
    return [key_tokens(long[s][1], short[s][1], RULE) for s in samples]


def _ppl(losses: list[torch.Tensor]) -> float:
    joined = torch.cat(losses)
    return float(torch.exp(joined.double().mean())) if len(joined) else float("nan")


def compare(a: str, b: str, length: int, judge: str) -> tuple[Interval, Interval, int] | None:
    """(key-token ratio a/b, rest-token ratio a/b, key tokens) on the key tokens `judge` picks."""
    la, lb = _losses(a, "chunks", length), _losses(b, "chunks", length)
    samples = matched(la, lb) if la and lb else None
    masks = _mask(judge, length, samples) if samples else None
    if not samples or masks is None or not any(m.any() for m in masks):
        return None
    xa, xb = [la[s][1] for s in samples], [lb[s][1] for s in samples]
    key = perplexity_ratio(xa, xb, keep=masks)
    rest = perplexity_ratio(xa, xb, keep=[~m for m in masks])
    return key, rest, int(sum(int(m.sum()) for m in masks))


def judges(a: str, b: str, length: int) -> list[str]:
    """The base inside its window, then each compared row on its own key tokens (each favours its judge)."""
    return (["base"] if length <= NATIVE else []) + [a, b]


def self_rows() -> list[str]:
    """Each row judging itself: key tokens, key-token and rest-token perplexity (never compared)."""
    lines = [
        "| row | length | evaluator | key tokens | key-token ppl | rest-token ppl |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for name in ["base", FREE, *TUNED]:
        for length in KEY_LENGTHS:
            long = _losses(name, "chunks", length)
            masks = _mask(name, length, sorted(long)) if long else None
            if masks is None:
                continue
            kept = [long[s][1] for s in sorted(long)]
            key = _ppl([x[m] for x, m in zip(kept, masks)])
            rest = _ppl([x[~m] for x, m in zip(kept, masks)])
            count = sum(int(m.sum()) for m in masks)
            lines.append(f"| {name} | {length:,} | self | {count:,} | {key:.2f} | {rest:.2f} |")
    return lines


def pair_rows() -> list[str]:
    head = (
        "| compared | length | key tokens of | key tokens | key-token ppl ratio [95 %] | rest-token ppl ratio [95 %] |"
    )
    lines = [head, "|---|---:|---|---:|---:|---:|"]
    for a, b in PAIRS:
        for length in KEY_LENGTHS:
            for judge in judges(a, b, length):
                found = compare(a, b, length, judge)
                if found:
                    key, rest, count = found
                    cells = f"{count:,} | {fmt(key)} | {fmt(rest)}"
                    lines.append(f"| {a} / {b} | {length:,} | {judge} | {cells} |")
    return lines


def _direction(interval: Interval) -> str:
    if not interval.bounded:
        return "too few key tokens to tell"
    if interval.high < 1:
        return "lower"
    if interval.low > 1:
        return "higher"
    return "not measurably different"


def verdict() -> str:
    """Context use vs adaptation from the paired intervals alone, stated whichever way it comes out. The
    deciding figure for "a uses the far context better than b" is the key-token ratio on b's own key tokens
    (the evaluator that favours b), and for the converse on a's own."""
    lines = []
    for a, b in PAIRS:
        parts = []
        for length in KEY_LENGTHS:
            on_b, on_a = compare(a, b, length, b), compare(a, b, length, a)
            if not on_b or not on_a:
                continue
            if on_b[0].bounded and on_b[0].high < 1:
                key = f"{a} lower even on {b}'s own key tokens ({fmt(on_b[0])})"
            elif on_a[0].bounded and on_a[0].low > 1:
                key = f"{a} higher even on its own key tokens ({fmt(on_a[0])})"
            else:
                key = f"no measurable difference ({fmt(on_b[0])} on {b}'s, {fmt(on_a[0])} on {a}'s)"
            parts.append(f"at {length // 1024}K, key tokens: {key}; rest tokens {_direction(on_b[1])} ({fmt(on_b[1])})")
        if parts:
            lines.append(f"- **{a} against {b}:** " + "; ".join(parts) + ".")
    return "\n".join(lines) or "Not measured yet: the `keyppl` stages (`python experiments/smollm2_study.py --list`)."


def headline() -> str:
    """One sentence for the study's verdicts: the position layouts against contiguous fine-tuning and
    training-free YaRN at the target length, on the other row's key tokens."""
    length = max(KEY_LENGTHS)
    found = {(a, b): compare(a, b, length, b) for a, b in PAIRS if b in (FREE, CONTIGUOUS) and a != CONTIGUOUS}
    if not all(found.values()) or not found:
        return ""
    parts = [
        f"{a} / {b} {fmt(r[0])} on key tokens, {fmt(r[1])} on the rest" for (a, b), r in found.items() if r is not None
    ]
    layouts = [r for (a, b), r in found.items() if b == CONTIGUOUS and r is not None]
    key_better = all(r[0].bounded and r[0].high < 1 for r in layouts)
    rest_worse = all(r[1].bounded and r[1].low > 1 for r in layouts)
    if key_better and rest_worse:
        said = (
            "the position layouts use the far context measurably better than contiguous fine-tuning on the same "
            "text, which in turn fits the rest tokens (adaptation) better"
        )
    elif key_better:
        said = "the position layouts use the far context measurably better than contiguous fine-tuning"
    else:
        said = "key tokens do not separate the position layouts from contiguous fine-tuning either"
    return (
        f"Key tokens at {length // 1024}K (on the second row's own key tokens): "
        + "; ".join(parts)
        + f". So {said} (3 held-out documents of the training sources)."
    )


def key_token_section() -> str:
    if not any((RESULTS / n / "keyppl" / "cells.jsonl").is_file() for n in ["base", FREE, *TUNED]):
        return "Not measured yet: the `keyppl` stages (`python experiments/smollm2_study.py --list`)."
    return "\n".join(
        [
            "Each row judging itself (shown, not compared):",
            "",
            *self_rows(),
            "",
            "Paired comparisons (ratio of perplexities on the same tokens; below 1: the first row is better):",
            "",
            *pair_rows(),
            "",
            "Verdict per pair (lower / higher: the whole 95 % interval is below / above 1; a judge's own key"
            " tokens favour it, so a row that is lower on the other row's key tokens wins on ground chosen"
            " against it):",
            "",
            verdict(),
        ]
    )
