"""The SharedLLM study's verdicts, each against its acceptance bar (a named value): what the trees add to
perplexity, pass keys read from them, retention inside the base's and the local window, and prefill cost."""

from __future__ import annotations

from typing import Any

from smollm2_sharedllm_plan import PASSKEY, PPL_LENGTHS, STACKED, WITH_TREES, bench_rows, cells, mean, ppl

from longwin.studies.answers import first_number, wrong_numbers
from longwin.studies.tables import at_length, hits, share
from longwin.studies.verdicts import Bar, below

TREES_AT = 32768  # the length where the trees' perplexity verdicts are read
PASSKEY_BAR = Bar(0.8)  # share of pass keys read from the trees
SPEED_BAR = Bar(10.0)  # prefill at 16K, times faster than full attention
MEMORY_BAR = Bar(0.25, at_most=True)  # prefill memory at 16K, a share of full attention's
GROWTH_BAR = Bar(1.0, at_most=True)  # time per token at 128K over that at 32K: no faster than linear
RETAINED = ("sharedllm", "sharedllm-sft")  # rows with retention records
CEPE = "- **≈3x faster than an encoder-decoder (CEPE):** cannot tell; longwin has no CEPE baseline."


def verdicts() -> list[str]:
    out = [line for name in WITH_TREES for line in tree_verdicts(name)]
    out += [line for name in STACKED for line in passkey_verdicts(name)]
    out += [line for name in RETAINED for line in native_verdicts(name)]
    return out + local_verdicts() + bench_verdicts() + [CEPE]


def tree_verdicts(name: str) -> list[str]:
    """Perplexity with the trees against without them, as context grows, and against the truncated base."""
    mine, without, base = ppl(name), ppl(f"{name}-local"), ppl("base")
    if TREES_AT not in mine:
        return []
    out = []
    if TREES_AT in without:
        better = sum(a < b for a, b in zip(mine[TREES_AT], without[TREES_AT]))
        out.append(
            f"- **Trees help at 32K, {name} (acceptance: below the same model without them on every document):** "
            f"{better} of {len(mine[TREES_AT])} documents; mean {mean(mine[TREES_AT]):.2f} with trees vs "
            f"{mean(without[TREES_AT]):.2f} without" + second_token_set(name)
        )
    lengths = [n for n in PPL_LENGTHS if n in mine]
    trend = [f"{mean(mine[n]):.2f} at {n // 1024}K" for n in lengths]
    per_doc = list(zip(*(mine[n] for n in lengths)))  # each document's perplexity from the shortest length up
    falling = sum(all(b <= a for a, b in zip(doc, doc[1:])) for doc in per_doc)
    out.append(
        f"- **Perplexity keeps falling as context grows, {name} (paper: PG19 8.98 / 8.15 / 7.96 / 8.24 at 4K / "
        f"16K / 32K / 100K):** {', '.join(trend)}; never rising from one length to the next in {falling} of "
        f"{len(per_doc)} documents."
    )
    if PPL_LENGTHS[-1] in base:
        trunc, ours = mean(base[PPL_LENGTHS[-1]]), mean(mine[TREES_AT])
        wins = sum(t < m for t, m in zip(base[PPL_LENGTHS[-1]], mine[TREES_AT]))
        out.append(
            f"- **Against the base truncated to its own 8K window, {name} (the same scored tokens):** {trunc:.2f}, "
            f"against {ours:.2f} at 32K: truncation {'wins' if trunc < ours else 'loses'} (lower on {wins} of "
            f"{len(mine[TREES_AT])} documents). SharedLLM's self-attention sees its 1,024-token local window and the "
            "truncated base 7K tokens before the scored ones, so the trees would have to make up that gap."
        )
    return out


def second_token_set(name: str) -> str:
    """The trees' verdict at 32K on the other scored tokens of a run to 32K only, where one was recorded."""
    with_trees, without = ppl(name, "ppl-end32k").get(TREES_AT), ppl(f"{name}-local", "ppl-end32k").get(TREES_AT)
    if not with_trees or not without:
        return "."
    better = sum(a < b for a, b in zip(with_trees, without))
    return (
        f"; on other tokens (the last 1,024 of each novel's first 32K, a run to 32K only, `ppl-end32k/`) "
        f"{better} of {len(with_trees)}, {mean(with_trees):.2f} vs {mean(without):.2f}."
    )


