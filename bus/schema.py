"""Typed structs and the message registry: what may cross the bus.

A *struct* is a frozen-free dataclass whose fields are ``int``, ``float``, ``str``,
``bool``, ``numpy.ndarray`` (declared with :func:`array` so its dtype and shape are
known), another struct, or ``list`` of those. A *message* is a struct with a
``header`` field, registered under a name and a version with :func:`message`.

The schema of each struct is compiled once into a list of field checkers; the
serializer uses them to decode strictly (see ``bus.serialization``), and the same
checkers validate a message when it is built in Python, so a node cannot build what
a subscriber would refuse. (A field assigned after construction is not re-checked
until a subscriber decodes it; build a new message instead of mutating one.)
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

#: dtypes that may travel as out-of-band array frames (little-endian only).
ALLOWED_DTYPES: frozenset[str] = frozenset(
    {"bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64",
     "float16", "float32", "float64"}
)


class SchemaError(ValueError):
    """A value does not match its declared field type. ``path`` names the field."""

    def __init__(self, path: str, expected: str, got: object) -> None:
        shown = repr(got)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        super().__init__(f"{path}: expected {expected}, got {shown}")
        self.path = path
        self.expected = expected
        self.got = got


@dataclass(frozen=True)
class ArraySpec:
    """Declared dtype and shape of an array field; ``None`` in ``shape`` is any size."""

    dtype: str
    shape: tuple[int | None, ...]

    def describe(self) -> str:
        dims = ",".join("N" if d is None else str(d) for d in self.shape)
        return f"{self.dtype} array of shape ({dims})"


def array(dtype: str, shape: Sequence[int | None], **kwargs: Any) -> Any:
    """Declare an ndarray field with its dtype and shape (``None`` = any size)."""
    if dtype not in ALLOWED_DTYPES:
        raise ValueError(f"dtype {dtype!r} cannot travel on the bus")
    spec = ArraySpec(dtype, tuple(shape))
    if "default_factory" not in kwargs and "default" not in kwargs:
        empty_shape = tuple(0 if d is None else d for d in spec.shape)
        kwargs["default_factory"] = lambda: np.zeros(empty_shape, dtype=spec.dtype)
    return field(metadata={"array": spec}, **kwargs)


def choice(options: Sequence[str], default: str | None = None) -> Any:
    """Declare a ``str`` field restricted to ``options`` (an enum that stays readable)."""
    meta = {"choices": tuple(options)}
    if default is None:
        return field(metadata=meta)
    if default not in options:
        raise ValueError(f"default {default!r} not in {options}")
    return field(default=default, metadata=meta)


# --------------------------------------------------------------------------- checkers
# A checker takes (value, path) and returns the value converted to the field type
# (e.g. int -> float) or raises SchemaError. Checkers are built once per struct.

Checker = Callable[[Any, str], Any]


def _check_int(v: Any, path: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise SchemaError(path, "int", v)
    return int(v)


def _check_float(v: Any, path: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise SchemaError(path, "float", v)
    try:
        return float(v)
    except OverflowError:
        raise SchemaError(path, "a float in range", v) from None


def _check_str(v: Any, path: str) -> str:
    if not isinstance(v, str):
        raise SchemaError(path, "str", v)
    return v


def _check_bool(v: Any, path: str) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise SchemaError(path, "bool", v)
    return bool(v)


_SCALARS: dict[Any, Checker] = {int: _check_int, float: _check_float, str: _check_str,
                                bool: _check_bool}


def _array_checker(spec: ArraySpec) -> Checker:
    dtype = np.dtype(spec.dtype)

    def check(v: Any, path: str) -> np.ndarray:
        if not isinstance(v, np.ndarray):
            raise SchemaError(path, spec.describe(), type(v).__name__)
        if v.dtype != dtype or len(v.shape) != len(spec.shape) or any(
            want is not None and want != got for want, got in zip(spec.shape, v.shape, strict=False)
        ):
            raise SchemaError(path, spec.describe(), f"{v.dtype} array of shape {v.shape}")
        return v

    return check


def _choice_checker(options: tuple[str, ...]) -> Checker:
    def check(v: Any, path: str) -> str:
        if v not in options:
            raise SchemaError(path, "one of " + ", ".join(options), v)
        return v

    return check


def _list_checker(item: Checker, item_name: str) -> Checker:
    def check(v: Any, path: str) -> list:
        if not isinstance(v, (list, tuple)):
            raise SchemaError(path, f"list of {item_name}", v)
        try:
            return [item(x, path) for x in v]
        except SchemaError as exc:
            bad = next(i for i, x in enumerate(v) if not _passes(item, x))
            raise SchemaError(f"{path}[{bad}] ({exc.path})", exc.expected, exc.got) from None

    return check


def _passes(check: Checker, v: Any) -> bool:
    try:
        check(v, "")
    except SchemaError:
        return False
    return True


def _struct_checker(cls: type) -> Checker:
    def check(v: Any, path: str) -> Any:
        if isinstance(v, cls):
            return v
        if isinstance(v, dict):
            return from_dict(cls, v, path)
        if isinstance(v, (list, tuple)):
            return from_values(cls, v, path)
        raise SchemaError(path, cls.__name__, v)

    return check


def _checker_for(tp: Any, f: dataclasses.Field) -> Checker:
    if "array" in f.metadata:
        return _array_checker(f.metadata["array"])
    if "choices" in f.metadata:
        return _choice_checker(f.metadata["choices"])
    if tp in _SCALARS:
        return _SCALARS[tp]
    origin = typing.get_origin(tp)
    if origin in (list, Sequence) or origin is typing.List:  # noqa: UP006
        (arg,) = typing.get_args(tp)
        if arg in _SCALARS:
            return _list_checker(_SCALARS[arg], arg.__name__)
        if is_struct(arg):
            return _list_checker(_struct_checker(arg), arg.__name__)
    if is_struct(tp):
        return _struct_checker(tp)
    raise TypeError(f"field {f.name!r}: type {tp!r} cannot travel on the bus")


@dataclass(frozen=True)
class FieldInfo:
    name: str
    path: str  # "Struct.field", for error messages
    check: Checker
    kind: str  # "scalar" | "array" | "struct" | "list"
    scalar: type | None = None  # int/float/str/bool fields with no other constraint
    nested: type | None = None  # the struct type of a struct field or list-of-struct item
    item: type | None = None  # a list field's item type (a struct or a scalar)


_FIELDS: dict[type, tuple[FieldInfo, ...]] = {}
_BUILDERS: dict[type, Callable[[Sequence[Any]], Any]] = {}


def struct(cls: type[T]) -> type[T]:
    """Make ``cls`` a dataclass whose fields are checked on construction."""
    user_post_init = cls.__dict__.get("__post_init__")

    def __post_init__(self: Any) -> None:  # replaced below, once the fields are known
        raise AssertionError("struct checker not compiled")

    # dataclass() makes __init__ call self.__post_init__ only if there is one now
    cls.__post_init__ = __post_init__  # type: ignore[attr-defined]
    cls = dataclass(cls, eq=False, repr=False)  # type: ignore[assignment]
    cls.__eq__ = _struct_eq  # type: ignore[assignment]
    cls.__repr__ = _struct_repr  # type: ignore[assignment]
    cls.__hash__ = None  # type: ignore[assignment]  # mutable, like a dataclass with eq
    hints = typing.get_type_hints(cls)
    infos = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        kind = "scalar"
        if "array" in f.metadata:
            kind = "array"
        elif is_struct(tp):
            kind = "struct"
        elif typing.get_origin(tp) is list:
            kind = "list"
        plain = kind == "scalar" and tp in _SCALARS and "choices" not in f.metadata
        nested = tp if kind == "struct" else None
        item = typing.get_args(tp)[0] if kind == "list" else None
        if item is not None and is_struct(item):
            nested = item
        infos.append(FieldInfo(f.name, f"{cls.__name__}.{f.name}", _checker_for(tp, f), kind,
                               tp if plain else None, nested, item))
    _FIELDS[cls] = tuple(infos)
    _BUILDERS[cls] = _compile_builder(cls, _FIELDS[cls], user_post_init)
    cls.__post_init__ = _compile_post_init(_FIELDS[cls], user_post_init)  # type: ignore[attr-defined]
    return cls


def _compile_post_init(infos: tuple[FieldInfo, ...], post_init: Callable[[Any], None] | None
                       ) -> Callable[[Any], None]:
    """Generate the check run on construction: each field through its checker, with
    fast paths that skip the call when a value is already what the checker would
    return (a scalar of the exact type, a struct of the field's type, a list of
    exact scalars or structs). Nodes build hundreds of small structs per tick (a
    world's ground truth, an object list); a loop over generic checkers cost the
    simulator 7 ms a tick. Unrolled per struct, as ``_compile_builder`` is."""
    env: dict[str, Any] = {"post_init": post_init}
    lines = ["def __post_init__(self):", "    d = self.__dict__"]
    for i, info in enumerate(infos):
        env[f"c{i}"], env[f"p{i}"] = info.check, info.path
        name = repr(info.name)
        exact = info.scalar if info.scalar is not None else (
            info.nested if info.kind == "struct" else None)
        if exact is not None:
            env[f"t{i}"] = exact
            lines += [f"    v = d[{name}]",
                      f"    if type(v) is not t{i}:",
                      f"        d[{name}] = c{i}(v, p{i})"]
            continue
        if info.item is not None:
            env[f"t{i}"] = info.item
            lines += [f"    v = d[{name}]",
                      f"    if type(v) is not list or not all(type(x) is t{i} for x in v):",
                      f"        d[{name}] = c{i}(v, p{i})"]
            continue
        lines.append(f"    d[{name}] = c{i}(d[{name}], p{i})")
    if post_init is not None:
        lines.append("    post_init(self)")
    exec("\n".join(lines) + "\n", env)
    return env["__post_init__"]


def _compile_builder(
    cls: type, infos: tuple[FieldInfo, ...], post_init: Callable[[Any], None] | None
) -> Callable[[Sequence[Any]], Any]:
    """Generate ``build(values)`` for ``cls``: checks each wire value and makes the
    struct without a second check in ``__init__``. Decoding is the bus's hot path, so
    this is unrolled per struct (as ``dataclasses`` itself does) instead of looping."""
    names = [f"v{i}" for i in range(len(infos))]
    env: dict[str, Any] = {"cls": cls, "SchemaError": SchemaError, "post_init": post_init,
                           "n": len(infos)}
    items = []
    for i, info in enumerate(infos):
        env[f"c{i}"], env[f"p{i}"] = info.check, info.path
        if info.scalar is not None:  # fast path: already the exact type
            env[f"t{i}"] = info.scalar
            items.append(f"{info.name!r}: v{i} if type(v{i}) is t{i} else c{i}(v{i}, p{i})")
        elif info.kind == "struct":  # fast path: the nested struct's own builder
            env[f"b{i}"] = _BUILDERS[info.nested]  # type: ignore[index]
            items.append(f"{info.name!r}: b{i}(v{i}) if type(v{i}) is list else c{i}(v{i}, p{i})")
        else:
            items.append(f"{info.name!r}: c{i}(v{i}, p{i})")
    unpack = f"    {', '.join(names)}{',' if len(names) == 1 else ''} = values\n" if names else ""
    src = (
        "def build(values):\n"
        "    if len(values) != n:\n"
        "        raise SchemaError(cls.__name__, f'{n} fields', f'{len(values)} values')\n"
        f"{unpack}"
        "    obj = cls.__new__(cls)\n"
        f"    obj.__dict__.update({{{', '.join(items)}}})\n"
        + ("    post_init(obj)\n" if post_init is not None else "")
        + "    return obj\n"
    )
    exec(src, env)
    return env["build"]


def _struct_eq(a: Any, b: Any) -> bool:
    """Field-wise equality; arrays compare by dtype, shape and contents."""
    if type(a) is not type(b):
        return NotImplemented
    for info in _FIELDS[type(a)]:
        x, y = getattr(a, info.name), getattr(b, info.name)
        if info.kind == "array":
            if x.dtype != y.dtype or not np.array_equal(x, y):
                return False
        elif x != y:
            return False
    return True


def _struct_repr(obj: Any) -> str:
    """Like a dataclass repr, but arrays show as ``uint8[360x640x3]``."""
    parts = []
    for info in _FIELDS[type(obj)]:
        v = getattr(obj, info.name)
        shown = f"{v.dtype}[{'x'.join(map(str, v.shape))}]" if info.kind == "array" else repr(v)
        parts.append(f"{info.name}={shown}")
    return f"{type(obj).__name__}({', '.join(parts)})"


def is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and tp in _FIELDS


def struct_fields(cls: type) -> tuple[FieldInfo, ...]:
    return _FIELDS[cls]


def from_dict(cls: type[T], data: dict, path: str | None = None) -> T:
    """Build struct ``cls`` from a plain dict; exactly its fields, each checked."""
    path = path or cls.__name__
    infos = _FIELDS[cls]
    names = {i.name for i in infos}
    unknown = [k for k in data if k not in names]
    if unknown:
        raise SchemaError(f"{path}.{unknown[0]}", "no such field in " + cls.__name__, unknown[0])
    kwargs = {}
    for info in infos:
        if info.name not in data:
            raise SchemaError(f"{path}.{info.name}", "a value (field missing)", None)
        kwargs[info.name] = info.check(data[info.name], f"{path}.{info.name}")
    try:
        return cls(**kwargs)
    except SchemaError:
        raise
    except (ValueError, TypeError) as exc:
        raise SchemaError(path, f"a valid {cls.__name__}", str(exc)) from exc


def from_values(cls: type[T], values: Sequence[Any], path: str | None = None) -> T:
    """Build struct ``cls`` from its field values in declaration order (the wire form)."""
    try:
        return _BUILDERS[cls](values)
    except SchemaError:
        raise
    except (ValueError, TypeError) as exc:  # from a __post_init__ check
        raise SchemaError(path or cls.__name__, f"a valid {cls.__name__}", str(exc)) from exc


def check_finite(path: str, *values: float) -> None:
    """Raise SchemaError if any value is NaN or infinite (a helper for __post_init__)."""
    for v in values:
        if not math.isfinite(v):
            raise SchemaError(path, "a finite number", v)


def check_range(path: str, value: float, lo: float, hi: float) -> None:
    if not (lo <= value <= hi):
        raise SchemaError(path, f"a number in [{lo}, {hi}]", value)


# --------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class MessageType:
    name: str
    version: int
    cls: type


_BY_NAME: dict[str, MessageType] = {}
_BY_CLASS: dict[type, MessageType] = {}


def message(name: str, version: int = 1) -> Callable[[type[T]], type[T]]:
    """Register a struct as a bus message under ``name`` and ``version``.

    A message's first field must be ``header: Header``. Bump ``version`` whenever a
    field is added, removed or changes meaning: decoders refuse other versions.
    """

    def register(cls: type[T]) -> type[T]:
        cls = struct(cls)
        first = dataclasses.fields(cls)[0]
        if first.name != "header":
            raise TypeError(f"message {name}: first field must be 'header'")
        if name in _BY_NAME:
            raise TypeError(f"message name {name!r} registered twice")
        mt = MessageType(name, version, cls)
        _BY_NAME[name] = mt
        _BY_CLASS[cls] = mt
        cls.MSG_NAME = name  # type: ignore[attr-defined]
        cls.MSG_VERSION = version  # type: ignore[attr-defined]
        return cls

    return register


def message_type(name: str) -> MessageType | None:
    return _BY_NAME.get(name)


def type_of(cls: type) -> MessageType:
    try:
        return _BY_CLASS[cls]
    except KeyError:
        raise TypeError(f"{cls.__name__} is not a registered bus message") from None


def registered_messages() -> list[MessageType]:
    return sorted(_BY_NAME.values(), key=lambda m: m.name)

