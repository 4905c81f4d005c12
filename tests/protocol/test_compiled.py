"""The generated validators and encoders (protocol/compiled.py) agree with the schema.

For every sample message (every registered type, nested records included): the generated
encoder gives the same map as encoding field by field with the schema's plain conversion;
and each field, set to a value of the wrong type, too long, or to a raw value the checker
normalises, gets the same refusal (code and field) or the same normalised value as the
field's own checker gives.
"""

from __future__ import annotations

import enum

import pytest
from tslic.protocol import LocalProtocolError, Message
from tslic.protocol.codec import (
    MAX_BIN,
    MAX_STR,
    _plain,
    from_wire,
    schema_of,
    to_wire,
    validate_fields,
)

from tests.protocol.helpers import sample_messages

SAMPLES = sample_messages()


def _field_by_field(obj: object) -> dict[str, object]:
    return {name: _plain(getattr(obj, name)) for name in schema_of(type(obj))}


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_encoder_matches_the_schema(msg: Message) -> None:
    assert to_wire(msg) == _field_by_field(msg)
    assert from_wire(type(msg), to_wire(msg)) == msg


def _bad_values(value: object) -> list[object]:
    """Values a field holding `value` must refuse or normalise."""
    out: list[object] = [object(), 1.5]
    if isinstance(value, str):
        out.append("x" * (MAX_STR + 1))
    if isinstance(value, bytes):
        out.append(b"x" * (MAX_BIN + 1))
    if isinstance(value, enum.Enum):
        out.append(value.value)  # a raw value: normalised to the member
    if isinstance(value, tuple):
        out.append(list(value))  # a list: normalised to a tuple
    if type(value) is int:
        out.append(True)
    return out


def _outcome(check: object) -> tuple[str, object]:
    try:
        result = check() if callable(check) else check
    except LocalProtocolError as exc:
        return ("refused", (exc.code, exc.detail.get("field")))
    return ("accepted", result)


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_validator_matches_each_fields_checker(msg: Message) -> None:
    schema = schema_of(type(msg))
    tried = 0
    for name, checker in schema.items():
        for bad in _bad_values(getattr(msg, name)):
            copy = object.__new__(type(msg))
            for field_name in schema:
                object.__setattr__(copy, field_name, getattr(msg, field_name))
            object.__setattr__(copy, name, bad)

            def through_validator(obj: object = copy, field: str = name) -> object:
                validate_fields(obj)
                return getattr(obj, field)

            expected = _outcome(lambda c=checker, v=bad, n=name: c(v, n))
            assert _outcome(through_validator) == expected, (type(msg).__name__, name, bad)
            tried += 1
    assert tried >= 2 * len(schema)
