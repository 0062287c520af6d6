"""Wire format: msgpack metadata plus numpy arrays as separate, zero-copy frames.

A message becomes a list of frames (one ZeroMQ multipart message):

  frame 0      msgpack array ``[name, version, field_0, field_1, ...]``; nested structs
               are arrays of their fields in declaration order; an ndarray is the
               msgpack extension ``ExtType(1, <u16 frame index, u8 dtype code, u8 ndim,
               ndim x u64 dims>)``, the dtype code indexing ``WIRE_DTYPES``
  frame 1..n   the raw little-endian, C-ordered bytes of each array

Encoding never copies a C-contiguous array. Decoding is strict and never runs code
from the data (no pickle, no msgpack-numpy): the name and version must be
registered, every field must have its declared type, an array's dtype must be in
``ALLOWED_DTYPES`` and its frame exactly ``prod(shape) * itemsize`` bytes, and each
frame must be used exactly once. Any violation raises :class:`DecodeError`, and
nothing else escapes the decoder.

For storage (MCAP) the frames are joined into one buffer with :func:`join_frames`;
:func:`split_frames` gives back the identical frames, so a replay is bit-exact.
"""

from __future__ import annotations

import struct as _struct
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import msgpack
import numpy as np

from bus.schema import (
    ALLOWED_DTYPES,
    SchemaError,
    from_values,
    message_type,
    struct_fields,
    type_of,
)

T = TypeVar("T")
Frame = bytes | memoryview
_EXT_ARRAY = 1
_MAX_NDIM = 8
_MAX_FRAMES = 1024


class DecodeError(ValueError):
    """Bytes that are not a valid drivestack message (the only error decoding raises)."""


# Array references. The wire names each dtype by its index in this tuple: append
# only, never reorder (it is part of the format, like the message versions).
WIRE_DTYPES = ("bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64",
               "int64", "float16", "float32", "float64")
assert set(WIRE_DTYPES) == ALLOWED_DTYPES
_NP_DTYPES = tuple(np.dtype(n).newbyteorder("<") for n in WIRE_DTYPES)
_DTYPE_CODE = {np.dtype(n): i for i, n in enumerate(WIRE_DTYPES)}
_ARRAY_REF = _struct.Struct("<HBB")  # frame index, dtype code, ndim; then ndim x u64
_DIMS = [_struct.Struct(f"<{n}Q") for n in range(_MAX_NDIM + 1)]


# ------------------------------------------------------------------------- encoding
def _array_ref(a: np.ndarray, arrays: list[np.ndarray]) -> msgpack.ExtType:
    """Queue ``a`` as the next out-of-band frame; return its reference for the metadata."""
    if not a.flags.c_contiguous:
        a = np.ascontiguousarray(a)
    code = _DTYPE_CODE.get(a.dtype)
    if code is None:  # big-endian or otherwise foreign layout of an allowed dtype
        a = a.astype(a.dtype.newbyteorder("<"))
        code = _DTYPE_CODE[a.dtype]
    arrays.append(a)
    ref = _ARRAY_REF.pack(len(arrays), code, a.ndim) + _DIMS[a.ndim].pack(*a.shape)
    return msgpack.ExtType(_EXT_ARRAY, ref)


_ENCODERS: dict[type, Callable[[Any, list[np.ndarray]], list]] = {}


def _encoder(cls: type) -> Callable[[Any, list[np.ndarray]], list]:
    """Generate (once per struct) ``enc(obj, arrays)``: the struct as a list of its field
    values, nested structs as lists, arrays as references. Unrolled like the decoding
    builders in ``bus.schema``, because this is the publishing hot path."""
    enc = _ENCODERS.get(cls)
    if enc is not None:
        return enc
    env: dict[str, Any] = {"array_ref": _array_ref}
    items = []
    for i, info in enumerate(struct_fields(cls)):
        value = f"d[{info.name!r}]"
        if info.kind == "array":
            items.append(f"array_ref({value}, arrays)")
        elif info.kind == "struct":
            env[f"e{i}"] = _encoder(info.nested)  # type: ignore[arg-type]
            items.append(f"e{i}({value}, arrays)")
        elif info.kind == "list" and info.nested is not None:
            env[f"e{i}"] = _encoder(info.nested)
            items.append(f"[e{i}(x, arrays) for x in {value}]")
        else:
            items.append(value)
    src = f"def enc(obj, arrays):\n    d = obj.__dict__\n    return [{', '.join(items)}]\n"
    exec(src, env)
    _ENCODERS[cls] = enc = env["enc"]
    return enc


def encode(msg: Any) -> list[Frame]:
    """Encode a registered message into frames (arrays are not copied)."""
    mt = type_of(type(msg))
    arrays: list[np.ndarray] = []
    body = _encoder(mt.cls)(msg, arrays)
    meta = msgpack.packb([mt.name, mt.version, *body], use_bin_type=True)
    return [meta, *(memoryview(a).cast("B") if a.size else b"" for a in arrays)]


