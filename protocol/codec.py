"""Field schemas of messages and records, and safe msgpack for untrusted input.

Contract:
- A message or record is a frozen dataclass whose field types come from a small vocabulary:
  `int`, `bool`, `str`, `bytes`, an `IntEnum` or `StrEnum`, `T | None`, `tuple[T, ...]`,
  `dict[str, T]`, or another `Record`. `schema_of(cls)` derives the schema once per class.
- `check_value` is the one validator: construction and decoding both use it, so a value that
  could not have been built can never be decoded (and vice versa).
- `to_wire` / `from_wire` map objects to msgpack-ready maps with string keys (the field names)
  and back. A missing field, an extra field or a wrong type is a `LocalProtocolError`
  (INVALID_FIELD) naming the field; the receive path re-raises it as remote.
- `unpack_untrusted` is the only msgpack decoder for peer bytes: size limits, `raw=False`,
  `strict_map_key=True`, no ext types, trailing bytes refused. Every msgpack or UTF-8 failure
  becomes a `RemoteProtocolError` (BAD_ENCODING).
"""

from __future__ import annotations

import dataclasses
import enum
import re
import types
import typing
from collections.abc import Callable, Iterable, Sized
from typing import Any, TypeAlias, TypeVar, cast

import msgpack

from .compiled import Encoder, Validator, make_encoder, make_validator
from .compiled import trusted_builder as trusted_builder
from .errors import ErrorCode, LocalProtocolError, RemoteProtocolError

# Limits inside one frame (docs/PROTOCOL.md §10). A 64 KiB frame bounds the total anyway;
# these stop pathological shapes (a million one-byte entries, deep nesting) early.
MAX_STR = 16 * 1024
MAX_BIN = 48 * 1024
MAX_ARRAY = 4096
MAX_MAP = 256
MAX_DEPTH = 16

Unvalidated: TypeAlias = Any
"""The one boundary type: a value decoded from msgpack (or JSON) that nothing has checked
yet. It is spelled so wherever it appears (`grep Unvalidated`); checked values have their
real types."""

WireValue: TypeAlias = (
    bool | int | float | str | bytes | list["WireValue"] | dict[str, "WireValue"] | None
)
"""A plain value ready for msgpack: what `to_wire` produces."""

T = TypeVar("T")

Checker = Callable[[Unvalidated, str], object]
"""Validates a decoded or constructed value at a path; returns the normalised value."""


def _fail(path: str, expected: str, value: object) -> typing.NoReturn:
    raise LocalProtocolError(
        f"field '{path}' must be {expected}, not {type(value).__name__}",
        code=ErrorCode.INVALID_FIELD,
        detail={"field": path},
    )


_SIZE_LIMITS: dict[type, tuple[int, str]] = {
    str: (MAX_STR, f"a string of at most {MAX_STR} characters"),
    bytes: (MAX_BIN, f"at most {MAX_BIN} bytes"),
}


def _scalar(py_type: type, label: str) -> Checker:
    # One closure per type, so the hot path (every field of every message) makes one check.
    sized = _SIZE_LIMITS.get(py_type)
    if sized is not None:
        max_len, too_long = sized

        def check_sized(value: Unvalidated, path: str) -> object:
            if type(value) is not py_type:
                _fail(path, label, value)
            if len(typing.cast(Sized, value)) > max_len:
                _fail(path, too_long, value)
            return value

        return check_sized

    def check(value: Unvalidated, path: str) -> object:
        # bool is a subclass of int; an int field must not accept True.
        if type(value) is not py_type:
            _fail(path, label, value)
        return value

    return check


def _enum(enum_type: type[enum.Enum]) -> Checker:
    base = int if issubclass(enum_type, int) else str
    # Value to member, read once: `enum_type(value)` goes through EnumType.__call__ and
    # __new__ in Python, on every enum field of every decoded message.
    members: dict[object, object] = {m.value: m for m in enum_type}

    def check(value: Unvalidated, path: str) -> object:
        if isinstance(value, enum_type):
            return value
        if type(value) is not base:
            _fail(path, f"a {enum_type.__name__} ({base.__name__})", value)
        member = members.get(value)
        if member is not None:
            return member
        try:
            return enum_type(value)  # an alias or a _missing_ hook, if the enum has one
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in enum_type)
            raise LocalProtocolError(
                f"field '{path}' has unknown {enum_type.__name__} value {value!r} "
                f"(allowed: {allowed})",
                code=ErrorCode.INVALID_FIELD,
                detail={"field": path},
            ) from None

    return check


