"""A comparison of evaluated rows from their run summaries (`longwin eval`'s results.json, one per row):
which tasks a row was trained on, what it keeps inside the native window against the base, and whether it
beats training-free YaRN at the longest length on the tasks it was not trained on."""

from __future__ import annotations

from typing import Any

Summary = dict[str, Any]  # one row's results.json

# training-example kinds (`longwin.data.retrieval_docs.KINDS`) -> the evaluation task they teach
TASK_OF_KIND = {
    "passkey_grass": "passkey",
    "passkey_text": "passkey",
    "kv": "kv-retrieval",
    "lines": "lines",
    "copy": "copy",
    "copy_random": "copy",
}
LOST_POINTS = 10.0  # an accuracy this many points below the base's inside the window is a loss
LOST_PPL = 1.05  # a perplexity above this multiple of the base's inside the window is a loss
FREE = "yarn-free"  # the training-free baseline a fine-tuned row must beat


def trained_on(card: dict[str, Any], tasks: list[str]) -> list[str]:
    """The evaluated tasks whose format the model's fine-tuning data held (from its training card)."""
    config = card.get("extend_config", {})
    if not config.get("retrieval_fraction"):
        return []
    return [t for t in tasks if t in {TASK_OF_KIND.get(k) for k in config.get("retrieval_kinds", [])}]


def headline(summary: Summary) -> dict[str, float]:
    """A task's first series (length -> value), as the tables show it."""
    return next(iter(summary["series"].values()))


def better(task: str, ours: float, theirs: float) -> bool:
    return ours < theirs if task == "ppl" else ours > theirs


def lost(task: str, ours: float, base: float) -> bool:
    """Whether a row lost a task inside the native window against the base (LOST_POINTS, LOST_PPL)."""
    return ours > LOST_PPL * base if task == "ppl" else ours < base - LOST_POINTS


def against(run: Summary, other: Summary | None, trained: list[str], length: int) -> list[tuple[str, float, float]]:
    """(task, ours, theirs) at one length, for every task both have that `run` was not trained on."""
    out = []
    for task, summary in run["tasks"].items():
        if task in trained or other is None or task not in other["tasks"]:
            continue
        mine, theirs = headline(summary).get(str(length)), headline(other["tasks"][task]).get(str(length))
        if mine is not None and theirs is not None:
            out.append((task, mine, theirs))
    return out


def shown(task: str, ours: float, theirs: float) -> str:
    return f"{task} {ours:.1f} vs {theirs:.1f}"


def verdicts(results: dict[str, Summary], marked: dict[str, list[str]], native: int, longest: int) -> list[str]:
    """Plain sentences: does each fine-tuned model beat training-free YaRN at the longest length on a task it
    was not trained on, and what did it lose inside the native window against the base?"""
    free, base = results.get(FREE), results.get("base")
    out = []
    for name, trained in marked.items():
        run = results.get(name)
        if run is None:
            continue
        versus = against(run, free, trained, longest)
        wins = [shown(*c) for c in versus if better(*c)]
        rest = [shown(*c) for c in versus if not better(*c)]
        losses = [shown(*c) for c in against(run, base, trained, native) if lost(*c)]
        if free:
            out.append(
                f"- `{name}` at {longest} tokens beats training-free YaRN on "
                + (", ".join(wins) if wins else "no task it was not trained on")
                + (f"; not on {', '.join(rest)}" if rest else "")
                + "."
            )
        if base:
            out.append(
                f"- `{name}` inside the native window ({native}) against the base: "
                + (
                    f"loses {', '.join(losses)} (more than {LOST_POINTS:.0f} points, or "
                    f"{100 * (LOST_PPL - 1):.0f} % perplexity)"
                    if losses
                    else "keeps every task"
                )
                + "."
            )
    return out


def retention_table(results: dict[str, Summary], native: int) -> str:
    """Inside the native window, every model beside the base: what extension must not cost."""
    rows = [
        (name, {task: headline(s).get(str(native)) for task, s in run["tasks"].items()})
        for name, run in results.items()
    ]
    header = list(rows[0][1])
    lines = ["| model | " + " | ".join(f"{t} @{native}" for t in header) + " |", "|---|" + "---:|" * len(header)]
    for name, values in rows:
        lines.append(
            f"| {name} | " + " | ".join("-" if values.get(t) is None else f"{values[t]:.2f}" for t in header) + " |"
        )
    return "\n".join(lines)
