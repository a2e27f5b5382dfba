"""Does an extended toy still copy by content? Teacher-forced copy of random-token spans planted in real text.

Each row: BOS, held-out natural text, a span of `--span` random regular tokens, more natural text, the same
span again, cut to the setting's total length so that the repeat starts `distance` tokens after the first
occurrence starts. Score: top-1 accuracy of the model's next-token prediction on the repeat (all but its
first token, which nothing announces); the record also keeps it per offset in the repeat, and the table gives in
brackets the accuracy on the repeat's 5th token (after 4 of it: where the harness's `copy` task, cued by 4
words, hands over to the model). The format is in no fine-tuning recipe of the demo. Settings:

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

CUE_TOKENS = 4  # tokens of the repeat the harness's copy task gives before the model must go on
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


def copy_hits(model, ids: torch.Tensor, span: int) -> torch.Tensor:
    """Top-1 accuracy on each of the repeat's tokens after its first, over rows (index i: i + 1 tokens seen)."""
    with torch.no_grad():
        logits = model(ids).logits[:, :-1]
    hits = logits.argmax(-1) == ids[:, 1:]
    return hits[:, -(span - 1) :].float().mean(0)


def probe(spec: str, span: int, count: int, seed: int) -> dict[str, list[float]]:
    """Setting -> accuracy by offset in the repeat (the first entry: after one token of it)."""
    model, tokenizer = load(spec)
    return {
        name: copy_hits(model, rows(tokenizer, n, d, span, count, seed), span).tolist()
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
    raw = {spec: probe(spec, args.span, args.rows, args.seed) for spec in args.model}
    results = {spec: {k: round(sum(v) / len(v), 3) for k, v in scores.items()} for spec, scores in raw.items()}
    by_offset = {spec: {k: [round(x, 3) for x in v] for k, v in scores.items()} for spec, scores in raw.items()}
    # the harness's `copy` task cues 4 words and needs the 5th: the accuracy after 4 tokens of the repeat
    cue = CUE_TOKENS - 1
    head = " | ".join(f"{k} (after {CUE_TOKENS})" for k in SETTINGS)
    print(f"| model | {head} |\n|---|" + "---:|" * len(SETTINGS))
    for spec, scores in results.items():
        cells = " | ".join(f"{v:.2f} ({by_offset[spec][k][cue]:.2f})" for k, v in scores.items())
        print(f"| {spec} | {cells} |")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        record = {
            "command": "python experiments/toy_copy_probe.py " + " ".join(sys.argv[1:]),
            "span": args.span,
            "rows": args.rows,
            "seed": args.seed,
            "results": results,
            "by_offset": by_offset,
        }
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
