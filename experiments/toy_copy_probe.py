"""Does an extended toy still copy by content? Teacher-forced copy of random-token spans planted in real text.

Each row: BOS, held-out natural text, a span of `--span` random regular tokens, more natural text, the same
span again, cut to the setting's total length so that the repeat starts `distance` tokens after the first
occurrence starts. Score: top-1 accuracy of the model's next-token prediction on the repeat (all but its
first token, which nothing announces). The format is in no fine-tuning recipe of the demo. Settings:

    inside the window: 256 tokens, repeat 60 tokens after the span (both in the native window)
    far, near: 2,048 tokens, repeat 100 tokens after the span (local copy at far absolute positions)
    far, far: 2,048 tokens, repeat 1,700 tokens after the span (copy across the extended window)

    python experiments/toy_copy_probe.py --model toy --model toy:yarn:2048 --model out/demo/models/cream \\
        --out benchmarks/results/toy_copy_probe/base.json

A `--model` may be `REF` or `REF:ROPE:TARGET` (training-free RoPE scaling of REF).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

SETTINGS = {"in-window (256, 60 back)": (256, 60), "2048, 100 back": (2048, 100), "2048, 1700 back": (2048, 1700)}


def load(spec: str):
    from longwin.eval.loading import load_for_eval

    ref, _, rest = spec.partition(":")
    rope, _, target = rest.partition(":")
    model, tokenizer = load_for_eval(ref, device="cpu", rope=rope, target_length=int(target or 0))
    return model, tokenizer


def natural_ids(tokenizer, need: int) -> list[int]:
    """Held-out natural text of the toy's corpora (the split `longwin train` uses), tokenised."""
    from longwin.data.corpora import load_documents, split_documents

    _, held = split_documents(load_documents("essays+kjv"), 0.1, seed=0)
    ids: list[int] = []
    for doc in held:
        ids.extend(tokenizer(doc.text, add_special_tokens=False)["input_ids"])
        if len(ids) >= need:
            return ids
    raise SystemExit("not enough held-out text")


def rows(tokenizer, length: int, distance: int, span: int, count: int, seed: int) -> torch.Tensor:
    """`count` rows of `length` ids: BOS, text, span, text, span (repeat `distance` after the first start),
    the repeat ending the row."""
    from longwin.data.tokenizer import first_regular_id

    g = torch.Generator().manual_seed(seed)
    text = natural_ids(tokenizer, count * length)
    before = length - 1 - distance - span  # natural tokens before the first occurrence
    gap = distance - span
    if before < 0 or gap < 0:
        raise SystemExit(f"length {length} cannot hold a span of {span} repeated {distance} tokens later")
    out = []
    for i in range(count):
        spans = torch.randint(first_regular_id(tokenizer), len(tokenizer), (span,), generator=g).tolist()
        filler = text[i * length : (i + 1) * length]
        out.append([tokenizer.bos_token_id, *filler[:before], *spans, *filler[before : before + gap], *spans])
    return torch.tensor(out)


def copy_accuracy(model, ids: torch.Tensor, span: int) -> float:
    with torch.no_grad():
        logits = model(ids).logits[:, :-1]
    hits = logits.argmax(-1) == ids[:, 1:]
    return hits[:, -(span - 1) :].float().mean().item()


def probe(spec: str, span: int, count: int, seed: int) -> dict[str, float]:
    model, tokenizer = load(spec)
    return {
        name: round(copy_accuracy(model, rows(tokenizer, n, d, span, count, seed), span), 3)
        for name, (n, d) in SETTINGS.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="REF or REF:ROPE:TARGET (repeatable)")
    parser.add_argument("--span", type=int, default=20)
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", help="write the results as JSON here (and print a markdown table)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = {spec: probe(spec, args.span, args.rows, args.seed) for spec in args.model}
    print("| model | " + " | ".join(SETTINGS) + " |\n|---|" + "---:|" * len(SETTINGS))
    for spec, scores in results.items():
        print(f"| {spec} | " + " | ".join(f"{v:.2f}" for v in scores.values()) + " |")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        record = {
            "command": "python experiments/toy_copy_probe.py " + " ".join(sys.argv[1:]),
            "span": args.span,
            "rows": args.rows,
            "seed": args.seed,
            "results": results,
        }
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
