"""What `longwin train` is asked to do: our extension options plus Hugging Face `TrainingArguments`.

Both are plain dataclasses; every field is a `--kebab-case` flag and a YAML key, so a recipe file and
the command line speak the same language (`--max-steps`, `--output-dir`, `--deepspeed`, `--fsdp`, ...
come straight from `TrainingArguments`).
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from longwin.config import add_config_arguments, build_config, checked_values, load_yaml, parse_options
from longwin.errors import LongwinError
from longwin.models.compat import non_reentrant_checkpointing


@dataclass
class ExtendConfig:
    """Options of the context-extension recipe (the Trainer's own options live in TrainingArguments)."""

    model: str = field(default="toy", metadata={"help": "model alias, local folder, .gguf file or cached HF id"})
    method: str = field(
        default="positions",
        metadata={
            "help": "positions: fine-tune with manipulated position ids; sharedllm: train a SharedLLM",
            "choices": ["positions", "sharedllm"],
        },
    )
    scheme: str = field(default="cream", metadata={"help": "position scheme: cream, pose, randpos, none, full"})
    scheme_options: dict = field(
        default_factory=dict,
        metadata={"help": "scheme options as k=v,k=v (e.g. sigma=3,mode=truncated,p_continuity=0.5)"},
    )
    rope: str = field(
        default="linear", metadata={"help": "RoPE scaling: none, linear, ntk, dynamic, yarn, revised-yarn, llama3"}
    )
    rope_options: dict = field(
        default_factory=dict,
        metadata={
            "help": "RoPE scaling options as k=v,k=v (yarn: beta_fast, beta_slow, attention_factor; llama3: ...)"
        },
    )
    target_length: int = field(default=0, metadata={"min": 0, "help": "target context window L (required)"})
    train_length: int = field(default=0, metadata={"min": 0, "help": "training window (default: the native window N)"})
    allow_long_train_window: bool = field(
        default=False, metadata={"help": "allow a training window above the native window (full-length fine-tuning)"}
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "start over in an --output-dir that holds an earlier run (its checkpoints and model are removed)"
        },
    )
    data: str = field(default="essays+kjv", metadata={"help": "corpus names or paths, '+'-joined"})
    text_field: str = field(default="text", metadata={"help": "text column of JSONL/Parquet/datasets data"})
    val_fraction: float = field(
        default=0.1, metadata={"min": 0, "max": 0.9, "help": "documents held out from training (by id)"}
    )
    dtype: str = field(default="auto", metadata={"help": "weights dtype when loading: auto, float32, bfloat16"})
    attn_implementation: str = field(default="sdpa", metadata={"help": "eager, sdpa or flash_attention_2"})
    lora: bool = field(default=False, metadata={"help": "train LoRA adapters instead of all weights"})
    lora_r: int = field(default=8, metadata={"min": 1})
    lora_alpha: int = field(default=16, metadata={"min": 1})
    lora_dropout: float = field(default=0.0, metadata={"min": 0, "max": 1})
    lora_target: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    lora_trainable_embeddings: bool = field(
        default=False, metadata={"help": "LongLoRA-style: also train embeddings and norms fully"}
    )
    merge_lora: bool = field(default=True, metadata={"help": "save a merged plain model (else the adapter)"})
    retrieval_fraction: float = field(
        default=0.0,
        metadata={
            "min": 0,
            "max": 1,
            "help": "share of retrieval examples (evidence far back, question + answer at the end) mixed into the "
            "natural text; small models forget retrieval without them",
        },
    )
    retrieval_kinds: list[str] = field(
        default_factory=lambda: ["passkey_grass", "passkey_text", "kv", "lines"],
        metadata={"help": "retrieval example kinds to draw from"},
    )
    native_fraction: float = field(
        default=0.0,
        metadata={
            "min": 0,
            "max": 1,
            "help": "share of natural-text examples kept on contiguous positions 0..N-1 as in pretraining "
            "(native replay), "
            "the rest on the scheme's positions",
        },
    )
    induction_weight: float = field(
        default=0.0,
        metadata={
            "min": 0,
            "help": "weight of the auxiliary induction-head loss kept on while fine-tuning "
            "(the toy's copying circuit was "
            "installed by it: longwin.training.induction); 0 turns it off",
        },
    )
    induction_match: int = field(
        default=2, metadata={"min": 1, "help": "tokens the supervised induction head matches (as in pretrain-toy)"}
    )
    # SharedLLM (method=sharedllm)
    sharedllm_lower_layers: int = field(default=2, metadata={"min": 1})
    sharedllm_chunk_size: int = field(default=64, metadata={"min": 1})
    sharedllm_tree_height: int = field(default=3, metadata={"min": 1})
    sharedllm_kv_per_node: int = field(default=4, metadata={"min": 1})
    sharedllm_query_aware: bool = False
    sharedllm_split_noise: float | None = field(
        default=None,
        metadata={
            "min": 0,
            "help": "sigma of the tree split-point noise as a fraction of the node length, training only (default: the "
            "SharedLLM config's 0.2 = l/5 of the paper's LM stage; its instruction stage uses 0.1 = l/10)",
        },
    )
    sharedllm_chunk_positions: bool | None = field(
        default=None,
        metadata={
            "help": "rotate context keys by their chunk id and queries to the chunk count "
            "(default: the SharedLLM config's, "
            "true); false hides chunk order, the paper's ablation"
        },
    )
    sharedllm_trainable: str = field(
        default="cross_attn+top", metadata={"help": "cross_attn+top (paper LM stage) or cross_attn"}
    )
    sharedllm_local_length: int = field(
        default=0, metadata={"min": 0, "help": "tokens the upper model decodes (default N)"}
    )
    sharedllm_stage: str = field(
        default="lm",
        metadata={
            "help": "lm: loss on the whole local window; instruct: loss on responses only (prompt = query)",
            "choices": ["lm", "instruct"],
        },
    )
    sharedllm_min_chunks: int = field(
        default=1,
        metadata={
            "min": 1,
            "help": "fewest context chunks per example (drawn uniformly up to what --target-length allows)",
        },
    )
    sharedllm_instructions: str = field(
        default="",
        metadata={
            "help": "instruct stage: JSONL of {prompt, response[, context]} records "
            "(else natural text gets the LM loss)"
        },
    )
    sharedllm_local_evidence: float = field(
        default=0.0,
        metadata={
            "min": 0,
            "max": 1,
            "help": "share of retrieval examples with the evidence in the local window, behind natural context "
            "(keeps the upper model's own retrieval; the rest put it in the context)",
        },
    )


