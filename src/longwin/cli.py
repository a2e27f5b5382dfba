"""The `longwin` command line.

Each subcommand lives in the module that owns its job and registers itself here; heavy imports
(torch, transformers) happen only when a command runs, so `longwin --help` stays instant.
User errors (`LongwinError`) print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from longwin.errors import LongwinError

# OS errors a user fixes on their side (disk full, read-only file system, permissions, quota)
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}

# subcommand name -> (module holding `add_arguments(parser)` and `run(args)`, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("longwin.models.cli", "resolve models: print the local folder of a model reference"),
    "pretrain-toy": ("longwin.jobs.pretrain_toy", "pretrain the built-in 256-token toy base model"),
    "train": ("longwin.training.cli", "extend a model's context window (CREAM, PoSE, RandPos, PI, ...)"),
    "eval": ("longwin.eval.cli", "evaluate a model on long-context tasks"),
    "bench": ("longwin.bench", "efficiency benchmarks"),
    "export": ("longwin.serving.cli", "write a GGUF that llama.cpp runs at the extended length; serving arguments"),
    "demo": ("longwin.jobs.demo", "the main job: extend the toy model and compare methods"),
}


class _Parser(argparse.ArgumentParser):
    """argparse exits with code 2 on bad flags already; keep its message to one line."""

    def error(self, message: str) -> NoReturn:  # pragma: no cover - exercised through CLI tests
        self.exit(2, f"longwin: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Callable]]:
    parser = _Parser(prog="longwin", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    runners: dict[str, Callable] = {}
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a broken install: say which command and why, in one line
            parser.exit(2, f"longwin: cannot load the `{name}` command: {exc}\n")
        cmd = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip())
        module.add_arguments(cmd)
        runners[name] = module.run
    return parser, runners


def _version() -> str:
    from longwin import __version__

    return f"longwin {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    parser, runners = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        result = runners[args.command](args)
    except LongwinError as exc:
        print(f"longwin {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the machine, not the code: full or read-only disk, missing permission
        if exc.errno not in _ENVIRONMENT_ERRNOS:
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"longwin {args.command}: error: {exc.strerror}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"longwin {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
