"""Dataclass configs that load from YAML and take command-line overrides.

Every field of a command's config dataclass becomes a `--kebab-case` flag, so every YAML key is also
a flag. Precedence: dataclass defaults < YAML file < flags given on the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from longwin.errors import LongwinError

T = TypeVar("T")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _base_type(tp: Any) -> Any:
    """Strip Optional[...] / `X | None` so argparse gets the concrete type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _base_type(args[0])
    return tp


def _parse_bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _parse_list(item_type: Any):
    def parse(text: str) -> list:
        return [item_type(x) for x in text.split(",") if x.strip()]

    return parse


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except (NameError, TypeError):  # unresolvable forward references: fall back to raw annotations
        return {f.name: f.type for f in dataclasses.fields(cls)}


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, *, skip: set[str] | frozenset = frozenset()) -> None:
    """Add one flag per dataclass field; defaults are SUPPRESSed so only explicit flags override."""
    hints = _hints(cls)
    for field in dataclasses.fields(cls):
        if not field.init or field.name in skip or field.metadata.get("cli") is False:
            continue
        tp = _base_type(hints.get(field.name, str))
        help_text = str(field.metadata.get("help", "")).replace("%", "%%")
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": help_text, "dest": field.name}
        if tp is bool:
            kwargs.update(type=_parse_bool, nargs="?", const=True, metavar="BOOL")
        elif typing.get_origin(tp) in (list, tuple):
            item = typing.get_args(tp)[0] if typing.get_args(tp) else str
            kwargs.update(type=_parse_list(item), metavar="A,B,...")
        elif tp in (int, float, str):
            kwargs.update(type=tp)
        else:
            kwargs.update(type=str)
        choices = field.metadata.get("choices")
        if choices:
            kwargs["choices"] = choices
        parser.add_argument(_flag(field.name), **kwargs)


def load_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise LongwinError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise LongwinError(f"config file {p} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise LongwinError(f"config file {p} must hold a mapping of keys to values")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def build_config(cls: type[T], yaml_values: dict[str, Any] | None, overrides: dict[str, Any]) -> T:
    """Merge YAML values and explicit overrides into `cls`, rejecting unknown keys with one line."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = dict(yaml_values or {})
    unknown = sorted(set(values) - names)
    if unknown:
        raise LongwinError(f"unknown config key(s) for {cls.__name__}: {', '.join(unknown)}")
    values.update({k: v for k, v in overrides.items() if k in names})
    try:
        return cls(**values)
    except TypeError as exc:
        raise LongwinError(f"bad config: {exc}") from None


def config_from_args(cls: type[T], args: argparse.Namespace) -> T:
    """Build a config from a parsed namespace that may name a YAML file in `args.config`."""
    yaml_values = load_yaml(args.config) if getattr(args, "config", None) else None
    return build_config(cls, yaml_values, vars(args))


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def parse_options(text: str | dict, what: str = "scheme") -> dict[str, Any]:
    """`k=v,k=v` → dict with numbers and booleans typed, for `--scheme-options` and `--rope-options`."""
    if isinstance(text, dict):
        return text
    out: dict[str, Any] = {}
    for item in filter(None, (x.strip() for x in text.split(","))):
        if "=" not in item:
            raise LongwinError(f"{what} option {item!r} is not of the form key=value")
        key, value = (x.strip() for x in item.split("=", 1))
        out[key] = _typed(value)
    return out


def _typed(value: str) -> Any:
    low = value.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value
