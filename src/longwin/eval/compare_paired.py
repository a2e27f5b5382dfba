"""The paired part of `longwin eval --compare`: every run against the first one (the reference, usually the
base), on the same tokens and prompts only.

- perplexity ratio to the first run with a paired 95 % interval, per convention and length;
- key-token and rest-token perplexity (runs scored with the `short` convention beside `chunks`), under two
  evaluators: the first run, at lengths inside its native window (one set of key tokens for every run, so
  the ratios are paired), and each run judging itself (its own key tokens, LongCE's self-difference);
- paired score differences on the same prompts (points);
- effective length per run and task against the first run's in-window score.
A pair that did not score the same tokens or prompts says so instead of a figure.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from longwin.eval import paired
from longwin.eval.options import EvalOptions
from longwin.models.key_tokens import key_tokens

Losses = dict[int, tuple[str, torch.Tensor]]  # sample -> (tokens_sha, per-token losses)


def ppl_losses(cells: list[dict[str, Any]], convention: str, length: int) -> Losses:
    from longwin.eval.tasks.ppl import decode_losses

    return {
        c["sample"]: (c.get("tokens_sha", ""), decode_losses(c["token_nll"]))
        for c in cells
        if c["task"] == "ppl" and c["position"] == convention and c["length"] == length and "token_nll" in c
    }


def matched(a: Losses, b: Losses) -> list[int] | None:
    """The samples both runs scored, or None when any of them scored other tokens in one run."""
    shared = sorted(set(a) & set(b))
    if not shared or any(not a[s][0] or a[s][0] != b[s][0] for s in shared):
        return None
    return shared


def fmt(interval: paired.Interval, points: bool = False) -> str:
    if not interval.bounded:
        return f"{interval.value:.3f} [no interval: {interval.units} blocks]"
    if points:
        return f"{interval.value:+.1f} [{interval.low:+.1f}, {interval.high:+.1f}]"
    return f"{interval.value:.3f} [{interval.low:.3f}, {interval.high:.3f}]"


def ppl_ratio_rows(cells: list[list[dict]], names: list[str]) -> list[list[Any]]:
    """[convention, length, run, perplexity / the first run's, 95 % paired interval or why not paired]."""
    rows: list[list[Any]] = []
    keys = sorted({(c["position"], c["length"]) for c in cells[0] if c["task"] == "ppl" and "token_nll" in c})
    for convention, length in keys:
        ref = ppl_losses(cells[0], convention, length)
        for name, run in zip(names[1:], cells[1:]):
            other = ppl_losses(run, convention, length)
            shared = matched(ref, other) if other else None
            if other:
                text = "different tokens: not paired"
                if shared:
                    text = fmt(paired.perplexity_ratio([other[s][1] for s in shared], [ref[s][1] for s in shared]))
                rows.append([convention, length, name, text])
    return rows


def _perplexity(losses: list[torch.Tensor]) -> str:
    joined = torch.cat(losses) if losses else torch.empty(0)
    return f"{math.exp(float(joined.double().mean())):.2f}" if len(joined) else "–"


def _split_ratio(mine: list[torch.Tensor], ref: list[torch.Tensor], masks: list[torch.Tensor]) -> list[str]:
    """Paired ratios to the reference on the key tokens and on the rest."""
    out = []
    for pick in (masks, [~m for m in masks]):
        if not any(p.any() for p in pick):
            out.append("–")
            continue
        out.append(fmt(paired.perplexity_ratio(mine, ref, keep=pick)))
    return out


def key_token_rows(cells: list[list[dict]], names: list[str], window: int | None, rule: Any) -> list[list[Any]]:
    """[evaluator, length, run, key tokens, key-token ppl, rest ppl, key ratio, rest ratio] (see the docstring)."""
    rows: list[list[Any]] = []
    for length in sorted({c["length"] for c in cells[0] if c["task"] == "ppl" and c["position"] == "short"}):
        long = [ppl_losses(run, "chunks", length) for run in cells]
        short = [ppl_losses(run, "short", length) for run in cells]
        judges: list[int | None] = [None] + ([0] if window and length <= window else [])
        for judge in judges:
            for i, name in enumerate(names):
                e = i if judge is None else judge
                shared = matched(long[e], long[i]) if long[i] and short[e] else None
                if not shared or set(shared) - set(short[e]):
                    continue
                masks = [key_tokens(long[e][s][1], short[e][s][1], rule) for s in shared]
                mine = [long[i][s][1] for s in shared]
                row = [names[e] if judge is not None else "self", length, name, int(sum(int(m.sum()) for m in masks))]
                row += [
                    _perplexity([x[m] for x, m in zip(mine, masks)]),
                    _perplexity([x[~m] for x, m in zip(mine, masks)]),
                ]
                ref = [long[0][s][1] for s in shared]
                row += _split_ratio(mine, ref, masks) if judge is not None and i else ["", ""]
                rows.append(row)
    return rows


Scores = dict[str, tuple[str, float]]  # cell key -> (prompt_sha, score in points)


def prompt_scores(cells: list[dict[str, Any]], task: str, length: int, depth: float | None = None) -> Scores:
    """One run's scores (points) by cell key for `task` at `length` (one depth if given), with each prompt's hash."""
    return {
        c["key"]: (c["prompt_sha"], 100 * float(c["score"]))
        for c in cells
        if c["task"] == task and c["length"] == length and "score" in c and "prompt_sha" in c
        and (depth is None or float(c["position"]) == depth)
    }  # fmt: skip


def same_prompts(a: Scores, b: Scores) -> list[str] | None:
    """The cell keys both runs scored, or None when any of them held another prompt in one run."""
    shared = sorted(set(a) & set(b))
    return None if any(a[k][0] != b[k][0] for k in shared) else shared


def prompt_difference(a: Scores, b: Scores, keys: list[str]) -> paired.Interval:
    """a − b on the prompts `keys` (points, paired 95 % interval)."""
    return paired.score_difference([a[k][1] for k in keys], [b[k][1] for k in keys])


def score_rows(cells: list[list[dict]], names: list[str]) -> list[list[Any]]:
    """[task, length, run, score - the first run's on the same prompts (points) with a paired interval]."""

    def groups(run: list[dict]) -> set[tuple[str, int]]:
        return {(c["task"], c["length"]) for c in run if "score" in c and "prompt_sha" in c}

    ref = {group: prompt_scores(cells[0], *group) for group in groups(cells[0])}
    rows = []
    for name, run in zip(names[1:], cells[1:]):
        for task, length in sorted(groups(run)):
            mine, theirs = prompt_scores(run, task, length), ref.get((task, length), {})
            shared = same_prompts(mine, theirs)
            if shared is None:
                rows.append([task, length, name, "different prompts: not paired"])
            elif shared:
                rows.append([task, length, name, fmt(prompt_difference(mine, theirs, shared), points=True)])
    return rows


def effective_length_rows(runs: list[dict], names: list[str], options: EvalOptions) -> list[list[Any]]:
    """[task, series, run, effective length] against the first run's in-window score of the same series."""
    rows: list[list[Any]] = []
    window = runs[0].get("window")
    for task, summary in runs[0]["tasks"].items():
        for series, points in summary["series"].items():
            ref = paired.in_window_reference({int(n): v for n, v in points.items()}, window)
            if ref is None or series in ("effective_length", "short"):  # `short` is key tokens' helper series
                continue
            for name, run in zip(names, runs):
                mine = run["tasks"].get(task, {}).get("series", {}).get(series)
                if mine:
                    values = {int(n): float(v) for n, v in mine.items() if v is not None}
                    rule = summary["higher_is_better"]
                    found = paired.effective_length(values, ref, rule, options.keep_share, options.ppl_tolerance)
                    rows.append([task, series, name, found if found is not None else "below the bar at every length"])
    return rows
