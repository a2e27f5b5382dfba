"""The SmolLM2 study's report (docs/results-smollm2.md) from its records: tables, figures, and the sections
that quote other records (GPU runs, training speed); the prose is `templates/smollm2.md`."""

from __future__ import annotations

import json
import math

from smollm2_domains import domain_table, domain_verdict
from smollm2_keytokens import key_token_section
from smollm2_plan import DATA, DEPTHS, LENGTHS, NATIVE, PPL_DOCS, RESULTS, ROOT, ROWS, STAGES, TARGET, done
from smollm2_records import SUCCESS, cells, ppl_by_length
from smollm2_retention import retention_section
from smollm2_temperature import temperature_table
from smollm2_verdicts import verdicts

from longwin.studies.render import fill
from longwin.studies.retention import retention_cells
from longwin.studies.tables import depth_table, hit_count, mean_share, status_list

TEMPLATE = ROOT / "experiments" / "templates" / "smollm2.md"
PPL_PLOT = "ppl_vs_length.png"


def ppl_table() -> str:
    """Pooled perplexity by length (per-document range), 16K over 8K, and the change against the base."""
    header = (
        "| model | "
        + " | ".join(f"ppl @{n // 1024}K (docs: min–max)" for n in LENGTHS)
        + " | 16K / 8K | 2K vs base | 8K vs base |"
    )
    lines = [header, "|" + "---|" * (len(LENGTHS) + 4)]
    base = {n: v[0] for n, v in ppl_by_length("base").items()}
    for name in ROWS:
        by_length = ppl_by_length(name)
        if not by_length:
            continue
        shown = [
            f"{by_length[n][0]:.2f} ({by_length[n][1][0]:.1f}–{by_length[n][1][1]:.1f})" if n in by_length else "–"
            for n in LENGTHS
        ]
        ratio = by_length[TARGET][0] / by_length[NATIVE][0] if {TARGET, NATIVE} <= set(by_length) else math.nan
        retention = retention_cells({n: v[0] for n, v in by_length.items()}, base, [2048, NATIVE])
        lines.append(f"| {name} | " + " | ".join(shown) + f" | {ratio:.3f} | " + " | ".join(retention) + " |")
    return "\n".join(lines)


def task_table(task: str) -> str:
    """Per model and length: hits per depth (passkey) or mean words copied per depth (copy), then all cells
    (passkey with a Wilson 95 % interval; copy with the share of spans copied whole and its interval)."""
    shown, what = (hit_count, "") if task == "passkey" else (mean_share, " whole")
    records = {name: cells(name, task) for name in ROWS}
    return "\n".join(depth_table(records, LENGTHS, DEPTHS, shown, SUCCESS[task], what))


def retrained_note() -> str:
    """Models whose records come from more than one training run of the same recipe (a model folder lost and
    trained again): a retrain need not repeat the first bit for bit, so say which record saw which run."""
    notes = []
    for name in ROWS:
        cards = {
            task.name: json.loads((task / "training.json").read_text())
            for task in sorted((RESULTS / name).glob("*"))
            if (task / "training.json").is_file()
        }
        if len({round(c["final_loss"], 4) for c in cards.values()}) > 1:
            runs = ", ".join(
                f"{task}: final loss {c['final_loss']:.3f}, {c.get('loss', 'the model')} loss"
                for task, c in cards.items()
            )
            why = (
                "the chunked loss (`--chunked-loss`, the default since) sums the same terms in another order, and "
                "over 100 fp32 steps that moves the weights"
                if len({c.get("loss") for c in cards.values()}) > 1
                else "the same loss; fp32 training on a CPU, on another machine and library build, need not repeat "
                "bit for bit"
            )
            notes.append(f"`{name}` was trained twice with its recipe and seed ({runs}; {why})")
    return "- Retrained models: " + "; ".join(notes) + ".\n" if notes else ""