def _optional(inner: Checker) -> Checker:
    def check(value: Unvalidated, path: str) -> object:
        return None if value is None else inner(value, path)

    return check


def _tuple(inner: Checker) -> Checker:
    def check(value: Unvalidated, path: str) -> object:
        if not isinstance(value, tuple | list):
            _fail(path, "an array", value)
        if len(value) > MAX_ARRAY:
            _fail(path, f"an array of at most {MAX_ARRAY} items", value)
        return tuple(inner(item, f"{path}[{i}]") for i, item in enumerate(value))

    return check


def _mapping(inner: Checker) -> Checker:
    def check(value: Unvalidated, path: str) -> object:
        if not isinstance(value, dict):
            _fail(path, "a map", value)
        if len(value) > MAX_MAP:
            _fail(path, f"a map of at most {MAX_MAP} entries", value)
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                _fail(f"{path}.<key>", "str", k)
            out[k] = inner(v, f"{path}.{k}")
        return out

    return check


def _record(record_type: type) -> Checker:
    def check(value: Unvalidated, path: str) -> object:
        if isinstance(value, record_type):
            return value
        if not isinstance(value, dict):
            _fail(path, f"a {record_type.__name__} map", value)
        return from_wire(record_type, value, path=path)

    return check


def checker_for(annotation: object) -> Checker:
    """Build the validator for one field annotation (already resolved to a type)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1 or len(args) != 2:
            raise TypeError(f"unsupported union {annotation!r}: only T | None")
        return _optional(checker_for(rest[0]))
    if origin is tuple:
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"unsupported tuple {annotation!r}: only tuple[T, ...]")
        return _tuple(checker_for(args[0]))
    if origin is dict:
        if args[0] is not str:
            raise TypeError("dict fields need str keys")
        return _mapping(checker_for(args[1]))
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            return _enum(annotation)
        if annotation in (int, bool, str, bytes):
            return _scalar(annotation, annotation.__name__)
        if dataclasses.is_dataclass(annotation):
            return _record(annotation)
    raise TypeError(f"unsupported field type {annotation!r}")


_SCHEMAS: dict[type, dict[str, Checker]] = {}
_HINTS: dict[type, dict[str, object]] = {}
_VALIDATORS: dict[type, Validator] = {}
_ENCODERS: dict[type, Encoder] = {}
_LIMITS: dict[type, int] = {str: MAX_STR, bytes: MAX_BIN, tuple: MAX_ARRAY}


def schema_of(cls: type) -> dict[str, Checker]:
    """Field name to validator, derived once from the dataclass's type hints."""
    schema = _SCHEMAS.get(cls)
    if schema is None:
        hints = typing.get_type_hints(cls)
        fields = dataclasses.fields(cls)
        schema = {f.name: checker_for(hints[f.name]) for f in fields}
        _HINTS[cls] = {f.name: hints[f.name] for f in fields}
        _SCHEMAS[cls] = schema
    return schema


def validate_fields(obj: object) -> None:
    """Check and normalise every field of a frozen dataclass in place (lists become tuples,
    raw enum values become members). Called from `__post_init__`. The work is the schema's
    checkers; compiled.py generates, once per class, a function that calls a checker only
    for a field not already in its usual shape."""
    cls = type(obj)
    validate = _VALIDATORS.get(cls)
    if validate is None:
        schema = schema_of(cls)
        validate = _VALIDATORS[cls] = make_validator(cls, _HINTS[cls], schema, _LIMITS)
    validate(obj)


_PLAIN_TYPES = frozenset({int, str, bytes, bool, type(None)})


