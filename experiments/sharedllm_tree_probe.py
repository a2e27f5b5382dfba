"""Why does a SharedLLM model miss pass keys in its trees? Keep, attend, answer — counted per depth.

For passkey prompts (the eval harness's own, split as the eval splits them), three questions per sample:
1. kept: how many of the key's digit tokens (first occurrence in the context) survive in the trees,
   and at which resolution (a node of `kv_per_node` tokens keeps every token; larger nodes keep every
   (length / kv_per_node)-th);
2. attended: at the last local token, the mass each injected layer's cross-attention puts on the kept
   key tokens (max over heads; a uniform head would put kept / all-keys there);
3. answered: does greedy decoding produce the key.

    python experiments/sharedllm_tree_probe.py --model out/sharedllm-toy-2048 --lengths 1024,2048 --samples 4

Writes benchmarks/results/sharedllm_tree_probe/ (results.json, summary.md with the command).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "sharedllm_tree_probe"
DEPTHS = ("0", "25", "50", "75")  # depth 100 % lies in the local window


def key_positions(tokenizer: Any, ids: list[int], key: str) -> list[int]:
    """Token positions of the first occurrence of `key` in `ids` (tokens whose text concatenates to it)."""
    pieces = [tokenizer.decode([t]) for t in ids]
    for start in range(len(pieces)):
        if not pieces[start].strip() or not key.startswith(pieces[start].strip()):
            continue
        text, end = "", start
        while end < len(pieces) and len(text.strip()) < len(key):
            text += pieces[end]
            end += 1
        if text.strip() == key:
            return list(range(start, end))
    return []


def kept_resolution(model: Any, tree: Any) -> tuple[dict[int, int], list[int]]:
    """Context position -> length of the node that kept it; and the kept positions in key order."""
    from longwin.methods.sharedllm.tree import keep_positions

    size, order = {}, []
    chunk, p = model.config.chunk_size, model.config.kv_per_node
    for c, spans in enumerate(tree.spans.tolist()):
        for start, length in spans:
            for k in keep_positions(length, p).tolist():
                size[c * chunk + start + k] = length
                order.append(c * chunk + start + k)
    return size, order


def cross_attention_on(
    model: Any, local: torch.Tensor, context: torch.Tensor, wanted: set[int], order: list[int]
) -> list[float]:
    """Per injected layer: max over heads of the last local token's attention mass on `wanted` positions."""
    mass: dict[int, float] = {}
    cols = torch.tensor([i for i, pos in enumerate(order) if pos in wanted], dtype=torch.long)

    def hook(block, args):
        hidden, tree, layer = args
        q, k, _ = block.queries_keys_values(hidden, tree, layer)
        q = q[:, :, -1:]
        probs = ((q @ k.transpose(-1, -2)) / block.head_dim**0.5).softmax(-1)[0, :, 0]
        mass[layer] = float(probs[:, cols].sum(-1).max()) if len(cols) else 0.0

    handles = [block.register_forward_pre_hook(hook) for block in model.cross_attn]
    try:
        with torch.no_grad():
            model(input_ids=local, context_input_ids=context)
    finally:
        for handle in handles:
            handle.remove()
    return [mass[k] for k in sorted(mass)]


