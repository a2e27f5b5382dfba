"""The SmolLM2 study's verdicts on perplexity: the base past its window, the training-free scalings, each
fine-tuned row against the bars, and what the position layouts add over contiguous fine-tuning."""

from __future__ import annotations

from smollm2_keytokens import headline
from smollm2_plan import LENGTHS, NATIVE, ROWS, TARGET
from smollm2_records import contiguous_twin, ppl_by_length
from smollm2_task_verdicts import task_verdicts

from longwin.studies.retention import change
from longwin.studies.verdicts import Bar

RATIO_BAR = Bar(1.15, at_most=True)  # perplexity at the target over perplexity at the native window
RETENTION_BAR = Bar(5.0, at_most=True)  # % perplexity a fine-tuned row may lose at 2K and 8K against the base
FREE_ROWS = ("yarn-free", "revised-yarn-free", "ntk-free", "dynamic-free", "linear-free")
# what a layout's gain over contiguous fine-tuning with the same RoPE would be, by RoPE
GAIN = {
    "yarn": "on plain perplexity; with YaRN, which extends the base without training, plain perplexity "
    "mixes context use with adaptation to the training sources (the held-out documents are other documents "
    "of the same corpora), and key tokens separate the two",
    "linear": "with PI, that is repairing part of the damage its compressed positions do inside the window",
}
CAVEAT = (
    "- **Caveat on every fine-tuned row:** the held-out documents are other documents of the same "
    "sources as the training text (KJV books, Python docs pages), so part of a fine-tuned model's "
    "gain at every length is adaptation to those sources. The contiguous fine-tuning row at the "
    "same budget (stage `ppl:contiguous-yarn`, not measured yet) separates the two."
)


def verdicts() -> list[str]:
    """Each claim with what the committed records say, or that they cannot tell yet."""
    out = base_verdicts() + [line for name in ROWS if (line := trained_verdict(name))]
    layouts = [layout_verdict(rope) for rope in ("yarn", "linear")]
    out += [line for line in layouts if line]
    if not any(layouts):
        out.append(CAVEAT)
    return out + task_verdicts()


def base_verdicts() -> list[str]:
    """The base past its window, training-free YaRN against it, and the training-free scalings ranked."""
    base, free = ppl_by_length("base"), ppl_by_length("yarn-free")
    out = []
    if {NATIVE, TARGET} <= set(base):
        out.append(
            f"- **The base fails past its 8K window: holds.** Perplexity {base[NATIVE][0]:.1f} at 8K, "
            f"{base[TARGET][0]:.0f} at 16K ({base[TARGET][0] / base[NATIVE][0]:.0f}x)."
        )
    if {NATIVE, TARGET, 2048} <= set(free) and {NATIVE, 2048} <= set(base):
        out.append(
            f"- **Training-free YaRN (the free baseline) already extends it to 16K at s = 2:** "
            f"{free[TARGET][0]:.2f} at 16K vs {free[NATIVE][0]:.2f} at 8K, at a cost of "
            f"{change(free[2048][0], base[2048][0]):+.1f} % at 2K and "
            f"{change(free[NATIVE][0], base[NATIVE][0]):+.1f} % at 8K against the base."
        )
    free_rows = {name: rows for name in FREE_ROWS if TARGET in (rows := ppl_by_length(name))}
    if len(free_rows) > 1:
        ranked = sorted(free_rows, key=lambda n: free_rows[n][TARGET][0])
        listed = ", ".join(f"{n} {free_rows[n][TARGET][0]:.2f}" for n in ranked)
        out.append(
            f"- **Training-free scalings at 16K (lowest first; the bar a fine-tuned method must clear is the "
            f"lowest):** {listed}."
        )
    return out


def trained_verdict(name: str) -> str:
    """A fine-tuned row with a position layout against the bars, training-free YaRN and its contiguous twin."""
    row, base, free, mine = ROWS[name], ppl_by_length("base"), ppl_by_length("yarn-free"), ppl_by_length(name)
    if not row.trained or row.scheme == "none" or not ({NATIVE, TARGET, 2048} <= set(mine) and TARGET in free):
        return ""
    ratio = mine[TARGET][0] / mine[NATIVE][0]
    loss2, loss8 = (change(mine[n][0], base[n][0]) for n in (2048, NATIVE))
    retention = "within" if RETENTION_BAR.passed(max(loss2, loss8)) else "outside"
    same_rope = contiguous_twin(name)  # contiguous fine-tuning with the same interpolation
    contiguous = ppl_by_length(same_rope) if same_rope else {}
    versus = (
        f"; against contiguous fine-tuning on the same text and RoPE ({same_rope}) "
        f"{change(mine[TARGET][0], contiguous[TARGET][0]):+.1f} % at 16K"
        if TARGET in contiguous
        else f"; `{same_rope}` (contiguous fine-tuning with the same RoPE) not run yet"
        if same_rope
        else ""
    )
    return (
        f"- **{name}:** 16K / 8K perplexity {ratio:.3f} ({RATIO_BAR.meets(ratio)} the "
        f"{RATIO_BAR} bar); {loss2:+.1f} % at 2K and {loss8:+.1f} % at 8K against the base ({retention} the "
        f"{RETENTION_BAR} % retention bar); at 16K {mine[TARGET][0]:.2f} vs training-free YaRN's "
        f"{free[TARGET][0]:.2f}{versus}."
    )


def layout_verdict(rope: str) -> str:
    """What CREAM's and PoSE's position layouts add over contiguous fine-tuning with the same RoPE, at 16K:
    each one's pooled perplexity against the contiguous row's per-document range."""
    contiguous = ppl_by_length(f"contiguous-{rope}")
    if TARGET not in contiguous:
        return ""
    low, high = contiguous[TARGET][1]
    rows = {n: r[TARGET][0] for n in (f"cream-{rope}", f"pose-{rope}") if TARGET in (r := ppl_by_length(n))}
    inside = [n for n, v in rows.items() if low <= v <= high]
    compared = "; ".join(f"{n} {v:.2f} ({change(v, contiguous[TARGET][0]):+.1f} %)" for n, v in rows.items())
    if rows and len(inside) == len(rows):
        verdict = (
            f"every one within the contiguous row's per-document range at 16K ({low:.1f}–{high:.1f}), so at s = 2 "
            f"and this budget the layouts add nothing measurable beyond what fine-tuning on the same text with the "
            f"same RoPE gives ({GAIN[rope]})"
        )
    else:
        outside = ", ".join(n for n in rows if n not in inside)
        verdict = f"outside its per-document range at 16K ({low:.1f}–{high:.1f}): {outside}"
    key = f" {headline()}" if rope == "yarn" and headline() else ""
    return (
        f"- **Same text, contiguous positions (`contiguous-{rope}`):** "
        + ", ".join(f"{contiguous[n][0]:.2f} at {n // 1024}K" for n in LENGTHS if n in contiguous)
        + f". What CREAM or PoSE gain *beyond* this row is what their position layouts add. At 16K: {compared}; "
        + verdict
        + "."
        + key
    )
