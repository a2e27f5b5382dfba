"""The benchmark's record: JSON with the command that reproduces it, and Markdown tables of time and memory."""

from __future__ import annotations

import platform
import shlex
from dataclasses import asdict
from typing import Any

from longwin.bench.config import SharedLLMBench
from longwin.bench.prefill import RANDOM_MODEL


def build_report(cfg: SharedLLMBench, model: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
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
            reference = by.get(("full", cfg.full_reference_length))
            if reference is not None:
                entry["reference_length"] = cfg.full_reference_length
                entry["reference_time_ratio"] = reference["time_s"] / ours["time_s"]
            for other in ("full", "streaming"):
                if (other, length) in by:
                    entry[f"{other}_time_ratio"] = by[other, length]["time_s"] / ours["time_s"]
                    entry[f"{other}_memory_ratio"] = by[other, length]["prefill_mb"] / max(ours["prefill_mb"], 1e-9)
            ratios.append(entry)
    return {
        "command": command(cfg),
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


def command(cfg: SharedLLMBench) -> str:
    """The full command line that reproduces this run, every setting spelled out."""
    words = ["longwin", "bench", "sharedllm"]
    for name, value in asdict(cfg).items():
        if value is None:  # unset: the default of SharedLLMConfig, which the command then gets too
            continue
        words += ["--" + name.replace("_", "-"), ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return shlex.join(words)


def markdown(report: dict[str, Any]) -> str:
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
    return "\n".join(lines + _reference_lines(report)) + "\n"


def _reference_lines(report: dict[str, Any]) -> list[str]:
    """Each SharedLLM prefill against full attention at the reference length, when one was measured."""
    rows = [r for r in report["ratios"] if "reference_time_ratio" in r]
    if not rows:
        return []
    ref = rows[0]["reference_length"]
    return [
        "",
        f"Against full attention over {ref} tokens, measured in the same run (full time at {ref} / SharedLLM time; "
        "1 or more: the long read costs no more than that forward):",
        "",
        f"| tokens | SharedLLM variant | full at {ref} / SharedLLM time |",
        "|---:|---|---:|",
        *(f"| {r['length']} | {r['sharedllm']} | {r['reference_time_ratio']:.2f} |" for r in rows),
    ]
