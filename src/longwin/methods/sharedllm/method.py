"""`longwin train --method sharedllm`: documents → (context, local window) examples → HF Trainer → a SharedLLM.

`build` checks every option before any weights load, stacks the base on its own bottom layers (or loads a
saved SharedLLM to continue, e.g. the instruction stage after the LM stage), chooses what trains
(`trainable.py`) and hands the runner the examples (`dataset.py`) and their collator (`collator.py`).
"""

from __future__ import annotations

from dataclasses import asdict, fields, replace
from typing import Any

from longwin.errors import LongwinError
from longwin.methods.base import TrainConfig, TrainParts, global_batch, retrieval_examples
from longwin.methods.lora import LoraOptions
from longwin.methods.sharedllm.collator import SharedLLMCollator
from longwin.methods.sharedllm.context_distill import (
    ContextDistillCollator,
    ContextDistillDataset,
    DistillSettings,
    TeacherCache,
    context_distill_trainer,
)
from longwin.methods.sharedllm.dataset import ChunkedWindow, SharedLLMDataset, load_instructions, make_layout
from longwin.methods.sharedllm.modeling import SharedLLMForCausalLM
from longwin.methods.sharedllm.options import DISTILL_OPTIONS, SharedLLMOptions
from longwin.methods.sharedllm.trainable import trainable_parameters

LOAD_NOTE = (
    "import longwin.methods.sharedllm (registers the model type), then "
    "transformers.AutoModelForCausalLM.from_pretrained(this folder); `longwin eval --model` does both"
)


def _check_request(config: TrainConfig) -> None:
    opts = config.get(SharedLLMOptions)
    if config.get(LoraOptions).enabled:
        raise LongwinError(
            "--lora is not supported with --method sharedllm (the paper trains without PEFT: "
            "choose --sharedllm-trainable cross_attn+top, cross_attn or all)"
        )
    if opts.instructions and opts.stage != "instruct":
        raise LongwinError("--sharedllm-instructions needs --sharedllm-stage instruct")
    given = sorted(f.name for f in fields(opts) if f.name in DISTILL_OPTIONS and getattr(opts, f.name) != f.default)
    if given and opts.stage != "distill":
        raise LongwinError(f"--sharedllm-{given[0].replace('_', '-')} needs --sharedllm-stage distill")


def _model(config: TrainConfig) -> tuple[SharedLLMForCausalLM, Any]:
    """(model, tokenizer): the base wrapped by `from_base`, or a saved SharedLLM trained further. Options given
    explicitly apply to both; a new model takes `SharedLLMConfig`'s defaults for the rest, a saved one keeps its
    own, except for its shape and initialisation, which training further cannot change."""
    from longwin.models import load_model

    common, opts = config.common, config.get(SharedLLMOptions)
    model, tokenizer = load_model(common.model, dtype=common.dtype, attn_implementation=common.attn_implementation)
    given = opts.model_options()
    if not isinstance(model, SharedLLMForCausalLM):
        return SharedLLMForCausalLM.from_base(model, **given), tokenizer
    fixed = {k: v for k, v in given.items() if k not in ("split_noise", "chunk_positions", "query_aware")}
    clash = sorted(k for k, v in fixed.items() if getattr(model.config, k) != v)
    if clash:
        raise LongwinError(
            f"{common.model} is a SharedLLM whose {', '.join(clash)} differ from the options given; training "
            f"further cannot change how it was built"
        )
    for key, value in given.items():
        setattr(model.config, key, value)
    return model, tokenizer


TREE_KEYS = (
    "num_lower_layers",
    "chunk_size",
    "tree_height",
    "kv_per_node",
    "kv_per_chunk",
    "query_aware",
    "chunk_positions",
    "split_noise",
    "cross_attn_init_scale",
)


def _card(
    model: SharedLLMForCausalLM, opts: SharedLLMOptions, layout: ChunkedWindow, native: int, trainable: int
) -> dict[str, Any]:
    """SharedLLM's fields of the run card: the stage, the windows, the tree as built and what trains."""
    return {
        "stage": opts.stage,
        "load": LOAD_NOTE,
        "native_window": native,
        "local_length": layout.local_length,
        "context_chunks": [layout.min_chunks, layout.max_chunks],
        "tree": {key: getattr(model.config, key) for key in TREE_KEYS},
        "trainable": opts.trainable,
        "trainable_parameters": trainable,
    }


