"""YaRN's attention temperature in the SmolLM2 study: its rows by logit scale (a table), with and without the
temperature (a verdict per pair and the trade), and CREAM-YaRN trained at each scale."""

from __future__ import annotations

from smollm2_plan import LENGTHS, NATIVE, ROWS, TARGET
from smollm2_records import cells, hits, last_key, logit_scale, ppl_by_length, word_share, yarn_rows

from longwin.studies.retention import change
from longwin.studies.tables import share

PAIRS = [("yarn-free", "yarn-af1-free"), ("cream-yarn", "cream-yarn-af1")]  # (with it, without it)
MIN_SCALES = 3  # CREAM-YaRN rows trained at distinct scales before the settings are compared


def copy_record(names: list[str]) -> str:
    """The copy record the rows `names` are compared on, both sides on the same prompts: the held-out haystack's
    once every one of them has it, else the earlier essay haystack's (training text), where they all began."""
    return "copy" if all(cells(n, "copy") for n in names) else "copy-essays"


def haystack_note(record: str) -> str:
    return "held-out haystack" if record == "copy" else "essay haystack"


def temperature_table() -> str:
    """YaRN's models side by side by the logit scale of their attention temperature: perplexity, the pass key
    right before the question at 2K (the in-window miss), pass keys at the target, and words copied."""
    header = (
        "| model | logit scale | "
        + " | ".join(f"ppl {n // 1024}K" for n in LENGTHS)
        + " | key at depth 100 %, 2K | passkey 16K | "
        + " | ".join(f"words copied {n // 1024}K" for n in LENGTHS)
        + " |"
    )
    lines = [header, "|---|" + "---:|" * (2 * len(LENGTHS) + 3)]
    names = ["base", *yarn_rows(("", "cream"))]
    record = copy_record([n for n in names if cells(n, "copy-essays")])
    for name in names:
        ppl = ppl_by_length(name)
        key, far = last_key(name), hits(name, "passkey", TARGET)
        copied = [f"{word_share(name, n, record):.0f} %" if hits(name, record, n)[1] else "–" for n in LENGTHS]
        scale = f"{logit_scale(ROWS[name]):.3f}" if ROWS[name].rope else "1 (no YaRN)"
        lines.append(
            f"| {name} | {scale} | "
            + " | ".join(f"{ppl[n][0]:.2f}" if n in ppl else "–" for n in LENGTHS)
            + (f" | {key[0]:.0f}/{key[1]}" if key[1] else " | –")
            + f" | {share(far) if far[1] else '–'} | "
            + " | ".join(copied)
            + " |"
        )
    return f"Words copied on the {haystack_note(record)}.\n\n" + "\n".join(lines)


def copy_shares(with_t: str, without_t: str) -> dict[int, tuple[float, float]]:
    """Length -> words copied (%) by the two models, or {} unless both have a copy record."""
    record = copy_record([with_t, without_t])
    if not all(cells(n, record) for n in (with_t, without_t)):
        return {}
    return {n: (word_share(with_t, n, record), word_share(without_t, n, record)) for n in LENGTHS}


def pair_verdict(with_t: str, without_t: str) -> str:
    """One pair with and without the temperature: keys at depth 100 % of 2K, at the target, perplexity, copy."""
    keys = {n: last_key(n) for n in (with_t, without_t)}
    ppl = {n: ppl_by_length(n) for n in (with_t, without_t)}
    base_key = last_key("base")
    ratios = ", ".join(f"{change(ppl[without_t][n][0], ppl[with_t][n][0]):+.1f} % at {n // 1024}K" for n in LENGTHS)
    far = {n: hits(n, "passkey", TARGET) for n in (with_t, without_t)}
    far_note = (
        f"; at 16K {share(far[with_t])} with it, {share(far[without_t])} without"
        if all(total for _, total in far.values())
        else ""
    )
    copied = copy_shares(with_t, without_t)
    copy_note = (
        f"; words copied ({haystack_note(copy_record([with_t, without_t]))}) with / without it "
        + "; ".join(f"{a:.0f} / {b:.0f} % at {n // 1024}K" for n, (a, b) in copied.items())
        if copied
        else ""
    )
    return (
        f"- **YaRN's attention temperature ({with_t} vs {without_t}, the factor at 1):** pass keys at depth "
        f"100 % of 2K {keys[with_t][0]:.0f}/{keys[with_t][1]} with it, {keys[without_t][0]:.0f}/"
        f"{keys[without_t][1]} without (the base {base_key[0]:.0f}/{base_key[1]}){far_note}; perplexity "
        f"without it {ratios} against with it{copy_note}."
    )


