"""Valid example instances of every message in the catalogue, for state-machine probes.

Contract: `sample(cls)` returns a message of class `cls` that passes every field check, so a
receiver that refuses it can only be refusing it for its state (ILLEGAL_STATE), not for its
fields. Values are derived from the field types (codec.schema_of vocabulary) with a few
per-field overrides where `check()` demands a length or range.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import TypeVar

from tslic.protocol.messages import Message

T = TypeVar("T")

_BYTES = {"challenge": 16, "signature": 64}
_OVERRIDES: dict[str, object] = {
    "version": 2003,
    "code": 3002,  # NO_LICENSE_AVAILABLE: a refusal
    "address": "127.0.0.1:1",
    "company": "Microsoft Corporation",
    "license": b"\x01",
    "grant": b"\x01",
    "platform_id": 0,
    "os_version": 2003,
    "product_id": "69712-640-0000000-00000",  # the 5-3-7-5 form protocol/names.py checks
}


def _value(name: str, hint: object) -> object:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return None
    if origin is tuple:
        return ()
    if origin is dict:
        return {}
    if name in _OVERRIDES and not (isinstance(hint, type) and issubclass(hint, enum.Enum)):
        value = _OVERRIDES[name]
        if isinstance(hint, type) and isinstance(value, hint) and type(value) is hint:
            return value
    if isinstance(hint, type):
        if issubclass(hint, enum.Enum):
            if name == "version":
                return list(hint)[-1]
            return next(iter(hint))
        if hint is bool:
            return False
        if hint is int:
            return 0
        if hint is str:
            return "CONFORMANCE"
        if hint is bytes:
            return bytes(_BYTES.get(name, 32))
        if dataclasses.is_dataclass(hint):
            return sample(hint)
    raise TypeError(f"no sample for field {name}: {hint!r}")


def sample(cls: type[T]) -> T:
    """A valid instance of a message or record class."""
    hints = typing.get_type_hints(cls)
    values = {name: _value(name, hints[name]) for name in _field_names(cls)}
    return cls(**values)


def _field_names(cls: type) -> list[str]:
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"no sample for {cls.__name__}: not a message or record")
    return [f.name for f in dataclasses.fields(cls)]


def samples(classes: typing.Iterable[type[Message]]) -> dict[type[Message], Message]:
    return {cls: sample(cls) for cls in classes}
