"""The toy reproduction's claims: the papers' and the issue's toy targets, each checked against the means over
seeds at one scale, with its threshold a named value; and the claims of the record before the current recipe
beside today's."""

from __future__ import annotations

import json
import statistics
from typing import Any

from toy_reproduction_summary import (
    DEPTHS,
    MIDDLE,
    RESULTS,
    ROOT,
    Rows,
    lengths_for,
    mean,
    middle,
    paired,
    recorded_settings,
    scales,
)

from longwin.studies.verdicts import Bar, Claim, holds

PASSKEY_BAR = Bar(95.0)  # CREAM's passkey (%) in its worst cell, every depth and length up to the target
PPL_BAR = Bar(1.1, at_most=True)  # CREAM's perplexity at the target over the base's at 256
RANDPOS_WORKS = Bar(5.0)  # passkey (%) beyond the window under which RandPos "fails"
COPY_MARGIN = 10.0  # points of the span CREAM may copy below the base inside the window
SHAREDLLM_PASSKEY_BAR = Bar(50.0)  # SharedLLM's passkey (%) at its worst depth inside the trees
PREVIOUS = RESULTS / "before-distill"  # the record of the recipe before issue #17 (its summary and COMMAND.md)


def claims(rows: Rows, s: int) -> list[Claim]:
    """The papers' claims and the issue's toy targets, each checked against the means above."""
    top, lens = str(256 * s), [str(n) for n in lengths_for(s)]
    return (
        passkey_claims(rows, top, lens)
        + middle_claims(rows, top)
        + ppl_claims(rows, top)
        + beyond_claims(rows, top, lens)
        + copy_claims(rows, top)
        + sharedllm_claims(rows, top)
    )


def passkey_claims(rows: Rows, top: str, lens: list[str]) -> list[Claim]:
    depths = [mean(rows, "cream", f"passkey/at-longest/{d}") for d in DEPTHS]
    by_len = [mean(rows, "cream", f"passkey/accuracy/{n}") for n in lens]
    measured = [v for v in depths + by_len if v is not None]
    if len(measured) < len(depths + by_len):
        return []
    worst, shown = min(measured), " / ".join(f"{v:.0f}" for v in measured[len(depths) :])
    return [
        (
            f"Target: CREAM passkey ≥ {PASSKEY_BAR} % at every depth up to {top} tokens",
            f"{holds(PASSKEY_BAR.passed(worst))}: by length {shown} % at {' / '.join(lens)} tokens; worst cell "
            f"{worst:.0f} %.",
        )
    ]


def middle_claims(rows: Rows, top: str) -> list[Claim]:
    """CREAM against PoSE in the middle: kv-retrieval by gold position, and passkey at depth 50 %."""
    out = []
    cream_mid, pose_mid = middle(rows, "cream", MIDDLE), middle(rows, "pose", MIDDLE)
    if cream_mid is not None and pose_mid is not None:
        out.append(
            (
                "Paper: CREAM beats PoSE at middle positions of kv retrieval",
                f"{holds(cream_mid > pose_mid)}: {cream_mid:.1f} vs {pose_mid:.1f} % (gold at 25–75 %)"
                + (
                    " — both are 0: the toy cannot copy 36-character UUIDs even inside its window, so this "
                    "probe says nothing at this scale."
                    if cream_mid == pose_mid == 0
                    else "."
                ),
            )
        )
    cream_pk, pose_pk = (mean(rows, m, "passkey/at-longest/50") for m in ("cream", "pose"))
    if cream_pk is not None and pose_pk is not None:
        out.append(
            (f"Same claim on passkey at depth 50 % and {top} tokens", f"CREAM {cream_pk:.0f} vs PoSE {pose_pk:.0f} %.")
        )
    return out