def speed_section() -> str:
    """The training-throughput benchmark's table, if it has been run (benchmarks/train_speed.py)."""
    record = ROOT / "benchmarks" / "results" / "train_speed.md"
    if not record.is_file():
        return "Not measured yet: `python benchmarks/train_speed.py` on an idle machine."
    body = record.read_text().split("\n", 2)[2].strip()  # without its title
    return (
        body + "\n\n(record: `benchmarks/results/train_speed.json`.) The chunked loss (`longwin.models.loss`, on by "
        "default for single-process training: `--chunked-loss`) computes the same loss and gradients without "
        "holding the 2K x 49K fp32 logits; activation checkpointing costs time here and is off. Each variant's "
        "first-step loss is identical, as it must be."
    )


def gpu_section() -> str:
    """The GPU runs' tables (`experiments/gpu_plan.py`, summarised by `experiments/smollm2_gpu_summary.py`)."""
    runs = sorted(p.parent for p in (ROOT / "benchmarks" / "results" / "smollm2_gpu").glob("*/summary.md"))
    if not runs:
        return "No GPU run recorded yet: `experiments/gpu_plan.py` (its header says how)."
    parts = []
    for run in runs:
        body = (run / "summary.md").read_text().split("\n", 3)[3].strip().replace("## ", "#### ")
        rel = run.relative_to(ROOT)
        parts.append(f"### `{rel.name}`\n\nWhat ran and what failed: `{rel}/README.md`.\n\n{body}")
    return "\n\n".join(parts)


def depth_series(task: str) -> dict[str, dict[str, float]]:
    """Row -> depth -> mean score (%) of a task at the target, for the rows that have it there."""
    series = {}
    for name in ROWS:
        at = [r for r in cells(name, task) if r["length"] == TARGET]
        if at:
            series[name] = {
                f"{d:.0f}": 100
                * sum(r["score"] for r in at if float(r["position"]) == d)
                / max(1, sum(1 for r in at if float(r["position"]) == d))
                for d in DEPTHS
            }
    return series


def plots() -> str:
    """Figures from the records (written beside them), as Markdown image lines."""
    from longwin.eval.plots import save_lines

    out = []
    ppl = {name: {str(n): v[0] for n, v in ppl_by_length(name).items()} for name in ROWS}
    ppl = {name: points for name, points in ppl.items() if points}
    if ppl:
        title = "SmolLM2-135M: held-out perplexity (last 1,024 tokens)"
        save_lines(
            RESULTS / PPL_PLOT, ppl, title=title, xlabel="window (tokens)", ylabel="perplexity", logy=True, vline=NATIVE
        )
        out.append(f"![perplexity vs length](../benchmarks/results/smollm2/{PPL_PLOT})")
    for task in ("passkey", "copy"):
        series = depth_series(task)
        if series:
            title = f"SmolLM2-135M: {task} at 16K by depth (2 samples a depth)"
            path = RESULTS / f"{task}_by_depth_16k.png"
            save_lines(path, series, title=title, xlabel="depth (%)", ylabel="score (%)", lengths_on_x=False)
            out.append(f"![{task} by depth at 16K](../benchmarks/results/smollm2/{path.name})")
    return "\n\n".join(out) or "No records yet."


def report() -> str:
    progress = (
        "every stage below is done."
        if all(done(s) for s in STAGES)
        else '**the study is in progress**: the stages below marked "to do" have no numbers yet.'
    )
    return fill(
        TEMPLATE,
        progress=progress,
        native=NATIVE,
        target=TARGET,
        data=DATA,
        ppl_docs=PPL_DOCS,
        retrained_note=retrained_note(),
        status=status_list(STAGES, done),
        ppl_table=ppl_table(),
        passkey_table=task_table("passkey"),
        copy_table=task_table("copy"),
        essay_copy_table=task_table("copy-essays"),
        temperature_table=temperature_table(),
        retention_section=retention_section(),
        key_token_section=key_token_section(),
        domain_table=domain_table(),
        domain_verdict=domain_verdict(),
        plots=plots(),
        verdicts="\n".join(verdicts()),
        gpu_section=gpu_section(),
        speed_section=speed_section(),
    )
