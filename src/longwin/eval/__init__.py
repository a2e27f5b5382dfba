"""Offline long-context evaluation: passkey, needle, kv-retrieval, lines, RULER, perplexity, LongBench.

`evaluate(model, tasks, lengths, out_dir, seed=..., **options)` runs a grid and writes results;
`compare_runs(dirs, out_dir)` puts finished runs side by side. Models plug in through `EvalModel`.
"""

from longwin.eval.compare import compare_runs
from longwin.eval.model import CausalLMAdapter, EvalModel, Prompt
from longwin.eval.options import EvalOptions
from longwin.eval.runner import evaluate
from longwin.eval.tasks import TASKS

__all__ = ["CausalLMAdapter", "EvalModel", "EvalOptions", "Prompt", "TASKS", "compare_runs", "evaluate"]