def ppl_claims(rows: Rows, top: str) -> list[Claim]:
    cream_l, base_n = rows.get("cream", {}).get(f"ppl/sliding/{top}"), rows.get("base", {}).get("ppl/sliding/256")
    if not (cream_l and base_n and cream_l["n"] == base_n["n"]):
        return []
    ratios = [c / b for c, b in zip(cream_l["values"], base_n["values"])]
    ratio = statistics.fmean(ratios)
    return [
        (
            f"Target: CREAM perplexity at {top} within {100 * (PPL_BAR.limit - 1):.0f} % of the base's at 256",
            f"{holds(PPL_BAR.passed(ratio))}: {cream_l['mean']:.1f} vs {base_n['mean']:.1f}, ratio {ratio:.3f} "
            f"(per seed {min(ratios):.3f}–{max(ratios):.3f}; each seed holds out its own documents).",
        )
    ]


def averaged(rows: Rows, methods: tuple[str, ...], task: str, lens: list[str]) -> dict[str, float] | None:
    """Each method's mean of `task`'s accuracy over the lengths beyond the window, or None unless all have it."""
    values = {m: [mean(rows, m, f"{task}/accuracy/{n}") for n in lens[1:]] for m in methods}
    if any(v is None for series in values.values() for v in series):
        return None
    return {m: statistics.fmean(v for v in series if v is not None) for m, series in values.items()}


def beyond_claims(rows: Rows, top: str, lens: list[str]) -> list[Claim]:
    """Retrieval beyond the training window: CREAM against PoSE, RandPos, and LongChat-Lines."""
    out = []
    a = averaged(rows, ("cream", "pose", "randpos", "yarn"), "passkey", lens)
    if a is not None:
        out.append(
            (
                "Paper: CREAM retrieves better than PoSE beyond the training window",
                f"{holds(a['cream'] > a['pose'])}: passkey averaged over {lens[1]}–{top} tokens, CREAM "
                f"{a['cream']:.0f} %, PoSE {a['pose']:.0f} % (fine-tuned YaRN with contiguous positions: "
                f"{a['yarn']:.0f} %).",
            )
        )
        out.append(
            (
                "Paper: RandPos fails (0 on LongChat-Lines)",
                f"{holds(not RANDPOS_WORKS.passed(a['randpos']))}: RandPos passkey {a['randpos']:.0f} % over "
                f"{lens[1]}–{top} tokens.",
            )
        )
    lines = averaged(rows, ("cream", "pose", "randpos"), "lines", lens)
    if lines is not None:
        out.append(
            (
                "Paper: LongChat-Lines CREAM > PoSE (69.9 vs 54.0) and RandPos 0",
                f"ours, averaged over {lens[1]}–{top}: CREAM {lines['cream']:.1f}, PoSE {lines['pose']:.1f}, RandPos "
                f"{lines['randpos']:.1f}"
                + (
                    " — all 0: the toy cannot do this task (its prompt is longer than its window), so this "
                    "probe says nothing at this scale."
                    if not any(lines.values())
                    else "."
                ),
            )
        )
    return out


def copy_claims(rows: Rows, top: str) -> list[Claim]:
    """Content copy (a task no recipe trains on): inside the window against the base, beyond it against YaRN."""
    out = []
    base_in, cream_in = (mean(rows, m, "copy/accuracy/256") for m in ("base", "cream"))
    cream_far, free_far = (mean(rows, m, f"copy/accuracy/{top}") for m in ("cream", "yarn-free"))
    if base_in is not None and cream_in is not None:
        out.append(
            (
                f"Target: CREAM copies inside the window within {COPY_MARGIN:.0f} points of the base (a task no recipe "
                "trains on)",
                f"{holds(cream_in >= base_in - COPY_MARGIN)}: {cream_in:.1f} vs {base_in:.1f} % of the span copied at "
                "256 tokens.",
            )
        )
    if cream_far is not None and free_far is not None:
        out.append(
            (
                f"Target: CREAM copies at {top} tokens better than training-free YaRN",
                f"{holds(cream_far > free_far)}: {cream_far:.1f} vs {free_far:.1f} %.",
            )
        )
    return out


