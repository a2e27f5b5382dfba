"""Does a model copy by content (induction) or by position? A probe for the toy base and its recipe.

Part 1 (seconds) scores a model on spans it has seen once before in the same prompt: top-1 accuracy
and NLL on the second occurrence against the first, for natural text repeated at once, natural text
repeated after an 80-token gap, and random tokens repeated. A model with induction heads predicts the
second occurrence far better than the first; one without them does not.

Part 2 (`--train-steps N`, minutes) trains fresh models of the toy's shape on repeated random spans
only, one with every span 127 tokens long and one with lengths drawn from 8..127, and scores copying
at the trained offset (127) and at another (60) every 100 steps. It shows why a fixed-length copy
signal is a trap: the model can learn "copy the token 127 back", which is no induction at all.

    python experiments/toy_induction_probe.py --train-steps 1200 --fixed-steps 400 --threads 1
writes benchmarks/results/toy_induction/ (results.json, summary.md, COMMAND.md).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "toy_induction"


def repeat_scores(model, first: list[int], gap: list[int], bos: int) -> tuple[float, float, float, float]:
    """(top-1 acc first, top-1 acc second, NLL first, NLL second) of `first + gap + first` after BOS."""
    x = torch.tensor([[bos, *first, *gap, *first]])
    with torch.no_grad():
        logits = model(x).logits[0, :-1].float()
    target = x[0, 1:]
    hit = (logits.argmax(-1) == target).float()
    nll = torch.nn.functional.cross_entropy(logits, target, reduction="none")
    n, second = len(first), len(first) + len(gap)
    return (
        hit[1:n].mean().item(),
        hit[second + 1 :].mean().item(),
        nll[1:n].mean().item(),
        nll[second + 1 :].mean().item(),
    )


def probe_model(ref: str, samples: int, seed: int) -> dict[str, dict[str, float]]:
    from longwin.data.corpora import load_documents, split_documents
    from longwin.models import load_model

    model, tok = load_model(ref)
    model.eval()
    _, held_out = split_documents(load_documents("essays+kjv"), 0.1, seed=0)  # the toy's own held-out split
    text = np.concatenate([np.asarray(tok(d.text, add_special_tokens=False)["input_ids"]) for d in held_out])
    rng = random.Random(seed)
    special = set(tok.all_special_ids)
    vocab = [t for t in range(len(tok)) if t not in special]

    def natural(n: int) -> list[int]:
        start = rng.randrange(len(text) - n)
        return text[start : start + n].tolist()

    cases = {
        "natural, repeated at once": lambda: (natural(60), []),
        "natural, repeated after 80 tokens": lambda: (natural(60), natural(80)),
        "random tokens, repeated at once": lambda: ([rng.choice(vocab) for _ in range(60)], []),
    }
    out = {}
    for name, make in cases.items():
        scores = np.array([repeat_scores(model, *make(), tok.bos_token_id) for _ in range(samples)])
        acc1, acc2, nll1, nll2 = scores.mean(0)
        out[name] = {
            "top1_first": round(100 * acc1, 1),
            "top1_second": round(100 * acc2, 1),
            "nll_first": round(nll1, 3),
            "nll_second": round(nll2, 3),
        }
    return out


def train_copy(variable: bool, steps: int, seed: int) -> list[dict[str, float]]:
    """A fresh toy-shaped model trained on repeated random spans; copy accuracy at offsets 127 and 60."""
    from transformers import AutoTokenizer

    from longwin.jobs.pretrain_toy import PretrainToyConfig, build_model

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(ROOT / "src" / "longwin" / "assets" / "toy")
    model = build_model(PretrainToyConfig(), tok)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    rng = random.Random(seed)
    span = lambda n: [rng.randrange(5, len(tok)) for _ in range(n)]  # noqa: E731 (clear of the special ids 0-2)
    curve = []
    for step in range(1, steps + 1):
        for group in opt.param_groups:
            group["lr"] = 1e-3 * min(1.0, step / 50)
        rows = []
        for _ in range(16):
            row = [tok.bos_token_id]
            while len(row) < 256:
                s = span(rng.randint(8, 127) if variable else 127)
                row += s + s
            rows.append(row[:256])
        x = torch.tensor(rows)
        model(x, labels=x).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        if step % 100 == 0:
            model.eval()
            point: dict[str, float] = {"step": step}
            for n in (127, 60):
                point[f"copy_top1_offset_{n}"] = round(
                    100 * float(np.mean([repeat_scores(model, span(n), [], tok.bos_token_id)[1] for _ in range(4)])), 1
                )
            model.train()
            curve.append(point)
            print(f"{'variable' if variable else 'fixed-127'} {point}", file=sys.stderr, flush=True)
    return curve


def summary_md(result: dict, command: str) -> str:
    lines = [
        f"# Induction probe\n\nProduced by:\n\n    {command}\n",
        f"## Part 1: `{result['model']}` on repeated spans ({result['samples']} samples of 60 tokens each)\n",
        "| case | top-1 % first | top-1 % second | NLL first | NLL second |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, s in result["repeats"].items():
        lines.append(f"| {name} | {s['top1_first']} | {s['top1_second']} | {s['nll_first']} | {s['nll_second']} |")
    for name, curve in result.get("training", {}).items():
        lines += [
            f"\n## Part 2: fresh toy-shaped model, repeated random spans, {name} lengths\n",
            "| step | copy top-1 % at offset 127 | at offset 60 |",
            "|---:|---:|---:|",
        ]
        lines += [f"| {p['step']} | {p['copy_top1_offset_127']} | {p['copy_top1_offset_60']} |" for p in curve]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="toy")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-steps", type=int, default=0, help="steps for variable-length spans (0: part 1 only)")
    parser.add_argument("--fixed-steps", type=int, default=400, help="steps for fixed-length spans (it shows by 300)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    result = {"model": args.model, "samples": args.samples, "repeats": probe_model(args.model, args.samples, args.seed)}
    if args.train_steps:
        result["training"] = {
            "variable": train_copy(True, args.train_steps, args.seed),
            "fixed": train_copy(False, args.fixed_steps, args.seed),
        }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python experiments/toy_induction_probe.py", *sys.argv[1:]])
    summary = summary_md(result, command)
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "summary.md").write_text(summary)
    (out / "COMMAND.md").write_text(f"Produced by:\n\n    {command}\n")
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
