"""Training throughput of a real model on this CPU, as a share of the matmul peak measured in the same run.

One training step = forward + backward + AdamW step at batch 1, as `longwin train` runs it. Variants:
`model-loss` (the model's own loss: full logits over the vocabulary), `chunked` (longwin's chunked loss,
`longwin.models.loss`), `chunked+ckpt` (plus activation checkpointing), and LoRA (r 8 on q/k/v/o) with
either loss. Rounds are interleaved (each round times every variant once) so machine noise hits all alike;
the median step is reported.

Achieved GFLOP/s counts the arithmetic a step needs: every linear layer and the output projection
(2 FLOPs per weight per token forward; backward twice that, minus the weight gradients LoRA does not
compute) plus causal attention (QK^T and AV over the lower triangle: 2·T²·d per layer forward). The peak is
the best fp32 matmul rate over the model's own shapes and a square 2048³, measured first.

    python benchmarks/train_speed.py [--model smollm2-135m] [--lengths 1024,2048] [--rounds 2]
Writes benchmarks/results/train_speed.{json,md}. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from longwin.models import load_model
from longwin.models.loss import causal_lm_loss

VARIANTS = ("model-loss", "chunked", "chunked+ckpt", "lora model-loss", "lora chunked")


def matmul_peak(shapes: list[tuple[int, int, int]], seconds: float = 1.5) -> dict[str, float]:
    """Best fp32 GFLOP/s of `a @ b` for each (m, k, n), each timed for about `seconds`."""
    out = {}
    for m, k, n in shapes:
        a, b = torch.randn(m, k), torch.randn(k, n)
        a @ b  # warm-up
        best, spent = float("inf"), 0.0
        while spent < seconds:
            start = time.perf_counter()
            a @ b
            took = time.perf_counter() - start
            best, spent = min(best, took), spent + took
        out[f"{m}x{k}x{n}"] = 2 * m * k * n / best / 1e9
    return out


def step_flops(model: Any, tokens: int, lora: bool) -> float:
    """FLOPs one training step needs (see the module docstring)."""
    config = model.config
    linear = sum(m.weight.numel() for m in model.get_decoder().layers.modules() if isinstance(m, torch.nn.Linear))
    head = model.get_output_embeddings().weight.numel()
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    attention = 2 * tokens * tokens * config.num_attention_heads * head_dim * config.num_hidden_layers
    forward = 2 * tokens * (linear + head) + attention
    # backward: gradients of the inputs (= forward) and, when trained, of the weights (= forward's matmuls)
    weight_grads = 0 if lora else 2 * tokens * (linear + head)
    return forward + forward + weight_grads


def make_variant(reference: str, name: str) -> tuple[Any, torch.optim.Optimizer]:
    model, _ = load_model(reference, dtype=torch.float32, attn_implementation="sdpa")
    model.train()
    model.config.use_cache = False
    if "ckpt" in name:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if name.startswith("lora"):
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
        )
    trainable = [p for p in model.parameters() if p.requires_grad]
    return model, torch.optim.AdamW(trainable, lr=1e-5)


def one_step(model: Any, optimizer: torch.optim.Optimizer, name: str, ids: torch.Tensor) -> tuple[float, float]:
    """(seconds, loss) of one training step."""
    inputs = {"input_ids": ids, "labels": ids, "attention_mask": torch.ones_like(ids)}
    start = time.perf_counter()
    loss = causal_lm_loss(model, inputs) if "chunked" in name else model(**inputs).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start, float(loss)


def main() -> None:
    args = _arguments()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    names = args.variants.split(",")
    lengths = [int(x) for x in args.lengths.split(",")]

    probe, _ = load_model(args.model, dtype=torch.float32)
    c = probe.config
    d, ff, vocab = c.hidden_size, c.intermediate_size, c.vocab_size
    del probe
    peak = matmul_peak(
        [(max(lengths), d, ff), (max(lengths), ff, d), (max(lengths), d, d), (512, d, vocab), (2048, 2048, 2048)]
    )
    print(f"matmul peak: {max(peak.values()):.1f} GFLOP/s {peak}", file=sys.stderr)
    rows = [row for tokens in lengths for row in measure_length(args, names, tokens, vocab, max(peak.values()))]
    report = {
        "command": "python " + shlex.join(sys.argv),
        "model": args.model,
        "threads": args.threads,
        "torch": torch.__version__,
        "matmul_peak_gflops": {k: round(v, 1) for k, v in peak.items()},
        "rows": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_speed.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "train_speed.md").write_text(markdown(report))
    print(markdown(report))


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--lengths", default="1024,2048")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds after one warm-up round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results")
    return parser.parse_args()


def measure_length(
    args: argparse.Namespace, names: list[str], tokens: int, vocab: int, peak: float
) -> list[dict[str, Any]]:
    """One row per variant at `tokens`: fresh models, one warm-up round (its losses recorded), then the
    timed rounds, each timing every variant once."""
    models = {name: make_variant(args.model, name) for name in names}
    ids = torch.randint(0, vocab, (1, tokens), generator=torch.Generator().manual_seed(tokens))
    times: dict[str, list[float]] = {name: [] for name in names}
    losses: dict[str, float] = {}
    for round_ in range(args.rounds + 1):
        for name in names:
            model, optimizer = models[name]
            seconds, loss = one_step(model, optimizer, name, ids)
            if round_ == 0:
                losses[name] = loss  # the first step's loss: every variant starts from the same weights
            else:
                times[name].append(seconds)
            print(f"{tokens} {name}: {seconds:.1f} s (loss {loss:.4f})", file=sys.stderr)
    rows = []
    for name in names:
        step = statistics.median(times[name])
        flops = step_flops(models[name][0], tokens, name.startswith("lora"))
        rows.append(
            {
                "tokens": tokens,
                "variant": name,
                "step_seconds": round(step, 2),
                "tokens_per_second": round(tokens / step, 1),
                "gflops": round(flops / step / 1e9, 1),
                "share_of_peak": round(flops / step / 1e9 / peak, 3),
                "first_loss": round(losses[name], 5),
            }
        )
    return rows


def markdown(report: dict[str, Any]) -> str:
    peak = max(report["matmul_peak_gflops"].values())
    lines = [
        "# Training throughput on this CPU",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Model `{report['model']}`, fp32, SDPA, batch 1, {report['threads']} thread(s), torch {report['torch']}. "
        f"Matmul peak measured in the same run: {peak:.1f} GFLOP/s "
        f"(best of {', '.join(report['matmul_peak_gflops'])}).",
        "",
        "| tokens | variant | step (s) | tokens/s | GFLOP/s | share of peak | first-step loss |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['tokens']} | {r['variant']} | {r['step_seconds']} | {r['tokens_per_second']} | {r['gflops']} "
            f"| {r['share_of_peak']:.0%} | {r['first_loss']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