def distill_parts(config: TrainConfig, targs: Any, parts: TrainParts, steps: int) -> TrainParts:
    """The distill stage on top of the LM stage's parts: the teacher's targets stored once (rank 0 computes, the
    others read), then the student's dataset, collator and loss. The teacher is freed before training starts."""
    from longwin.models import load_model

    common, opts = config.common, config.get(SharedLLMOptions)
    teacher_ref = opts.teacher or common.model
    teacher, _ = load_model(teacher_ref, dtype=common.dtype, attn_implementation=common.attn_implementation)
    if isinstance(teacher, SharedLLMForCausalLM):
        raise LongwinError(
            f"{teacher_ref} is a SharedLLM: the distill stage's teacher is the plain base (--sharedllm-teacher)"
        )
    settings = DistillSettings(str(teacher_ref), opts.distill_top_k, opts.distill_key_weight)
    cache = TeacherCache(opts.teacher_cache or f"{str(targs.output_dir).rstrip('/')}.teacher-targets", settings)
    count = len(parts.dataset)
    with targs.main_process_first(desc="teacher targets"):
        teacher.to(targs.device).eval()
        key_share = cache.fill(
            teacher, parts.dataset, count, log=lambda i, n: print(f"longwin train: teacher {i}/{n}", flush=True)
        )
    del teacher
    parts.card["distill"] = {
        **asdict(settings),
        "cache": str(cache.folder),
        "examples": count,
        "epochs": round(steps / count, 2),
        "key_token_share": round(key_share, 4),
        "lm_weight": opts.distill_lm_weight,
    }
    assert isinstance(parts.collator, SharedLLMCollator)  # build's, whose padding the targets follow
    return replace(
        parts,
        dataset=ContextDistillDataset(parts.dataset, cache, count, steps),
        collator=ContextDistillCollator(**asdict(parts.collator)),
        trainer_class=context_distill_trainer(opts.distill_lm_weight),
    )


def build(config: TrainConfig, targs: Any) -> TrainParts:
    """Check the request, wrap (or reload) the model, then the pool and the (context, local window) examples."""
    from longwin.data.pool import build_pool
    from longwin.rope import native_window

    _check_request(config)
    common, opts = config.common, config.get(SharedLLMOptions)
    instructions = load_instructions(opts.instructions) if opts.instructions else []
    model, tokenizer = _model(config)
    native = native_window(model.config.get_text_config())
    if opts.stage == "distill" and common.target_length > native:
        raise LongwinError(
            f"--sharedllm-stage distill: the teacher reads context + local window with full attention inside its "
            f"native window, so --target-length must be at most {native}, got {common.target_length}"
        )
    layout = make_layout(common, opts, model.config.chunk_size, native)
    model.config.local_length = layout.local_length  # saved in config.json: evaluation splits prompts the same way
    params = trainable_parameters(model, opts.trainable)
    with targs.main_process_first(desc="tokenizing the corpus"):  # the others then read rank 0's token cache
        pool = build_pool(
            common.data,
            tokenizer,
            min_tokens=layout.local_length + layout.chunk,
            val_fraction=common.val_fraction,
            seed=targs.seed,
            text_field=common.text_field,
        )
    steps = targs.max_steps * global_batch(targs)
    distilling = opts.stage == "distill"
    dataset = SharedLLMDataset(
        pool,
        tokenizer,
        layout,
        num_samples=(opts.distill_examples or steps) if distilling else steps,
        seed=targs.seed,
        stage="lm" if distilling else opts.stage,  # the distill stage's examples are the LM stage's
        retrieval=retrieval_examples(config, tokenizer, pool),
        retrieval_fraction=common.retrieval_fraction,
        local_evidence=opts.local_evidence,
        instructions=instructions,
    )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model.train()
    targs.remove_unused_columns = False  # examples carry context_ids/prompt_ids, which only the collator reads
    card = _card(model, opts, layout, native, sum(p.numel() for p in params))
    parts = TrainParts(
        model, tokenizer, dataset, SharedLLMCollator(pad_token_id=pad, chunk_size=layout.chunk), pool, card
    )
    return distill_parts(config, targs, parts, steps) if distilling else parts
