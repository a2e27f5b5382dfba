"""Per-step cost of CREAM vs plain fine-tuning at the same window, and vs full-length training at L.

One process, one model, interleaved rounds (each round times every method once) so machine noise
hits all methods alike; reported as ratios of median step times. A step = building the batch
through the real data pipeline (`PositionSchemeDataset`) + forward + backward + AdamW step.

    python benchmarks/cream_step_cost.py [--model toy] [--target-length 2048] [--rounds 15]
Writes benchmarks/results/cream_step_cost.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, default_data_collator

from longwin.data.pool import build_pool
from longwin.methods.positions.dataset import PositionSchemeDataset
from longwin.models import load_model, model_path
from longwin.rope import native_window, scale_rope


def main() -> None:
    args = _arguments()
    torch.set_num_threads(args.threads)

    config = AutoConfig.from_pretrained(model_path(args.model))
    native = native_window(config)
    model, tok = load_model(args.model, config=scale_rope(config, "linear", args.target_length), dtype="float32")
    model.train()
    # (name, scheme, train window): CREAM and plain fine-tuning at N; full-length training at L
    methods = [("plain@N", "none", native), ("cream@N", "cream", native), ("full@L", "full", args.target_length)]
    pools = {n: build_pool("essays+kjv", tok, min_tokens=w, val_fraction=0.1, seed=0) for n, _, w in methods}
    data = {
        n: PositionSchemeDataset(pools[n], s, train_len=w, target_len=args.target_length, num_samples=10**6, seed=0)
        for n, s, w in methods
    }
    median = median_steps(model, data, args.batch, args.rounds)
    result = {
        "command": "python " + " ".join(sys.argv),
        "model": args.model,
        "native_window": native,
        "target_length": args.target_length,
        "batch": args.batch,
        "threads": args.threads,
        "rounds": args.rounds,
        "torch": torch.__version__,
        "median_step_seconds": median,
        "cream_overhead_vs_plain": median["cream@N"] / median["plain@N"] - 1,
        "full_length_vs_cream": median["full@L"] / median["cream@N"],
    }
    write(result, Path(args.out))


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="toy")
    parser.add_argument("--target-length", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results")
    return parser.parse_args()


def median_steps(model: Any, data: dict[str, PositionSchemeDataset], batch: int, rounds: int) -> dict[str, float]:
    """Median seconds of one step (batch building + forward + backward + AdamW) per method, over `rounds`
    interleaved rounds after two warm-up rounds."""
    optim = torch.optim.AdamW(model.parameters(), lr=1e-5)
    times: dict[str, list[float]] = {n: [] for n in data}
    for r in range(rounds + 2):
        for name in data:
            start = time.perf_counter()
            examples = default_data_collator([data[name][r * batch + i] for i in range(batch)])
            loss = model(**examples).loss
            loss.backward()
            optim.step()
            optim.zero_grad(set_to_none=True)
            if r >= 2:  # two warm-up rounds
                times[name].append(time.perf_counter() - start)
    return {n: statistics.median(t) for n, t in times.items()}


def write(result: dict[str, Any], out: Path) -> None:
    """cream_step_cost.json and .md in `out`; the Markdown is printed too."""
    median = result["median_step_seconds"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "cream_step_cost.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "cream_step_cost.md").write_text(
        f"# CREAM per-step cost\n\nCommand: `{result['command']}`\n\n"
        f"Model `{result['model']}` (native {result['native_window']}) → {result['target_length']}, "
        f"batch {result['batch']}, {result['threads']} thread(s), "
        f"median of {result['rounds']} interleaved rounds, torch {result['torch']}.\n\n"
        "| method | median step (s) |\n|---|---:|\n"
        + "".join(f"| {n} | {median[n]:.4f} |\n" for n in median)
        + f"\nCREAM overhead vs plain fine-tuning at N: {100 * result['cream_overhead_vs_plain']:+.2f}%\n"
        f"Full-length fine-tuning at L costs {result['full_length_vs_cream']:.1f}× a CREAM step.\n"
    )
    print((out / "cream_step_cost.md").read_text())


if __name__ == "__main__":
    main()
