"""The license requests' one-expression check of their client fields (`_usual_client`)
accepts only what the field-by-field checks accept, so a request it lets through is one
they would have let through too, and anything else still gets their exact refusal."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st
from tslic.protocol.errors import LocalProtocolError
from tslic.protocol.messages.base import require_len, require_text
from tslic.protocol.messages.licensing import _usual_client
from tslic.protocol.names import REMOTE_NAME_MAX, REMOTE_USER_MAX

names = st.text(st.characters(), max_size=300)


def _slow(hwid: bytes, machine: str, user: str) -> bool:
    try:
        require_len(hwid, "hwid", 32)
        require_len(machine, "machine", 1, REMOTE_NAME_MAX)
        require_text(machine, "machine", REMOTE_NAME_MAX)
        require_text(user, "user", REMOTE_USER_MAX)
    except LocalProtocolError:
        return False
    return True


@settings(max_examples=500, deadline=None)
@given(hwid=st.binary(min_size=30, max_size=34), machine=names, user=names)
@example(hwid=bytes(32), machine="PC\x07", user="u")
@example(hwid=bytes(32), machine="PC1", user="a\u2028b")
@example(hwid=bytes(32), machine="", user="u")
@example(hwid=bytes(32), machine="P" * 65, user="u")
@example(hwid=bytes(32), machine="PC1", user="u" * 256)
@example(hwid=bytes(31), machine="PC1", user="u")
def test_the_fast_check_accepts_only_what_the_checks_accept(
    hwid: bytes, machine: str, user: str
) -> None:
    if _usual_client(hwid, machine, user):
        assert _slow(hwid, machine, user)


def test_the_usual_request_takes_the_fast_check() -> None:
    assert _usual_client(bytes(32), "PC-ÜNÏ 1", "Jürgen Müller")
