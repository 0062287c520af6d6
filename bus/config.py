"""Validated configuration: YAML or dicts into typed dataclasses, errors that name
the file, the key and what was expected.

Every config in drivestack (node parameters, vehicle parameters, scenarios) is a
dataclass loaded through :func:`load`. A misspelled key is an error, never a silent
default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type."""

    def __init__(self, source: str, key: str, expected: str, got: object = None) -> None:
        where = f"{source}: {key}" if key else source
        message = f"{where}: expected {expected}"
        if got is not None:
            shown = repr(got)
            message += f", got {shown if len(shown) <= 60 else shown[:57] + '...'}"
        super().__init__(message)
        self.source, self.key, self.expected = source, key, expected


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return f"a list of {_describe(args[0])}" if args else "a list"
    if origin is dict:
        return "a mapping"
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if dataclasses.is_dataclass(tp):
        return f"a mapping with keys {', '.join(f.name for f in dataclasses.fields(tp))}"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            type(None): "null"}.get(tp, getattr(tp, "__name__", str(tp)))


def _convert(tp: Any, value: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in typing.get_args(tp)):
            return value
        raise ConfigError(source, key, _describe(tp), value)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            try:
                return _convert(arg, value, source, key)
            except ConfigError:
                continue
        raise ConfigError(source, key, _describe(tp), value)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(source, key, _describe(tp), value)
        args = typing.get_args(tp)
        item = args[0] if args else Any
        items = [_convert(item, v, source, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(source, key, "a mapping", value)
        kt, vt = typing.get_args(tp) or (Any, Any)
        return {_convert(kt, k, source, f"{key}.{k}"): _convert(vt, v, source, f"{key}.{k}")
                for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return load(tp, value, source, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:
                raise ConfigError(source, key, "a number in float range", value) from None
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is type(None):
        if value is None:
            return None
    elif isinstance(value, tp):
        return value
    raise ConfigError(source, key, _describe(tp), value)


def load(cls: type[T], data: Any, source: str = "config", prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, checking every key and type.

    Missing keys take the dataclass default (or are an error when it has none);
    unknown keys are an error. ``__post_init__`` may raise ValueError to reject a
    value; the message is reported against ``source``."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, prefix, _describe(cls), data)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for k in data:
        if k not in fields:
            raise ConfigError(source, _join(prefix, str(k)),
                              "one of the keys " + ", ".join(fields), None)
    kwargs = {}
    for name, f in fields.items():
        key = _join(prefix, name)
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], source, key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(source, key, f"a value ({_describe(hints[name])})")
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ConfigError(source, prefix, str(exc)) from None


def load_yaml(cls: type[T], path: str | Path) -> T:
    """Load ``cls`` from a YAML file; unreadable or malformed files are ConfigErrors."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), "", "a readable YAML file", exc.strerror) from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), "", "a UTF-8 text file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), "", f"valid YAML ({exc})".replace("\n", " ")) from None
    return load(cls, data, str(path))


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name
