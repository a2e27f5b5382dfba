"""The SmolLM2 study's retention by domain: each central row's perplexity on held-out documents of its
training sources (in-domain, the `ppl` records) and on news none of them cover (out-of-domain, `oodppl`),
against the base inside the window and against training-free YaRN at 16K.

Both records score the last 1,024 tokens of each window of 4 documents. The out-of-domain records keep their
per-token losses, so their changes carry paired 95 % block-bootstrap intervals; the in-domain `ppl` records
predate per-token losses (their changes are plain ratios), and the in-domain `ppl` records of `cream-yarn`
come from an earlier training run of the same recipe (the report's setup says which).
"""

from __future__ import annotations

from smollm2_plan import LENGTHS, NATIVE, OOD_ROWS, PPL_DOCS, RESULTS, TARGET
from smollm2_records import ppl_by_length

from longwin.eval.compare_paired import fmt, matched, ppl_losses
from longwin.eval.paired import Interval, perplexity_ratio
from longwin.studies.records import read_cells
from longwin.studies.retention import change, signed

FREE = "yarn-free"
DOMAINS = {"ppl": "in-domain", "oodppl": "out-of-domain"}


def ood_ratio(name: str, other: str, length: int) -> Interval | None:
    """`name`'s perplexity over `other`'s on the same out-of-domain tokens (paired 95 % interval), or None until
    both records hold every document at `length`."""
    mine = ppl_losses(read_cells(RESULTS / name / "oodppl"), "last-k", length)
    theirs = ppl_losses(read_cells(RESULTS / other / "oodppl"), "last-k", length)
    samples = matched(mine, theirs) if mine and theirs else None
    if not samples or len(samples) < PPL_DOCS:  # a record still running
        return None
    return perplexity_ratio([mine[s][1] for s in samples], [theirs[s][1] for s in samples])


def ood_change(name: str, other: str, length: int) -> str:
    """Paired perplexity ratio of `name` over `other` on the same out-of-domain tokens, as a % change."""
    ratio = ood_ratio(name, other, length)
    if ratio is None:
        return "–"
    if not ratio.bounded:
        return fmt(ratio)
    return f"{signed(change(ratio.value, 1))} [{change(ratio.low, 1):+.1f}, {change(ratio.high, 1):+.1f}]"


def _change(task: str, name: str, other: str, length: int) -> str:
    if name in (other, "base"):  # the base is the reference inside the window and fails at 16K
        return ""
    if task == "oodppl":
        return ood_change(name, other, length)
    mine, theirs = ppl_by_length(name, task), ppl_by_length(other, task)
    return signed(change(mine[length][0], theirs[length][0])) if length in mine and length in theirs else "–"


def domain_table() -> str:
    """Per row and domain: perplexity at each length, then its change against the base at 2K and 8K and
    against training-free YaRN at 16K."""
    head = "| model | text | " + " | ".join(f"ppl @{n // 1024}K" for n in LENGTHS)
    head += " | 2K vs base | 8K vs base | 16K vs yarn-free |"
    lines = [head, "|---|---|" + "---:|" * (len(LENGTHS) + 3)]
    for name in ["base", *(n for n in OOD_ROWS if n != "base")]:
        for task, domain in DOMAINS.items():
            values = ppl_by_length(name, task)
            if not values:
                continue
            shown = [f"{values[n][0]:.2f}" if n in values else "–" for n in LENGTHS]
            changes = [_change(task, name, "base", n) for n in (2048, NATIVE)] + [_change(task, name, FREE, TARGET)]
            lines.append(f"| {name} | {domain} | " + " | ".join(shown + changes) + " |")
    return "\n".join(lines)


def domain_verdict() -> str:
    """How much of each fine-tuned row's in-window gain over the base survives on text from another domain."""
    lines = []
    for name in [n for n in OOD_ROWS if n not in ("base", FREE)]:
        inside, outside = ppl_by_length(name, "ppl"), ppl_by_length(name, "oodppl")
        base_in, base_out = ppl_by_length("base", "ppl"), ppl_by_length("base", "oodppl")
        if not all(NATIVE in d for d in (inside, outside, base_in, base_out)):
            continue
        gain_in = change(inside[NATIVE][0], base_in[NATIVE][0])
        lines.append(
            f"- **{name}:** at 8K, {signed(gain_in)} against the base on the training sources' held-out documents, "
            f"{ood_change(name, 'base', NATIVE)} on news; at 16K against training-free YaRN, "
            f"{_change('ppl', name, FREE, TARGET)} in-domain and {ood_change(name, FREE, TARGET)} on news."
        )
    layouts = [n for n in ("cream-yarn", "pose-yarn") if n in OOD_ROWS]
    versus = [f"{n} {ood_change(n, 'contiguous-yarn', TARGET)}" for n in layouts]
    if lines and all("[" in v for v in versus):
        lines.append(
            "- **Position layouts against contiguous fine-tuning on news at 16K** (change in perplexity on the same "
            "tokens): " + "; ".join(versus) + ". Plain perplexity, not key tokens: the news windows are "
            "concatenated articles, and no key-token record scores them."
        )
    return "\n".join(lines) or "Not measured yet: the `oodppl` stages."
