"""SmolLM2-135M, 8K -> 16K on this CPU: CREAM and its baselines at one budget, with retention rows.

Every model is evaluated on the same held-out text and prompts:

- perplexity (`last-k`: loss on the last 1,024 tokens of a window of 2K, 8K or 16K tokens) on the first
  16K tokens of each of the longest held-out documents (documents never trained on);
- passkey by depth at 2K, 8K and 16K (the format appears nowhere in the training text).

Methods (same data, steps, learning rate and seed for every fine-tuned one; natural text only):
the base; training-free PI (linear), NTK, dynamic NTK, YaRN and revised YaRN; CREAM and PoSE with YaRN
and with linear interpolation; contiguous fine-tuning (`scheme none`) with PI and with YaRN. Fine-tuning
runs at 1,024 tokens a window (the CPU budget), positions spanning 16,384 (CREAM, PoSE).

The work is a list of stages in priority order. Each stage is resumable on its own (an evaluation reuses
its finished cells, a training resumes from its newest complete checkpoint) and skipped once done, so
rerunning the script continues where it stopped. Raw evaluation records go to
benchmarks/results/smollm2/<model>/ (commit them as they finish); models go under --work.

    python experiments/smollm2_study.py                 # every stage, in order (many hours on 2 cores)
    python experiments/smollm2_study.py --stages ppl:base,ppl:yarn-free
    python experiments/smollm2_study.py --list          # stages and whether each is done
    python experiments/smollm2_study.py --report        # docs/results-smollm2.md from the records
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "smollm2"
MODEL = "smollm2-135m"
NATIVE, TARGET = 8192, 16384
DATA = "austen+kjv+pydoc+essays"
PPL_DOCS = 4  # held-out documents scored at every length
LENGTHS = [2048, 8192, 16384]
TRAIN = {  # one budget for every fine-tuned method (recipe: smollm2-135m-16k-cpu)
    "config": "smollm2-135m-16k-cpu",
}
# name -> how the model is made: ("free", rope) rescales the base's RoPE without training;
# ("train", scheme, rope) fine-tunes it with the recipe; ("base",) is the model as shipped
METHODS: dict[str, tuple[str, ...]] = {
    "base": ("base",),
    "yarn-free": ("free", "yarn"),
    "cream-yarn": ("train", "cream", "yarn"),
    "pose-yarn": ("train", "pose", "yarn"),
    "linear-free": ("free", "linear"),
    "ntk-free": ("free", "ntk"),
    "dynamic-free": ("free", "dynamic"),
    "revised-yarn-free": ("free", "revised-yarn"),
    "cream-linear": ("train", "cream", "linear"),
    "pose-linear": ("train", "pose", "linear"),
    "contiguous-yarn": ("train", "none", "yarn"),
    "contiguous-linear": ("train", "none", "linear"),
}
# stages in priority order: the perplexity rows first (cheap), then passkey for the main comparison
STAGES = ([f"ppl:{m}" for m in ["base", "yarn-free", "cream-yarn", "pose-yarn"]]
          + [f"passkey:{m}" for m in ["base", "yarn-free", "cream-yarn", "pose-yarn"]]
          + [f"ppl:{m}" for m in ["linear-free", "ntk-free", "dynamic-free", "revised-yarn-free", "cream-linear",
                                  "pose-linear", "contiguous-yarn", "contiguous-linear"]])
PASSKEY = ["--task", "passkey", "--samples", "2", "--depths", "0,25,50,75,100"]


def heldout_corpus(work: Path) -> Path:
    """The first 16K tokens of each of the PPL_DOCS longest held-out documents, one after another, so that
    sample i of the perplexity task is document i (the split is `longwin train`'s own, by document id)."""
    path = work / "heldout-ppl.jsonl"
    if path.is_file():
        return path
    from transformers import AutoTokenizer

    from longwin.data.corpora import load_documents, split_documents
    from longwin.models import model_path

    tokenizer = AutoTokenizer.from_pretrained(model_path(MODEL))
    _, held = split_documents(load_documents(DATA), 0.1, seed=0)
    rows = []
    for doc in sorted(held, key=lambda d: -len(d.text)):
        ids = tokenizer(doc.text, add_special_tokens=False)["input_ids"]
        if len(ids) >= TARGET:
            rows.append({"id": doc.id, "text": tokenizer.decode(ids[:TARGET])})
        if len(rows) == PPL_DOCS:
            break
    work.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run(argv: list[str]) -> None:
    print("+ longwin " + " ".join(argv), flush=True)
    subprocess.run([sys.executable, "-m", "longwin", *argv], check=True, cwd=ROOT)


def model_ref(name: str, work: Path) -> list[str]:
    """`longwin eval` flags that load method `name` (training it first when needed)."""
    kind = METHODS[name]
    if kind[0] == "base":
        return ["--model", MODEL]
    if kind[0] == "free":
        return ["--model", MODEL, "--rope", kind[1], "--target-length", str(TARGET)]
    folder = work / "models" / name
    if not (folder / "longwin_training.json").is_file():
        resume = ["--resume-from-checkpoint", "true"] if any(folder.glob("checkpoint-*")) else \
            ["--overwrite-output-dir", "true"]
        _run(["train", "--config", TRAIN["config"], "--scheme", kind[1], "--rope", kind[2], "--output-dir",
              str(folder), *resume])
    return ["--model", str(folder)]


def run_stage(stage: str, work: Path) -> None:
    task, name = stage.split(":")
    ref = model_ref(name, work)
    out = RESULTS / name / task
    common = ["--lengths", ",".join(map(str, LENGTHS)), "--dtype", "float32", "--attn-implementation", "sdpa",
              "--batch-size", "1", "--progress", "false", "--seed", "0"]
    if task == "ppl":
        args = ["--task", "ppl", "--corpus", str(heldout_corpus(work)), "--conventions", "last-k", "--last-k", "1024",
                "--samples", str(PPL_DOCS)]
    else:
        args = PASSKEY
    _run(["eval", *ref, *args, *common, "--out", str(out)])
    card = work / "models" / name / "longwin_training.json"
    if card.is_file():  # the training record beside the evaluation (losses, steps, time)
        keep = {k: v for k, v in json.loads(card.read_text()).items() if k not in ("extend_config",)}
        (RESULTS / name / "training.json").write_text(json.dumps(keep, indent=2, default=str) + "\n")


def done(stage: str) -> bool:
    task, name = stage.split(":")
    results = RESULTS / name / task / "results.json"
    if not results.is_file():
        return False
    summary = json.loads(results.read_text())["tasks"].get(task, {})
    expected = len(LENGTHS) * (PPL_DOCS if task == "ppl" else 10)
    return summary.get("cells") == expected


# ---------------------------------------------------------------------------------------------- report


def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson 95% interval of a proportion, in percent."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (100 * max(0.0, centre - half), 100 * min(1.0, centre + half))


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
    header = "| model | " + " | ".join(f"ppl @{n // 1024}K (docs: min–max)" for n in LENGTHS) + \
        " | 16K / 8K | 2K vs base | 8K vs base |"
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
        retention = [f"{100 * (by_length[n][0] / base[n][0] - 1):+.1f} %" if n in by_length and n in base else "–"
                     for n in (2048, NATIVE)]
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


def passkey_table() -> str:
    depths = [0.0, 25.0, 50.0, 75.0, 100.0]
    lines = ["| model | length | " + " | ".join(f"depth {d:.0f} %" for d in depths) + " | all (Wilson 95 %) |",
             "|" + "---|" * (len(depths) + 3)]
    for name in METHODS:
        rows = _rows(name, "passkey")
        for n in LENGTHS:
            at = [r for r in rows if r["length"] == n]
            if not at:
                continue
            cells = []
            for d in depths:
                hits = [r["score"] for r in at if float(r["position"]) == d]
                cells.append(f"{sum(hits):.0f}/{len(hits)}" if hits else "–")
            total = sum(r["score"] for r in at)
            low, high = wilson(total, len(at))
            lines.append(f"| {name} | {n // 1024}K | " + " | ".join(cells) +
                         f" | {100 * total / len(at):.0f} % ({low:.0f}–{high:.0f}) |")
    return "\n".join(lines)


def report() -> str:
    return (f"## Perplexity (held-out, last 1,024 tokens of each window; {PPL_DOCS} documents)\n\n{ppl_table()}\n\n"
            f"## Passkey by depth (2 samples per depth)\n\n{passkey_table()}\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="out/smollm2_study", help="models and the held-out text (not committed)")
    parser.add_argument("--stages", default="", help="comma-separated stages (default: all, in priority order)")
    parser.add_argument("--list", action="store_true", help="list the stages and whether each is done")
    parser.add_argument("--report", action="store_true", help="print the tables from the committed records")
    args = parser.parse_args()
    stages = [s for s in args.stages.split(",") if s] or STAGES
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(unknown)}; known: {', '.join(STAGES)}")
    if args.list:
        for stage in STAGES:
            print(f"{'done' if done(stage) else 'todo'}  {stage}")
        return 0
    if args.report:
        print(report())
        return 0
    work = Path(args.work)
    for stage in stages:
        if done(stage):
            print(f"= {stage}: done", flush=True)
            continue
        print(f"> {stage}", flush=True)
        run_stage(stage, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