def sharedllm_claims(rows: Rows, top: str) -> list[Claim]:
    """SharedLLM against the truncated base (paired by seed), and pass keys read from its trees."""
    key = f"ppl/sliding/{top}"
    gain = paired(rows, "truncation", "sharedllm", key)  # per seed: truncated base minus SharedLLM
    trees = paired(rows, "sharedllm-no-context", "sharedllm", key)
    if not gain:
        return []
    wins = sum(d > 0 for d in gain)
    trees_note = (
        f"; the trees' own share (the same model without them, minus with them): {statistics.fmean(trees):+.2f}."
        if trees
        else "."
    )
    out = [
        (
            f"Target: SharedLLM perplexity at {top} below the truncated base",
            f"{holds(wins == len(gain))}: {mean(rows, 'sharedllm', key):.2f} vs {mean(rows, 'truncation', key):.2f}, "
            f"lower in {wins} of {len(gain)} seeds (paired difference {statistics.fmean(gain):+.2f}){trees_note}",
        )
    ]
    deep = [v for d in DEPTHS[:-1] if (v := mean(rows, "sharedllm", f"passkey/at-longest/{d}")) is not None]
    if len(deep) == len(DEPTHS) - 1:
        out.append(
            (
                "Target: SharedLLM retrieves pass keys in the compressed context",
                f"{holds(SHAREDLLM_PASSKEY_BAR.passed(min(deep)))}: {' / '.join(f'{v:.0f}' for v in deep)} % at depths "
                f"0 / 25 / 50 / 75 % of {top} tokens (depth 100 % lies in the local window).",
            )
        )
    return out


def claims_section(rows: Rows, s: int) -> str:
    """The claims at one scale as a report section, one bullet each."""
    items = "\n".join(f"- {claim} — {verdict}" for claim, verdict in claims(rows, s))
    return f"\n## Claims checked at s = {s} (means over seeds)\n\n{items}"


def changed_rows(previous: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    """One table row per claim both records check: before, now, and whether it changed."""
    rows = []
    for scale in scales(set(summary) & set(previous)):
        s = int(scale[1:])
        old, new = dict(claims(previous[scale], s)), dict(claims(summary[scale], s))
        for claim in new:
            if claim in old:
                mark = "same" if old[claim] == new[claim] else "**changed**"
                rows.append(f"| s = {s}: {claim} | {old[claim]} | {new[claim]} | {mark} |")
    return rows


def changed_claims(summary: dict[str, Any]) -> str:
    """Each claim under the recipe before issue #17 beside the same claim now, where the two records differ."""
    path = PREVIOUS / "summary.json"
    previous = json.loads(path.read_text()) if path.is_file() else summary
    if previous == summary:
        return ""
    before_settings = recorded_settings(PREVIOUS / "COMMAND.md")
    rows = changed_rows(previous, summary)
    if not rows:
        return ""
    return (
        "\n## What changed with the current toy recipe\n\n"
        f"Before (`{PREVIOUS.relative_to(ROOT)}/`): lr {before_settings.get('learning_rate', 3e-4):g}, "
        f"{before_settings.get('retrieval_fraction', 0.5):.0%} retrieval examples, no distillation. Now: the "
        "settings above."
        + (
            " Before, the fine-tuned models had been trained on passkey, kv-retrieval and LongChat-Lines examples, "
            "so their retrieval figures in the first column show a taught format, not an extended window."
            if before_settings.get("retrieval_fraction", 0.5) > 0
            else ""
        )
        + " SharedLLM trains with its own recipe (`sharedllm-toy-2048`), which the toy recipe's change did not touch;"
        " its rows moved with the code changes between the two records, among them the LM stage no longer steering"
        " its trees by the window's last token and the cross-attention's norm starting as its layer's input norm"
        " (both issue #19). Every claim of both records:\n\n"
        "| claim | before | now | |\n|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