def passkey_verdicts(name: str) -> list[str]:
    """Pass keys read from the trees at each length with a complete record, against PASSKEY_BAR."""
    lengths, depths, samples = PASSKEY["passkey"]
    out = []
    for n in lengths:
        found = hits(at_length(cells(name, "passkey"), n))
        if found[1] == samples * len(depths):
            out.append(
                f"- **Passkey from the trees at {n // 1024}K, {name} (acceptance ≥ {100 * PASSKEY_BAR.limit:.0f} %):** "
                f"{share(found)}, {PASSKEY_BAR.meets(found[0] / found[1])} the bar."
            )
    return out


def native_verdicts(name: str) -> list[str]:
    """Pass keys inside the base's own window beside the base's, and the key inside the local window at 2K."""
    rows, base_native = cells(name, "native"), cells("base", "native")
    pairs = []
    for n in PASSKEY["native"][0]:
        mine_n, base_n = hits(at_length(rows, n)), hits(at_length(base_native, n))
        if mine_n[1] and base_n[1]:
            pairs.append(f"{mine_n[0]:.0f}/{mine_n[1]} vs {base_n[0]:.0f}/{base_n[1]} at {n // 1024}K")
    out = []
    if pairs:
        out.append(f"- **Retention, passkey inside the base's window ({name} vs the base):** {'; '.join(pairs)}.")
    local = at_length(rows, 2048, (75.0,))  # the key in the local window
    if local:
        answered = sum(bool(first_number(r["output"])) for r in local)
        out.append(
            f"- **{name}, key in its own local window (2K, depth 75 %):** answers a number in {answered} of "
            f"{len(local)} cells, the right one in {sum(r['score'] for r in local):.0f}, a wrong number of the "
            f"key's length in {wrong_numbers(local)}: where the base copies the key, the trained stacked model "
            "gets digits wrong there (with 1K tokens of filler in its trees; the same model on 1K-token prompts: "
            "below)."
        )
    return out


def local_verdicts() -> list[str]:
    """The upper model alone (1,024-token prompts, no trees) against the base: in-window retention."""
    base = cells("base", "local")
    if not base:
        return []
    return [local_verdict(name, rows, base) for name in RETAINED if (rows := cells(name, "local"))]


def local_verdict(name: str, rows: list[dict[str, Any]], base: list[dict[str, Any]]) -> str:
    mine, theirs = hits(rows), hits(base)
    missed = sorted({r["position"] for r in rows if not r["score"]}, key=float)
    if below(mine, theirs):
        reading = (
            "The upper model alone lost what the base reads in the same window: the loss comes from training "
            "its layers, not from the trees."
        )
    else:
        where = f" (misses at depth {', '.join(missed)} %)" if missed else ""
        reading = f"The intervals overlap: no loss measurable at this sample size{where}."
    return (
        f"- **Retention inside the local window, no trees ({name} vs the base, 1K prompts):** "
        f"{share(mine)} vs {share(theirs)}; "
        f"{wrong_numbers(rows)} answers are a wrong number of the key's length. {reading}"
    )


def bench_verdicts() -> list[str]:
    """Prefill time and memory against full attention and streaming, and growth to 128K."""
    bench = {(r["method"], r["length"]): r for r in bench_rows()}
    full, ours = bench.get(("full", 16384)), bench.get(("sharedllm-bounded", 16384))
    out = []
    if full and ours:
        speed, memory = full["time_s"] / ours["time_s"], ours["prefill_mb"] / full["prefill_mb"]
        out.append(
            f"- **Prefill at 16K against full attention (acceptance ≥ {SPEED_BAR:g}x faster, ≤ 1/"
            f"{1 / MEMORY_BAR.limit:.0f} of its memory):** {speed:.1f}x faster, {100 * memory:.0f} % of its prefill "
            "memory."
        )
    stream, mine32 = bench.get(("streaming", 32768)), bench.get(("sharedllm-bounded", 32768))
    if stream and mine32:
        out.append(
            f"- **Against streaming at 32K (paper: ≈2x faster than Activation Beacon):** "
            f"{stream['time_s'] / mine32['time_s']:.1f}x."
        )
    long = bench.get(("sharedllm-bounded", 131072))
    if long and mine32:
        growth = (long["time_s"] / 131072) / (mine32["time_s"] / 32768)
        out.append(
            f"- **128K on this machine:** prefill {long['time_s']:.0f} s, peak RSS {long['peak_rss_mb']:,.0f} MB; "
            f"time per token at 128K is {growth:.2f}x that at 32K (acceptance: no faster than linear, "
            f"≤ {GROWTH_BAR:g})."
        )
    return out
