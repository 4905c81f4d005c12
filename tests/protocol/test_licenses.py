"""Signed client licenses and Clearinghouse key pack grants (protocol/licenses.py)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from tslic.protocol.clock import from_datetime
from tslic.protocol.codec import pack, to_wire
from tslic.protocol.domain import CalProduct, ClientOS, LicenseKind, LicensingMode, Program
from tslic.protocol.errors import ErrorCode, RemoteProtocolError
from tslic.protocol.licenses import (
    license_body_wire,
    open_grant,
    open_license,
    sign_grant,
    sign_license,
    verify_license,
)
from tslic.protocol.messages.records import KeyPackGrant, LicenseBody
from tslic.protocol.pki import (
    cert_to_der,
    issue_license_server_cert,
    make_root,
    make_temporary_license_server_cert,
    raw_public_key,
)

NOW = datetime(2003, 5, 1, tzinfo=UTC)
LATER = NOW + timedelta(days=3650)


class Pki(TypedDict):
    root_key: Ed25519PrivateKey
    root: x509.Certificate
    ls_key: Ed25519PrivateKey
    ls: x509.Certificate
    tmp_key: Ed25519PrivateKey
    tmp: x509.Certificate


@pytest.fixture(scope="module")
def pki() -> Pki:
    root_key, ls_key, tmp_key = (Ed25519PrivateKey.generate() for _ in range(3))
    root = make_root(root_key, name="Clearinghouse", not_before=NOW, not_after=LATER, serial=1)
    ls = issue_license_server_cert(
        root_key,
        root,
        ls_key.public_key(),
        name="LS2003",
        version=2003,
        license_server_id="LSID",
        not_before=NOW,
        not_after=LATER,
        serial=2,
    )
    tmp = make_temporary_license_server_cert(
        tmp_key, name="LSTEMP", version=2003, not_before=NOW, not_after=LATER, serial=3
    )
    return {
        "root_key": root_key,
        "root": root,
        "ls_key": ls_key,
        "ls": ls,
        "tmp_key": tmp_key,
        "tmp": tmp,
    }


def body(kind: LicenseKind = LicenseKind.PERMANENT, hwid: bytes = b"\x01" * 32) -> LicenseBody:
    issued = from_datetime(NOW)
    return LicenseBody(
        license_id=7,
        kind=kind,
        product=CalProduct.W2003_DEVICE_CAL,
        hwid=hwid,
        machine="PC1",
        user="alice",
        client_os=ClientOS.XP_PRO,
        mode=LicensingMode.PER_DEVICE,
        issuer="LS2003",
        license_server_id="LSID",
        issued_at=issued,
        expires_at=issued + 60 * 86_400_000,
    )


def test_license_round_trip_and_chain(pki: Pki) -> None:
    chain = (cert_to_der(pki["root"]), cert_to_der(pki["ls"]))
    blob = sign_license(pki["ls_key"], chain, body())
    signed = verify_license(blob, pki["root"], NOW + timedelta(days=1))
    assert signed.body == body()
    assert signed.issuer.name == "LS2003"
    assert open_license(blob).body.license_id == 7


def test_every_flipped_byte_is_refused(pki: Pki) -> None:
    chain = (cert_to_der(pki["root"]), cert_to_der(pki["ls"]))
    blob = sign_license(pki["ls_key"], chain, body())
    for i in range(0, len(blob), 7):
        bad = bytearray(blob)
        bad[i] ^= 0x40
        with pytest.raises(RemoteProtocolError):
            verify_license(bytes(bad), pki["root"], NOW)


def test_license_signed_by_another_key_is_forged(pki: Pki) -> None:
    chain = (cert_to_der(pki["root"]), cert_to_der(pki["ls"]))
    blob = sign_license(Ed25519PrivateKey.generate(), chain, body())
    with pytest.raises(RemoteProtocolError) as info:
        open_license(blob)
    assert info.value.code is ErrorCode.INVALID_LICENSE


def test_temporary_issuer_only_for_temporary_licenses(pki: Pki) -> None:
    chain = (cert_to_der(pki["tmp"]),)
    temp = sign_license(pki["tmp_key"], chain, body(LicenseKind.TEMPORARY))
    assert verify_license(temp, pki["root"], NOW).issuer.temporary
    perm = sign_license(pki["tmp_key"], chain, body(LicenseKind.PERMANENT))
    with pytest.raises(RemoteProtocolError) as info:
        verify_license(perm, pki["root"], NOW)
    assert info.value.code is ErrorCode.UNTRUSTED_CERTIFICATE


def test_license_from_another_root_is_untrusted(pki: Pki) -> None:
    other_key = Ed25519PrivateKey.generate()
    other = make_root(other_key, name="Other", not_before=NOW, not_after=LATER, serial=9)
    chain = (cert_to_der(pki["root"]), cert_to_der(pki["ls"]))
    blob = sign_license(pki["ls_key"], chain, body())
    with pytest.raises(RemoteProtocolError) as info:
        verify_license(blob, other, NOW)
    assert info.value.code is ErrorCode.UNTRUSTED_CERTIFICATE


@pytest.mark.parametrize("garbage", [b"", b"\x93\x01\x02\x03", b"\xc1", b"\x92\xc4\x00\xc4\x00"])
def test_garbage_is_invalid_license(pki: Pki, garbage: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        open_license(garbage)
    assert info.value.code is ErrorCode.INVALID_LICENSE


def test_grant_round_trip_and_forgery(pki: Pki) -> None:
    grant = KeyPackGrant(
        grant_id=1,
        license_server_id="LSID",
        product=CalProduct.W2003_DEVICE_CAL,
        program=Program.RETAIL,
        count=25,
        description="retail pack",
        issued_at=1,
        expires_at=0,
    )
    blob = sign_grant(pki["root_key"], grant)
    assert open_grant(blob, pki["root"]) == grant
    forged = sign_grant(pki["ls_key"], grant)
    with pytest.raises(RemoteProtocolError) as info:
        open_grant(forged, pki["root"])
    assert info.value.code is ErrorCode.INVALID_LICENSE
    assert raw_public_key(pki["root_key"]) != raw_public_key(pki["ls_key"])


@settings(max_examples=200, deadline=None)
@given(
    license_id=st.integers(0, 2**62),
    kind=st.sampled_from(LicenseKind),
    product=st.sampled_from(CalProduct),
    names=st.tuples(*[st.text(st.characters(blacklist_categories=["Cs"]), max_size=20)] * 3),
    client_os=st.sampled_from(ClientOS),
    mode=st.sampled_from(LicensingMode),
    times=st.tuples(st.integers(0, 2**40), st.integers(0, 2**40)),
)
def test_the_issuers_body_map_is_the_records(
    license_id: int,
    kind: LicenseKind,
    product: CalProduct,
    names: tuple[str, str, str],
    client_os: ClientOS,
    mode: LicensingMode,
    times: tuple[int, int],
) -> None:
    """`license_body_wire` (the license server's fast path) is `to_wire(LicenseBody(...))`,
    field for field and byte for byte once packed, so every verifier reads the same body."""
    machine, user, issuer = names
    issued, expires = min(times), max(times)
    fields = (
        license_id, kind, product, bytes(32), machine, user, client_os, mode, issuer,
        "LSID-1", issued, expires,
    )  # fmt: skip
    names_of = [f.name for f in dataclasses.fields(LicenseBody) if f.name != "scope"]
    values: dict[str, Any] = dict(zip(names_of, fields, strict=True))
    record = to_wire(LicenseBody(**values))
    fast = license_body_wire(*fields)
    assert fast == record
    assert list(fast) == list(record)  # the same order: msgpack keeps it
    assert pack(fast) == pack(record)
