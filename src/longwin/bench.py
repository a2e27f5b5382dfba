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
import multiprocessing
import platform
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from longwin.errors import LongwinError
from longwin.flags import add_config_arguments, config_from_args
from longwin.outputs import check_writable_folder, write_text

METHODS = ("full", "streaming", "sharedllm", "sharedllm-bounded")
RANDOM_MODEL: dict[str, Any] = dict(
    hidden_size=256,
    intermediate_size=688,
    num_hidden_layers=6,
    num_attention_heads=8,
    num_key_value_heads=8,
    vocab_size=2048,
    max_position_embeddings=2048,
)


@dataclass
class SharedLLMBench:
    model: str = field(
        default="toy",
        metadata={
            "help": "model reference; `toy` falls back to a random "
            "6-layer Llama (hidden 256) when not built; `random` forces it"
        },
    )
    lengths: list[int] = field(
        default_factory=lambda: [2048, 4096, 8192, 16384],
        metadata={"min": 1, "help": "total input lengths (context + local window)"},
    )
    methods: list[str] = field(
        default_factory=lambda: list(METHODS), metadata={"help": "subset of " + ",".join(METHODS)}
    )
    local_window: int = field(
        default=256, metadata={"min": 1, "help": "SharedLLM local window (the tail the upper model reads)"}
    )
    # the model's shape: unset options take SharedLLMConfig's defaults (the one home of them)
    num_lower_layers: int | None = field(default=None, metadata={"min": 1, "help": "SharedLLM M"})
    chunk_size: int | None = field(default=None, metadata={"min": 1, "help": "SharedLLM chunk size"})
    tree_height: int | None = field(default=None, metadata={"min": 1, "help": "SharedLLM tree height h"})
    kv_per_node: int | None = field(default=None, metadata={"min": 1, "help": "SharedLLM KVs per preserved node p"})
    bounded_batch_tokens: int = field(
        default=2048,
        metadata={
            "min": 1,
            "help": "sharedllm-bounded: most tokens the lower model encodes per pass (sharedllm: all at once)",
        },
    )
    stream_window: int = field(default=256, metadata={"min": 1, "help": "streaming baseline: recent tokens kept"})
    stream_sinks: int = field(default=4, metadata={"min": 0, "help": "streaming baseline: first tokens kept"})
    stream_segment: int = field(default=256, metadata={"min": 1, "help": "streaming baseline: prefill segment length"})
    rope_method: str = field(default="yarn", metadata={"help": "RoPE scaling of the full-attention model"})
    full_max_length: int = field(
        default=0,
        metadata={
            "min": 0,
            "help": "measure full attention only up to this many tokens (0: every length); past it a CPU "
            "takes minutes a prefill and attention's T x T scores may not fit in memory",
        },
    )
    threads: int = field(default=1, metadata={"min": 1, "help": "torch CPU threads per measurement"})
    repeats: int = field(
        default=2, metadata={"min": 1, "help": "timed prefills per measurement; the fastest is reported"}
    )
    output: str = field(default="benchmarks/results", metadata={"help": "folder for sharedllm_bench.json/.md"})


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
    unknown = sorted(set(cfg.methods) - set(METHODS))
    if unknown:
        raise LongwinError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    chunk = cast(int, cfg.chunk_size)  # set by with_model_defaults
    short = [n for n in cfg.lengths if n < cfg.local_window + chunk]
    if short:
        raise LongwinError(f"lengths {short} leave no whole context chunk: each must be >= local_window + chunk_size")
    check_writable_folder(cfg.output, "--output")
    model = _resolve_model(cfg.model)
    _preimport()
    rows = []
    for length in cfg.lengths:
        for method in cfg.methods:
            if method == "full" and 0 < cfg.full_max_length < length:
                print(f"{method:>10} {length:>7} tokens: skipped (--full-max-length {cfg.full_max_length})")
                continue
            result = _measure_in_child({**asdict(cfg), "model": model, "method": method, "length": length})
            print(
                f"{method:>10} {length:>7} tokens: {result['time_s']:8.3f} s  {result['prefill_mb']:9.1f} MB",
                flush=True,
            )
            rows.append(result)
    report = _report(cfg, model, rows)
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "sharedllm_bench.json", json.dumps(report, indent=2) + "\n")
    write_text(out / "sharedllm_bench.md", _markdown(report))
    print(f"wrote {out / 'sharedllm_bench.json'} and {out / 'sharedllm_bench.md'}")
    return 0


def with_model_defaults(cfg: SharedLLMBench) -> SharedLLMBench:
    """`cfg` with every unset model-shape option taken from `SharedLLMConfig`."""
    from longwin.methods.sharedllm import SharedLLMConfig

    defaults = SharedLLMConfig()
    for key in ("num_lower_layers", "chunk_size", "tree_height", "kv_per_node"):
        if getattr(cfg, key) is None:
            setattr(cfg, key, getattr(defaults, key))
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


