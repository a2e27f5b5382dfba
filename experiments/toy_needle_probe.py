"""Why does the toy miss the needle at the end of its window? Distance to the needle, or position?

For needle prompts (the `longwin eval` needle task's own prompts) it scores the first answer token
(greedy, " eat") twice: on the prompt as built, and on the same prompt with `--cut` haystack tokens
removed just after BOS. The cut keeps everything from the needle to the answer as it was, so the
needle is as far back as before; only the absolute positions shrink. If the cut prompt is answered
and the full one is not, the model is reacting to where in its window it is, not to the needle's
distance. It also reports, per layer and head, the attention mass the last prompt token puts on BOS
(position 0), averaged over prompts: heads that read their own position from BOS show up as a
difference between the two.

    python experiments/toy_needle_probe.py --model toy --out benchmarks/results/toy_needle_probe/v3
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def first_token_and_bos_mass(model, ids: list[int], answer_id: int) -> tuple[bool, torch.Tensor]:
    """(greedy next token == answer_id, (layers, heads) attention mass of the last token on position 0)."""
    with torch.no_grad():
        out = model(torch.tensor([ids]), output_attentions=True)
    bos_mass = torch.stack([a[0, :, -1, 0] for a in out.attentions])
    return int(out.logits[0, -1].argmax()) == answer_id, bos_mass


def probe(ref: str, lengths: list[int], depths: list[str], samples: int, cut: int, seed: int) -> dict:
    from longwin.eval.options import EvalOptions
    from longwin.eval.prompting import PromptFormatter
    from longwin.eval.tasks.base import Cell
    from longwin.eval.tasks.needle import NeedleTask
    from longwin.models import load_model

    model, tok = load_model(ref)
    model.set_attn_implementation("eager")  # attention probabilities are read
    model.eval()
    options = EvalOptions()
    task, fmt = NeedleTask(options, seed), PromptFormatter(tok)
    answer = tok(" " + options.answer, add_special_tokens=False)["input_ids"]
    cells = []
    mass: dict[str, list[torch.Tensor]] = {"full": [], "cut": []}
    for length in lengths:
        for depth in depths:
            hits, cuttable = {"full": 0, "cut": 0}, True
            for sample in range(samples):
                prompt = task.build(Cell("needle", length, depth, sample), fmt).prompt.ids
                needle_at = next(i for i in range(len(prompt)) if prompt[i : i + len(answer)] == answer)
                cuttable = cuttable and needle_at > cut
                variants = {"full": prompt, "cut": prompt[:1] + prompt[1 + cut :]} if cuttable else {"full": prompt}
                for name, ids in variants.items():
                    hit, bos = first_token_and_bos_mass(model, ids, answer[0])
                    hits[name] += hit
                    if length == max(lengths) and cuttable:
                        mass[name].append(bos)
            cells.append(
                {
                    "length": length,
                    "depth": depth,
                    "samples": samples,
                    "full_correct": hits["full"],
                    "cut_correct": hits["cut"] if cuttable else None,
                    "cut_length": length - cut,
                }
            )
    heads = {k: torch.stack(v).mean(0).tolist() for k, v in mass.items() if v}  # prompts with both variants
    return {"model": ref, "cut": cut, "seed": seed, "cells": cells, "bos_mass_at_longest": heads}


def summary(result: dict) -> str:
    cut = result["cut"]
    lines = [
        f"Needle probe of `{result['model']}`: first answer token correct, full prompt vs the same prompt "
        f"with {cut} tokens cut after BOS (needle-to-question distance unchanged).",
        "",
        "| prompt tokens | depth % | full | cut |",
        "|---|---|---|---|",
    ]
    for c in result["cells"]:
        cut_cell = (
            "needle cut"
            if c["cut_correct"] is None
            else f"{c['cut_correct']} / {c['samples']} ({c['cut_length']} tokens)"
        )
        lines.append(f"| {c['length']} | {c['depth']} | {c['full_correct']} / {c['samples']} | {cut_cell} |")
    heads = result["bos_mass_at_longest"]
    if "full" in heads and "cut" in heads:
        full, short = torch.tensor(heads["full"]), torch.tensor(heads["cut"])
        diff = full - short
        top = torch.topk(diff.flatten(), 3).indices.tolist()
        n_heads = diff.shape[1]
        lines += [
            "",
            "Attention mass of the last prompt token on BOS, longest prompts, mean over prompts "
            "(the three heads that change most):",
            "",
            "| layer.head | full | cut |",
            "|---|---|---|",
        ]
        lines += [
            f"| {i // n_heads}.{i % n_heads} | {float(full.flatten()[i]):.2f} | {float(short.flatten()[i]):.2f} |"
            for i in top
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="toy")
    parser.add_argument("--lengths", default="192,256")
    parser.add_argument("--depths", default="0,50,100")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--cut", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = probe(
        args.model, [int(x) for x in args.lengths.split(",")], args.depths.split(","), args.samples, args.cut, args.seed
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "summary.md").write_text(summary(result))
    print(summary(result))


if __name__ == "__main__":
    main()