# Defaults we prefer over TrainingArguments' own (a recipe or flag still overrides them).
TRAINER_DEFAULTS: dict[str, Any] = {
    "output_dir": "out/extended",
    "per_device_train_batch_size": 8,
    "learning_rate": 2e-5,
    "max_steps": 1000,
    "warmup_steps": 10,
    "lr_scheduler_type": "linear",
    "weight_decay": 0.0,
    "logging_steps": 10,
    "save_steps": 200,
    "save_total_limit": 2,
    "report_to": "none",
    "dataloader_num_workers": 0,
}


# Bounds on TrainingArguments values (it checks few itself; a bad one fails deep inside the Trainer).
TRAINER_MINIMUMS: dict[str, float] = {
    "max_steps": 1,  # examples are drawn per step, so the step count must be given
    "per_device_train_batch_size": 1,
    "per_device_eval_batch_size": 1,
    "gradient_accumulation_steps": 1,
    "learning_rate": 0,
    "weight_decay": 0,
    "warmup_steps": 0,
    "warmup_ratio": 0,
    "max_grad_norm": 0,
    "logging_steps": 0,
    "save_steps": 0,
    "save_total_limit": 1,
    "seed": 0,
    "data_seed": 0,
    "dataloader_num_workers": 0,
    "num_train_epochs": 0,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from transformers import TrainingArguments

    parser.add_argument("--config", help="YAML recipe: a path or a packaged recipe name (see `--list-recipes`)")
    parser.add_argument("--list-recipes", action="store_true", help="list the packaged recipes and exit")
    add_config_arguments(parser, ExtendConfig)
    add_config_arguments(parser, TrainingArguments, skip={f.name for f in dataclasses.fields(ExtendConfig)})


def recipe_dir() -> Path:
    return Path(str(resources.files("longwin") / "recipes" / "configs"))


def list_recipes() -> list[str]:
    return sorted(p.stem for p in recipe_dir().glob("*.yaml"))


def resolve_recipe(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.is_file():
        return path
    packaged = recipe_dir() / f"{name_or_path.removesuffix('.yaml')}.yaml"
    if packaged.is_file():
        return packaged
    raise LongwinError(f"no recipe file or packaged recipe named {name_or_path!r} (known: {', '.join(list_recipes())})")


def configs_from_args(args: argparse.Namespace):
    """(ExtendConfig, TrainingArguments) from TRAINER_DEFAULTS < YAML recipe < explicit flags."""
    from transformers import TrainingArguments

    yaml_values = load_yaml(resolve_recipe(args.config)) if getattr(args, "config", None) else {}
    given = vars(args)
    ext_names = {f.name for f in dataclasses.fields(ExtendConfig)}
    ta_names = {f.name for f in dataclasses.fields(TrainingArguments) if f.init}
    unknown = sorted(set(yaml_values) - ext_names - ta_names)
    if unknown:
        raise LongwinError(f"unknown recipe key(s): {', '.join(unknown)}")
    ext = build_config(ExtendConfig, {k: v for k, v in yaml_values.items() if k in ext_names}, given)
    ext.scheme_options = parse_options(ext.scheme_options)
    ext.rope_options = parse_options(ext.rope_options, "rope")
    if ext.target_length == 0:
        raise LongwinError("--target-length is required (the context window to extend to)")
    ta_values = {**TRAINER_DEFAULTS, **{k: v for k, v in yaml_values.items() if k in ta_names}}
    ta_values.update({k: v for k, v in given.items() if k in ta_names})
    ta_values = checked_values(TrainingArguments, ta_values, TRAINER_MINIMUMS)
    non_reentrant_checkpointing(ta_values, ta_names)
    try:
        targs = TrainingArguments(**ta_values)
    except (TypeError, ValueError) as exc:
        raise LongwinError(f"bad training arguments: {str(exc).splitlines()[0]}") from None
    return ext, targs
