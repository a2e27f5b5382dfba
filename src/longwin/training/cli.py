"""Extend a model's context window by fine-tuning at its native window with manipulated position ids.

Example:
  longwin train --model toy --scheme cream --rope linear --target-length 2048 --max-steps 200 --output-dir out/cream
Every option is also a YAML key (--config FILE or a packaged recipe name); Hugging Face
TrainingArguments flags (--learning-rate, --deepspeed, --fsdp, --bf16, ...) are accepted as well.
"""

from __future__ import annotations

import argparse

from longwin.training.config import add_arguments, configs_from_args, list_recipes

__all__ = ["add_arguments", "run"]


def run(args: argparse.Namespace) -> int:
    if args.list_recipes:
        print("\n".join(list_recipes()))
        return 0
    from longwin.training.runner import train

    config, targs = configs_from_args(args)
    out = train(config, targs)
    print(out)
    return 0