def temperature_verdict() -> list[str]:
    """YaRN with and without its attention temperature: the in-window pass key at depth 100 %, pass keys at the
    target, perplexity and (where recorded) words copied; then the trade, when every pair shows it."""
    out: list[str] = []
    trade, copies_more = True, []
    for with_t, without_t in PAIRS:
        keys = {n: last_key(n) for n in (with_t, without_t)}
        ppl = {n: ppl_by_length(n) for n in (with_t, without_t)}
        if not all(total for _, total in keys.values()) or not all(set(LENGTHS) <= set(p) for p in ppl.values()):
            continue
        out.append(pair_verdict(with_t, without_t))
        trade &= keys[with_t][0] < keys[without_t][0] and all(ppl[without_t][n][0] > ppl[with_t][n][0] for n in LENGTHS)
        copied = copy_shares(with_t, without_t)
        more = [f"{n // 1024}K" for n, (a, b) in copied.items() if a > b]
        if copied and more and all(a >= b for a, b in copied.values()):
            copies_more.append(
                f"{with_t} copies at least as many words as {without_t} at every length, more at {', '.join(more)}"
            )
    if out and trade:
        out.append(
            "- **So on this model YaRN's temperature is a trade, not a mistake:** with it, perplexity is lower at "
            "every length and the pass key right before the question, inside the window, is lost"
            + "".join(f"; {c}" for c in copies_more)
            + "."
        )
    return out


def cream_temperature_verdict() -> list[str]:
    """CREAM-YaRN trained at each logit scale: what each keeps, and the lowest 16K perplexity among the settings
    that keep the base's in-window key at depth 100 %."""
    names = yarn_rows(("cream",))
    ppl = {n: ppl_by_length(n) for n in names}
    keys = {n: last_key(n) for n in names}
    base_key = last_key("base")
    if len(names) < MIN_SCALES or not base_key[1] or not all(TARGET in ppl[n] and keys[n][1] for n in names):
        return []
    record = copy_record([*names, "base"])
    copied = {n: word_share(n, NATIVE, record) for n in names if hits(n, record, NATIVE)[1]}
    copy_note = (
        f"; words copied at 8K ({haystack_note(record)}) "
        + " / ".join(f"{copied[n]:.0f}" for n in names)
        + f" % (the base {word_share('base', NATIVE, record):.0f} %)"
        if len(copied) == len(names)
        else ""
    )
    kept = [n for n in names if keys[n] == base_key]
    best = min(names, key=lambda n: ppl[n][TARGET][0])
    if kept:
        best_kept = min(kept, key=lambda n: ppl[n][TARGET][0])
        cost = change(ppl[best_kept][TARGET][0], ppl[best][TARGET][0])
        scale = logit_scale(ROWS[best_kept])
        ending = (
            f"the lowest 16K perplexity that keeps the base's key is {best_kept}'s (x {scale:.3f}), "
            f"{cost:+.1f} % against the lowest of all ({best})"
        )
    else:
        ending = "none keeps the base's key"
    return [
        "- **CREAM-YaRN by logit scale ("
        + " / ".join(f"x {logit_scale(ROWS[n]):.3f}" for n in names)
        + f": {', '.join(names)}):** perplexity at 16K "
        + " / ".join(f"{ppl[n][TARGET][0]:.2f}" for n in names)
        + "; key at depth 100 % of 2K "
        + ", ".join(f"{keys[n][0]:.0f}/{keys[n][1]}" for n in names)
        + f" (the base {base_key[0]:.0f}/{base_key[1]}){copy_note}; {ending}."
    ]
