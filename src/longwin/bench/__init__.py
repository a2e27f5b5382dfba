"""Efficiency benchmarks.

`longwin bench sharedllm` measures the prefill of one long input (context + local window) on the
same base model with: full attention with RoPE scaling, a streaming baseline (attention sinks +
sliding window, chunked prefill), SharedLLM (every chunk of a tree level encoded at once, as in the
paper) and SharedLLM with the lower model's passes bounded in size. Each (method, length) runs in
its own forked process (fresh heap and RSS; the imports are done once, before forking). Time: the
fastest of `repeats` prefills after a short warm-up. Memory: what one more prefill adds to the
resident set size: glibc returns freed memory (malloc_trim, mmap threshold fixed at 64 KiB), the
kernel's high-water mark is reset (/proc/self/clear_refs), and the peak (VmHWM) after the prefill
minus the RSS before it is reported. Linux only.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import cast

from longwin.bench.config import PREFILLS, SharedLLMBench
from longwin.bench.process import measure_in_child
from longwin.bench.report import build_report, markdown
from longwin.errors import LongwinError
from longwin.flags import add_config_arguments, config_from_args
from longwin.outputs import check_writable_folder, write_text

__all__ = ["PREFILLS", "SharedLLMBench", "add_arguments", "run", "with_model_defaults"]


# the model-shape options the benchmark takes, as `SharedLLMOptions` names them (flags `--sharedllm-*`)
SHAPE_OPTIONS = ("lower_layers", "chunk_size", "tree_height", "kv_per_node")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True, parser_class=type(parser))
    cmd = sub.add_parser(
        "sharedllm",
        help="prefill time and memory: SharedLLM vs full attention vs streaming",
        description=__doc__.strip(),
    )
    add_config_arguments(cmd, SharedLLMBench)


def run(args: argparse.Namespace) -> int:
    cfg = with_model_defaults(config_from_args(SharedLLMBench, args))
    unknown = sorted(set(cfg.methods) - set(PREFILLS))
    if unknown:
        raise LongwinError(f"unknown prefill(s) {', '.join(unknown)}; choose from {', '.join(PREFILLS)}")
    chunk = cast(int, cfg.sharedllm_chunk_size)  # set by with_model_defaults
    short = [n for n in cfg.lengths if n < cfg.sharedllm_local_length + chunk]
    if short:
        raise LongwinError(
            f"lengths {short} leave no whole context chunk: each must be >= "
            "--sharedllm-local-length + --sharedllm-chunk-size"
        )
    check_writable_folder(cfg.output, "--output")
    model = _resolve_model(cfg.model)
    _preimport()
    rows = []
    for method, length in _measurements(cfg):
        if method == "full" and length != cfg.full_reference_length and 0 < cfg.full_max_length < length:
            print(f"{method:>10} {length:>7} tokens: skipped (--full-max-length {cfg.full_max_length})")
            continue
        result = measure_in_child({**asdict(cfg), "model": model, "method": method, "length": length})
        print(
            f"{method:>10} {length:>7} tokens: {result['time_s']:8.3f} s  {result['prefill_mb']:9.1f} MB",
            flush=True,
        )
        rows.append(result)
    report = build_report(cfg, model, rows)
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "sharedllm_bench.json", json.dumps(report, indent=2) + "\n")
    write_text(out / "sharedllm_bench.md", markdown(report))
    print(f"wrote {out / 'sharedllm_bench.json'} and {out / 'sharedllm_bench.md'}")
    return 0


def _measurements(cfg: SharedLLMBench) -> list[tuple[str, int]]:
    """(method, length) in the order measured: the full-attention reference first, then each length's methods."""
    pairs = [(method, length) for length in cfg.lengths for method in cfg.methods]
    reference = ("full", cfg.full_reference_length)
    return ([reference] if cfg.full_reference_length and reference not in pairs else []) + pairs


def with_model_defaults(cfg: SharedLLMBench) -> SharedLLMBench:
    """`cfg` with every unset model-shape option taken from `SharedLLMConfig`."""
    from longwin.methods.sharedllm import SharedLLMConfig
    from longwin.methods.sharedllm.options import MODEL_OPTIONS

    defaults = SharedLLMConfig()
    for option in SHAPE_OPTIONS:
        if getattr(cfg, f"sharedllm_{option}") is None:
            setattr(cfg, f"sharedllm_{option}", getattr(defaults, MODEL_OPTIONS[option]))
    return cfg


def _resolve_model(ref: str) -> str:
    """`toy` when it is built, else `random`; any other reference is checked before measuring."""
    if ref == "random":
        return ref
    from longwin.models import model_path

    try:
        model_path(ref)
    except LongwinError:
        if ref != "toy":
            raise
        return "random"
    return ref


def _preimport() -> None:
    """Import the heavy modules once in the parent; forked children inherit them (torch runs no op before fork)."""
    import torch  # noqa: F401
    import transformers.models.llama.modeling_llama  # noqa: F401

    import longwin.methods.sharedllm  # noqa: F401
    import longwin.rope  # noqa: F401