def probe(
    model_ref: str,
    lengths: list[int],
    samples: int,
    seed: int,
    local_length: int | None = None,
    kv_per_node: int = 0,
) -> list[dict[str, Any]]:
    from longwin.eval.model import Prompt
    from longwin.eval.options import make_options
    from longwin.eval.prompting import PromptFormatter
    from longwin.eval.sharedllm_adapter import SharedLLMAdapter
    from longwin.eval.tasks.base import Cell
    from longwin.eval.tasks.passkey import PasskeyTask
    from longwin.models import load_model

    loaded, tokenizer = load_model(model_ref)
    model: Any = loaded.eval()  # a SharedLLMForCausalLM: its tree methods are not on the loader's return type
    if kv_per_node:  # a finer tree at test time: the trained weights read more KVs per node
        model.config.kv_per_node = kv_per_node
    adapter = SharedLLMAdapter(model, tokenizer, local_length=local_length)
    task, fmt = PasskeyTask(make_options({}), seed), PromptFormatter(tokenizer)
    rows = []
    for length in lengths:
        for depth in DEPTHS:
            for sample in range(samples):
                built = task.build(Cell("passkey", length, depth, sample), fmt)
                ids, split = built.prompt.ids, adapter.split(built.prompt)
                context, local = torch.tensor([ids[:split]]), torch.tensor([ids[split:]])
                digits = key_positions(tokenizer, ids[:split], str(built.answer))
                tree = model.build_tree(context, None, local, None)
                size, order = kept_resolution(model, tree)
                kept = [size[p] for p in digits if p in size]
                output = tokenizer.decode(adapter.generate([Prompt(ids, built.prompt.context_end)], 8)[0])
                rows.append(
                    {
                        "length": length,
                        "depth": depth,
                        "sample": sample,
                        "key": str(built.answer),
                        "digits": len(digits),
                        "kept": len(kept),
                        "kept_full": sum(n == model.config.kv_per_node for n in kept),
                        "attention_on_key": cross_attention_on(model, local, context, set(digits), order),
                        "uniform_share": len(kept) / max(len(order), 1),
                        "correct": str(built.answer) in output,
                        "output": output,
                    }
                )
    return rows


def summary_md(rows: list[dict[str, Any]], command: str) -> str:
    out = [
        "# SharedLLM tree probe: are pass keys kept, attended, answered?\n",
        f"Produced by:\n\n    {command}\n",
        "Per (length, depth): digits of the key kept in the trees (of all its digits), kept at full "
        "resolution, the largest cross-attention mass on them over heads (per injected layer, mean over "
        "samples; a uniform head gives the uniform share), and accuracy.\n",
        "| length | depth % | digits kept | kept at full resolution | attention on key, per layer "
        "| uniform share | correct |",
        "|---:|---:|---:|---:|---|---:|---:|",
    ]
    keys = sorted({(r["length"], r["depth"]) for r in rows}, key=lambda k: (k[0], int(k[1])))
    for length, depth in keys:
        cell = [r for r in rows if r["length"] == length and r["depth"] == depth]
        digits = sum(r["digits"] for r in cell)
        layers = zip(*(r["attention_on_key"] for r in cell))
        attn = " / ".join(f"{sum(v) / len(cell):.3f}" for v in layers)
        uniform = sum(r["uniform_share"] for r in cell) / len(cell)
        out.append(
            f"| {length} | {depth} | {sum(r['kept'] for r in cell)} / {digits} | "
            f"{sum(r['kept_full'] for r in cell)} / {digits} | {attn} | {uniform:.3f} | "
            f"{sum(r['correct'] for r in cell)} / {len(cell)} |"
        )
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a SharedLLM model folder (`longwin train --method sharedllm`)")
    parser.add_argument("--lengths", default="1024,2048")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--local-window",
        type=int,
        default=0,
        help="tokens kept local, as `--adapter-options local_length` (default: as trained)",
    )
    parser.add_argument(
        "--kv-per-node",
        type=int,
        default=0,
        help="KVs kept per tree node at test time (default: the model's own); a node of at most this many "
        "tokens keeps every token, so a larger value separates the tree search from the reading",
    )
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    lengths = [int(n) for n in args.lengths.split(",")]
    rows = probe(args.model, lengths, args.samples, args.seed, args.local_window or None, args.kv_per_node)
    command = " ".join(["python experiments/sharedllm_tree_probe.py", *sys.argv[1:]])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"model": args.model, "rows": rows}, indent=2) + "\n")
    summary = summary_md(rows, command)
    (out / "summary.md").write_text(summary)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
