"""The codec's nesting limit: exactly MAX_DEPTH levels pass, one more is BAD_ENCODING, whether
the deepest value is a scalar, an empty container or a map value (the check recurses into
containers only, so this pins the boundary it must keep)."""

from __future__ import annotations

from typing import Any

import pytest
from tslic.protocol import ErrorCode, RemoteProtocolError
from tslic.protocol.codec import MAX_DEPTH, pack, unpack_untrusted


def _lists(levels: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(levels):
        value = [value]
    return value


def _maps(levels: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(levels):
        value = {"k": value}
    return value


def _depth_of(value: Any) -> int:
    """The depth of the deepest value, the root being at depth 0 (the reference rule)."""
    if isinstance(value, list):
        return 1 + max((_depth_of(v) for v in value), default=-1)
    if isinstance(value, dict):
        return 1 + max((_depth_of(v) for v in value.values()), default=-1)
    return 0


@pytest.mark.parametrize("wrap", [_lists, _maps])
@pytest.mark.parametrize("leaf", [1, "s", b"b", None, [], {}])
@pytest.mark.parametrize("levels", range(MAX_DEPTH - 2, MAX_DEPTH + 3))
def test_nesting_boundary(wrap: Any, leaf: Any, levels: int) -> None:
    value = wrap(levels, leaf)
    if _depth_of(value) <= MAX_DEPTH:
        assert unpack_untrusted(pack(value)) == value
    else:
        with pytest.raises(RemoteProtocolError) as info:
            unpack_untrusted(pack(value))
        assert info.value.code is ErrorCode.BAD_ENCODING


def test_wide_shallow_values_pass() -> None:
    value = {"a": [1, 2, [3, {"b": b"x"}]], "c": {"d": [[], {}]}, "e": "f"}
    assert unpack_untrusted(pack(value)) == value
