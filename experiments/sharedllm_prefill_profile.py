"""Where a long SharedLLM read spends its time (issue #36): one prefill of a long random-token context plus a
local window, split into its stages (the query probe, the query-aware search's span passes, the lower model's
node passes, packing, the upper model), beside one full-attention forward over the native window, in one run
on the same loaded model; then the operators that dominate the read (torch.profiler, CPU time by op).

    python experiments/sharedllm_prefill_profile.py --model smollm2-135m --context 130048 --local 1024 \
        --reference 8192 --encode-batch-tokens 2048 --threads 2 --out benchmarks/results/sharedllm_prefill/profile.json

Stage times come from wrapping the module-level functions `build_tree` calls (span_states, encode_spans,
last_states) with timers in this process only; "upper" is the rest of the forward. Time a benchmark with
`longwin bench sharedllm`; this script says where the time goes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

STAGES = {"last_states": "query probe", "span_states": "query-aware search", "encode_spans": "lower node passes"}


def timed(spent: dict[str, float], stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[stage] += time.perf_counter() - started

    return wrapper


def read_stages(shared: Any, context: torch.Tensor, local: torch.Tensor) -> dict[str, float]:
    """Seconds per stage of one read (the stage functions timed where modeling.py calls them)."""
    from longwin.methods.sharedllm import modeling

    spent: dict[str, float] = defaultdict(float)
    originals = {name: getattr(modeling, name) for name in STAGES}
    for name, stage in STAGES.items():
        setattr(modeling, name, timed(spent, stage, originals[name]))
    try:
        started = time.perf_counter()
        tree_started = time.perf_counter()
        tree = shared.build_tree(context, input_ids=local)
        spent["tree total"] = time.perf_counter() - tree_started
        upper_started = time.perf_counter()
        shared(input_ids=local, tree_kv=tree, use_cache=True, logits_to_keep=1)
        spent["upper model"] = time.perf_counter() - upper_started
        spent["read total"] = time.perf_counter() - started
    finally:
        for name, fn in originals.items():
            setattr(modeling, name, fn)
    spent["packing and planning"] = spent["tree total"] - sum(spent[s] for s in STAGES.values())
    return {k: round(v, 3) for k, v in spent.items()}


def top_ops(fn: Callable[[], Any], count: int = 12) -> list[dict[str, Any]]:
    """The operators with the most self CPU time in one call of fn."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [
        {"op": e.key, "calls": e.count, "self_s": round(e.self_cpu_time_total / 1e6, 3),
         "share": round(e.self_cpu_time_total / total, 3)}
        for e in events[:count]
    ]  # fmt: skip


def main(argv: list[str]) -> int:
    from longwin.methods.sharedllm import SharedLLMForCausalLM
    from longwin.models import load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--context", type=int, default=130048)
    parser.add_argument("--local", type=int, default=1024)
    parser.add_argument("--reference", type=int, default=8192, help="full attention over this many tokens")
    parser.add_argument("--encode-batch-tokens", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="also list the read's top operators")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    base, _ = load_model(args.model, device="cpu", dtype="float32")
    base.eval()
    vocab = base.config.vocab_size
    gen = torch.Generator().manual_seed(0)
    context = torch.randint(3, vocab, (1, args.context), generator=gen)
    local = torch.randint(3, vocab, (1, args.local), generator=gen)
    reference = torch.randint(3, vocab, (1, args.reference), generator=gen)
    record: dict[str, Any] = {"settings": vars(args), "torch": torch.__version__}
    with torch.inference_mode():
        base(input_ids=reference[:, :256], logits_to_keep=1)  # warm-up
        started = time.perf_counter()
        base(input_ids=reference, use_cache=True, logits_to_keep=1)
        record["full attention seconds"] = round(time.perf_counter() - started, 3)
        shared = SharedLLMForCausalLM.from_base(
            base, num_lower_layers=4, chunk_size=1024, tree_height=3, kv_per_node=32,
            encode_batch_tokens=args.encode_batch_tokens,
        )  # fmt: skip
        shared(input_ids=local[:, :64], context_input_ids=context[:, :2048], logits_to_keep=1)  # warm-up
        record["read stages seconds"] = read_stages(shared, context, local)
        if args.profile:
            record["read top ops"] = top_ops(
                lambda: shared(input_ids=local, context_input_ids=context, logits_to_keep=1)
            )
    record["full / read"] = round(record["full attention seconds"] / record["read stages seconds"]["read total"], 3)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