def _measure_in_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement in a forked child: a fresh heap and RSS, without paying the imports again."""
    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(spec, sender))
    child.start()
    sender.close()
    try:
        status, payload = receiver.recv()
    except EOFError:
        child.join()
        status, payload = "error", f"the measurement process died (exit code {child.exitcode})"
    child.join()
    if status != "ok":
        raise LongwinError(f"{spec['method']} at {spec['length']} tokens failed: {payload}")
    return payload


def _child(spec: dict[str, Any], sender: Any) -> None:
    try:
        sender.send(("ok", _measure(spec)))
    except Exception as exc:  # reported to the parent as one line
        sender.send(("error", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"))


# --- one measurement, in its own process -----------------------------------------------------------


def _rss_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{key} missing from /proc/self/status")


def _reset_peak(exact_rss: bool = False) -> None:
    """Return freed heap to the OS and restart the RSS high-water mark from the current RSS.

    `exact_rss` fixes glibc's mmap threshold at 64 KiB, so every larger block is unmapped the moment
    it is freed and RSS follows live memory (otherwise freed heap lingers and inflates the peak).
    It slows allocation-heavy code, so it is set only for the memory run, after the timed run.
    """
    import ctypes
    import gc

    libc = ctypes.CDLL("libc.so.6")
    gc.collect()
    if exact_rss:
        libc.mallopt(-3, 65536)  # M_MMAP_THRESHOLD
    libc.malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")


def _base_model(spec: dict[str, Any], scaled: bool) -> tuple[Any, dict[str, Any]]:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, PretrainedConfig

    from longwin.models.compat import dtype_keyword
    from longwin.rope import describe_rope, scale_rope

    config: PretrainedConfig
    if spec["model"] == "random":
        config = LlamaConfig(**RANDOM_MODEL)
    else:
        from longwin.models import model_path

        folder = model_path(spec["model"])
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
    if scaled and max(spec["lengths"]) > config.max_position_embeddings:
        config = scale_rope(config, spec["rope_method"], max(spec["lengths"]))
    config._attn_implementation = "sdpa"
    model: Any
    if spec["model"] == "random":
        torch.manual_seed(0)
        model = LlamaForCausalLM(cast(LlamaConfig, config))  # scale_rope copies the config's own class
    else:
        model = AutoModelForCausalLM.from_pretrained(
            folder, config=config, local_files_only=True, **{dtype_keyword(): torch.float32}
        )
    return model.eval(), describe_rope(config)


def _streaming_prefill(model: Any, ids: Any, spec: dict[str, Any]) -> Any:
    """Chunked prefill keeping the KV of the first `stream_sinks` and the last `stream_window` tokens.

    Keys keep the RoPE of their absolute positions (no re-rotation): each query sees the true
    distances to the sinks and to the recent window, like sliding-window attention with sinks.
    """
    import torch
    from transformers import DynamicCache

    from longwin.models.compat import cache_keyword, cache_layer_kv, cache_layers, set_cache_layer_kv

    sinks, window, segment = spec["stream_sinks"], spec["stream_window"], spec["stream_segment"]
    cache, cache_key = DynamicCache(), cache_keyword(model)
    logits = None
    for start in range(0, ids.shape[1], segment):
        piece = ids[:, start : start + segment]
        positions = torch.arange(start, start + piece.shape[1])[None]
        logits = model(
            input_ids=piece, position_ids=positions, **{cache_key: cache}, use_cache=True, logits_to_keep=1
        ).logits
        for layer in range(cache_layers(cache)):
            keys, values = cache_layer_kv(cache, layer)
            if keys.shape[2] > sinks + window:
                keep = [keys[:, :, :sinks], keys[:, :, -window:]], [values[:, :, :sinks], values[:, :, -window:]]
                set_cache_layer_kv(cache, layer, torch.cat(keep[0], 2), torch.cat(keep[1], 2))
    return logits


def _prefill(spec: dict[str, Any]) -> tuple[Any, dict[str, Any], int]:
    """A callable running the method's prefill on `ids`, a note on the model setup, and the vocabulary size."""
    method = spec["method"]
    model, rope = _base_model(spec, scaled=method == "full")
    vocab = model.config.vocab_size
    if method == "full":
        return (lambda ids: model(input_ids=ids, use_cache=True, logits_to_keep=1).logits), {"rope": rope}, vocab
    if method == "streaming":
        return (lambda ids: _streaming_prefill(model, ids, spec)), {"rope": rope}, vocab
    from longwin.methods.sharedllm import SharedLLMForCausalLM

    shared = SharedLLMForCausalLM.from_base(
        model,
        num_lower_layers=spec["num_lower_layers"],
        chunk_size=spec["chunk_size"],
        tree_height=spec["tree_height"],
        kv_per_node=spec["kv_per_node"],
        query_aware=True,
        encode_batch_tokens=spec["bounded_batch_tokens"] if method == "sharedllm-bounded" else 0,
    )
    window = spec["local_window"]

    def sharedllm(ids: Any) -> Any:
        return shared(
            input_ids=ids[:, -window:], context_input_ids=ids[:, :-window], use_cache=True, logits_to_keep=1
        ).logits

    return sharedllm, {"rope": rope}, vocab


