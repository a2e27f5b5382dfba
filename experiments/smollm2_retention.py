"""The retention methods on SmolLM2 (issue #35): EndPrompt, and mixed context windows under CREAM and EndPrompt,
beside CREAM-YaRN at the same recipe and budget. Judged on retention first (inside the base's window, against
the base), then on reach (at the target, against training-free YaRN), then mixed windows against the same scheme
without them. Every comparison is on the same prompts or tokens: paired 95 % intervals for copy and pass keys
(prompts) and for news perplexity (per-token losses); the in-domain `ppl` records of the references predate
per-token losses, so their changes are plain."""

from __future__ import annotations

from smollm2_domains import ood_change, ood_ratio
from smollm2_plan import NATIVE, RETENTION_ROWS, TARGET
from smollm2_records import cells, hits, ppl_by_length

from longwin.eval.compare_paired import fmt, prompt_difference, prompt_scores, same_prompts
from longwin.eval.paired import Interval
from longwin.studies.retention import change, signed
from longwin.studies.tables import share
from longwin.studies.verdicts import said

FREE = "yarn-free"
INSIDE = (2048, NATIVE)  # retention: lengths inside the base's window
METHODS = ["cream-yarn", *RETENTION_ROWS]
MIXED = {"cream-yarn-mixed": "cream-yarn", "endprompt-yarn-mixed": "endprompt-yarn"}  # mixed -> the same unmixed


def paired_score(name: str, other: str, task: str, length: int, depth: float | None = None) -> Interval | None:
    """`name`'s score minus `other`'s on the same prompts (points, paired 95 % interval; at one depth if given),
    or None unless both scored every one of the same prompts there."""
    mine, theirs = (prompt_scores(cells(row, task), task, length, depth) for row in (name, other))
    shared = same_prompts(mine, theirs)
    if not shared or len(shared) != len(mine) or len(shared) != len(theirs):
        return None
    return prompt_difference(mine, theirs, shared)


def _ppl_change(name: str, other: str, length: int) -> str:
    """In-domain perplexity change (plain) / news perplexity change (paired) of `name` against `other`."""
    mine, theirs = ppl_by_length(name), ppl_by_length(other)
    plain = signed(change(mine[length][0], theirs[length][0])) if length in mine and length in theirs else "–"
    return f"{plain} / {ood_change(name, other, length)}"


def _points(interval: Interval | None) -> str:
    return "–" if interval is None else fmt(interval, points=True)


def retention_table() -> str:
    """Per method: perplexity, the depth-100 % pass key and words copied inside the window against the base, then
    perplexity, pass keys and words copied at the target against training-free YaRN."""
    head = (
        "| model | ppl 2K vs base (in-domain / news, %) | ppl 8K vs base | key at depth 100 %, 2K | copy 2K vs base "
        "(points) | copy 8K vs base | ppl 16K vs yarn-free | passkey 16K | copy 16K vs yarn-free |"
    )
    lines = [head, "|---|" + "---:|" * 8]
    for name in ["base", FREE, *METHODS]:
        inside = [_ppl_change(name, "base", n) if name != "base" else "ref." for n in INSIDE]
        key = hits(name, "passkey", 2048, (100.0,))
        copied = [_points(paired_score(name, "base", "copy", n)) if name != "base" else "ref." for n in INSIDE]
        far = hits(name, "passkey", TARGET)
        ref = {FREE: "ref.", "base": "–"}  # the base fails at 16K (its copy there is not run)
        reach = [
            ref.get(name) or _ppl_change(name, FREE, TARGET),
            share(far) if far[1] else "–",
            ref.get(name) or _points(paired_score(name, FREE, "copy", TARGET)),
        ]
        cols = [*inside, f"{key[0]:.0f}/{key[1]}" if key[1] else "–", *copied, *reach]
        lines.append(f"| {name} | " + " | ".join(cols) + " |")
    return "\n".join(lines)


def _news_said(name: str, other: str, length: int) -> str:
    return said(ood_ratio(name, other, length), 1.0, lower_is_better=True)


def method_verdict(name: str) -> str:
    """One method: retention against the base at 2K and 8K, reach against training-free YaRN at 16K; '' until
    every record it reads is complete."""
    base_key, key = hits("base", "passkey", 2048, (100.0,)), hits(name, "passkey", 2048, (100.0,))
    copy_in = [paired_score(name, "base", "copy", n) for n in INSIDE]
    copy_far = paired_score(name, FREE, "copy", TARGET)
    news = [ood_ratio(name, "base", n) for n in INSIDE] + [ood_ratio(name, FREE, TARGET)]
    if not key[1] or any(x is None for x in [*copy_in, copy_far, *news]):
        return ""
    retention = [
        f"news perplexity {_news_said(name, 'base', 2048)} at 2K, {_news_said(name, 'base', NATIVE)} at 8K",
        f"the key right before the question at 2K {key[0]:.0f}/{key[1]} (the base {base_key[0]:.0f}/{base_key[1]})",
        f"words copied {said(copy_in[0], 0.0, False)} at 2K, {said(copy_in[1], 0.0, False)} at 8K",
    ]
    keys, free_keys = hits(name, "passkey", TARGET), hits(FREE, "passkey", TARGET)
    reach = [
        f"news perplexity {_news_said(name, FREE, TARGET)}",
        f"pass keys {share(keys)} against {share(free_keys)}",
        f"words copied {said(copy_far, 0.0, False)}",
    ]
    return (
        f"- **{name}:** retention (against the base inside its window): " + "; ".join(retention)
        + ". Reach (against training-free YaRN at 16K): " + "; ".join(reach) + "."
    )  # fmt: skip


def mixed_verdict(mixed: str, unmixed: str) -> str:
    """What mixed windows change against the same scheme without them, on the same tokens and prompts."""
    ratios = [ood_ratio(mixed, unmixed, n) for n in (*INSIDE, TARGET)]
    copies = [paired_score(mixed, unmixed, "copy", n) for n in (*INSIDE, TARGET)]
    keys = [hits(n, "passkey", 2048, (100.0,)) for n in (mixed, unmixed)]
    if any(x is None for x in [*ratios, *copies]) or not all(k[1] for k in keys):
        return ""
    at = ("2K", "8K", "16K")
    return (
        f"- **Mixed windows ({mixed} against {unmixed}):** news perplexity "
        + ", ".join(f"{said(r, 1.0, True)} at {n}" for r, n in zip(ratios, at))
        + "; words copied "
        + ", ".join(f"{said(c, 0.0, False)} at {n} ({_points(c)})" for c, n in zip(copies, at))
        + f"; the key right before the question at 2K {keys[0][0]:.0f}/{keys[0][1]} against {keys[1][0]:.0f}/"
        f"{keys[1][1]}."
    )


def retention_section() -> str:
    """The table and the verdicts, or what is not measured yet."""
    if not any(cells(m, "ppl") for m in RETENTION_ROWS):
        return (
            "Not measured yet: the stages `ppl:`, `passkey:`, `copy:` and `oodppl:` of "
            + ", ".join(f"`{m}`" for m in RETENTION_ROWS)
            + "."
        )
    verdicts = [v for v in [*(method_verdict(m) for m in METHODS), *(mixed_verdict(*p) for p in MIXED.items())] if v]
    return retention_table() + "\n\n" + ("\n".join(verdicts) or "Verdicts: not every record is complete yet.")