# ------------------------------------------------------------------------- decoding
def _unpack_meta(frames: Sequence[Frame]) -> tuple[list, list[bool]]:
    used = [False] * len(frames)

    def ext_hook(code: int, data: bytes) -> np.ndarray:
        if code != _EXT_ARRAY:
            raise DecodeError(f"unknown msgpack extension type {code}")
        if len(data) < _ARRAY_REF.size:
            raise DecodeError(f"bad array reference ({len(data)} bytes, too short)")
        index, dtype_code, ndim = _ARRAY_REF.unpack_from(data)
        if ndim > _MAX_NDIM or len(data) != _ARRAY_REF.size + 8 * ndim:
            raise DecodeError(f"bad array reference ({ndim} dimensions, {len(data)} bytes)")
        if not 1 <= index < len(frames):
            raise DecodeError(f"array refers to frame {index}, message has {len(frames)}")
        if used[index]:
            raise DecodeError(f"frame {index} referenced twice")
        if dtype_code >= len(_NP_DTYPES):
            raise DecodeError(f"array dtype code {dtype_code} is not allowed")
        dtype = _NP_DTYPES[dtype_code]
        shape = _DIMS[ndim].unpack_from(data, _ARRAY_REF.size)
        buf = memoryview(frames[index])
        n = dtype.itemsize
        for d in shape:
            n *= d
        if n != buf.nbytes:
            raise DecodeError(f"array of shape {list(shape)} {dtype.name} needs {n} bytes, "
                              f"frame {index} has {buf.nbytes}")
        used[index] = True
        arr = np.frombuffer(buf, dtype=dtype).reshape(shape)
        if arr.flags.writeable:  # a view of a mutable buffer: make it read-only
            arr.flags.writeable = False
        return arr

    try:
        meta = msgpack.unpackb(frames[0], raw=False, ext_hook=ext_hook, strict_map_key=True,
                               use_list=True)
    except DecodeError:
        raise
    except Exception as exc:  # msgpack raises many types on malformed input
        raise DecodeError(f"malformed message metadata: {type(exc).__name__}: {exc}") from None
    if not isinstance(meta, list) or len(meta) < 2:
        raise DecodeError("message metadata is not [name, version, fields...]")
    return meta, used


def peek_type(frames: Sequence[Frame]) -> tuple[str, int]:
    """Name and version of an encoded message, without decoding its fields."""
    if not frames:
        raise DecodeError("empty message (no frames)")
    try:
        unpacker = msgpack.Unpacker(raw=False, max_buffer_size=len(frames[0]) + 1)
        unpacker.feed(frames[0])
        n = unpacker.read_array_header()
        name, version = unpacker.unpack(), unpacker.unpack()
    except Exception as exc:
        raise DecodeError(f"malformed message metadata: {type(exc).__name__}: {exc}") from None
    if n < 2 or not isinstance(name, str) or type(version) is not int:
        raise DecodeError("message metadata does not start with name and version")
    return name, version


def decode(frames: Sequence[Frame], expected: type[T] | None = None) -> T:
    """Decode frames into a message; ``expected`` restricts which message type is valid.

    Returned arrays are read-only views of the frames (no copy)."""
    if not frames:
        raise DecodeError("empty message (no frames)")
    if len(frames) > _MAX_FRAMES:
        raise DecodeError(f"{len(frames)} frames, at most {_MAX_FRAMES} allowed")
    meta, used = _unpack_meta(frames)
    name, version, *values = meta
    if not isinstance(name, str) or type(version) is not int:
        raise DecodeError("message metadata does not start with name and version")
    mt = message_type(name)
    if mt is None:
        raise DecodeError(f"unknown message type {name!r}")
    if version != mt.version:
        raise DecodeError(f"{name} version {version} received, this build reads {mt.version}")
    if expected is not None and mt.cls is not expected:
        raise DecodeError(f"expected {expected.__name__}, received {name}")
    if not all(used[1:]):
        raise DecodeError(f"frames {[i for i, u in enumerate(used) if i and not u]} unused")
    try:
        return from_values(mt.cls, values, name)
    except SchemaError as exc:
        raise DecodeError(str(exc)) from None
    except (ValueError, TypeError, RecursionError) as exc:  # from a __post_init__
        raise DecodeError(f"{name}: {exc}") from None


# --------------------------------------------------------------------- joined form
_COUNT = _struct.Struct("<I")
_LEN = _struct.Struct("<Q")


def join_frames(frames: Sequence[Frame]) -> bytes:
    """Frames -> one buffer: u32 count, u64 length of each frame, then the frames."""
    sizes = [memoryview(f).nbytes for f in frames]
    head = _COUNT.pack(len(frames)) + b"".join(_LEN.pack(s) for s in sizes)
    return b"".join([head, *frames])


def split_frames(data: Frame) -> list[memoryview]:
    """Inverse of :func:`join_frames` (views, no copy); DecodeError if malformed."""
    view = memoryview(data).cast("B")
    if view.nbytes < _COUNT.size:
        raise DecodeError("joined message shorter than its frame count")
    (count,) = _COUNT.unpack_from(view, 0)
    if count == 0 or count > _MAX_FRAMES:
        raise DecodeError(f"joined message claims {count} frames")
    pos = _COUNT.size + count * _LEN.size
    if view.nbytes < pos:
        raise DecodeError("joined message truncated in its frame table")
    frames = []
    for i in range(count):
        (size,) = _LEN.unpack_from(view, _COUNT.size + i * _LEN.size)
        if pos + size > view.nbytes:
            raise DecodeError(f"joined message truncated in frame {i}")
        frames.append(view[pos : pos + size])
        pos += size
    if pos != view.nbytes:
        raise DecodeError(f"{view.nbytes - pos} stray bytes after the last frame")
    return frames


def to_bytes(msg: Any) -> bytes:
    """A message as one buffer (what a recording stores)."""
    return join_frames(encode(msg))


def from_bytes(data: Frame, expected: type[T] | None = None) -> T:
    return decode(split_frames(data), expected)
