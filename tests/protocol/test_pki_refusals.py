"""Tests for tslic.protocol.pki: the chains validate_chain refuses, temporary certificates,
and bad arguments (the shared hierarchy is in pki_world.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st
from tslic.protocol import pki
from tslic.protocol.errors import ErrorCode, LocalProtocolError

from tests.protocol.pki_world import (
    EXPIRED,
    FULL,
    NOW,
    T0,
    T1,
    UNTRUSTED,
    forge,
    ident_map,
    issue_ls,
    issue_ts,
    key,
    refused,
    world,
)

if TYPE_CHECKING:
    from collections.abc import Callable


# --- refused chains ---------------------------------------------------------------------


def test_empty_and_overlong_chains() -> None:
    w = world()
    assert "empty" in refused(UNTRUSTED, [])
    assert "longer" in refused(UNTRUSTED, [w.root, w.ls, w.ts, w.ts])


def test_wrong_root() -> None:
    w = world()
    other = pki.make_root(key(20), name="Clearinghouse", not_before=T0, not_after=T1, serial=1)
    other_ls = issue_ls(key(20), other)
    other_ts = issue_ts(key(2), other_ls)
    # Same names, different root key: only the signature can tell them apart.
    assert "bad signature" in refused(UNTRUSTED, [other_ls, other_ts])
    assert "bad signature" in refused(UNTRUSTED, [other, other_ls, other_ts])
    # And the other way round, our chain against their root.
    with pytest.raises(pki.CertificateError) as info:
        pki.validate_chain([w.ls, w.ts], other, NOW)
    assert info.value.code is UNTRUSTED


def test_root_of_another_name() -> None:
    w = world()
    other = pki.make_root(key(21), name="Elsewhere", not_before=T0, not_after=T1, serial=1)
    message = refused(UNTRUSTED, [w.ls, w.ts], root=other)
    assert message == "certificate 'LS01' was not issued by 'Elsewhere'"


SECOND = timedelta(seconds=1)


@pytest.mark.parametrize("which", ["root", "ls", "ts"])
@pytest.mark.parametrize(
    ("start", "end", "word"), [(T0, NOW - SECOND, "expired"), (NOW + SECOND, T1, "not valid until")]
)
def test_certificate_outside_validity(
    which: str, start: datetime, end: datetime, word: str
) -> None:
    v = {"root": FULL, "ls": FULL, "ts": FULL} | {which: (start, end)}
    (root_start, root_end) = v["root"]
    root = pki.make_root(
        key(1), name="Clearinghouse", not_before=root_start, not_after=root_end, serial=1
    )
    ls = issue_ls(key(1), root, window=v["ls"])
    ts = issue_ts(key(2), ls, window=v["ts"])
    name = {"root": "Clearinghouse", "ls": "LS01", "ts": "TS01"}[which]
    message = refused(EXPIRED, [root, ls, ts], root=root)
    assert message.startswith(f"certificate {name!r}")
    assert word in message


def test_trust_is_judged_before_time() -> None:
    w = world()
    later = T1 + timedelta(days=1)
    other = pki.make_root(key(20), name="Clearinghouse", not_before=T0, not_after=T1, serial=1)
    with pytest.raises(pki.CertificateError) as info:
        pki.validate_chain([w.ls, w.ts], other, later)
    assert info.value.code is UNTRUSTED


def test_terminal_server_signed_by_another_license_server_key() -> None:
    w = world()
    # An impostor LS01 with its own key, genuinely certified, issues TS01; presented under
    # the real LS01 certificate, the signature does not verify.
    impostor = issue_ls(key(1), w.root, seed=30)
    ts = issue_ts(key(30), impostor)
    pki.validate_chain([impostor, ts], w.root, NOW)
    message = refused(UNTRUSTED, [w.ls, ts])
    assert message == "certificate 'TS01' was not issued by 'LS01' (bad signature)"


def test_wrong_issuer_name() -> None:
    w = world()
    assert refused(UNTRUSTED, [w.ls, w.temp_ts], allow_temporary_issuer=True) == (
        "certificate 'TS02' was not issued by 'LS01'"
    )


def test_tampered_signature_byte() -> None:
    w = world()
    der = bytearray(pki.cert_to_der(w.ts))
    der[-1] ^= 0x01
    tampered = pki.cert_from_der(bytes(der))
    assert "bad signature" in refused(UNTRUSTED, [w.ls, tampered])


def test_tampered_public_key_byte() -> None:
    w = world()
    der = bytearray(pki.cert_to_der(w.ts))
    at = bytes(der).index(pki.raw_public_key(key(3)))
    der[at] ^= 0x40
    assert "bad signature" in refused(UNTRUSTED, [w.ls, pki.cert_from_der(bytes(der))])


def test_signature_bit_string_with_unused_bits() -> None:
    # DER allows a BIT STRING to claim unused (zero) bits; cryptography then reports the
    # same signature bytes. Refused, so that a certificate has exactly one encoding.
    w = world()
    der = bytearray(pki.cert_to_der(w.ts))
    assert der[-67:-64] == b"\x03\x41\x00"
    # The keys are deterministic, so this signature always ends in a clear bit (which the
    # forged encoding claims as padding); a changed fixture must keep that true.
    assert not der[-1] & 1, "fixture changed: choose keys whose signature ends in a 0 bit"
    der[-65] = 1
    assert "not signed with Ed25519" in refused(UNTRUSTED, [w.ls, pki.cert_from_der(bytes(der))])


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_single_byte_change_is_refused(data: st.DataObject) -> None:
    w = world()
    der = bytearray(pki.cert_to_der(w.ts))
    position = data.draw(st.integers(0, len(der) - 1), label="position")
    der[position] ^= data.draw(st.integers(1, 255), label="xor")
    with pytest.raises(pki.CertificateError) as info:
        pki.validate_chain([w.ls, pki.cert_from_der(bytes(der))], w.root, NOW)
    assert info.value.code is UNTRUSTED


def test_wrong_leaf_role() -> None:
    w = world()
    message = refused(UNTRUSTED, [w.ls], leaf_role="terminal-server")
    assert message == (
        "certificate 'LS01' is a license-server certificate, expected a terminal-server certificate"
    )
    refused(UNTRUSTED, [w.ls, w.ts], leaf_role="license-server")


def test_license_server_claiming_to_be_issued_by_a_terminal_server() -> None:
    w = world()
    forged = forge(
        key(3), w.ts.subject, name="LS66", ca=True, identity=ident_map("license-server", "LS66")
    )
    message = refused(UNTRUSTED, [w.ls, w.ts, forged])
    assert message == (
        "certificate 'LS66' claims to be a license-server issued by 'TS01', a terminal-server"
    )


def test_terminal_server_issued_directly_by_the_root() -> None:
    w = world()
    forged = forge(
        key(1), w.root.subject, name="TS66", ca=False, identity=ident_map("terminal-server", "TS66")
    )
    assert "issued by 'Clearinghouse', a clearinghouse" in refused(UNTRUSTED, [forged])


def test_terminal_server_certificate_that_claims_to_be_a_ca() -> None:
    w = world()
    forged = forge(
        key(2),
        w.ls.subject,
        name="TS66",
        ca=True,
        identity=ident_map("terminal-server", "TS66", license_server_id="LSID-0001"),
    )
    assert "constraints wrong for a terminal-server" in refused(UNTRUSTED, [w.ls, forged])


def test_unknown_critical_extension() -> None:
    w = world()
    forged = forge(
        key(2),
        w.ls.subject,
        name="TS66",
        ca=False,
        identity=ident_map("terminal-server", "TS66"),
        extra=x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00"),
    )
    assert "unknown critical extension" in refused(UNTRUSTED, [w.ls, forged])


def test_trusted_root_must_be_a_clearinghouse() -> None:
    w = world()
    assert "not a Clearinghouse root" in refused(UNTRUSTED, [w.ts], root=w.ls)


# --- temporary certificates -------------------------------------------------------------


def test_temporary_chain_needs_the_flag() -> None:
    w = world()
    message = refused(UNTRUSTED, [w.temp_ls, w.temp_ts])
    assert "temporary self-signed certificate of an unactivated license server" in message
    refused(UNTRUSTED, [w.temp_ls])


def test_temporary_chain_accepted_with_the_flag() -> None:
    w = world()
    result = pki.validate_chain(
        [w.temp_ls, w.temp_ts],
        w.root,
        NOW,
        leaf_role="terminal-server",
        allow_temporary_issuer=True,
    )
    assert (result.name, result.temporary, result.issuer_name) == ("TS02", True, "LS02")
    alone = pki.validate_chain([w.temp_ls], w.root, NOW, allow_temporary_issuer=True)
    assert alone.temporary
    # The flag changes nothing for a chain that reaches the real root.
    assert not pki.validate_chain([w.ls, w.ts], w.root, NOW, allow_temporary_issuer=True).temporary


def test_temporary_chain_still_checks_signatures_and_time() -> None:
    w = world()
    other_temp = pki.make_temporary_license_server_cert(
        key(40), name="LS02", version=2000, not_before=T0, not_after=T1, serial=4
    )
    assert "bad signature" in refused(
        UNTRUSTED, [other_temp, w.temp_ts], allow_temporary_issuer=True
    )
    refused(
        EXPIRED, [w.temp_ls, w.temp_ts], now=T1 + timedelta(days=1), allow_temporary_issuer=True
    )


def test_temporary_mark_cannot_appear_below_the_root() -> None:
    w = world()
    forged = forge(
        key(2),
        w.ls.subject,
        name="TS66",
        ca=False,
        identity=ident_map("terminal-server", "TS66", temporary=True),
    )
    assert "temporary mark" in refused(UNTRUSTED, [w.ls, forged])


def test_non_self_signed_temporary_top_is_refused() -> None:
    w = world()
    forged = forge(
        key(1),
        w.root.subject,
        name="LS66",
        ca=True,
        identity=ident_map("license-server", "LS66", temporary=True),
    )
    assert "not self-signed" in refused(UNTRUSTED, [forged], allow_temporary_issuer=True)


# --- arguments --------------------------------------------------------------------------


def test_builders_refuse_bad_arguments() -> None:
    w = world()
    naive = datetime(2003, 1, 1)
    calls: list[Callable[[], object]] = [
        lambda: pki.make_root(key(1), name="CH", not_before=naive, not_after=T1, serial=1),
        lambda: pki.make_root(key(1), name="CH", not_before=T1, not_after=T0, serial=1),
        lambda: pki.make_root(key(1), name="CH", not_before=T0, not_after=T1, serial=0),
        lambda: pki.make_root(key(1), name="CH", not_before=T0, not_after=T1, serial=2**159),
        lambda: pki.make_root(key(1), name="", not_before=T0, not_after=T1, serial=1),
        lambda: pki.make_root(key(1), name="x" * 65, not_before=T0, not_after=T1, serial=1),
        lambda: pki.make_temporary_license_server_cert(
            key(4), name="LS", version=2008, not_before=T0, not_after=T1, serial=1
        ),
        # Wrong issuer key, and an issuer certificate of the wrong role.
        lambda: pki.issue_license_server_cert(
            key(2),
            w.root,
            key(2).public_key(),
            name="LS",
            version=2003,
            license_server_id="",
            not_before=T0,
            not_after=T1,
            serial=1,
        ),
        lambda: pki.issue_terminal_server_cert(
            key(1),
            w.root,
            key(3).public_key(),
            name="TS",
            version=2003,
            not_before=T0,
            not_after=T1,
            serial=1,
        ),
    ]
    for call in calls:
        with pytest.raises(LocalProtocolError) as info:
            call()
        assert info.value.code is ErrorCode.INVALID_FIELD


def test_validate_chain_refuses_bad_arguments() -> None:
    w = world()
    with pytest.raises(LocalProtocolError, match="timezone-aware"):
        pki.validate_chain([w.ls], w.root, datetime(2004, 1, 1))
    with pytest.raises(LocalProtocolError, match="not a certificate role"):
        pki.validate_chain([w.ls], w.root, NOW, leaf_role="domain-controller")


def test_now_in_another_timezone() -> None:
    w = world()
    eastern = timezone(timedelta(hours=-5))
    assert pki.validate_chain([w.ls, w.ts], w.root, T0.astimezone(eastern)).name == "TS01"
