"""Evaluate a model on long-context tasks over a grid of prompt lengths, or compare finished runs
(--compare DIR DIR ...). Results go to --out: results.json, results.csv (one row per cell) and PNG
plots; rerunning into the same folder resumes where the last run stopped.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields
from typing import Any

from longwin.errors import LongwinError
from longwin.eval.options import EvalOptions
from longwin.flags import add_config_arguments, config_from_args, parse_options
from longwin.outputs import check_writable_folder


@dataclass
class EvalConfig(EvalOptions):
    model: str = field(default="", metadata={"help": "model reference: alias (toy, smollm2-135m), folder, .gguf"})
    task: list[str] = field(
        default_factory=list,
        metadata={"help": "tasks: passkey, needle, kv-retrieval, lines, ruler, ppl, copy, longbench"},
    )
    lengths: list[int] = field(default_factory=list, metadata={"help": "prompt lengths in tokens"})
    out: str = field(
        default="",
        metadata={"help": "output folder (rerun into it to resume; with --compare: where the table and plots go)"},
    )
    seed: int = field(default=0, metadata={"min": 0, "help": "seed for every generated prompt"})
    threads: int = field(default=0, metadata={"min": 0, "help": "torch CPU threads (0: torch default)"})
    device: str = field(default="auto", metadata={"help": "auto (GPU when there is one), cpu, cuda, cuda:1, ..."})
    dtype: str = field(default="auto", metadata={"help": "weights dtype: auto (as stored), float32, bfloat16, float16"})
    attn_implementation: str = field(
        default="", metadata={"help": "eager, sdpa, flash_attention_2 (default: transformers')"}
    )
    rope: str = field(
        default="",
        metadata={
            "help": "training-free RoPE scaling before evaluating: linear, ntk, dynamic, yarn, revised-yarn, llama3 "
            "(needs --target-length)"
        },
    )
    target_length: int = field(default=0, metadata={"min": 0, "help": "window the --rope scaling targets"})
    rope_options: str = field(default="", metadata={"help": "--rope options as k=v,k=v (e.g. attention_factor=1.5)"})
    adapter_options: str = field(
        default="",
        metadata={
            "help": "options of the model's evaluation adapter as k=v,k=v (SharedLLM: local_length=N, trees=false "
            "to read the local window only)"
        },
    )
    truncate: int = field(
        default=0,
        metadata={
            "min": 0,
            "help": "truncation baseline: the model sees only the last N tokens of each prompt (0: off)",
        },
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, EvalConfig)
    parser.add_argument("--config", help="YAML file with any of the options above")
    parser.add_argument("--compare", nargs="+", metavar="DIR", help="compare finished result folders instead")


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(EvalConfig, args)
    if not cfg.out:
        raise LongwinError("--out is required (the folder for results)")
    if args.compare:
        return _compare(cfg, args.compare)
    if not cfg.model:
        raise LongwinError("--model is required")
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    from longwin.eval.options import make_options
    from longwin.eval.results import summary_table
    from longwin.eval.runner import check_request, evaluate, needs_cache, warn_training_text

    if cfg.truncate and cfg.truncate < 2:
        raise LongwinError(f"--truncate must keep at least 2 tokens, got {cfg.truncate}")
    options = {f.name: getattr(cfg, f.name) for f in fields(EvalOptions)}
    tasks, _ = check_request(cfg.task, cfg.lengths, make_options(options), cfg.seed)  # fails before loading
    check_writable_folder(cfg.out, "--out")
    warn_training_text(cfg.model, tasks)
    model, name = _load(cfg, cache=needs_cache(tasks))
    results = evaluate(model, cfg.task, cfg.lengths, cfg.out, seed=cfg.seed, name=name, **options)
    print(summary_table(results))
    flagged = sum(t["exceeds_window"] for t in results["tasks"].values())
    if flagged:
        print(f"\n{flagged} cell(s) exceed the model's configured window of {results['window']} tokens")
    print(f"\nresults: {cfg.out}/results.json, {cfg.out}/results.csv")
    return 0


def _compare(cfg: EvalConfig, folders: list[str]) -> int:
    """`--compare`: tables and plots of finished result folders; evaluation options do not apply."""
    from longwin.eval.compare import compare_runs

    if cfg.model or cfg.task or cfg.lengths:
        raise LongwinError(
            "--compare reads finished result folders: --model, --task and --lengths do not "
            "apply (evaluate first, then compare)"
        )
    from longwin.eval.options import make_options

    options = make_options({f.name: getattr(cfg, f.name) for f in fields(EvalOptions)})
    print(compare_runs(folders, cfg.out, options))
    print(f"\nwritten: {cfg.out}/compare.md, compare.csv and compare_<task>.png")
    return 0


def _load(cfg: EvalConfig, *, cache: bool) -> tuple[Any, str]:
    """(what `evaluate` reads, its name in the results): the model after a fit check that needs no weights,
    wrapped by the truncation baseline or given its adapter's options when asked."""
    from longwin.eval.loading import check_fits_before_loading, load_for_eval

    check_fits_before_loading(
        cfg.model,
        cfg.lengths,
        device=cfg.device,
        dtype=cfg.dtype,
        attn_implementation=cfg.attn_implementation,
        truncate=cfg.truncate,
        batch_size=cfg.batch_size,
        batch_tokens=cfg.batch_tokens,
        cache=cache,
    )
    model: Any = load_for_eval(  # (model, tokenizer), or the truncating adapter around them below
        cfg.model,
        device=cfg.device,
        dtype=cfg.dtype,
        attn_implementation=cfg.attn_implementation,
        rope=cfg.rope,
        target_length=cfg.target_length,
        rope_options=parse_options(cfg.rope_options, "rope"),
    )
    name = f"{cfg.model} ({cfg.rope} RoPE to {cfg.target_length}, training-free)" if cfg.rope else cfg.model
    if cfg.truncate:
        from longwin.eval.model import TruncatingAdapter

        name = f"{name} (truncated to the last {cfg.truncate} tokens)"
        model = TruncatingAdapter(*model, keep=cfg.truncate, name=name)
    adapter_options = parse_options(cfg.adapter_options, "adapter")
    if adapter_options:
        if cfg.truncate:
            raise LongwinError("--adapter-options and --truncate do not combine")
        from longwin.eval.adapters import resolve_model

        name = f"{name} ({cfg.adapter_options})"
        model = resolve_model(model[0], model[1], name, adapter_options)
    return model, name
