"""The SharedLLM study's report (docs/results-sharedllm.md) from its records: training, perplexity, passkey,
benchmark and probe tables; the prose is `templates/smollm2_sharedllm.md`."""

from __future__ import annotations

import json

from smollm2_sharedllm_plan import (
    PASSKEY,
    PPL_DOCS,
    PPL_LENGTHS,
    RESULTS,
    ROOT,
    ROWS,
    STACKED,
    STAGES,
    TRAININGS,
    bench_rows,
    cells,
    done,
    mean,
    ppl,
    training_card,
)
from smollm2_sharedllm_verdicts import verdicts

from longwin.studies.render import fill
from longwin.studies.tables import depth_table, status_list

TEMPLATE = ROOT / "experiments" / "templates" / "smollm2_sharedllm.md"
DISTILL = ROOT / "benchmarks" / "results" / "sharedllm_distill"  # the context-distillation pilots' records
PREFILL = ROOT / "benchmarks" / "results" / "sharedllm_prefill"  # the long read against the native window's forward
PROFILES = {  # profile record -> its column
    "before-unbounded": "before: every node of a length in one pass",
    "before": "before: 2,048 tokens a pass",
    "after-unbounded": "node encoder: every node of a length in one pass",
    "after": "node encoder: 2,048 tokens a pass",
}
STAGE_ORDER = ("query probe", "query-aware search", "lower node passes", "packing and planning", "upper model")
NOT_MEASURED = "Not measured yet."
RETENTION_ROWS = ("base", "sharedllm", "sharedllm-sft")


def ppl_table() -> str:
    names = [n for n in ROWS if ppl(n)]
    if not names:
        return NOT_MEASURED
    lines = [
        "| model | " + " | ".join(f"{n // 1024}K" for n in PPL_LENGTHS) + " |",
        "|---|" + "---|" * len(PPL_LENGTHS),
    ]
    for name in names:
        by = ppl(name)
        shown = [
            f"{sum(by[n]) / len(by[n]):.2f} ({min(by[n]):.1f}–{max(by[n]):.1f})" if n in by else "–"
            for n in PPL_LENGTHS
        ]
        lines.append(f"| {name} | " + " | ".join(shown) + " |")
    return "\n".join(lines)


def passkey_table(kind: str = "passkey", names: tuple[str, ...] = STACKED) -> str:
    """Hits by depth per model and length of the passkey records of one stage kind (a key of PASSKEY)."""
    lengths, depths, _ = PASSKEY[kind]
    lines = depth_table({name: cells(name, kind) for name in names}, lengths, depths)
    return "\n".join(lines) if len(lines) > 2 else NOT_MEASURED


def training_table() -> str:
    """Steps, tokens, wall time and loss of each training stage, from the training cards."""
    lines = ["| stage | recipe | steps | s / step (wall) | final loss | trainable parameters |"]
    lines.append("|---|---|---:|---:|---:|---:|")
    for stage, (recipe, _) in TRAININGS.items():
        card = training_card(stage)
        if card is None:
            continue
        steps, seconds = card["steps"], card["train_wall_seconds"]
        lines.append(
            f"| {stage} | `{recipe}` | {steps} | {seconds / steps:.1f} | {card['final_loss']:.3f} "
            f"| {card['trainable_parameters']:,} |"
        )
    return "\n".join(lines) if len(lines) > 2 else "Not trained yet."