def _measure(spec: dict[str, Any]) -> dict[str, Any]:
    import time

    import torch

    torch.set_num_threads(spec["threads"])
    prefill, notes, vocab = _prefill(spec)
    gen = torch.Generator().manual_seed(spec["length"])
    with torch.inference_mode():
        ids = torch.randint(3, vocab, (1, spec["length"]), generator=gen)
        prefill(ids[:, -(spec["local_window"] + spec["chunk_size"]) :])  # warm-up on the shortest valid input
        times = []
        for _ in range(spec["repeats"]):
            start = time.perf_counter()
            prefill(ids)
            times.append(time.perf_counter() - start)
        _reset_peak(exact_rss=True)
        before = _rss_mb("VmRSS")
        prefill(ids)
        peak = _rss_mb("VmHWM")
    return {
        "method": spec["method"],
        "length": spec["length"],
        "time_s": min(times),
        "times_s": times,
        "prefill_mb": peak - before,
        "peak_rss_mb": peak,
        **notes,
    }


# --- report ----------------------------------------------------------------------------------------


def _report(cfg: SharedLLMBench, model: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    import torch
    import transformers

    by = {(r["method"], r["length"]): r for r in rows}
    ratios = []
    for length in cfg.lengths:
        for variant in ("sharedllm", "sharedllm-bounded"):
            ours = by.get((variant, length))
            if ours is None:
                continue
            entry: dict[str, Any] = {"length": length, "sharedllm": variant}
            for other in ("full", "streaming"):
                if (other, length) in by:
                    entry[f"{other}_time_ratio"] = by[other, length]["time_s"] / ours["time_s"]
                    entry[f"{other}_memory_ratio"] = by[other, length]["prefill_mb"] / max(ours["prefill_mb"], 1e-9)
            ratios.append(entry)
    return {
        "command": _command(cfg),
        "model": model if model != "random" else f"random Llama {RANDOM_MODEL}",
        "settings": asdict(cfg),
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "cpu": platform.processor() or platform.machine(),
            "threads_per_measurement": cfg.threads,
        },
        "memory_method": "peak RSS during a second prefill minus RSS before it (VmHWM reset via "
        "/proc/self/clear_refs after malloc_trim, glibc mmap threshold fixed at 64 KiB so freed "
        "blocks leave RSS), one forked process per method and length",
        "time_method": "fastest wall time of `repeats` prefills after a short warm-up (default malloc settings), "
        "logits for the last token only",
        "results": rows,
        "ratios": ratios,
        "ratio_meaning": "baseline / SharedLLM: above 1 means SharedLLM is faster or uses less memory",
    }


def _command(cfg: SharedLLMBench) -> str:
    """The full command line that reproduces this run, every setting spelled out."""
    words = ["longwin", "bench", "sharedllm"]
    for name, value in asdict(cfg).items():
        if value is None:  # unset: the default of SharedLLMConfig, which the command then gets too
            continue
        words += ["--" + name.replace("_", "-"), ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return shlex.join(words)


def _markdown(report: dict[str, Any]) -> str:
    lines = [
        "# SharedLLM prefill benchmark",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Model: {report['model']}; torch {report['machine']['torch']}, transformers "
        f"{report['machine']['transformers']}, {report['machine']['threads_per_measurement']} CPU thread(s).",
        "",
        f"Memory: {report['memory_method']}. Time: {report['time_method']}.",
        "",
        "| method | tokens | time (s) | ms per 1K tokens | prefill memory (MB) |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['method']} | {r['length']} | {r['time_s']:.3f} | {1e6 * r['time_s'] / r['length']:.1f} "
        f"| {r['prefill_mb']:.1f} |"
        for r in report["results"]
    ]
    lines += [
        "",
        "Ratios are baseline / SharedLLM (above 1: SharedLLM is faster or smaller).",
        "",
        "| tokens | SharedLLM variant | full time | full memory | streaming time | streaming memory |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for r in report["ratios"]:
        cells = [
            r.get(k) for k in ("full_time_ratio", "full_memory_ratio", "streaming_time_ratio", "streaming_memory_ratio")
        ]
        lines.append(
            f"| {r['length']} | {r['sharedllm']} | "
            + " | ".join("-" if c is None else f"{c:.2f}" for c in cells)
            + " |"
        )
    return "\n".join(lines) + "\n"
