"""The toy reproduction's report (docs/results.md) from its summary over seeds: the settings, the claims,
then per scale the tables of every task by length and depth, SharedLLM against full attention and truncation,
and the papers' numbers (`templates/toy_reproduction_papers.md`)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from toy_reproduction_claims import changed_claims, claims_section
from toy_reproduction_summary import (
    DEPTHS,
    FREE_METHODS,
    MIDDLE,
    POSITION_METHODS,
    RESULTS,
    ROOT,
    TASKS,
    Rows,
    lengths_for,
    middle,
    scales,
)

from longwin.eval.paired import effective_length
from longwin.training.config import load_yaml, resolve_recipe

PAPERS = ROOT / "experiments" / "templates" / "toy_reproduction_papers.md"
SHARED_ROWS = ["base", "truncation", "yarn", "sharedllm", "sharedllm-no-context"]


def cell(stats: dict[str, Any] | None, digits: int = 0) -> str:
    if not stats:
        return "–"
    return f"{stats['mean']:.{digits}f} ± {stats['sd']:.{digits}f}" if stats["n"] > 1 else f"{stats['mean']:.{digits}f}"


def table(
    rows: dict[str, dict[str, Any]], methods: list[str], keys: list[str], headers: list[str], digits: int = 0
) -> str:
    lines = ["| method | " + " | ".join(headers) + " |", "|---|" + "---:|" * len(headers)]
    for m in methods:
        if m in rows:
            lines.append(f"| {m} | " + " | ".join(cell(rows[m].get(k), digits) for k in keys) + " |")
    return "\n".join(lines)


def induction_note() -> str:
    """What the toy can copy at all (experiments/toy_induction_probe.py), which bounds every retrieval claim."""
    path = ROOT / "benchmarks" / "results" / "toy_induction" / "results.json"
    if not path.is_file():
        return ""
    repeats = json.loads(path.read_text())["repeats"]
    nat, rnd = repeats["natural, repeated after 80 tokens"], repeats["random tokens, repeated at once"]
    figures = (
        f"top-1 {nat['top1_first']} % first vs {nat['top1_second']} % second occurrence of natural text 80 "
        f"tokens apart; random tokens {rnd['top1_first']} % vs {rnd['top1_second']} %; "
        "`experiments/toy_induction_probe.py`, docs/toy-model.md"
    )
    if rnd["top1_second"] - rnd["top1_first"] >= 50:
        return (
            "The toy base copies by content: text it has seen is predicted far better the second time "
            f"({figures}), so retrieval rows below measure how well each method keeps that lookup alive "
            "beyond the native window.\n"
        )
    return (
        "Read every retrieval row below with one fact in mind: the toy base has no content-based induction "
        f"heads. Text it has just seen is predicted no better the second time ({figures}). Its pass-key "
        "skill is tied to the template and to positions, so tasks that need lookup by content (UUID "
        "kv-retrieval, LongChat-Lines, reading keys from SharedLLM's trees) cannot show the papers' effects "
        "at this scale.\n"
    )


def sharedllm_trained_on() -> list[str]:
    """The evaluated tasks whose format the SharedLLM toy recipe's retrieval mix holds."""
    from longwin.studies.comparison import trained_on

    return trained_on({"extend_config": load_yaml(resolve_recipe("sharedllm-toy-2048"))}, [*TASKS, "lines"])


# where the copy task plants its span: the demo's held-out documents (`jobs.demo.evaluate_method`), text no toy
# model was trained on; records made before that planted it in the essays, training text of every toy model
HAYSTACK = "held-out documents"


def recipe_settings() -> dict[str, float]:
    """The toy recipe's learning rate and distillation weight, with which every toy method trains now."""
    recipe = load_yaml(resolve_recipe("cream-toy-2048"))
    return {
        "learning_rate": float(recipe["learning_rate"]),
        "distill_weight": float(recipe.get("positions", {}).get("distill_weight", 0.0)),
    }


def render(summary: dict[str, Any], args: argparse.Namespace, command: str) -> str:
    out = intro(args, command)
    out.append(induction_note())
    out += [claims_section(summary[scale], int(scale[1:])) for scale in scales(summary)]
    out.append(changed_claims(summary))
    for scale in scales(summary):
        out += scale_section(summary[scale], int(scale[1:]))
    out += retention_methods()
    out.append(PAPERS.read_text())
    return "\n".join(out) + "\n"


