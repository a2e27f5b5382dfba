"""Each measurement in its own forked process: a fresh heap, and memory read from the kernel's RSS counters."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

from longwin.bench.prefill import make_prefill
from longwin.errors import LongwinError


def measure_in_child(spec: dict[str, Any]) -> dict[str, Any]:
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


def _measure(spec: dict[str, Any]) -> dict[str, Any]:
    import time

    import torch

    torch.set_num_threads(spec["threads"])
    prefill, notes, vocab = make_prefill(spec)
    gen = torch.Generator().manual_seed(spec["length"])
    with torch.inference_mode():
        ids = torch.randint(3, vocab, (1, spec["length"]), generator=gen)
        shortest = spec["sharedllm_local_length"] + spec["sharedllm_chunk_size"]
        prefill(ids[:, -shortest:])  # warm-up on the shortest valid input
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
