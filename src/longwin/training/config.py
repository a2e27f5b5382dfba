"""What `longwin train` is asked to do: a `TrainConfig` (common options plus one section per method
component) and Hugging Face `TrainingArguments`.

Every option is a `--kebab-case` flag and a recipe key. A recipe nests a component's options under its
section (`positions:`, `lora:`, `sharedllm:`); a section's flag is its flat name (`--scheme`, `--lora-r`,
`--sharedllm-chunk-size`), and a flat key of that name in a recipe still works. `TrainingArguments`
keys (`max_steps`, `output_dir`, `deepspeed`, `fsdp`, ...) sit at the top level.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from importlib import resources
from pathlib import Path
from typing import Any, cast

from longwin.errors import LongwinError
from longwin.flags import add_config_arguments, build_config, checked_values, load_yaml
from longwin.methods import sections
from longwin.methods.base import CommonOptions, TrainConfig, section_flags
from longwin.models.compat import non_reentrant_checkpointing
from longwin.training.preflight import check_launch

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
    add_config_arguments(parser, CommonOptions)
    taken = {f.name for f in dataclasses.fields(CommonOptions)}
    for cls in sections():
        flat = section_flags(cls)
        add_config_arguments(parser, cls, names=flat)
        taken |= set(flat.values())
    add_config_arguments(parser, TrainingArguments, skip=taken)


def recipe_dir() -> Path:
    return Path(str(resources.files("longwin") / "recipes"))


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


def train_config(values: dict[str, Any], given: dict[str, Any] | None = None) -> TrainConfig:
    """A `TrainConfig` from recipe values (nested sections or flat keys) and flags given on the command line
    (flat names); keys that belong nowhere are left for `TrainingArguments`."""
    values, given = dict(values), dict(given or {})
    common_names = {f.name for f in dataclasses.fields(CommonOptions)}
    config = TrainConfig(build_config(CommonOptions, _pick(values, common_names), _pick(given, common_names)))
    for cls in sections():
        flat = section_flags(cls)
        by_flat = {name: field for field, name in flat.items()}
        nested = values.pop(cls.SECTION, None) or {}
        if not isinstance(nested, dict) and cls.SECTION in by_flat:  # `lora: true`: the flat key, not the section
            nested = {by_flat[cls.SECTION]: nested}
        if not isinstance(nested, dict):
            raise LongwinError(f"recipe key {cls.SECTION!r} must hold a mapping of {cls.SECTION} options")
        nested = {str(k).replace("-", "_"): v for k, v in nested.items()}
        unknown = sorted(set(nested) - set(flat))
        if unknown:
            raise LongwinError(f"unknown {cls.SECTION} option(s): {', '.join(unknown)} (known: {', '.join(flat)})")
        for name in [k for k in values if k in by_flat]:  # a flat (pre-section) recipe key
            nested.setdefault(by_flat[name], values.pop(name))
        flags = {by_flat[k]: v for k, v in given.items() if k in by_flat}
        config.sections[cls] = build_config(cast(Any, cls), nested, flags, names=flat)
    for name in common_names:
        values.pop(name, None)
    if values:
        raise LongwinError(f"unknown recipe key(s): {', '.join(sorted(values))}")
    return config


def _pick(values: dict[str, Any], names: set[str]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k in names}


def configs_from_args(args: argparse.Namespace) -> tuple[TrainConfig, Any]:
    """(TrainConfig, TrainingArguments) from TRAINER_DEFAULTS < YAML recipe < explicit flags; a global batch size
    sets the gradient accumulation for the process count."""
    yaml_values = load_yaml(resolve_recipe(args.config)) if getattr(args, "config", None) else {}
    given = vars(args)
    ta_values = {**TRAINER_DEFAULTS, **pop_trainer_values(yaml_values)}
    config = train_config(yaml_values, given)
    if config.common.target_length == 0:
        raise LongwinError("--target-length is required (the context window to extend to)")
    ta_values.update({k: v for k, v in given.items() if k in _trainer_names()})
    targs = training_arguments(ta_values)
    if config.common.global_batch_size:
        steps = accumulation_steps(config.common.global_batch_size, targs.per_device_train_batch_size, targs.world_size)
        stated = ta_values.get("gradient_accumulation_steps", steps)
        if stated != steps:
            raise LongwinError(
                f"--gradient-accumulation-steps {stated} contradicts --global-batch-size "
                f"{config.common.global_batch_size}, which makes it {steps} here: give one (--global-batch-size 0 "
                f"turns it off)"
            )
        if steps != targs.gradient_accumulation_steps:  # built anew: DeepSpeed fills its "auto" batch while built
            targs = training_arguments({**ta_values, "gradient_accumulation_steps": steps})
    return config, targs


def accumulation_steps(global_batch_size: int, per_device: int, world_size: int) -> int:
    """Gradient accumulation that makes `global_batch_size` examples a step from `per_device` examples on each
    of `world_size` processes, so that a recipe keeps its paper's batch on any number of GPUs."""
    if global_batch_size % world_size:
        raise LongwinError(f"--global-batch-size {global_batch_size} does not split over {world_size} processes")
    per_process = global_batch_size // world_size
    if per_process % per_device:
        fits = max(d for d in range(1, min(per_device, per_process) + 1) if per_process % d == 0)
        raise LongwinError(
            f"--global-batch-size {global_batch_size} is not a multiple of {per_device} per device x {world_size} "
            f"processes: use --per-device-train-batch-size {fits}"
        )
    return per_process // per_device


def _trainer_names() -> set[str]:
    from transformers import TrainingArguments

    return {f.name for f in dataclasses.fields(TrainingArguments) if f.init}


def pop_trainer_values(values: dict[str, Any]) -> dict[str, Any]:
    """Remove the `TrainingArguments` keys from recipe `values` and return them."""
    names = _trainer_names()
    return {k: values.pop(k) for k in list(values) if k in names}


def training_arguments(values: dict[str, Any]) -> Any:
    """`TrainingArguments` from checked values (bounds, types), with non-reentrant checkpointing."""
    from transformers import TrainingArguments

    values = checked_values(TrainingArguments, values, TRAINER_MINIMUMS)
    check_launch(values, os.environ)
    non_reentrant_checkpointing(values, _trainer_names())
    try:
        return TrainingArguments(**values)
    except (TypeError, ValueError) as exc:
        raise LongwinError(f"bad training arguments: {str(exc).splitlines()[0]}") from None