def _plain(value: object) -> WireValue:
    if type(value) in _PLAIN_TYPES:  # most fields: nothing to convert (enums are subclasses)
        return cast(WireValue, value)
    if isinstance(value, enum.Enum):
        return cast(WireValue, value.value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_wire(value)
    return cast(WireValue, value)


def to_wire(obj: object) -> dict[str, WireValue]:
    """The msgpack-ready map of a message or record: field name to plain value (an encoder
    generated once per class by compiled.py)."""
    cls = type(obj)
    encode = _ENCODERS.get(cls)
    if encode is None:
        schema_of(cls)
        encode = _ENCODERS[cls] = make_encoder(cls, _HINTS[cls], _plain)
    return cast(dict[str, WireValue], encode(obj))


def from_wire(cls: type[T], data: Unvalidated, *, path: str = "") -> T:
    """Build `cls` from a decoded map, refusing missing and extra fields by name.

    Raises:
        LocalProtocolError: INVALID_FIELD naming the first bad field.
    """
    where = f" in '{path}'" if path else ""
    if not isinstance(data, dict):
        raise LocalProtocolError(f"message body{where} must be a map", code=ErrorCode.INVALID_FIELD)
    schema = schema_of(cls)
    if data.keys() == schema.keys():  # every field, nothing else: the usual case, at C speed
        return cls(**data)
    missing = [n for n in schema if n not in data]
    if missing:
        raise LocalProtocolError(
            f"{cls.__name__}{where} is missing field(s): {', '.join(missing)}",
            code=ErrorCode.INVALID_FIELD,
            detail={"field": missing[0]},
        )
    extra = [str(k) for k in data if k not in schema]
    if extra:
        raise LocalProtocolError(
            f"{cls.__name__}{where} has unexpected field(s): {', '.join(sorted(extra))}",
            code=ErrorCode.INVALID_FIELD,
            detail={"field": extra[0]},
        )
    return cls(**data)


def _no_ext(code: int, data: bytes) -> typing.NoReturn:
    raise RemoteProtocolError(
        f"msgpack extension type {code} is not allowed", code=ErrorCode.BAD_ENCODING
    )


def _too_deep() -> typing.NoReturn:
    raise RemoteProtocolError(
        f"value nested deeper than {MAX_DEPTH} levels", code=ErrorCode.BAD_ENCODING
    )


def _check_depth(value: Unvalidated, depth: int = 0) -> None:
    """Refuse any value (container or scalar) at a depth beyond MAX_DEPTH. Recurses into
    containers only: a scalar child is judged in its parent's loop, without a call."""
    if depth > MAX_DEPTH:
        _too_deep()
    if isinstance(value, dict):
        children: Iterable[Unvalidated] = value.values()
    elif isinstance(value, list | tuple):
        children = value
    else:
        return
    child_depth = depth + 1
    for v in children:
        if isinstance(v, list | tuple | dict):
            _check_depth(v, child_depth)
        elif child_depth > MAX_DEPTH:
            _too_deep()


_OVER_LIMIT = re.compile(r"(\d+) exceeds max_(str|bin|array|map)_len\((\d+)\)")
_UNITS = {"str": "bytes", "bin": "bytes", "array": "items", "map": "entries"}


def _bad_encoding_text(exc: BaseException) -> str:
    """A sentence for a BAD_ENCODING refusal: what is wrong, never the library's exception
    name or text (ERR-4)."""
    over = _OVER_LIMIT.search(str(exc))
    if over:
        size, kind, limit = over.groups()
        return (
            f"a msgpack {kind} of {size} {_UNITS[kind]} is over the limit of {limit}"
            " (docs/PROTOCOL.md §3.4)"
        )
    if isinstance(exc, RecursionError):
        return f"msgpack values are nested deeper than {MAX_DEPTH} levels (§3.4)"
    return "the bytes are not one complete msgpack object (truncated, or a reserved type byte)"


def unpack_untrusted(data: bytes) -> Unvalidated:
    """Decode exactly one msgpack object from peer bytes, with the limits above.

    Raises:
        RemoteProtocolError: BAD_ENCODING for anything that is not one well-formed object
            within the limits (trailing bytes, ext types, invalid UTF-8, excess nesting).
    """
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            ext_hook=_no_ext,
            timestamp=0,
            max_str_len=MAX_STR,
            max_bin_len=MAX_BIN,
            max_array_len=MAX_ARRAY,
            max_map_len=MAX_MAP,
            max_ext_len=0,
        )
    except RemoteProtocolError:
        raise
    except msgpack.ExtraData:
        raise RemoteProtocolError(
            "trailing bytes after the msgpack object", code=ErrorCode.BAD_ENCODING
        ) from None
    except UnicodeDecodeError:
        raise RemoteProtocolError(
            "string is not valid UTF-8", code=ErrorCode.BAD_ENCODING
        ) from None
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
        raise RemoteProtocolError(_bad_encoding_text(exc), code=ErrorCode.BAD_ENCODING) from None
    if isinstance(value, msgpack.Timestamp | msgpack.ExtType):
        _no_ext(-1, b"")
    _check_depth(value)
    return value


def pack(value: object) -> bytes:
    """Encode a plain value (maps with str keys, lists, scalars) canonically enough for us:
    `use_bin_type=True` so bytes and str stay distinct."""
    result: bytes = msgpack.packb(value, use_bin_type=True)
    return result
