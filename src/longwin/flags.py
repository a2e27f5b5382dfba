"""Dataclass configs that load from YAML and take command-line overrides.

Every field of a command's config dataclass becomes a `--kebab-case` flag, so every YAML key is also
a flag. Precedence: dataclass defaults < YAML file < flags given on the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from longwin.errors import LongwinError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


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


def add_config_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    skip: set[str] | frozenset = frozenset(),
    names: Mapping[str, str] | None = None,
) -> None:
    """Add one flag per dataclass field; defaults are SUPPRESSed so only explicit flags override. `names` maps
    a field to its flag's name (and the parsed value's key) where that differs from the field's."""
    hints = _hints(cls)
    for field in dataclasses.fields(cls):
        if not field.init or field.name in skip or field.metadata.get("cli") is False:
            continue
        name = (names or {}).get(field.name, field.name)
        tp = _base_type(hints.get(field.name, str))
        help_text = str(field.metadata.get("help", "")).replace("%", "%%")
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": help_text, "dest": name}
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
        parser.add_argument(_flag(name), **kwargs)


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


def build_config(
    cls: type[T],
    yaml_values: dict[str, Any] | None,
    overrides: dict[str, Any],
    *,
    names: Mapping[str, str] | None = None,
) -> T:
    """Merge YAML values and explicit overrides into `cls`, rejecting unknown keys and ill-typed or
    out-of-range values with one line each (naming the flag: `names` maps fields to flag names)."""
    fields = {f.name for f in dataclasses.fields(cls)}
    values = dict(yaml_values or {})
    unknown = sorted(set(values) - fields)
    if unknown:
        raise LongwinError(f"unknown config key(s) for {cls.__name__}: {', '.join(unknown)}")
    values.update({k: v for k, v in overrides.items() if k in fields})
    values = checked_values(cls, values, names=names)
    try:
        return cls(**values)
    except TypeError as exc:
        raise LongwinError(f"bad config: {exc}") from None


def checked_values(
    cls: type,
    values: dict[str, Any],
    minimums: dict[str, float] | None = None,
    *,
    names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """`values` converted to the types of `cls`'s fields, as YAML and flags both give them.

    Strings are parsed the way the flag parser parses them (`"false"` is False, `"1e-4"` a float: YAML
    1.1 reads `1e-4` as a string); anything that does not convert is a one-line error naming the key and
    the expected type. A field's `metadata["min"]` (or `minimums[name]`) and `metadata["max"]` bound
    numbers (each item of a list of numbers), and `metadata["choices"]` lists the accepted values. Types
    this layer does not know pass unchanged for the class to check.
    """
    hints = _hints(cls)
    meta = {f.name: f.metadata for f in dataclasses.fields(cls)}
    out: dict[str, Any] = {}
    for name, value in values.items():
        tp = hints.get(name, Any)
        flag = (names or {}).get(name, name)
        try:
            value = _coerce(value, tp)
        except (TypeError, ValueError):
            raise LongwinError(f"{_flag(flag)}: expected {_type_name(tp)}, got {value!r}") from None
        field_meta: Mapping[str, Any] = meta.get(name, {})
        _check_range(flag, value, (minimums or {}).get(name, field_meta.get("min")), field_meta.get("max"))
        choices = field_meta.get("choices")
        if choices and value not in choices:
            raise LongwinError(f"{_flag(flag)}: {value!r} is not one of {', '.join(map(str, choices))}")
        out[name] = value
    return out


def _check_range(name: str, value: Any, minimum: float | None, maximum: float | None) -> None:
    """Numbers (or each number of a list) within [minimum, maximum]."""
    for number in value if isinstance(value, list) else [value]:
        if not isinstance(number, (int, float)) or isinstance(number, bool):
            continue
        if minimum is not None and number < minimum:
            raise LongwinError(f"{_flag(name)} must be at least {minimum}, got {number}")
        if maximum is not None and number > maximum:
            raise LongwinError(f"{_flag(name)} must be at most {maximum}, got {number}")


_UNCHECKED = object()  # a type this layer does not convert


def _coerce(value: Any, tp: Any) -> Any:
    """`value` as type `tp`; ValueError when it cannot be one; unknown types leave it unchanged."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        members = typing.get_args(tp)
        if value is None and type(None) in members:
            return None
        members = tuple(m for m in members if m is not type(None))
        for member in members:  # an exact match first: `str | bool` keeps True a bool
            if _is_exactly(value, member):
                return value
        for member in members:
            try:
                converted = _convert(value, member)
            except (TypeError, ValueError):
                continue
            return value if converted is _UNCHECKED else converted
        raise ValueError(value)
    converted = _convert(value, tp)
    return value if converted is _UNCHECKED else converted


def _is_exactly(value: Any, tp: Any) -> bool:
    if tp is bool or isinstance(value, bool):
        return tp is bool and isinstance(value, bool)
    return tp in (int, float, str) and type(value) is tp


def _convert(value: Any, tp: Any) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            try:
                return _parse_bool(value)
            except argparse.ArgumentTypeError:
                raise ValueError(value) from None
        raise ValueError(value)
    if tp is int:
        if isinstance(value, bool):
            raise ValueError(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, (int, str)):
            return int(value)
        raise ValueError(value)
    if tp is float:
        if isinstance(value, bool):
            raise ValueError(value)
        number = float(value) if isinstance(value, (int, float, str)) else None
        if number is None or not math.isfinite(number):
            raise ValueError(value)
        return number
    if tp is str:
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, (str, int, float)):
            return str(value)
        raise ValueError(value)
    origin = typing.get_origin(tp)
    if tp is list or origin in (list, tuple):
        item = (typing.get_args(tp) or (Any,))[0]
        if isinstance(value, str):
            value = [x.strip() for x in value.split(",") if x.strip()]
        elif not isinstance(value, (list, tuple)):
            value = [value]
        return [_coerce(x, item) for x in value]
    if tp is dict or origin is dict:
        if isinstance(value, (dict, str)):
            return value
        raise ValueError(value)
    return _UNCHECKED


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(dict.fromkeys(names))
    if tp is list or origin in (list, tuple):
        args = typing.get_args(tp)
        return f"a comma-separated list ({_type_name(args[0]) if args else 'any value'} each)"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "key=value pairs"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


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