def bench_table() -> str:
    rows = bench_rows()
    if not rows:
        return NOT_MEASURED
    lines = ["| method | tokens | prefill (s) | ms per 1K tokens | prefill memory (MB) | peak RSS (MB) |"]
    lines.append("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['length']:,} | {r['time_s']:.1f} | {1e6 * r['time_s'] / r['length']:.1f} "
            f"| {r['prefill_mb']:.0f} | {r['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def read_cost() -> str:
    """A long read against one full-attention forward over the native window: the benchmark's ratios (one run)
    and the profile's stages before and after the node-encoder change."""
    from longwin.studies.records import read_json

    lines: list[str] = []
    bench = read_json(PREFILL / "sharedllm_bench.json")
    if bench:
        length = bench["settings"]["full_reference_length"]
        ref = next(r for r in bench["results"] if r["method"] == "full" and r["length"] == length)
        lines += [f"`{bench['command']}`:", "",
                  f"| prefill | tokens | time (s) | full attention over {ref['length']:,} tokens (s) | ratio |",
                  "|---|---:|---:|---:|---:|"]  # fmt: skip
        for r in bench["ratios"]:
            ours = next(x for x in bench["results"] if x["method"] == r["sharedllm"] and x["length"] == r["length"])
            lines.append(f"| {r['sharedllm']} | {r['length']:,} | {ours['time_s']:.1f} | {ref['time_s']:.1f} "
                         f"| {r['reference_time_ratio']:.2f} |")  # fmt: skip
        lines.append("")
    found = {label: read_json(PREFILL / f"profile-{name}.json") for name, label in PROFILES.items()}
    profiles = {label: record for label, record in found.items() if record}
    if profiles:
        shown = list(profiles)
        lines += ["Where one read's time goes (`experiments/sharedllm_prefill_profile.py`, seconds, each column one "
                  "run on idle cores with its own full-attention forward; the node encoder computes only the "
                  "keys and values a node keeps, `docs/sharedllm.md`):", "",
                  "| stage | " + " | ".join(shown) + " |", "|---|" + "---:|" * len(shown)]  # fmt: skip
        for stage in (*STAGE_ORDER, "read total", "full attention"):
            values = [
                p["full attention seconds"] if stage == "full attention" else p["read stages seconds"][stage]
                for p in (profiles[name] for name in shown)
            ]
            lines.append(f"| {stage} | " + " | ".join(f"{v:.1f}" for v in values) + " |")
    return "\n".join(lines) if lines else NOT_MEASURED


READ_PROBES = {  # record -> what the model is
    "lm": "LM stage (the study's `sharedllm`)",
    "instruct": "instruction stage (`sharedllm-sft`)",
    "lm-xattn-lr1e-3": "LM stage + 60 LM steps, cross-attention only, lr 1e-3 (pilot)",
    "kv-xattn-lr1e-3": "LM stage + 80 kv-retrieval steps, cross-attention only, lr 1e-3 (pilot)",
    "lm-normfix": "LM stage retrained, cross-attention norm started as the layer's input norm (`sharedllm-normfix`)",
    "untrained-1": "untrained, o_proj = the self-attention's (`--untrained-scale 1`)",
    "untrained-0.5": "untrained, o_proj = 0.5 x the self-attention's (`--untrained-scale 0.5`)",
    "untrained-0.25": "untrained, o_proj = 0.25 x the self-attention's (`--untrained-scale 0.25`)",
}


def read_probe_table() -> str:
    """Loss with and without the trees where the context holds what the window needs (read-probe/*.json)."""
    lines = [
        "| model | cross-attn / self-attn output norm | repeated passage: loss with trees / without "
        "| kv answer: loss with / without | kv answer tokens right with / without |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, what in READ_PROBES.items():
        path = RESULTS / "read-probe" / f"{name}.json"
        if not path.is_file():
            continue
        rec = json.loads(path.read_text())
        ratio = mean([n["cross_o_proj"] / n["self_o_proj"] for n in rec["norms"]])
        rep, kv = rec["repeat"], rec["kv"]
        tokens = sum(r["tokens"] for r in kv)
        lines.append(
            f"| {what} | {100 * ratio:.1f} % "
            f"| {mean([r['trees'] for r in rep]):.3f} / {mean([r['no_trees'] for r in rep]):.3f} "
            f"| {mean([r['trees'] for r in kv]):.3f} / {mean([r['no_trees'] for r in kv]):.3f} "
            f"| {sum(r['hits'][0] for r in kv)} / {sum(r['hits'][1] for r in kv)} of {tokens} |"
        )
    return "\n".join(lines) if len(lines) > 2 else NOT_MEASURED


def tree_probe_summary(record: str = "tree-probe-sft") -> str:
    """The passkey tree probe's table (experiments/sharedllm_tree_probe.py) on the instruction-stage model."""
    path = RESULTS / record / "summary.md"
    if not path.is_file():
        return NOT_MEASURED
    return path.read_text().split("\n", 1)[1].strip()


def _reduction(m: dict, prefix: str) -> str:
    """A pilot's relative KL reduction by the trees, with its paired 95 % interval over examples."""
    low, high = m[f"{prefix}reduction_interval"]
    return f"{100 * m[f'{prefix}reduction']:+.2f} % [{100 * low:+.1f}, {100 * high:+.1f}]"


def distill_pilot() -> str:
    """The context-distillation pilots' KL with and without the trees (untrained, then after each pilot) and each
    stop-rule decision, one record per setting of what trains (pilot*.json)."""
    records = sorted(DISTILL.glob("pilot*.json"), key=lambda p: (p.name != "pilot.json", p.name))  # as they ran
    if not records:
        return NOT_MEASURED
    lines = [
        "| model | KL with trees | KL without | reduction [95 %] | plain KL with / without | plain reduction [95 %] |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for i, path in enumerate(records):
        rec = json.loads(path.read_text())
        trainable = rec.get("trainable", "cross_attn+top")
        rows = [("untrained", "untrained (o_proj = 0)")] if i == 0 else []
        for name, what in rows + [("trained", f"after the pilot, `{trainable}` trained")]:
            m = rec[name]
            lines.append(
                f"| {what} | {m['kl_with_trees']:.4f} | {m['kl_without_trees']:.4f} | {_reduction(m, '')} "
                f"| {m['plain_kl_with_trees']:.4f} / {m['plain_kl_without_trees']:.4f} | {_reduction(m, 'plain_')} |"
            )
        train, distill = rec["training"], rec["training"]["distill"]
        notes.append(
            f"- `{path.name}` (`{trainable}`): {rec['heldout_examples']} held-out examples; {train['steps']} steps "
            f"over {distill['examples']} examples ({train['train_runtime'] / train['steps']:.1f} s a step on cores "
            f"shared with other jobs; key tokens {100 * distill['key_token_share']:.1f} % of the training "
            f"predictions; final loss {train['final_loss']:.3f}). Without the trees the KL went from "
            f"{rec['untrained']['kl_without_trees']:.4f} (untrained) to {rec['trained']['kl_without_trees']:.4f}; "
            f"{sum(a < b for a, b in rec['trained']['examples'])} of {len(rec['trained']['examples'])} examples have "
            f"a lower KL with the trees. **Decision: {rec['decision']}** ({rec['stop_rule']})."
        )
    return "\n".join([*lines, "", *notes])


def report() -> str:
    return fill(
        TEMPLATE,
        lm_recipe=TRAININGS["lm"][0],
        instruct_recipe=TRAININGS["instruct"][0],
        normfix_recipe=TRAININGS["lm-normfix"][0],
        ppl_docs=PPL_DOCS,
        status=status_list(STAGES, done),
        training_table=training_table(),
        ppl_table=ppl_table(),
        passkey_table=passkey_table(),
        native_table=passkey_table("native", RETENTION_ROWS),
        local_table=passkey_table("local", RETENTION_ROWS),
        bench_table=bench_table(),
        read_cost=read_cost(),
        read_probe_table=read_probe_table(),
        tree_probe=tree_probe_summary(),
        tree_probe_p128=tree_probe_summary("tree-probe-sft-p128"),
        distill_pilot=distill_pilot(),
        verdicts="\n".join(verdicts()),
    )
