"""Resolve model references: `longwin models path NAME` prints the local folder that stock
`from_pretrained` loads (converting a GGUF once); `longwin models list` shows the aliases."""

from __future__ import annotations

import argparse

from longwin.models.aliases import ALIASES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="models_action", metavar="ACTION", required=True)
    path = actions.add_parser("path", help="print the local model folder (nothing else on stdout)")
    path.add_argument(
        "name", metavar="NAME", help="alias, local folder, .gguf file, or Hugging Face id in the local cache"
    )
    actions.add_parser("list", help="list the model aliases and whether they are available here")


def run(args: argparse.Namespace) -> int:
    if args.models_action == "path":
        from longwin.models.resolve import model_path

        print(model_path(args.name))
        return 0
    width = max(map(len, ALIASES))
    for name, alias in ALIASES.items():
        print(f"{name:<{width}}  {alias.description}  [{alias.status()}]")
    return 0
