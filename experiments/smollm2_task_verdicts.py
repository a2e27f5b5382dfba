"""The SmolLM2 study's verdicts on the by-depth tasks: passkey and copy at the target, the key right before
the question, CREAM vs PoSE in the middle, and in-window retrieval against the base."""

from __future__ import annotations

from smollm2_plan import DEPTHS, GRID, MIDDLE, NATIVE, ROWS, TARGET, TASK_CELLS
from smollm2_records import cells, hits, word_share
from smollm2_temperature import cream_temperature_verdict, temperature_verdict

from longwin.studies.tables import at_length, share
from longwin.studies.verdicts import Bar, all_overlap, overlap

EVERY_DEPTH_BAR = Bar(0.9)  # share of pass keys found at the worst depth at the target
MIDDLE_CELLS = 6  # cells at depths 25-75 % a model needs before its middle is compared
NOT_MEASURED = (
    "- **CREAM vs PoSE in the middle of the context (CREAM's central claim): not measured yet** "
    "(stages `passkey:cream-yarn`, `passkey:pose-yarn`, `copy:*`). kv-retrieval cannot carry it at this "
    "size: inside its own window (2K tokens, 8-hex-digit keys) the base answers 0 of 3 "
    "(`benchmarks/results/smollm2/base/kv-retrieval-pilot/`)."
)


def task_verdicts() -> list[str]:
    """Passkey and copy at the target by depth, retention inside the window, and CREAM vs PoSE in the middle."""
    out = []
    for task in ("passkey", "copy"):
        out += [line for name in GRID if (line := depth_verdict(name, task))]
    # the rows copy-scored only on the essay haystack (training text), against the base on the same prompts
    out += [line for name in GRID if not cells(name, "copy") and (line := depth_verdict(name, "copy-essays"))]
    out += last_depth_verdict() + middle_verdicts()
    out += temperature_verdict() + cream_temperature_verdict() + in_window_verdict() + copy_retention_verdict()
    return out or [NOT_MEASURED]


def depth_verdict(name: str, task: str) -> str:
    """One model's task at the target (worst depth) and inside the window beside the base's; "" until measured."""
    rows = at_length(cells(name, task), TARGET)
    if len(rows) < TASK_CELLS:
        return ""
    by_depth = [[r["score"] for r in rows if float(r["position"]) == d] for d in DEPTHS]
    worst = min(sum(found) / max(1, len(found)) for found in by_depth)
    inside = [(hits(name, task, n), hits("base", task, n)) for n in (2048, NATIVE)]
    if task == "passkey":
        head = f"passkey at 16K:** {share(hits(name, task, TARGET))}, worst depth {100 * worst:.0f} % "
        head += f"({EVERY_DEPTH_BAR.meets(worst)} the {100 * EVERY_DEPTH_BAR.limit:.0f} %-at-every-depth bar)"
    else:
        where = " (essay haystack)" if task == "copy-essays" else ""
        head = f"copy at 16K{where}:** spans copied whole {share(hits(name, task, TARGET))}, "
        head += f"{word_share(name, TARGET, task):.0f} % of words, worst depth {100 * worst:.0f} % of words"
    if not inside[1][1][1]:
        return f"- **{name}, {head}."
    words = ""
    if task != "passkey":
        (mine2, mine8), (base2, base8) = ([word_share(m, n, task) for n in (2048, NATIVE)] for m in (name, "base"))
        words = f" (words copied: {mine2:.0f} / {mine8:.0f} % against {base2:.0f} / {base8:.0f} %)"
    return (
        f"- **{name}, {head}; inside the window {share(inside[0][0])} at 2K and {share(inside[1][0])} at 8K "
        f"against the base's {share(inside[0][1])} and {share(inside[1][1])}{words}."
    )


def chat_pilot_note() -> str:
    """What the base scores at depths 0 and 100 % at 8K with its chat template (a pilot beside the study)."""
    at8k = [r["score"] for r in at_length(cells("base", "passkey-chat-pilot"), NATIVE)]
    if not at8k:
        return ""
    return (
        f"; with the prompt inside its chat template the base still finds {sum(at8k):.0f} of {len(at8k)} keys "
        "at depths 0 and 100 % of 8K (`benchmarks/results/smollm2/base/passkey-chat-pilot/`)"
    )