def retention_methods() -> list[str]:
    """The toy comparison of retention methods (EndPrompt, mixed context windows), quoted from its record."""
    record = ROOT / "benchmarks" / "results" / "toy_retention" / "report.md"
    if not record.is_file():
        return []
    return [
        "\n## Extension without forgetting: EndPrompt and mixed context windows (s = 8)\n",
        "From `benchmarks/results/toy_retention/` (`experiments/toy_retention.py`; its COMMAND.md gives the command): "
        "CREAM, PoSE and EndPrompt, each with and without mixed context windows (a quarter of the examples on "
        "the base's own RoPE and positions, `--native-fraction 0.25 --native-rope original`), at the demo's toy "
        "recipe (200 steps at 256 tokens, YaRN, positional self-distillation weight 100), beside training-free "
        "YaRN.\n",
        record.read_text(),
    ]


def intro(args: argparse.Namespace, command: str) -> list[str]:
    """What was run: the command, model, budget and data, and notes on what the record's settings mean."""
    weight = args.distill_weight
    distilled = f", positional self-distillation weight {weight:g}" if weight else ""
    data = (
        f"{args.retrieval_fraction:.0%} retrieval examples laid out on each method's own position ids "
        "(`longwin/data/retrieval_docs.py`), the rest natural text (essays + KJV). "
        if args.retrieval_fraction
        else "natural text only (essays + KJV; no example of any evaluated task). "
    )
    out = [
        "# Results at toy scale\n",
        f"Generated by `{command}` (`experiments/toy_reproduction.py`); raw numbers in "
        "`benchmarks/results/toy_reproduction/`. Every cell is mean ± sample standard deviation over the seeds "
        "(n = number of seeds, shown per section); each seed trains its own models and draws its own prompts "
        f"({args.samples} sample(s) per depth/position per seed).\n",
        f"Model: `{args.model}` (the built-in toy base: `docs/toy-model.md`, 2.2M parameters, "
        "4 layers, 256-token window). "
        f"Fine-tuned methods: {args.steps} steps × 8 windows of 256 tokens at the native window, "
        f"lr {args.learning_rate:g}{distilled}, " + data + "CREAM, PoSE and RandPos use "
        f"{args.rope} RoPE scaling; `pi` is linear PI with contiguous positions, `yarn` is YaRN with contiguous "
        "positions; `*-free` are the base with a rescaled RoPE and no training.\n",
    ]
    now = recipe_settings()
    if now != {"learning_rate": args.learning_rate, "distill_weight": weight}:
        out.append(
            "**This record predates the toy recipe's current settings** (lr "
            f"{now['learning_rate']:g}, positional self-distillation from the base: `docs/toy-model.md`, "
            "'Positional self-distillation keeps it'); rerun the command above to measure them.\n"
        )
    if getattr(args, "haystack", HAYSTACK) != HAYSTACK:
        out.append(
            f"**The copy rows of this record plant their span in the {args.haystack}**, training text of every toy "
            f"model; the harness now plants it in the {HAYSTACK} (issue #32): rerun the command above.\n"
        )
    if (RESULTS / "RERUN.md").is_file():
        out.append(
            "Reruns: `experiments/check_rerun.py` compares a rerun with the recorded cells value by value; "
            "the last check is in `benchmarks/results/toy_reproduction/RERUN.md`.\n"
        )
    if args.retrieval_fraction > 0:
        out.append(
            f"**Trained-on tasks.** {args.retrieval_fraction:.0%} of every fine-tuning batch were retrieval examples "
            "in the passkey, kv-retrieval and LongChat-Lines formats, so the fine-tuned rows of those tasks show "
            "what the models were taught, not an extended window. On natural text alone every position "
            "fine-tuned toy loses the content copying the base does, even inside its window, while training-free "
            "YaRN keeps it to 1,700 tokens (`docs/toy-model.md`, 'Why fine-tuning erases the toy's copying'); "
            "the demo (`longwin demo`) now trains on natural text only and says so per model.\n"
        )
    return out


