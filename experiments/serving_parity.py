"""llama.cpp against transformers on the same tokens (issue #34): per-token negative log-likelihoods from an
exported GGUF run by llama.cpp (through llama-cpp-python's bindings, so both engines read the very same
token ids) and from the saved folder in transformers, and their perplexities.

llama-cpp-python is not a longwin dependency: build it once outside the repo (docs/serving.md gives the
command) and point `LONGWIN_LLAMA_CPP_PYTHON` at the folder it was installed into with `pip --target`.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROWS = 1024  # logits rows turned into losses at a time


def llama_cpp_module() -> Any | None:
    """`llama_cpp`, from `$LONGWIN_LLAMA_CPP_PYTHON` if set, else the environment; None when absent."""
    target = os.environ.get("LONGWIN_LLAMA_CPP_PYTHON")
    if target and target not in sys.path:
        sys.path.insert(0, target)
    try:
        import llama_cpp  # type: ignore[import-not-found]  # optional, built from source
    except ImportError:
        return None
    return llama_cpp


def llama_cpp_nll(gguf: Path, ids: list[int], *, n_ctx: int | None = None, threads: int = 2) -> np.ndarray:
    """-log p(ids[t] | ids[:t]) for t >= 1, by llama.cpp on the CPU with its default KV cache type (f16)."""
    llama_cpp = llama_cpp_module()
    if llama_cpp is None:
        raise RuntimeError("llama-cpp-python is not installed (see docs/serving.md)")
    llm = llama_cpp.Llama(
        model_path=str(gguf), n_ctx=n_ctx or len(ids), n_batch=512, n_ubatch=512, logits_all=True,
        n_threads=threads, n_threads_batch=threads, verbose=False,
    )  # fmt: skip
    llm.eval(ids)
    targets = np.asarray(ids[1:])
    # in blocks of rows: at 16K tokens the float64 logits alone would take 6 GiB (49K vocabulary)
    nll = np.concatenate([
        _nll(np.asarray(llm.scores[i : min(i + ROWS, len(targets))], dtype=np.float64), targets[i : i + ROWS])
        for i in range(0, len(targets), ROWS)
    ])  # fmt: skip
    llm.close()
    return nll


def transformers_nll(model: Any, ids: list[int]) -> np.ndarray:
    """The same quantity from a transformers causal LM (positions 0..n-1, no cache)."""
    import torch

    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, :-1].double()
    return _nll(logits.numpy(), np.asarray(ids[1:]))


def _nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    top = logits.max(axis=-1, keepdims=True)
    log_norm = np.log(np.exp(logits - top).sum(axis=-1)) + top[:, 0]
    return log_norm - logits[np.arange(len(targets)), targets]


def perplexity(nll: np.ndarray) -> float:
    return math.exp(float(nll.mean()))