def last_depth_verdict() -> list[str]:
    """The pass key in the sentence right before the question, over every model and length."""
    last = [r for name in ROWS for r in cells(name, "passkey") if float(r["position"]) == 100.0]
    if not last:
        return []
    inside = [r for r in last if r["length"] <= NATIVE]
    sample = next((" ".join(r["output"].split()) for r in last if not r["score"] and r.get("output")), "")
    return [
        f"- **Depth 100 % (the key in the sentence right before the question):** found in "
        f"{sum(r['score'] for r in last):.0f} of {len(last)} cells over every model and length, "
        f"{sum(r['score'] for r in inside):.0f} of {len(inside)} inside the native window"
        + (f"; a typical miss continues '{sample[:48]}'" if sample else "")
        + f". The {100 * EVERY_DEPTH_BAR.limit:.0f} %-at-every-depth bar includes a depth this 135M model misses "
        "without any extension" + chat_pilot_note() + "."
    ]


def middle_verdicts() -> list[str]:
    """CREAM vs PoSE at depths 25-75 % of the target (passkey and copy), then every extended model's pass keys."""
    out = []
    for task in ("passkey", "copy"):
        cream, pose = (hits(n, task, TARGET, MIDDLE) for n in ("cream-yarn", "pose-yarn"))
        if cream[1] < MIDDLE_CELLS or pose[1] < MIDDLE_CELLS:
            continue
        what = "passkey found" if task == "passkey" else "spans copied whole"
        out.append(
            f"- **CREAM vs PoSE in the middle (depths 25–75 %, 16K; {what}):** CREAM {share(cream)}, PoSE "
            f"{share(pose)}: "
            + (
                "the intervals overlap, so at this sample size the two cannot be told apart."
                if overlap(cream, pose)
                else f"{'CREAM' if cream[0] / cream[1] > pose[0] / pose[1] else 'PoSE'} ahead, intervals apart."
            )
        )
    middle = {n: hits(n, "passkey", TARGET, MIDDLE) for n in GRID}
    if all(total >= MIDDLE_CELLS for _, total in middle.values()):
        out.append(
            "- **Every model's pass keys in the middle (depths 25–75 %, 16K):** "
            + ", ".join(f"{n} {share(h)}" for n, h in middle.items())
            + (
                "; every interval overlaps every other, so none is measurably ahead."
                if all_overlap(list(middle.values()))
                else "; not every interval overlaps."
            )
        )
    return out


def copy_pair_verdict(names: list[str], reference: str, lengths: tuple[int, ...], what: str) -> list[str]:
    """Words copied by each of `names` against `reference` on the same prompts (the harness's paired score rows,
    `longwin.eval.compare_paired.score_rows`): the mean difference in points with its paired 95 % interval at
    each of `lengths` where both have every cell."""
    from longwin.eval.compare_paired import score_rows

    out = []
    for name in names:
        rows = score_rows([cells(reference, "copy"), cells(name, "copy")], [reference, name])
        parts = [
            f"{figure} points at {n // 1024}K"
            for _, n, _, figure in rows
            if n in lengths
            and not figure.startswith("different prompts")
            and hits(name, "copy", n)[1] == hits(reference, "copy", n)[1] == TASK_CELLS
        ]
        if parts:
            out.append(f"- **{name}, {what} (same prompts):** " + "; ".join(parts) + ".")
    return out


def copy_retention_verdict() -> list[str]:
    """Inside the window against the base, then at the target against training-free YaRN (the free bar)."""
    inside = copy_pair_verdict(list(GRID), "base", (2048, NATIVE), "words copied inside the window vs the base")
    trained = [n for n in GRID if ROWS[n].trained]
    return inside + copy_pair_verdict(trained, "yarn-free", (TARGET,), "words copied at 16K vs training-free YaRN")


def in_window_verdict() -> list[str]:
    """Which extended models find every pass key the base finds at 2K, inside its window."""
    at2k = {n: hits(n, "passkey", 2048) for n in ROWS}
    base = at2k.pop("base")
    measured = {n: found for n, found in at2k.items() if found[1]}
    if not base[1] or not measured:
        return []
    kept = [n for n, found in measured.items() if found == base]
    lost = [f"{n} ({found[0]:.0f}/{found[1]})" for n, found in measured.items() if found != base]
    return [
        f"- **In-window retrieval (passkey at 2K, every depth; the base {base[0]:.0f}/{base[1]}):** kept by "
        f"{', '.join(kept) or 'no extended model'}; lost by {', '.join(lost) or 'none'}."
    ]