def scale_section(rows: Rows, s: int) -> list[str]:
    """One scale's tables: every task by length, passkey and kv-retrieval by depth, inside the native window."""
    lens = [str(n) for n in lengths_for(s)]
    n_seeds = max((st["n"] for m in rows.values() for st in m.values()), default=0)
    methods = [m for m in ["base", *POSITION_METHODS, *FREE_METHODS] if m in rows]
    out = [f"\n## s = {s}: 256 → {256 * s} tokens ({n_seeds} seed(s))\n", "### Passkey accuracy (%) by prompt length\n"]
    out.append(table(rows, methods, [f"passkey/accuracy/{n}" for n in lens], lens))
    out.append(f"\n\n### Passkey accuracy (%) at {lens[-1]} tokens by depth\n")
    out.append(table(rows, methods, [f"passkey/at-longest/{d}" for d in DEPTHS], [f"{d}%" for d in DEPTHS]))
    out.append("\n\n### KV retrieval accuracy (%) by gold position (all lengths pooled)\n")
    out.append(table(rows, methods, [f"kv-retrieval/pos-all/{d}" for d in DEPTHS], [f"{d}%" for d in DEPTHS]))
    cream_mid, pose_mid = middle(rows, "cream", MIDDLE), middle(rows, "pose", MIDDLE)
    if cream_mid is not None and pose_mid is not None:
        out.append(f"\n\nMiddle positions (25–75 %): CREAM {cream_mid:.1f} vs PoSE {pose_mid:.1f}.")
    for title, task, series, digits in (
        ("KV retrieval accuracy (%) by prompt length", "kv-retrieval", "accuracy", 0),
        ("LongChat-Lines accuracy (%) by prompt length", "lines", "accuracy", 0),
        ("Content copy (% of a planted random-word span copied) by prompt length", "copy", "accuracy", 0),
        ("Perplexity (sliding window, held-out documents) by length", "ppl", "sliding", 1),
    ):
        out.append(f"\n\n### {title}\n")
        out.append(table(rows, methods, [f"{task}/{series}/{n}" for n in lens], lens, digits=digits))
    out += effective_section(rows, methods, lens)
    out.append("\n\n### Inside the native window (256 tokens): what extension must not cost\n")
    inside = ["passkey/accuracy/256", "kv-retrieval/accuracy/256", "copy/accuracy/256", "ppl/sliding/256"]
    out.append(table(rows, methods, inside, ["passkey", "kv-retrieval", "copy", "ppl (sliding)"], digits=1))
    if "sharedllm" in rows:
        out += shared_section(rows, lens)
    return out


def effective_section(rows: Rows, methods: list[str], lens: list[str]) -> list[str]:
    """Effective length per method and task (`longwin.eval.paired.effective_length`, on the means over seeds):
    the longest length up to which every length keeps 85 % of the base's score at 256 tokens (perplexity: at
    most 10 % above the base's)."""
    tasks = [("passkey", "accuracy", True), ("kv-retrieval", "accuracy", True), ("copy", "accuracy", True)]
    tasks.append(("ppl", "sliding", False))
    head = ["| method | " + " | ".join(t for t, _, _ in tasks) + " |", "|---|" + "---|" * len(tasks)]
    lines = []
    for method in methods:
        shown = []
        for task, series, higher in tasks:
            ref = rows.get("base", {}).get(f"{task}/{series}/{lens[0]}")
            mine = {int(n): st["mean"] for n in lens if (st := rows[method].get(f"{task}/{series}/{n}"))}
            found = effective_length(mine, ref["mean"], higher) if ref and mine and ref["mean"] > 0 else None
            shown.append(f"{found:,}" if found else "–")
        lines.append(f"| {method} | " + " | ".join(shown) + " |")
    return [
        "\n\n### Effective length (tokens)\n",
        "The longest length up to which every evaluated length keeps 85 % of the base's score at 256 tokens "
        "(perplexity: at most 10 % above the base's sliding-window perplexity at 256), on the means over "
        f"seeds; {lens[-1]} is the longest evaluated, – none (`longwin.eval.paired.effective_length`).\n",
        "\n".join(head + lines),
    ]


def shared_section(rows: Rows, lens: list[str]) -> list[str]:
    """SharedLLM beside full attention (fine-tuned YaRN) and truncation, by length."""
    shared = [m for m in SHARED_ROWS if m in rows]
    out = ["\n\n### SharedLLM vs full attention vs truncation\n"]
    taught = sharedllm_trained_on()
    if taught:
        out.append(
            f"**Trained-on tasks:** `sharedllm-toy-2048` trains on {', '.join(taught)} examples (its retrieval "
            "mix), so its rows for those tasks show a taught format, not reading from an extended window.\n"
        )
    out.append(
        "`yarn` (full attention over the whole prompt, fine-tuned YaRN), `truncation` (the base "
        "sees its last 256 tokens), `sharedllm` (256-token local window + context trees, trained "
        "with the same step budget by `sharedllm-toy-2048`), `sharedllm-no-context` (the same "
        "trained model fed only its last 256 tokens: what fine-tuning alone gives).\n"
    )
    for task, series, digits in (("ppl", "sliding", 1), ("passkey", "accuracy", 0), ("kv-retrieval", "accuracy", 0)):
        out.append(f"\n{task} ({series}):\n\n")
        out.append(table(rows, shared, [f"{task}/{series}/{n}" for n in lens], lens, digits))
        out.append("\n")
    out.append("\nTime and memory: `benchmarks/results/sharedllm_bench.md` (prefill, same toy, one run).\n")
    return out
